//! A small fork-join pool for the model's hot loop.
//!
//! A decode step runs ~150 short parallel loops (one per matrix product), each
//! tens of microseconds long; waking a sleeping thread takes about as long, so
//! workers spin briefly between jobs and only then park. Idle, they use no CPU.
//!
//! Each thread's share of a job must be *claimed* before it runs. When the
//! caller has finished its own share it claims every share no worker has
//! started and runs those too: a worker that the OS has put aside (another
//! program busy on the other core) then costs a slower step, not a stall of a
//! whole time slice at every barrier.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{JoinHandle, Thread};

type Job = dyn Fn(usize, usize) + Sync;

struct Shared {
    /// The job of the current epoch; valid while `run` waits.
    job: UnsafeCell<Option<*const Job>>,
    epoch: AtomicUsize,
    done: AtomicUsize,
    quit: AtomicBool,
    sleeping: Vec<AtomicBool>,
    /// Share i of the current job has been taken (by worker i, or stolen by the caller).
    claimed: Vec<AtomicBool>,
}

// SAFETY: every field but `job` is an atomic or a Vec of atomics. `job` is
// written only by `run` while no worker is inside a job (`run` returned only
// after every claimed share of the previous one finished), and read by a worker
// only after it claimed a share, which `run` allowed by resetting `claimed`
// after writing `job` (the SeqCst reset and swap order the write before the
// read). The job itself is `Fn + Sync`, so several threads may call it at once.
unsafe impl Sync for Shared {}
// SAFETY: the raw pointer in `job` is the only field that is not `Send`. It is
// plain data here: moving or dropping `Shared` never touches what it points to,
// and it is only dereferenced under the protocol described above.
unsafe impl Send for Shared {}

pub struct Pool {
    n: usize,
    shared: Arc<Shared>,
    threads: Vec<Thread>,
    handles: Vec<JoinHandle<()>>,
}

/// Spins before parking: ~50 µs on a 2 GHz core.
const SPINS: usize = 20_000;

impl Pool {
    /// `n` threads in all, including the caller of `run`.
    pub fn new(n: usize) -> Self {
        let n = n.max(1);
        let shared = Arc::new(Shared {
            job: UnsafeCell::new(None),
            epoch: AtomicUsize::new(0),
            done: AtomicUsize::new(0),
            quit: AtomicBool::new(false),
            sleeping: (0..n).map(|_| AtomicBool::new(false)).collect(),
            claimed: (0..n).map(|_| AtomicBool::new(true)).collect(),
        });
        let mut handles = Vec::new();
        for i in 1..n {
            let s = shared.clone();
            let h = std::thread::Builder::new().name(format!("duet-math-{i}")).spawn(move || worker(s, i, n));
            match h {
                Ok(h) => handles.push(h),
                Err(_) => break,
            }
        }
        let n = handles.len() + 1;
        let threads = handles.iter().map(|h| h.thread().clone()).collect();
        Pool { n, shared, threads, handles }
    }

    pub fn threads(&self) -> usize {
        self.n
    }

    /// Run `f(i, n)` on every thread (`i` in `0..n`) and wait for all of them.
    pub fn run<F: Fn(usize, usize) + Sync>(&self, f: F) {
        if self.n == 1 {
            f(0, 1);
            return;
        }
        let job: *const (dyn Fn(usize, usize) + Sync + '_) = &f;
        // SAFETY: workers only dereference the pointer between the epoch bump
        // below and their `done` increment, and we wait for all of those before
        // returning, so `f` outlives every use; erasing its lifetime is sound.
        unsafe {
            *self.shared.job.get() =
                Some(std::mem::transmute::<*const (dyn Fn(usize, usize) + Sync + '_), *const Job>(job));
        }
        self.shared.done.store(0, Ordering::SeqCst);
        for c in &self.shared.claimed[1..] {
            c.store(false, Ordering::SeqCst);
        }
        self.shared.epoch.fetch_add(1, Ordering::SeqCst);
        for (i, t) in self.threads.iter().enumerate() {
            if self.shared.sleeping[i + 1].load(Ordering::SeqCst) {
                t.unpark();
            }
        }
        f(0, self.n);
        // Take over the shares no worker has started.
        for i in 1..self.n {
            if !self.shared.claimed[i].swap(true, Ordering::SeqCst) {
                f(i, self.n);
                self.shared.done.fetch_add(1, Ordering::SeqCst);
            }
        }
        let mut spins = 0usize;
        while self.shared.done.load(Ordering::Acquire) < self.n - 1 {
            spins += 1;
            if spins < SPINS {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
    }

    /// Split `0..len` into `n` near-equal contiguous ranges; range `i`.
    pub fn chunk(len: usize, i: usize, n: usize) -> std::ops::Range<usize> {
        let per = len / n;
        let extra = len % n;
        let start = i * per + i.min(extra);
        let end = start + per + usize::from(i < extra);
        start..end
    }
}

fn worker(s: Arc<Shared>, i: usize, n: usize) {
    let mut seen = 0usize;
    loop {
        let mut spins = 0usize;
        loop {
            if s.quit.load(Ordering::Acquire) {
                return;
            }
            let e = s.epoch.load(Ordering::Acquire);
            if e != seen {
                seen = e;
                break;
            }
            spins += 1;
            if spins < SPINS {
                std::hint::spin_loop();
            } else {
                s.sleeping[i].store(true, Ordering::SeqCst);
                if s.epoch.load(Ordering::SeqCst) == seen && !s.quit.load(Ordering::SeqCst) {
                    std::thread::park();
                }
                s.sleeping[i].store(false, Ordering::SeqCst);
                spins = 0;
            }
        }
        // Only a successful claim may touch the job. The claim flag was reset
        // after the job was stored, and `run` waits for every claimed share, so
        // the job is alive here even if this worker woke late (then it simply
        // runs its share of whatever job is current, which is still correct).
        if !s.claimed[i].swap(true, Ordering::SeqCst) {
            // SAFETY: see above.
            if let Some(job) = unsafe { *s.job.get() } {
                // SAFETY: the job is alive: `run` waits for this share's
                // `done` increment below before it returns.
                unsafe { (*job)(i, n) };
            }
            s.done.fetch_add(1, Ordering::Release);
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shared.quit.store(true, Ordering::SeqCst);
        for t in &self.threads {
            t.unpark();
        }
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

/// A raw view of a mutable slice that pool threads write in disjoint parts.
#[derive(Clone, Copy)]
pub struct SharedMut<T> {
    ptr: *mut T,
    len: usize,
}

// SAFETY: a `SharedMut` is a pointer and a length; moving it touches no `T`.
// Elements are reached only through the unsafe `slice`, whose contract leaves
// each element to one thread at a time: the same as handing disjoint parts of a
// `&mut [T]` to other threads, which needs `T: Send` (and not `T: Sync`).
unsafe impl<T: Send> Send for SharedMut<T> {}
// SAFETY: sharing one between threads only lets each call `slice`, under the
// same contract: live slices never overlap, so no element is reached by two
// threads at once.
unsafe impl<T: Send> Sync for SharedMut<T> {}

impl<T> SharedMut<T> {
    pub fn new(s: &mut [T]) -> Self {
        SharedMut { ptr: s.as_mut_ptr(), len: s.len() }
    }

    /// # Safety
    /// Slices taken from it that are alive at the same time, in any threads,
    /// must not overlap; and the slice given to [`SharedMut::new`] must
    /// outlive them, nothing else touching it meanwhile (a `SharedMut` does
    /// not borrow it).
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn slice(&self, range: std::ops::Range<usize>) -> &mut [T] {
        assert!(range.start <= range.end && range.end <= self.len, "SharedMut: range out of bounds");
        // SAFETY: the range lies inside the slice (checked above), which the
        // caller keeps alive and lets no one else reach while this one lives.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(range.start), range.end - range.start) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_index_runs_once_per_job() {
        let pool = Pool::new(3);
        let mut hits = vec![0u32; 1000];
        for _ in 0..200 {
            let out = SharedMut::new(&mut hits);
            pool.run(|i, n| {
                let r = Pool::chunk(1000, i, n);
                // SAFETY: chunks are disjoint.
                for h in unsafe { out.slice(r) } {
                    *h += 1;
                }
            });
        }
        assert!(hits.iter().all(|&h| h == 200));
    }
}
