//! RPC faults and the codes of JSON-RPC 2.0 and of the XML-RPC fault-code interoperability spec.

use std::fmt;

use crate::value::Value;

/// The document cannot be read: not well-formed JSON or XML, or an XML-RPC document out of shape.
pub const PARSE_ERROR: i32 = -32700;
/// The document is in a character encoding the decoder does not know (XML-RPC).
pub const UNSUPPORTED_ENCODING: i32 = -32701;
/// The document holds a character its encoding cannot carry (XML-RPC).
pub const INVALID_CHARACTER: i32 = -32702;
/// The document is well-formed but not a request of the protocol.
pub const INVALID_REQUEST: i32 = -32600;
/// No method of that name is registered.
pub const METHOD_NOT_FOUND: i32 = -32601;
/// The parameters are not what the method takes.
pub const INVALID_PARAMS: i32 = -32602;
/// The server failed while handling the call.
pub const INTERNAL_ERROR: i32 = -32603;
/// An error of the application; here, a result that has no XML-RPC form.
pub const APPLICATION_ERROR: i32 = -32500;
/// An error of the system the server runs on (XML-RPC).
pub const SYSTEM_ERROR: i32 = -32400;
/// An error of the transport around the RPC (for a client, a comodojo `status: false` frame).
pub const TRANSPORT_ERROR: i32 = -32300;
/// A call of a method whose permission the caller does not hold (server-defined range).
pub const PERMISSION_DENIED: i32 = -32001;
/// comodojo's code for `system.multicall` asked over JSON-RPC.
pub const MULTICALL_JSON: i32 = -31000;
/// comodojo's code for a `system.multicall` inside a `system.multicall`.
pub const MULTICALL_RECURSION: i32 = -31001;

/// An RPC error: a code, the standard message for it, and optional details.
///
/// The message stays the one the specs name ("Invalid params"), so clients that match on it keep
/// working; what went wrong in particular goes in `data`.
#[derive(Clone, Debug, PartialEq)]
pub struct Fault {
    /// The number clients match on: one of this module's constants, or a method's own.
    pub code: i32,
    /// The standard message for the code ("Method not found").
    pub message: String,
    /// What went wrong in particular, when there is more to say than the message.
    pub data: Option<Value>,
}

impl Fault {
    /// A fault with `code` and `message`, and no detail.
    pub fn new(code: i32, message: impl Into<String>) -> Fault {
        Fault { code, message: message.into(), data: None }
    }

    /// Adds a detail (a sentence, usually) to the fault.
    pub fn with_data(mut self, data: impl Into<Value>) -> Fault {
        self.data = Some(data.into());
        self
    }

    /// −32700 "Parse error", with `detail` saying what could not be read.
    pub fn parse_error(detail: impl Into<String>) -> Fault {
        Fault::new(PARSE_ERROR, "Parse error").with_data(detail.into())
    }
    /// −32600 "Invalid Request", with `detail` saying why it is not a request.
    pub fn invalid_request(detail: impl Into<String>) -> Fault {
        Fault::new(INVALID_REQUEST, "Invalid Request").with_data(detail.into())
    }
    /// −32601 "Method not found".
    pub fn method_not_found() -> Fault {
        Fault::new(METHOD_NOT_FOUND, "Method not found")
    }
    /// −32602 "Invalid params", with `detail` saying what is wrong with the parameters.
    pub fn invalid_params(detail: impl Into<String>) -> Fault {
        Fault::new(INVALID_PARAMS, "Invalid params").with_data(detail.into())
    }
    /// The caller `who` lacks `permission`, which `method` requires. The detail names all three
    /// (never the call's parameters).
    pub fn permission_denied(method: &str, permission: &crate::Permission, who: &str) -> Fault {
        Fault::new(PERMISSION_DENIED, "Permission denied")
            .with_data(format!("{method} requires the '{permission}' permission, which {who} does not have"))
    }
    /// −32603 "Internal error", with `detail` saying what failed.
    pub fn internal(detail: impl Into<String>) -> Fault {
        Fault::new(INTERNAL_ERROR, "Internal error").with_data(detail.into())
    }

    /// The message with its detail, for protocols that carry one string only (XML-RPC's
    /// `faultString`, comodojo's `status: false` text, a CLI's error line).
    pub fn full_message(&self) -> String {
        match &self.data {
            Some(Value::String(d)) => format!("{}: {d}", self.message),
            _ => self.message.clone(),
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.full_message(), self.code)
    }
}

impl std::error::Error for Fault {}

/// The message of a caught panic (`catch_unwind`'s payload: a `&str` or a `String`), for the
/// fault or log line that reports it.
pub fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_owned()
    }
}
