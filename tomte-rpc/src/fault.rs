//! RPC faults and the codes of JSON-RPC 2.0 and of the XML-RPC fault-code interoperability spec.

use std::fmt;

use crate::value::Value;

pub const PARSE_ERROR: i32 = -32700;
pub const UNSUPPORTED_ENCODING: i32 = -32701;
pub const INVALID_CHARACTER: i32 = -32702;
pub const INVALID_REQUEST: i32 = -32600;
pub const METHOD_NOT_FOUND: i32 = -32601;
pub const INVALID_PARAMS: i32 = -32602;
pub const INTERNAL_ERROR: i32 = -32603;
pub const APPLICATION_ERROR: i32 = -32500;
pub const SYSTEM_ERROR: i32 = -32400;
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
    pub code: i32,
    pub message: String,
    pub data: Option<Value>,
}

impl Fault {
    pub fn new(code: i32, message: impl Into<String>) -> Fault {
        Fault { code, message: message.into(), data: None }
    }

    /// Adds a detail (a sentence, usually) to the fault.
    pub fn with_data(mut self, data: impl Into<Value>) -> Fault {
        self.data = Some(data.into());
        self
    }

    pub fn parse_error(detail: impl Into<String>) -> Fault {
        Fault::new(PARSE_ERROR, "Parse error").with_data(detail.into())
    }
    pub fn invalid_request(detail: impl Into<String>) -> Fault {
        Fault::new(INVALID_REQUEST, "Invalid Request").with_data(detail.into())
    }
    pub fn method_not_found() -> Fault {
        Fault::new(METHOD_NOT_FOUND, "Method not found")
    }
    pub fn invalid_params(detail: impl Into<String>) -> Fault {
        Fault::new(INVALID_PARAMS, "Invalid params").with_data(detail.into())
    }
    /// The caller `who` lacks `permission`, which `method` requires. The detail names all three
    /// (never the call's parameters).
    pub fn permission_denied(method: &str, permission: &crate::Permission, who: &str) -> Fault {
        Fault::new(PERMISSION_DENIED, "Permission denied")
            .with_data(format!("{method} requires the '{permission}' permission, which {who} does not have"))
    }
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
