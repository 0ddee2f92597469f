//! Running other programs: the one place the agent starts processes.

pub mod action;
pub mod policy;
pub mod remote;
pub mod runner;
pub mod target;
