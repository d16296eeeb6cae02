//! The configuration file itself: opened so nobody else can have written it, parsed with the
//! position of every key and value, and positions turned into `FILE:LINE:COL: key 'x'`.

use std::io::Read;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::de::{DeserializeOwned, IntoDeserializer};
use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::ConfigError;
use crate::process::files::{self, Owner};
use crate::process::PathError;

/// A configuration file larger than this is refused (it is a few hundred bytes in practice).
const MAX_SIZE: u64 = 1 << 20;

/// A configuration file as it was read: its path and its text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct File {
    path: PathBuf,
    text: String,
}

impl File {
    /// Reads the file at `path` (absolute), refusing one that others may have written: it
    /// must be a regular file of root's or the daemon's user's, writable by nobody else, with a
    /// single name, in directories only they can change, and not a symbolic link
    /// (see [`crate::process::files`]).
    pub fn load(path: &Path) -> Result<File, ConfigError> {
        let missing = || ConfigError::Missing { path: path.to_owned() };
        let refused = |source: PathError| match source {
            PathError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => missing(),
            PathError::Io { source, .. } => ConfigError::Read { path: path.to_owned(), source },
            source => ConfigError::Unsafe { path: path.to_owned(), source },
        };
        let at = files::parent(path).map_err(refused)?;
        let file = at.open_existing(path, Owner::EuidOrRoot).map_err(refused)?.ok_or_else(missing)?;
        let mut text = String::new();
        file.take(MAX_SIZE + 1)
            .read_to_string(&mut text)
            .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        if text.len() as u64 > MAX_SIZE {
            return Err(ConfigError::Read {
                path: path.to_owned(),
                source: std::io::Error::other(format!("larger than {MAX_SIZE} bytes")),
            });
        }
        Ok(File { path: path.to_owned(), text })
    }

    /// A file read already (tests, and a daemon that carries its configuration in code).
    pub fn from_text(path: impl Into<PathBuf>, text: impl Into<String>) -> File {
        File { path: path.into(), text: text.into() }
    }

    /// The path it was read from (or given, for one made from text).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Its whole text, as read.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The document, every key and value with its span; bad TOML is an error at its place.
    pub(crate) fn parse(&self) -> Result<Spanned<DeTable<'_>>, ConfigError> {
        DeTable::parse(&self.text).map_err(|e| self.error(e.span().unwrap_or(0..0), None, e.message().to_owned()))
    }

    /// The 1-based line and column (in characters) of byte `offset`.
    pub(crate) fn line_column(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let start = before.rfind('\n').map_or(0, |i| i + 1);
        (line, before[start..].chars().count() + 1)
    }

    /// The line of the key at dotted `path` (`["workers", "alpha", "interval"]`), when the
    /// file has it.
    pub(crate) fn line_of(&self, path: &[&str]) -> Option<usize> {
        let doc = self.parse().ok()?;
        let mut table = doc.get_ref();
        let (last, through) = path.split_last()?;
        for name in through {
            match table.get(*name).map(|v| v.get_ref()) {
                Some(DeValue::Table(t)) => table = t,
                _ => return None,
            }
        }
        let (key, _) = table.iter().find(|(k, _)| k.get_ref() == last)?;
        Some(self.line_column(key.span().start).0)
    }

    /// An error at `span` in the file.
    pub(crate) fn error(&self, span: Range<usize>, key: Option<String>, why: String) -> ConfigError {
        let (line, column) = self.line_column(span.start);
        ConfigError::File { path: self.path.clone(), line, column, key, why }
    }

    /// Section `name` (a top-level table, `[app]`) deserialized into `T`; an empty table when
    /// the file has none. A bad value is an error naming its line and key.
    pub(crate) fn section<T: DeserializeOwned>(&self, name: &str) -> Result<T, ConfigError> {
        let doc = self.parse()?;
        match doc.get_ref().get(name) {
            Some(value) => self.deserialize(&doc, value.clone(), name),
            None => empty_section(Some(&self.path), name),
        }
    }

    /// `value` (in `doc`, at key `name`) deserialized into `T`.
    pub(crate) fn deserialize<'i, T: DeserializeOwned>(
        &self,
        doc: &Spanned<DeTable<'i>>,
        value: Spanned<DeValue<'i>>,
        name: &str,
    ) -> Result<T, ConfigError> {
        let whole = value.span();
        T::deserialize(value.into_deserializer()).map_err(|e| {
            let span = e.span().unwrap_or(whole);
            let key = key_at(doc.get_ref(), span.start).unwrap_or_else(|| name.to_owned());
            self.error(span, Some(key), e.message().to_owned())
        })
    }
}

/// `T` from an empty table: the section is not in the file (or there is no file).
pub(crate) fn empty_section<T: DeserializeOwned>(path: Option<&Path>, name: &str) -> Result<T, ConfigError> {
    toml::from_str::<T>("").map_err(|e| ConfigError::Section {
        path: path.map(Path::to_owned),
        section: name.to_owned(),
        why: e.message().to_owned(),
    })
}

/// The dotted key whose key or value holds byte `offset`, the deepest one.
pub(crate) fn key_at(table: &DeTable<'_>, offset: usize) -> Option<String> {
    let inside = |span: Range<usize>| span.start <= offset && offset < span.end.max(span.start + 1);
    for (key, value) in table.iter() {
        if !(inside(key.span()) || inside(value.span())) {
            continue;
        }
        let mut path = key.get_ref().to_string();
        if let Some(deeper) = deeper_key(value.get_ref(), offset) {
            path.push('.');
            path.push_str(&deeper);
        }
        return Some(path);
    }
    // A standard table's entries are not inside its header's span: look in every table.
    for (key, value) in table.iter() {
        if let Some(deeper) = deeper_key(value.get_ref(), offset) {
            return Some(format!("{}.{deeper}", key.get_ref()));
        }
    }
    None
}

fn deeper_key(value: &DeValue<'_>, offset: usize) -> Option<String> {
    match value {
        DeValue::Table(t) => key_at(t, offset),
        DeValue::Array(items) => items.iter().find_map(|item| deeper_key(item.get_ref(), offset)),
        _ => None,
    }
}
