//! The threading seam. The core never spawns threads: kernels split their work
//! into independent tasks and hand them to a [`Parallelism`] implementation —
//! [`Serial`] here, rayon natively, Web Workers in the threaded wasm build.

/// Runs `tasks` independent closures, possibly concurrently.
pub trait Parallelism: Send + Sync {
    /// How many tasks may usefully run at once (1 = serial).
    fn threads(&self) -> usize;
    /// Calls `f(i)` for every `i in 0..tasks`; returns when all are done.
    fn for_each(&self, tasks: usize, f: &(dyn Fn(usize) + Sync));
    /// Runs `f` (a whole graph run) on one of this pool's own threads, so
    /// that the serial work between parallel regions and the parallel tasks
    /// share the pool's threads instead of adding the caller's thread to them
    /// (with N threads on N cores, an extra thread means oversubscription).
    /// Default: on the caller's thread.
    fn run_inside(&self, f: &mut (dyn FnMut() + Send)) {
        f()
    }
}

/// Runs every task on the calling thread.
#[derive(Debug, Default, Clone, Copy)]
pub struct Serial;

impl Parallelism for Serial {
    fn threads(&self) -> usize {
        1
    }
    fn for_each(&self, tasks: usize, f: &(dyn Fn(usize) + Sync)) {
        (0..tasks).for_each(f)
    }
}

/// A raw pointer that may be shared between tasks that write disjoint ranges.
pub(crate) struct SyncPtr<T>(pub *mut T);
impl<T> Clone for SyncPtr<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for SyncPtr<T> {}
unsafe impl<T> Send for SyncPtr<T> {}
unsafe impl<T> Sync for SyncPtr<T> {}
impl<T> SyncPtr<T> {
    pub(crate) fn get(&self) -> *mut T {
        self.0
    }
}

/// Splits `out` into chunks of `chunk` elements and calls `f(chunk_index, chunk)`
/// for each, in parallel where the [`Parallelism`] allows.
pub fn par_chunks_mut<T: Send>(par: &dyn Parallelism, out: &mut [T], chunk: usize, f: &(dyn Fn(usize, &mut [T]) + Sync)) {
    let chunk = chunk.max(1);
    let len = out.len();
    let tasks = len.div_ceil(chunk);
    if tasks <= 1 || par.threads() <= 1 {
        for (i, c) in out.chunks_mut(chunk).enumerate() {
            f(i, c);
        }
        return;
    }
    let base = SyncPtr(out.as_mut_ptr());
    par.for_each(tasks, &|i| {
        let start = i * chunk;
        let end = (start + chunk).min(len);
        // SAFETY: tasks cover disjoint ranges [start, end) of `out`, which outlives the call.
        let slice = unsafe { std::slice::from_raw_parts_mut(base.get().add(start), end - start) };
        f(i, slice);
    });
}
