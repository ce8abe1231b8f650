//! duet: a small open model on your own laptop, with a cloud model beside it.
//!
//! The library holds everything testable; `main.rs` only calls [`cli::run`].

pub mod bench;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod db;
pub mod embed;
pub mod engine;
pub mod guard;
pub mod progress;
pub mod secret;
pub mod server;
pub mod store;
pub mod tasks;
pub mod ui;

/// The one tokio runtime for HTTP (cloud client and server); model math stays on its own threads.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("duet-http")
            .enable_all()
            .build()
            .expect("the OS must allow two threads for HTTP; nothing works without them")
    })
}
