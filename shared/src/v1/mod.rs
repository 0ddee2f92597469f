//! Version 1 of the wire format.

pub mod actions;
pub mod api;
pub mod audit;
pub mod catalog;
// Satisfaction, webhooks and e-mail (issue 9).
pub mod feedback;
pub mod integrations;
pub mod run;
pub mod snapshot;
pub mod vitals;
pub mod work;
