//! Version 1 of the wire format.

pub mod actions;
pub mod api;
pub mod audit;
pub mod catalog;
// Recurring problems, knowledge search and help-desk metrics (issue 9).
pub mod reports;
// Satisfaction, webhooks and e-mail (issue 9).
pub mod feedback;
pub mod integrations;
pub mod run;
pub mod sla;
pub mod snapshot;
pub mod vitals;
pub mod work;
