//! duet: a small open model on your own laptop, with a cloud model beside it.
//!
//! The library holds everything testable; `main.rs` only calls [`cli::run`].

pub mod bench;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod engine;
pub mod progress;
pub mod store;
