//! Running other programs: the one place the agent starts processes.

pub mod runner;
