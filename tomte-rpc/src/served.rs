//! What serving one message produced, and how to write an answer that comes later.

use crate::fault::Fault;
use crate::value::Value;

/// The outcome of serving one message.
#[derive(Debug, PartialEq, Eq)]
pub enum Served {
    /// Nothing to send back (JSON-RPC notifications only).
    Nothing,
    /// The answer was appended to the output.
    Answered,
    /// The handler deferred its answer ([`Fault::deferred`]); write it with [`Pending::complete`]
    /// once it is known.
    Later(Pending),
}

/// An answer still owed, and the form it must take.
#[derive(Debug, PartialEq, Eq)]
pub struct Pending {
    pub(crate) kind: PendingKind,
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PendingKind {
    /// JSON-RPC, with the request's raw id.
    Json(String),
    Xml,
    /// A comodojo frame around a JSON-RPC (with its raw id) or XML-RPC answer.
    Comodojo(Option<String>),
}

impl Pending {
    pub(crate) fn json(id: &str) -> Pending {
        Pending { kind: PendingKind::Json(id.to_owned()) }
    }
    pub(crate) fn xml() -> Pending {
        Pending { kind: PendingKind::Xml }
    }

    /// The same answer, wrapped in a comodojo response frame.
    pub(crate) fn in_comodojo_frame(self) -> Pending {
        let id = match self.kind {
            PendingKind::Json(id) => Some(id),
            PendingKind::Xml => None,
            PendingKind::Comodojo(id) => id,
        };
        Pending { kind: PendingKind::Comodojo(id) }
    }

    /// Whether the answer is XML (for a transport that labels it, as HTTP does).
    pub fn is_xml(&self) -> bool {
        matches!(self.kind, PendingKind::Xml | PendingKind::Comodojo(None))
    }

    /// Appends the answer, in the form the request asked for.
    pub fn complete(&self, result: &Result<Value, Fault>, out: &mut Vec<u8>) {
        match &self.kind {
            PendingKind::Json(id) => match result {
                Ok(v) => crate::jsonrpc::write_result(out, id, v),
                Err(f) => crate::jsonrpc::write_error(out, id, f),
            },
            PendingKind::Xml => crate::xmlrpc::encode_response(result, out),
            PendingKind::Comodojo(id) => {
                let mut payload = Vec::new();
                let inner = match id {
                    Some(id) => Pending::json(id),
                    None => Pending::xml(),
                };
                inner.complete(result, &mut payload);
                crate::comodojo::encode_response(true, Some(&payload), out);
            }
        }
    }
}
