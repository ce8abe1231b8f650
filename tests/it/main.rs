//! Integration tests: the real default model, real files, real processes.
//!
//! One test binary (linking is the slow part on a 2-core machine); one module
//! per area. Shared setup lives in `common`.

mod common;

mod bad_input;
mod classify;
mod cli;
mod cloud;
mod compare;
mod docs;
mod embed;
mod engine;
mod golden;
mod gui;
mod kquants;
mod qwen2;
mod reference;
mod rope_freqs;
mod server;
mod store;
mod teach;
mod tools;
