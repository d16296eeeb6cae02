//! Finds the character encoding of an XML document and gives the document as UTF-8.
//!
//! As XML 1.0 appendix F says, in this order: a byte order mark (UTF-8, UTF-16LE, UTF-16BE),
//! else `<?` written in 16-bit units (UTF-16 without a BOM), else the `encoding` of the XML
//! declaration, else UTF-8. Encodings are named and decoded as the WHATWG Encoding Standard
//! does ([`encoding_rs`]): `ISO-8859-1` and `latin1` read as windows-1252, for instance.
//!
//! UTF-8, and a document in an ASCII-compatible encoding that holds only ASCII bytes, are used
//! as they are, without a copy. A document labelled UTF-16 whose bytes are plainly 8-bit (its
//! declaration readable as ASCII) is read as UTF-8, as libxml2 does.

use std::borrow::Cow;

use encoding_rs::{Encoding, REPLACEMENT, UTF_16BE, UTF_16LE, UTF_8};

/// Why a document could not be read as text.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum DecodeError {
    /// The declaration names an encoding the decoder does not know.
    Unsupported(String),
    /// The bytes are not valid in the document's encoding.
    Malformed(&'static str),
}

/// The document as UTF-8, borrowed when no conversion is needed. The UTF-8 the result holds
/// is not validated here when the input is used as it is: the XML reader checks it.
pub(crate) fn to_utf8(input: &[u8]) -> Result<Cow<'_, [u8]>, DecodeError> {
    let Some((encoding, bom)) = source_encoding(input)? else {
        return Ok(Cow::Borrowed(input));
    };
    match encoding.decode_without_bom_handling_and_without_replacement(&input[bom..]) {
        Some(Cow::Borrowed(text)) => Ok(Cow::Borrowed(text.as_bytes())),
        Some(Cow::Owned(text)) => Ok(Cow::Owned(text.into_bytes())),
        None => Err(DecodeError::Malformed(encoding.name())),
    }
}

/// The encoding to decode from and the length of the BOM to skip; `None` when the input is
/// to be read as it is (UTF-8, or ASCII in an encoding that agrees with ASCII).
fn source_encoding(input: &[u8]) -> Result<Option<(&'static Encoding, usize)>, DecodeError> {
    if let Some((encoding, bom)) = Encoding::for_bom(input) {
        // The XML reader skips a UTF-8 BOM itself.
        return Ok((encoding != UTF_8).then_some((encoding, bom)));
    }
    if input.starts_with(b"<\0?\0") {
        return Ok(Some((UTF_16LE, 0)));
    }
    if input.starts_with(b"\0<\0?") {
        return Ok(Some((UTF_16BE, 0)));
    }
    let Some(label) = declared_encoding(input) else { return Ok(None) };
    match Encoding::for_label(label) {
        None => Err(DecodeError::Unsupported(String::from_utf8_lossy(label).into_owned())),
        // The Encoding Standard's stand-in for encodings it refuses (ISO-2022-KR, HZ…).
        Some(e) if e == REPLACEMENT => Err(DecodeError::Unsupported(String::from_utf8_lossy(label).into_owned())),
        Some(e) if e == UTF_8 || e == UTF_16LE || e == UTF_16BE => Ok(None),
        Some(e) if e.is_ascii_compatible() && input.is_ascii() => Ok(None),
        Some(e) => Ok(Some((e, 0))),
    }
}

/// The value of `encoding` in the XML declaration the input starts with (after a UTF-8 BOM),
/// if it has one. Read by hand, and only in the declaration's first bytes, so a declaration
/// stuffed with attributes costs nothing.
fn declared_encoding(input: &[u8]) -> Option<&[u8]> {
    /// Far longer than any real declaration (`<?xml version="1.0" encoding="…"?>`).
    const LONGEST: usize = 256;
    let input = input.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(input);
    let rest = input.strip_prefix(b"<?xml")?;
    if !rest.first().is_some_and(u8::is_ascii_whitespace) {
        return None;
    }
    let rest = &rest[..rest.len().min(LONGEST)];
    let decl = &rest[..rest.windows(2).position(|w| w == b"?>")?];
    let at = decl.windows(8).position(|w| w == b"encoding")?;
    let after = decl[at + 8..].trim_ascii_start().strip_prefix(b"=")?.trim_ascii_start();
    let (&quote, value) = after.split_first()?;
    if quote != b'"' && quote != b'\'' {
        return None;
    }
    Some(&value[..value.iter().position(|&b| b == quote)?])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decl(encoding: &str) -> Vec<u8> {
        format!("<?xml version=\"1.0\" encoding=\"{encoding}\"?><a/>").into_bytes()
    }

    #[test]
    fn declarations_are_read_by_hand() {
        assert_eq!(declared_encoding(b"<?xml version='1.0' encoding = 'latin1' ?>"), Some(&b"latin1"[..]));
        assert_eq!(declared_encoding(b"\xEF\xBB\xBF<?xml encoding=\"x\"?>"), Some(&b"x"[..]));
        for none in
            [&b"<?xml version=\"1.0\"?>"[..], b"<?xmlx encoding='a'?>", b"<a encoding='a'/>", b" <?xml encoding='a'?>"]
        {
            assert_eq!(declared_encoding(none), None, "{}", String::from_utf8_lossy(none));
        }
        let long = format!("<?xml {} encoding='a'?>", "a=\"\" ".repeat(100));
        assert_eq!(declared_encoding(long.as_bytes()), None);
    }

    #[test]
    fn utf8_and_ascii_are_not_copied() {
        for doc in [decl("UTF-8"), decl("utf8"), decl("ISO-8859-1"), decl("UTF-16"), b"<a>\xC3\xA9</a>".to_vec()] {
            assert!(matches!(to_utf8(&doc), Ok(Cow::Borrowed(_))), "{}", String::from_utf8_lossy(&doc));
        }
    }

    #[test]
    fn other_encodings_are_decoded() {
        let mut latin = decl("ISO-8859-1");
        latin.extend_from_slice(b"caf\xE9 \x80");
        assert!(to_utf8(&latin).unwrap().ends_with("café €".as_bytes()));
        let text = "<?xml version=\"1.0\"?><a>é🦀</a>";
        let le: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
        let be: Vec<u8> = text.encode_utf16().flat_map(u16::to_be_bytes).collect();
        for doc in [le.clone(), be.clone(), [&[0xFF, 0xFE][..], &le].concat(), [&[0xFE, 0xFF][..], &be].concat()] {
            assert_eq!(to_utf8(&doc).unwrap(), text.as_bytes());
        }
        assert_eq!(to_utf8(&le[..le.len() - 1]), Err(DecodeError::Malformed("UTF-16LE")));
        assert_eq!(to_utf8(&decl("bogus-enc")), Err(DecodeError::Unsupported("bogus-enc".into())));
        assert_eq!(to_utf8(&decl("iso-2022-kr")), Err(DecodeError::Unsupported("iso-2022-kr".into())));
    }
}
