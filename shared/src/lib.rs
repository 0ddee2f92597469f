//! Wire types and rules that both sides of Lifeline must agree on.
//!
//! This crate is the only place that knows the wire format: the snapshot schema, the API types and
//! the findings rules. It does no I/O and pulls in no async runtime or HTTP stack, so the agent, the
//! collector and tests can all depend on it cheaply. Serializable types here are a compatibility
//! promise: add optional fields, never rename or remove one within a schema version.

pub mod errors;
pub mod findings;
pub mod v1;
