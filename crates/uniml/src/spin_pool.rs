//! Native fork-join pool whose idle workers spin briefly before parking.
//!
//! A model run is a chain of short parallel regions (one or a few per node,
//! often well under 100 µs each) separated by short serial stretches. A pool
//! whose workers go to sleep between regions (rayon's) pays a wake-up per
//! region; on virtual machines a futex wake-up crosses the hypervisor and can
//! cost tens of microseconds, which is what kept 2 threads from helping on
//! 2-vCPU machines. Here the caller runs the graph itself (N threads = the
//! caller + N−1 workers) and the workers spin for [`SPIN`] after their last
//! task before they park on a condition variable.
//!
//! Protocol (all on `Shared`): the caller writes the job into `slot`, then
//! publishes `state = epoch << 1 | OPEN`. A worker announces itself in
//! `active`, re-reads `state` and only touches the job while it is open.
//! When every task has completed the caller closes the state and waits for
//! `active == 0`, after which no worker can still hold the job's closure.

use std::cell::{Cell, UnsafeCell};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use uniml_core::Parallelism;

/// How long an idle worker spins before it parks.
const SPIN: Duration = Duration::from_millis(2);
const OPEN: u64 = 1;

/// The current job: a lifetime-erased task closure and its task count.
#[derive(Clone, Copy)]
struct Job {
    f: *const (dyn Fn(usize) + Sync),
    tasks: usize,
}

struct Shared {
    state: AtomicU64,
    slot: UnsafeCell<Job>,
    next: AtomicUsize,
    completed: AtomicUsize,
    active: AtomicUsize,
    panicked: AtomicBool,
    shutdown: AtomicBool,
    sleepers: AtomicUsize,
    park: Mutex<()>,
    wake: Condvar,
}

// SAFETY: `slot` is written only by the one caller holding `caller` while no
// worker can read it (state closed and `active == 0`), and read by workers
// only while the state is open; the closure it points to is `Sync`.
unsafe impl Sync for Shared {}
unsafe impl Send for Shared {}

thread_local! {
    /// Set while this thread runs pool tasks: nested regions run inline.
    static IN_TASK: Cell<bool> = const { Cell::new(false) };
}

impl Shared {
    /// Claims and runs tasks of the open job until none is left.
    fn work(&self, job: Job) {
        let was = IN_TASK.with(|c| c.replace(true));
        loop {
            let i = self.next.fetch_add(1, SeqCst);
            if i >= job.tasks {
                break;
            }
            // SAFETY: the caller keeps the closure alive until every claimed
            // task has completed and no worker is active.
            let f = unsafe { &*job.f };
            if catch_unwind(AssertUnwindSafe(|| f(i))).is_err() {
                self.panicked.store(true, SeqCst);
            }
            self.completed.fetch_add(1, SeqCst);
        }
        IN_TASK.with(|c| c.set(was));
    }

    /// Waits (spinning, then parked) for an open state other than `last`.
    /// `None` on shutdown.
    fn wait_job(&self, last: u64) -> Option<u64> {
        let ready = |s: u64| s & OPEN == OPEN && s != last;
        let start = Instant::now();
        let mut spins = 0u32;
        loop {
            if self.shutdown.load(SeqCst) {
                return None;
            }
            let s = self.state.load(SeqCst);
            if ready(s) {
                return Some(s);
            }
            spins = spins.wrapping_add(1);
            if spins % 256 != 0 || start.elapsed() < SPIN {
                std::hint::spin_loop();
                continue;
            }
            let mut guard = self.park.lock().unwrap_or_else(|e| e.into_inner());
            self.sleepers.fetch_add(1, SeqCst);
            loop {
                let s = self.state.load(SeqCst);
                if self.shutdown.load(SeqCst) || ready(s) {
                    break;
                }
                guard = self.wake.wait(guard).unwrap_or_else(|e| e.into_inner());
            }
            self.sleepers.fetch_sub(1, SeqCst);
            drop(guard);
            spins = 0;
        }
    }

    fn worker(&self) {
        let mut last = 0;
        while let Some(seen) = self.wait_job(last) {
            self.active.fetch_add(1, SeqCst);
            let s = self.state.load(SeqCst);
            if s & OPEN == OPEN {
                // SAFETY: open state: the caller finished writing the slot
                // before publishing it and rewrites it only after `active == 0`.
                let job = unsafe { *self.slot.get() };
                self.work(job);
                last = s;
            } else {
                last = seen;
            }
            self.active.fetch_sub(1, SeqCst);
        }
    }

    fn notify(&self) {
        if self.sleepers.load(SeqCst) > 0 {
            let _guard = self.park.lock().unwrap_or_else(|e| e.into_inner());
            self.wake.notify_all();
        }
    }
}

fn noop(_: usize) {}

/// The native [`Parallelism`]: the calling thread plus `threads − 1` workers.
pub struct SpinPool {
    shared: Arc<Shared>,
    /// One region at a time; a concurrent caller (another `run` on the same
    /// session) runs its region on its own thread.
    caller: Mutex<u64>,
    workers: Vec<JoinHandle<()>>,
}

impl SpinPool {
    pub fn new(threads: usize) -> Result<SpinPool, crate::Error> {
        let shared = Arc::new(Shared {
            state: AtomicU64::new(0),
            slot: UnsafeCell::new(Job { f: &noop as &(dyn Fn(usize) + Sync), tasks: 0 }),
            next: AtomicUsize::new(0),
            completed: AtomicUsize::new(0),
            active: AtomicUsize::new(0),
            panicked: AtomicBool::new(false),
            shutdown: AtomicBool::new(false),
            sleepers: AtomicUsize::new(0),
            park: Mutex::new(()),
            wake: Condvar::new(),
        });
        let mut pool = SpinPool { shared, caller: Mutex::new(0), workers: Vec::new() };
        for i in 1..threads.max(1) {
            let sh = pool.shared.clone();
            let h = std::thread::Builder::new()
                .name(format!("uniml-{i}"))
                .spawn(move || sh.worker())
                .map_err(|e| crate::Error::Other(format!("cannot start {threads} threads: {e}")))?;
            pool.workers.push(h);
        }
        Ok(pool)
    }
}

impl Parallelism for SpinPool {
    fn threads(&self) -> usize {
        self.workers.len() + 1
    }

    fn for_each(&self, tasks: usize, f: &(dyn Fn(usize) + Sync)) {
        let serial = || (0..tasks).for_each(f);
        if tasks <= 1 || self.workers.is_empty() || IN_TASK.with(|c| c.get()) {
            return serial();
        }
        let mut epoch = match self.caller.try_lock() {
            Ok(g) => g,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return serial(),
        };
        let sh = &*self.shared;
        // SAFETY: closed state and no active worker (ensured at the end of the
        // previous region): nobody reads the slot now. The closure outlives
        // this call, which returns only after every worker let go of it.
        let f_static: *const (dyn Fn(usize) + Sync) = unsafe { std::mem::transmute(f) };
        unsafe { *sh.slot.get() = Job { f: f_static, tasks } };
        sh.next.store(0, SeqCst);
        sh.completed.store(0, SeqCst);
        sh.panicked.store(false, SeqCst);
        *epoch += 1;
        sh.state.store(*epoch << 1 | OPEN, SeqCst);
        sh.notify();
        sh.work(Job { f: f_static, tasks });
        while sh.completed.load(SeqCst) < tasks {
            std::hint::spin_loop();
        }
        sh.state.store(*epoch << 1, SeqCst);
        while sh.active.load(SeqCst) > 0 {
            std::hint::spin_loop();
        }
        if sh.panicked.load(SeqCst) {
            drop(epoch);
            panic!("a uniml worker task panicked");
        }
    }
}

impl Drop for SpinPool {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, SeqCst);
        {
            let _guard = self.shared.park.lock().unwrap_or_else(|e| e.into_inner());
            self.shared.wake.notify_all();
        }
        for h in self.workers.drain(..) {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_task_runs_once_across_many_regions() {
        let pool = SpinPool::new(3).unwrap();
        for round in 0..2000usize {
            let tasks = round % 17;
            let hits: Vec<AtomicUsize> = (0..tasks).map(|_| AtomicUsize::new(0)).collect();
            pool.for_each(tasks, &|i| {
                hits[i].fetch_add(1, SeqCst);
            });
            assert!(hits.iter().all(|h| h.load(SeqCst) == 1), "round {round}");
        }
    }

    #[test]
    fn nested_regions_run_inline_and_parked_workers_wake() {
        let pool = SpinPool::new(2).unwrap();
        let total = AtomicUsize::new(0);
        pool.for_each(4, &|_| {
            pool.for_each(5, &|_| {
                total.fetch_add(1, SeqCst);
            });
        });
        assert_eq!(total.load(SeqCst), 20);
        // Let the worker park, then check that it is woken for the next region.
        std::thread::sleep(SPIN * 3);
        let seen = Mutex::new(std::collections::HashSet::new());
        pool.for_each(64, &|_| {
            seen.lock().unwrap().insert(std::thread::current().id());
            std::thread::sleep(Duration::from_millis(1));
        });
        assert_eq!(seen.lock().unwrap().len(), 2, "the parked worker took no task");
    }

    #[test]
    fn a_panicking_task_is_reported_and_the_pool_survives() {
        let pool = SpinPool::new(2).unwrap();
        let r = catch_unwind(AssertUnwindSafe(|| {
            pool.for_each(8, &|i| {
                if i == 5 {
                    panic!("task 5");
                }
            })
        }));
        assert!(r.is_err());
        let n = AtomicUsize::new(0);
        pool.for_each(8, &|_| {
            n.fetch_add(1, SeqCst);
        });
        assert_eq!(n.load(SeqCst), 8);
    }

    #[test]
    fn concurrent_callers_each_finish() {
        let pool = Arc::new(SpinPool::new(2).unwrap());
        let hs: Vec<_> = (0..3)
            .map(|_| {
                let p = pool.clone();
                std::thread::spawn(move || {
                    for _ in 0..200 {
                        let n = AtomicUsize::new(0);
                        p.for_each(7, &|_| {
                            n.fetch_add(1, SeqCst);
                        });
                        assert_eq!(n.load(SeqCst), 7);
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
    }
}
