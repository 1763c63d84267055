use uniml_core::Parallelism;

/// Native threading through a dedicated rayon pool.
pub struct RayonPool {
    pool: rayon::ThreadPool,
}

impl RayonPool {
    pub fn new(threads: usize) -> Result<RayonPool, crate::Error> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("uniml-{i}"))
            .build()
            .map_err(|e| crate::Error::Other(format!("cannot start {threads} threads: {e}")))?;
        Ok(RayonPool { pool })
    }
}

impl Parallelism for RayonPool {
    fn threads(&self) -> usize {
        self.pool.current_num_threads()
    }
    fn for_each(&self, tasks: usize, f: &(dyn Fn(usize) + Sync)) {
        use rayon::prelude::*;
        self.pool.install(|| (0..tasks).into_par_iter().for_each(f));
    }
    fn run_inside(&self, f: &mut (dyn FnMut() + Send)) {
        self.pool.install(f)
    }
}
