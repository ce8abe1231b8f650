//! The jobs people come for, free of any window or terminal: each takes
//! backends and inputs, and returns results the CLI prints and the GUI draws.

pub mod answer;
pub mod chat;
pub mod classify;
pub mod compare;
pub mod docs;
pub mod input;
