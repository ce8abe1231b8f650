//! The jobs people come for, free of any window or terminal: each takes
//! backends and inputs, and returns results the CLI prints and the GUI draws.

pub mod agent;
pub mod answer;
pub mod chat;
pub mod classify;
pub mod compare;
pub mod docs;
pub mod input;
pub mod teach;
pub mod tools;

/// "1 page", "9 passages", "0 mistakes": counts as people write them.
pub fn count(n: impl Into<u64>, noun: &str) -> String {
    let n = n.into();
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}
