//! Fences around third-party parsers that may panic or never return on a
//! hostile file (a GGUF header, a PDF): the panic becomes an error the person
//! reads, its text never reaches the terminal, and a parser that hangs is
//! left behind after a time limit instead of freezing the app.

use std::time::Duration;

thread_local! {
    static QUIET: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Run `f`, turning a panic into `Err` without printing it. Panics elsewhere
/// print as before.
pub fn quietly<T>(f: impl FnOnce() -> T) -> std::thread::Result<T> {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.with(|q| q.get()) {
                previous(info);
            }
        }));
    });
    QUIET.with(|q| q.set(true));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    QUIET.with(|q| q.set(false));
    result
}

/// How a fenced call ended.
#[derive(Debug, PartialEq)]
pub enum Fenced<T> {
    Done(T),
    Panicked,
    /// Still running after the limit; its thread is abandoned (it ends when
    /// the call does, or with the process).
    TimedOut,
}

/// Run `f` on its own thread, quietly, for at most `limit`.
pub fn fenced<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> Fenced<T> {
    let (tx, rx) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new().name("duet-fenced".into()).spawn(move || {
        let _ = tx.send(quietly(f));
    });
    if spawned.is_err() {
        return Fenced::Panicked;
    }
    match rx.recv_timeout(limit) {
        Ok(Ok(v)) => Fenced::Done(v),
        Ok(Err(_)) => Fenced::Panicked,
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Fenced::TimedOut,
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => Fenced::Panicked,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panics_and_hangs_come_back_as_values() {
        assert_eq!(fenced(Duration::from_secs(5), || 2 + 2), Fenced::Done(4));
        assert_eq!(fenced(Duration::from_secs(5), || -> u8 { panic!("hostile file") }), Fenced::Panicked);
        let hang = fenced(Duration::from_millis(50), || std::thread::sleep(Duration::from_secs(2)));
        assert_eq!(hang, Fenced::TimedOut);
    }
}
