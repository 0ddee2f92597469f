//! The Lifeline agent: collects diagnostics, files tickets, spools offline, runs approved actions.
//!
//! The binary (`main.rs`) is glue over these modules. Only [`exec::runner`] starts processes.

pub mod anonymize;
pub mod collect;
pub mod config;
pub mod desktop;
pub mod enroll;
pub mod exec;
pub mod redact;
pub mod render;
pub mod report;
pub mod service;
pub mod spool;
pub mod status;
pub mod tickets;
pub mod transport;
pub mod trust;
pub mod vitals;
pub mod work_result;
