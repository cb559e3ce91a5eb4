//! Route handlers: parse the request, call the domain, shape the answer.

pub mod auth;
pub mod clearml;
pub mod events;
pub mod faces;
pub mod images;
pub mod lists;
pub mod orchestrator;
pub mod system;
pub mod tasks;
pub mod uploads;
pub mod video;
