//! End-to-end tests: the real binaries, run as a user would run them.
//!
//! One test binary with a module per scenario keeps link time down. The binaries are built by
//! `cargo build` before the tests run (see README.md); `binaries` finds them.

// Tests start the real binaries, and a failed step should stop the test loudly: the production
// bans on spawning processes and on unwrap/expect/panic do not apply here.
#![allow(
    clippy::disallowed_methods,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

mod actions;
mod agent_service;
mod audit;
mod binaries;
mod collector_bad_input;
mod collector_config;
mod collector_flow;
mod collector_inspect;
mod collector_roles;
mod collector_tls;
mod credentials;
mod desktop;
mod harness;
// Service levels and escalation (issue 9).
mod sla;
// Recurring problems, knowledge search and help-desk metrics (issue 9).
mod knowledge;
// Satisfaction, webhooks and e-mail (issue 9).
mod integrations;
mod snapshot;
mod web;
// PostgreSQL store (issue 8).
mod postgres;
// Several collectors on one database, `migrate` (issue 8, second part).
mod migrate;
mod multi_instance;
