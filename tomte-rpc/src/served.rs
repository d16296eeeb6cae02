//! What serving one message produced, and how to write an answer that comes later.

use std::fmt;

use crate::fault::Fault;
use crate::method::Later;
use crate::value::Value;

/// The outcome of serving one message.
#[derive(Debug)]
pub enum Served {
    /// Nothing to send back (JSON-RPC notifications only).
    Nothing,
    /// The answer was appended to the output.
    Answered,
    /// The handler answers later ([`crate::Reply::Later`]): drive the future
    /// ([`Pending::take_future`]) and write its output with [`Pending::complete`].
    Later(Pending),
}

/// An answer still owed: the future that computes it, and the form it must take.
pub struct Pending {
    pub(crate) kind: PendingKind,
    future: Option<Later>,
}

/// Equal when of the same kind (two pending answers: of the same form; futures are not compared).
impl PartialEq for Served {
    fn eq(&self, other: &Served) -> bool {
        match (self, other) {
            (Served::Later(a), Served::Later(b)) => a.kind == b.kind,
            (a, b) => std::mem::discriminant(a) == std::mem::discriminant(b),
        }
    }
}

impl fmt::Debug for Pending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pending").field("kind", &self.kind).finish_non_exhaustive()
    }
}

#[derive(Debug, PartialEq, Eq, Clone)]
pub(crate) enum PendingKind {
    /// JSON-RPC, with the request's raw id.
    Json(String),
    Xml,
    /// A JSON-RPC notification: nothing is written.
    Nothing,
    /// A comodojo frame around one of the others.
    Comodojo(Box<PendingKind>),
}

impl Pending {
    pub(crate) fn json(id: Option<&str>, future: Later) -> Pending {
        let kind = id.map_or(PendingKind::Nothing, |id| PendingKind::Json(id.to_owned()));
        Pending { kind, future: Some(future) }
    }
    pub(crate) fn xml(future: Later) -> Pending {
        Pending { kind: PendingKind::Xml, future: Some(future) }
    }

    /// The future of the answer (once: the caller drives it from then on).
    pub fn take_future(&mut self) -> Option<Later> {
        self.future.take()
    }

    /// The same answer, wrapped in a comodojo response frame.
    pub(crate) fn in_comodojo_frame(self) -> Pending {
        let kind = match self.kind {
            PendingKind::Comodojo(inner) => PendingKind::Comodojo(inner),
            inner => PendingKind::Comodojo(Box::new(inner)),
        };
        Pending { kind, future: self.future }
    }

    /// Whether the answer is XML (for a transport that labels it, as HTTP does).
    pub fn is_xml(&self) -> bool {
        matches!(&self.kind, PendingKind::Xml)
            || matches!(&self.kind, PendingKind::Comodojo(k) if **k == PendingKind::Xml)
    }

    /// Whether anything is written at all: a JSON-RPC notification's future answers nothing.
    pub fn answers(&self) -> bool {
        self.kind != PendingKind::Nothing
    }

    /// Appends the answer, in the form the request asked for.
    pub fn complete(&self, result: &Result<Value, Fault>, out: &mut Vec<u8>) {
        write(&self.kind, result, out);
    }
}

fn write(kind: &PendingKind, result: &Result<Value, Fault>, out: &mut Vec<u8>) {
    match kind {
        PendingKind::Nothing => {}
        PendingKind::Json(id) => match result {
            Ok(v) => crate::jsonrpc::write_result(out, id, v),
            Err(f) => crate::jsonrpc::write_error(out, id, f),
        },
        PendingKind::Xml => crate::xmlrpc::encode_response(result, out),
        PendingKind::Comodojo(inner) => {
            let mut payload = Vec::new();
            write(inner, result, &mut payload);
            let payload = (**inner != PendingKind::Nothing).then_some(payload.as_slice());
            crate::comodojo::encode_response(true, payload, out);
        }
    }
}
