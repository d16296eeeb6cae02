//! TLS with rustls: certificates loaded from PEM files, and the daemon's TLS streams (the
//! crate's `TlsStream`), a rustls session between a non-blocking TCP socket and a connection's
//! framing.
//!
//! rustls does no I/O of its own, so a TLS connection is the same [`Conn`](super::Conn) state
//! machine as a TCP one: a TLS stream's `read` takes records from the socket, decrypts them and
//! hands out plaintext; its `write` encrypts and pushes records as far as the socket takes them.
//! Handshake records and records a full socket refused stay in the session until
//! its `flush_pending` gets them out (the connection calls it on every turn). A
//! handshake never blocks the loop: it advances as its bytes arrive, like a message.
//!
//! Memory: rustls holds at most one record being received, the plaintext of one record
//! (16 KiB) not yet read, and [`SEND_LIMIT`] bytes of records not yet sent, per connection.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use mio::net::TcpStream;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection};

/// Unsent TLS records a connection's session may hold (beyond them, writes wait for the socket).
pub const SEND_LIMIT: usize = 32 << 10;

/// The files of a TLS listener: `--tls-cert`, `--tls-key`, `--tls-client-ca`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// The server's certificate chain (PEM), its own certificate first.
    pub cert: Option<PathBuf>,
    /// Its private key (PEM: PKCS#8, PKCS#1 or SEC1); readable by its owner only.
    pub key: Option<PathBuf>,
    /// Mutual TLS: clients must present a certificate signed by one of these CAs (PEM).
    pub client_ca: Option<PathBuf>,
}

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A `tls://` listener was asked for without a certificate and key.
    #[error("{addr} needs a certificate and its key: pass --tls-cert PATH and --tls-key PATH")]
    Missing {
        /// The listener's address.
        addr: String,
    },
    /// A file could not be read, or holds nothing usable.
    #[error("TLS {what} {}: {why}", path.display())]
    File {
        /// Which file: `certificate`, `key` or `CA`.
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
    /// The private key file is open to other users.
    #[error("TLS key {} is accessible by group or others (mode {mode:04o}): chmod 600 it", path.display())]
    KeyMode {
        /// The key file's path.
        path: PathBuf,
        /// Its permission bits (`mode & 0o7777`).
        mode: u32,
    },
    /// rustls refused the combination (a key that does not match the certificate, …).
    #[error("TLS setup with {}: {why}", path.display())]
    Rejected {
        /// The file the refusal is reported against: the certificate, the key or the CA.
        path: PathBuf,
        /// Why it was refused.
        why: String,
    },
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn file_err<'a>(what: &'static str, path: &'a Path) -> impl Fn(String) -> TlsError + 'a {
    move |why| TlsError::File { what, path: path.to_owned(), why }
}

fn read_certs(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = std::fs::read(path).map_err(|e| file_err(what, path)(e.to_string()))?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_err(what, path)(e.to_string()))?;
    if certs.is_empty() {
        return Err(file_err(what, path)("no PEM certificate in it".into()));
    }
    Ok(certs)
}

/// Reads a private key, refusing one that other users may read.
fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    use std::os::unix::fs::MetadataExt;
    let mut file = std::fs::File::open(path).map_err(|e| file_err("key", path)(e.to_string()))?;
    let mode = file.metadata().map_err(|e| file_err("key", path)(e.to_string()))?.mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(TlsError::KeyMode { path: path.to_owned(), mode });
    }
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(|e| file_err("key", path)(e.to_string()))?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| file_err("key", path)(format!("no usable private key: {e}")))
}

fn roots(path: &Path) -> Result<Arc<RootCertStore>, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in read_certs("CA", path)? {
        roots.add(cert).map_err(|e| file_err("CA", path)(e.to_string()))?;
    }
    Ok(Arc::new(roots))
}

/// The server side of TLS listeners, built from `files` (read now: call again to reload).
pub fn server_config(files: &TlsFiles) -> Result<Arc<ServerConfig>, TlsError> {
    let (Some(cert), Some(key)) = (&files.cert, &files.key) else {
        let path = files.cert.clone().or(files.key.clone()).unwrap_or_default();
        return Err(TlsError::Rejected { path, why: "--tls-cert and --tls-key go together".into() });
    };
    let chain = read_certs("certificate", cert)?;
    let key_der = read_key(key)?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Rejected { path: cert.clone(), why: e.to_string() })?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let verifier = WebPkiClientVerifier::builder_with_provider(roots(ca)?, provider())
                .build()
                .map_err(|e| TlsError::Rejected { path: ca.clone(), why: e.to_string() })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    // No ALPN: clients that offer some (curl: h2, http/1.1) then speak HTTP/1.1, and one that
    // offers only protocols the daemon does not know is not refused for it.
    let config = builder.with_single_cert(chain, key_der).map_err(|e| TlsError::Rejected {
        path: key.clone(),
        why: format!("{e} (does the key match the certificate?)"),
    })?;
    Ok(Arc::new(config))
}

/// What a client trusts and shows: the CA that signed the server's certificate, and optionally
/// its own certificate and key (mutual TLS).
#[derive(Clone, Debug, Default)]
pub struct ClientFiles {
    /// The CA certificates (PEM) one of which must have signed the server's certificate.
    pub ca: PathBuf,
    /// The client's certificate chain (PEM), its own certificate first; it goes with `key`.
    pub cert: Option<PathBuf>,
    /// The client's private key (PEM), which must be readable by its owner only; it goes with
    /// `cert`.
    pub key: Option<PathBuf>,
}

/// The client side, built from `files`.
pub fn client_config(files: &ClientFiles) -> Result<Arc<ClientConfig>, TlsError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Rejected { path: files.ca.clone(), why: e.to_string() })?
        .with_root_certificates(roots(&files.ca)?);
    let config = match (&files.cert, &files.key) {
        (None, None) => builder.with_no_client_auth(),
        (Some(cert), Some(key)) => builder
            .with_client_auth_cert(read_certs("certificate", cert)?, read_key(key)?)
            .map_err(|e| TlsError::Rejected { path: key.clone(), why: e.to_string() })?,
        (Some(p), None) | (None, Some(p)) => {
            return Err(TlsError::Rejected {
                path: p.clone(),
                why: "a client certificate needs its key, and a key its certificate".into(),
            })
        }
    };
    Ok(Arc::new(config))
}

/// A client session for `host` (an IP address or a DNS name).
pub fn client_connection(config: &Arc<ClientConfig>, host: &str) -> Result<ClientConnection, io::Error> {
    let name = ServerName::try_from(host.to_owned()).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    ClientConnection::new(config.clone(), name).map_err(io::Error::other)
}

/// A TLS server connection on a non-blocking TCP socket.
#[derive(Debug)]
pub(crate) struct TlsStream {
    tcp: TcpStream,
    tls: ServerConnection,
}

impl TlsStream {
    /// Starts the server side of a handshake on an accepted socket.
    pub(crate) fn new(tcp: TcpStream, config: &Arc<ServerConfig>) -> io::Result<TlsStream> {
        let mut tls = ServerConnection::new(config.clone()).map_err(io::Error::other)?;
        tls.set_buffer_limit(Some(SEND_LIMIT));
        Ok(TlsStream { tcp, tls })
    }

    /// The socket, to register with the poll.
    pub(crate) fn socket(&mut self) -> &mut TcpStream {
        &mut self.tcp
    }

    /// Writes pending records (handshake, alerts, encrypted answers) as far as the socket takes
    /// them: `Ok(true)` once none is left.
    pub(crate) fn flush_pending(&mut self) -> io::Result<bool> {
        while self.tls.wants_write() {
            match self.tls.write_tls(&mut self.tcp) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// Whether records wait to be sent.
    pub(crate) fn has_pending(&self) -> bool {
        self.tls.wants_write()
    }

    pub(crate) fn is_handshaking(&self) -> bool {
        self.tls.is_handshaking()
    }

    /// The common name of the client's verified certificate (mutual TLS), once the handshake
    /// is done.
    pub(crate) fn peer_name(&self) -> Option<String> {
        let cert = self.tls.peer_certificates()?.first()?;
        common_name(cert.as_ref())
    }

    /// Ends the session (`close_notify`) and shuts the socket's sending side.
    pub(crate) fn shutdown_write(&mut self) -> io::Result<()> {
        self.tls.send_close_notify();
        let _ = self.flush_pending();
        self.tcp.shutdown(std::net::Shutdown::Write)
    }
}

impl Read for TlsStream {
    /// Plaintext: `WouldBlock` while none is there (the handshake goes on meanwhile), `Ok(0)` at
    /// the end (`close_notify` or the socket's end), an error for a broken session (the alert
    /// that says why is sent first).
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.tls.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) => return Err(e),
            }
            if !self.tls.wants_read() {
                // Its handshake records must go first: `flush_pending` will, when the socket
                // can take them, and the connection reads again then.
                return Err(io::ErrorKind::WouldBlock.into());
            }
            match self.tls.read_tls(&mut self.tcp) {
                Ok(_) => {}
                Err(e) => return Err(e),
            }
            if let Err(e) = self.tls.process_new_packets() {
                // The alert, best effort.
                let _ = self.flush_pending();
                return Err(io::Error::new(io::ErrorKind::InvalidData, e));
            }
            self.flush_pending()?;
        }
    }
}

impl Write for TlsStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.flush_pending()?;
        let n = self.tls.writer().write(buf)?;
        self.flush_pending()?;
        if n == 0 && !buf.is_empty() {
            // The session holds its limit of unsent records: the socket is full.
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The first common name (OID 2.5.4.3) in a DER certificate's subject.
fn common_name(der: &[u8]) -> Option<String> {
    // Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version OPTIONAL, serial,
    // signature, issuer, validity, subject, … } … }
    let (_, cert, _) = tlv(der)?;
    let (_, mut tbs, _) = tlv(cert)?;
    let mut fields = Vec::with_capacity(6);
    while fields.len() < 6 && !tbs.is_empty() {
        let (tag, value, rest) = tlv(tbs)?;
        fields.push((tag, value));
        tbs = rest;
    }
    let skip = usize::from(fields.first()?.0 == 0xa0);
    let (tag, mut subject) = *fields.get(skip + 4)?;
    if tag != 0x30 {
        return None;
    }
    // Name ::= SEQUENCE OF SET OF SEQUENCE { type OID, value }
    while !subject.is_empty() {
        let (_, mut set, rest) = tlv(subject)?;
        subject = rest;
        while !set.is_empty() {
            let (_, atv, more) = tlv(set)?;
            set = more;
            let (oid_tag, oid, value) = tlv(atv)?;
            if oid_tag == 0x06 && oid == [0x55, 0x04, 0x03] {
                let (_, text, _) = tlv(value)?;
                return String::from_utf8(text.to_vec()).ok();
            }
        }
    }
    None
}

/// One DER tag-length-value: (tag, value, what follows).
fn tlv(der: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = der.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_der() {
        assert_eq!(tlv(&[0x04, 0x02, 1, 2, 9]), Some((0x04, &[1u8, 2][..], &[9u8][..])));
        assert_eq!(tlv(&[0x04, 0x81, 0x01, 7]), Some((0x04, &[7u8][..], &[][..])));
        assert_eq!(tlv(&[0x04, 0x05, 1]), None);
        assert_eq!(common_name(&[0x30, 0x00]), None);
    }
}
