//! Tokens: shared secrets TCP clients present to prove who they are (`--token-file`).
//!
//! The file holds one token a line, `NAME SECRET` (blank lines and `#` comments allowed), and
//! must be readable by its owner only. A client presents the secret as HTTP
//! `Authorization: Bearer SECRET`, or as the first call of its connection, `daemon.auth`; the
//! token's name becomes its identity (`token:NAME` rules). Secrets are compared in constant
//! time, against every token, and never logged.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use subtle::ConstantTimeEq;

/// The shortest secret accepted: shorter ones are guessed too easily.
pub const MIN_SECRET: usize = 16;

/// Why a token file cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The file could not be read.
    #[error("cannot read token file {path}: {source}")]
    Io {
        /// The token file's path.
        path: PathBuf,
        /// The error the system gave.
        source: io::Error,
    },
    /// The daemon's token file grants its group or others some access.
    #[error("token file {path} may be read by others (mode {mode:04o}): chmod 600 it")]
    Readable {
        /// The token file's path.
        path: PathBuf,
        /// Its permission bits (`mode & 0o7777`).
        mode: u32,
    },
    /// A line of the daemon's token file is not `NAME SECRET`, has a secret shorter than
    /// [`MIN_SECRET`], or repeats a name.
    #[error("token file {path}, line {line}: {why}")]
    Line {
        /// The token file's path.
        path: PathBuf,
        /// The line's number, from 1.
        line: usize,
        /// What is wrong with it.
        why: String,
    },
    /// The file holds no token: nothing but blank lines and comments.
    #[error("token file {path} holds no token")]
    Empty {
        /// The token file's path.
        path: PathBuf,
    },
}

/// The tokens of a token file.
#[derive(Clone)]
pub struct Tokens {
    entries: Vec<(String, Vec<u8>)>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Names only: secrets never reach a log.
        f.debug_list().entries(self.entries.iter().map(|(n, _)| n)).finish()
    }
}

impl Tokens {
    /// Reads `path`, refusing a file others may read, and lines that are not `NAME SECRET`.
    pub fn load(path: &Path) -> Result<Tokens, TokenError> {
        let io_err = |source| TokenError::Io { path: path.to_owned(), source };
        let meta = std::fs::metadata(path).map_err(io_err)?;
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(TokenError::Readable { path: path.to_owned(), mode });
        }
        let text = std::fs::read_to_string(path).map_err(io_err)?;
        let mut entries = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |why: &str| TokenError::Line { path: path.to_owned(), line: i + 1, why: why.to_owned() };
            let mut fields = line.split_whitespace();
            let (Some(name), Some(secret), None) = (fields.next(), fields.next(), fields.next()) else {
                return Err(bad("expected NAME SECRET"));
            };
            if secret.len() < MIN_SECRET {
                return Err(bad(&format!("the secret of '{name}' is shorter than {MIN_SECRET} characters")));
            }
            if entries.iter().any(|(n, _)| n == name) {
                return Err(bad(&format!("a second token named '{name}'")));
            }
            entries.push((name.to_owned(), secret.as_bytes().to_vec()));
        }
        if entries.is_empty() {
            return Err(TokenError::Empty { path: path.to_owned() });
        }
        Ok(Tokens { entries })
    }

    /// The name of the token whose secret is `presented`, if one is. Every token is compared,
    /// each in constant time, so the time taken says nothing of which one (nearly) matched.
    pub fn check(&self, presented: &[u8]) -> Option<&str> {
        let mut found = None;
        for (name, secret) in &self.entries {
            // Lengths may differ: ct_eq of slices of different lengths is false in constant time.
            if bool::from(secret.as_slice().ct_eq(presented)) {
                found = Some(name.as_str());
            }
        }
        found
    }
}

/// The secret a client presents from `path`: the daemon's own format (its first token's
/// secret) or a file holding the bare secret.
pub fn client_secret(path: &Path) -> Result<String, TokenError> {
    let text = std::fs::read_to_string(path).map_err(|source| TokenError::Io { path: path.to_owned(), source })?;
    let line = text.lines().map(str::trim).find(|l| !l.is_empty() && !l.starts_with('#'));
    let Some(line) = line else { return Err(TokenError::Empty { path: path.to_owned() }) };
    let mut fields = line.split_whitespace();
    match (fields.next(), fields.next()) {
        (Some(_name), Some(secret)) => Ok(secret.to_owned()),
        (Some(secret), None) => Ok(secret.to_owned()),
        _ => Err(TokenError::Empty { path: path.to_owned() }),
    }
}
