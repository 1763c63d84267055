//! The [`Parallelism`] of the threaded wasm build: a small pool of Web Workers
//! (browser) or `worker_threads` (Node) sharing this instance's memory.
//!
//! The JS glue (`web/src/threads.js`) starts the workers; each instantiates the same
//! module on the shared memory and calls [`worker_loop`], which never returns: it
//! sleeps until a [`WebPool::for_each`] publishes a job, takes tasks until none are
//! left, and sleeps again. The calling thread takes tasks too, then spins until the
//! workers' last tasks are done (never blocking in `memory.atomic.wait`, which a
//! browser's main thread may not execute).
//!
//! The code is plain `std` (atomics, `Mutex`, `Condvar`), so it also builds and is
//! tested natively with `std::thread` workers.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use uniml::Parallelism;

/// One `for_each` call, shared with the workers that join it.
struct Job {
    /// The caller's closure, lifetime erased: called only for task indices
    /// `< tasks`, all of which finish before `for_each` returns.
    f: *const (dyn Fn(usize) + Sync + 'static),
    tasks: usize,
    next: AtomicUsize,
    done: AtomicUsize,
    /// Workers that may still join (threads − 1 for the caller).
    seats: AtomicUsize,
}

// SAFETY: `f` points to a `Sync` closure that outlives every call made through it.
unsafe impl Send for Job {}
unsafe impl Sync for Job {}

impl Job {
    fn work(&self) {
        loop {
            let i = self.next.fetch_add(1, Ordering::Relaxed);
            if i >= self.tasks {
                return;
            }
            // SAFETY: i < tasks, so the caller is still inside `for_each` (it waits for
            // `done == tasks`), and the closure is alive.
            unsafe { (*self.f)(i) };
            if IS_WORKER.with(|w| w.get()) {
                POOL.worker_tasks.fetch_add(1, Ordering::Relaxed);
            }
            self.done.fetch_add(1, Ordering::Release);
        }
    }
}

struct State {
    generation: usize,
    job: Option<Arc<Job>>,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
    /// Mirror of `state.generation`, for spinning without the lock.
    generation: AtomicUsize,
    /// Workers inside `worker_loop`.
    workers: AtomicUsize,
    /// Tasks run by workers (not callers) so far: shows that the pool really works.
    worker_tasks: AtomicUsize,
    /// A `for_each` is in flight (one at a time; nested or concurrent calls run serially).
    busy: AtomicBool,
    /// A thread panicked: the instance is unusable; waiting callers stop.
    panicked: AtomicBool,
}

static POOL: Shared = Shared {
    state: Mutex::new(State { generation: 0, job: None }),
    wake: Condvar::new(),
    generation: AtomicUsize::new(0),
    workers: AtomicUsize::new(0),
    worker_tasks: AtomicUsize::new(0),
    busy: AtomicBool::new(false),
    panicked: AtomicBool::new(false),
};

thread_local! {
    static IS_WORKER: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Spins before sleeping: a kernel's parallel regions follow each other within
/// microseconds, and waking a sleeping worker costs more than that.
const SPINS: u32 = 20_000;

/// The body of a pool worker; never returns. Called by the JS thread worker.
pub fn worker_loop() {
    IS_WORKER.with(|w| w.set(true));
    POOL.workers.fetch_add(1, Ordering::AcqRel);
    let mut seen = POOL.generation.load(Ordering::Acquire);
    loop {
        let mut spins = 0;
        while POOL.generation.load(Ordering::Acquire) == seen && spins < SPINS {
            std::hint::spin_loop();
            spins += 1;
        }
        let job = {
            let mut st = POOL.state.lock().unwrap_or_else(|e| e.into_inner());
            while st.generation == seen {
                st = POOL.wake.wait(st).unwrap_or_else(|e| e.into_inner());
            }
            seen = st.generation;
            st.job.clone()
        };
        if let Some(job) = job {
            if job.seats.fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| s.checked_sub(1)).is_ok() {
                job.work();
            }
        }
    }
}

/// Workers started so far (inside [`worker_loop`]).
pub fn workers() -> usize {
    POOL.workers.load(Ordering::Acquire)
}

/// Tasks run by pool workers so far.
pub fn worker_tasks() -> usize {
    POOL.worker_tasks.load(Ordering::Relaxed)
}

/// Marks the pool dead after a panic, so that a caller waiting for a worker's
/// tasks stops (and traps) instead of spinning forever.
pub fn mark_panicked() {
    POOL.panicked.store(true, Ordering::Release);
}

/// A session's view of the pool: at most `threads` threads (the caller + workers).
#[derive(Debug, Clone, Copy)]
pub struct WebPool {
    threads: usize,
}

impl WebPool {
    pub fn new(threads: usize) -> WebPool {
        WebPool { threads: threads.max(1) }
    }
}

impl Parallelism for WebPool {
    fn threads(&self) -> usize {
        self.threads.min(1 + workers())
    }

    fn for_each(&self, tasks: usize, f: &(dyn Fn(usize) + Sync)) {
        let helpers = self.threads().saturating_sub(1).min(tasks.saturating_sub(1));
        if helpers == 0 || IS_WORKER.with(|w| w.get()) || POOL.busy.swap(true, Ordering::AcqRel) {
            return (0..tasks).for_each(f);
        }
        // SAFETY: only the lifetime is erased; see `Job::f`.
        let f: *const (dyn Fn(usize) + Sync + 'static) = unsafe { std::mem::transmute(f as *const (dyn Fn(usize) + Sync)) };
        let job = Arc::new(Job { f, tasks, next: AtomicUsize::new(0), done: AtomicUsize::new(0), seats: AtomicUsize::new(helpers) });
        {
            let mut st = POOL.state.lock().unwrap_or_else(|e| e.into_inner());
            st.generation = st.generation.wrapping_add(1);
            st.job = Some(job.clone());
            POOL.generation.store(st.generation, Ordering::Release);
        }
        POOL.wake.notify_all();
        job.work();
        while job.done.load(Ordering::Acquire) < tasks {
            if POOL.panicked.load(Ordering::Acquire) {
                // A worker died mid-task; its panic message is recorded. Trap here too.
                std::process::abort();
            }
            std::hint::spin_loop();
        }
        POOL.state.lock().unwrap_or_else(|e| e.into_inner()).job = None;
        POOL.busy.store(false, Ordering::Release);
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    #[test]
    fn every_task_runs_once_on_several_threads() {
        for _ in 0..3 {
            std::thread::spawn(worker_loop);
        }
        while workers() < 3 {
            std::thread::yield_now();
        }
        let pool = WebPool::new(4);
        assert_eq!(pool.threads(), 4);
        for round in 0..200u64 {
            let hits: Vec<AtomicU64> = (0..97).map(|_| AtomicU64::new(0)).collect();
            let ids = Mutex::new(std::collections::HashSet::new());
            pool.for_each(hits.len(), &|i| {
                hits[i].fetch_add(round + 1, Ordering::Relaxed);
                ids.lock().unwrap().insert(std::thread::current().id());
                // nested calls run serially on the worker
                pool.for_each(2, &|_| {});
            });
            assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == round + 1));
            if round == 199 {
                assert!(ids.lock().unwrap().len() >= 1);
            }
        }
        // A session limited to 2 threads uses the caller and at most one worker.
        assert_eq!(WebPool::new(2).threads(), 2);
        let ids = Mutex::new(std::collections::HashSet::new());
        WebPool::new(2).for_each(64, &|_| {
            ids.lock().unwrap().insert(std::thread::current().id());
            std::thread::sleep(std::time::Duration::from_micros(200));
        });
        assert!(ids.lock().unwrap().len() <= 2);
    }
}
