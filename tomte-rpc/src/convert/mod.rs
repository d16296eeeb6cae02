//! serde between Rust types and [`Value`]: typed parameters and results.
//!
//! * [`to_value`] serializes anything `Serialize` into a value (a result, say).
//! * [`from_value`] and [`from_value_strict`] deserialize a value into anything
//!   `Deserialize`; [`from_params`] deserializes a call's parameters.
//!
//! The faults name what went wrong where: `parameter 'opts.depth': expected int, got string`.

mod de;
mod ser;

pub use de::{from_params, from_value, from_value_as, from_value_strict, Rules};
pub use ser::to_value;

#[cfg(test)]
mod tests;
