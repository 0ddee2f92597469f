//! Version 1 of the wire format.

pub mod actions;
pub mod api;
pub mod audit;
pub mod catalog;
pub mod run;
pub mod sla;
pub mod snapshot;
pub mod vitals;
pub mod work;
