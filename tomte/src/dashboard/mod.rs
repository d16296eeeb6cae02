//! The web dashboard (placeholder: the page lands with the dashboard work).

/// A file of the dashboard.
pub(crate) struct Asset {
    /// Its content type.
    pub ctype: &'static str,
    /// Its bytes.
    pub body: &'static [u8],
}

/// The dashboard's file at `path`.
pub(crate) fn asset(path: &str) -> Option<Asset> {
    match path {
        "/" | "/index.html" => Some(Asset {
            ctype: "text/html; charset=utf-8",
            body: b"<!doctype html><title>tomte</title><p>dashboard\n",
        }),
        _ => None,
    }
}

/// The dashboard's Content-Security-Policy.
pub(crate) const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
