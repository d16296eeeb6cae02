//! A blocking client for tomte daemons, used by `tomtectl`, tests and benchmarks.

use std::io::{self, BufRead, BufReader, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use tomte_rpc::{jsonrpc, Args, Fault, Value};

use crate::net::{Address, Transport};

/// Why a call did not get an answer (an RPC error is an answer: see [`Client::call`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    #[error("cannot connect to {addr}: {source}")]
    Connect { addr: String, source: io::Error },
    #[error("connection to {addr} failed: {source}")]
    Io { addr: String, source: io::Error },
    #[error("{addr} closed the connection without answering")]
    Closed { addr: String },
    #[error("{addr} answered something unreadable: {why}")]
    Protocol { addr: String, why: String },
}

enum Socket {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl io::Read for Socket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Socket::Unix(s) => s.read(buf),
            Socket::Tcp(s) => s.read(buf),
        }
    }
}

impl io::Write for Socket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Socket::Unix(s) => s.write(buf),
            Socket::Tcp(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A connection speaking NDJSON JSON-RPC.
pub struct Client {
    addr: String,
    reader: BufReader<Socket>,
    next_id: u64,
    line: Vec<u8>,
    request: Vec<u8>,
}

impl Client {
    /// Connects to a native listener.
    pub fn connect(address: &Address) -> Result<Client, ClientError> {
        let addr = address.to_string();
        let connect_err = |source| ClientError::Connect { addr: addr.clone(), source };
        let socket = match &address.transport {
            Transport::Unix(path) => Socket::Unix(UnixStream::connect(path).map_err(connect_err)?),
            Transport::Tcp(sa) => {
                let s = TcpStream::connect(sa).map_err(connect_err)?;
                let _ = s.set_nodelay(true);
                Socket::Tcp(s)
            }
        };
        Ok(Client { addr, reader: BufReader::new(socket), next_id: 1, line: Vec::new(), request: Vec::new() })
    }

    /// Bounds how long a call waits for its answer.
    pub fn set_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        match self.reader.get_ref() {
            Socket::Unix(s) => s.set_read_timeout(timeout),
            Socket::Tcp(s) => s.set_read_timeout(timeout),
        }
    }

    /// Calls `method`: `Ok(Ok(value))` for a result, `Ok(Err(fault))` for an RPC error.
    pub fn call(&mut self, method: &str, args: &Args) -> Result<Result<Value, Fault>, ClientError> {
        let id = self.next_id;
        self.next_id += 1;
        self.request.clear();
        jsonrpc::encode_request(method, args, Some(id), &mut self.request);
        self.request.push(b'\n');
        let io_err = |source| ClientError::Io { addr: self.addr.clone(), source };
        self.reader.get_mut().write_all(&self.request).map_err(io_err)?;
        self.line.clear();
        let n = self
            .reader
            .read_until(b'\n', &mut self.line)
            .map_err(|source| ClientError::Io { addr: self.addr.clone(), source })?;
        if n == 0 {
            return Err(ClientError::Closed { addr: self.addr.clone() });
        }
        let resp = jsonrpc::decode_response(&self.line)
            .map_err(|e| ClientError::Protocol { addr: self.addr.clone(), why: e.to_string() })?;
        if resp.id != Value::Int(id as i64) && resp.id != Value::Nil {
            return Err(ClientError::Protocol {
                addr: self.addr.clone(),
                why: format!("answer for id {:?}, expected {id}", resp.id),
            });
        }
        Ok(resp.outcome)
    }
}
