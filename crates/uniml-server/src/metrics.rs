//! Prometheus text-format metrics: inference requests by model and status,
//! a latency histogram per model, queue depth and in-flight inferences.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 14] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    latency: Mutex<BTreeMap<String, Histogram>>,
    /// Requests admitted (queued or running).
    pub admitted: AtomicUsize,
    /// Inferences running now.
    pub running: AtomicUsize,
}

impl Metrics {
    pub fn record(&self, model: &str, status: u16, elapsed: Duration) {
        if let Ok(mut r) = self.requests.lock() {
            *r.entry((model.to_string(), status)).or_default() += 1;
        }
        let secs = elapsed.as_secs_f64();
        if let Ok(mut l) = self.latency.lock() {
            let h = l.entry(model.to_string()).or_default();
            for (i, b) in BUCKETS.iter().enumerate() {
                if secs <= *b {
                    h.counts[i] += 1;
                }
            }
            h.count += 1;
            h.sum += secs;
        }
    }

    pub fn render(&self, max_concurrency: usize, max_queue: usize) -> String {
        let mut s = String::new();
        let running = self.running.load(Ordering::Relaxed);
        let admitted = self.admitted.load(Ordering::Relaxed);
        let _ = writeln!(s, "# HELP uniml_requests_total Inference requests by model and HTTP status.");
        let _ = writeln!(s, "# TYPE uniml_requests_total counter");
        if let Ok(r) = self.requests.lock() {
            for ((model, status), n) in r.iter() {
                let _ = writeln!(s, "uniml_requests_total{{model=\"{}\",status=\"{status}\"}} {n}", escape(model));
            }
        }
        let _ = writeln!(s, "# HELP uniml_request_duration_seconds Inference request latency (admission to response).");
        let _ = writeln!(s, "# TYPE uniml_request_duration_seconds histogram");
        if let Ok(l) = self.latency.lock() {
            for (model, h) in l.iter() {
                let m = escape(model);
                for (b, c) in BUCKETS.iter().zip(h.counts) {
                    let _ = writeln!(s, "uniml_request_duration_seconds_bucket{{model=\"{m}\",le=\"{b}\"}} {c}");
                }
                let _ = writeln!(s, "uniml_request_duration_seconds_bucket{{model=\"{m}\",le=\"+Inf\"}} {}", h.count);
                let _ = writeln!(s, "uniml_request_duration_seconds_sum{{model=\"{m}\"}} {}", h.sum);
                let _ = writeln!(s, "uniml_request_duration_seconds_count{{model=\"{m}\"}} {}", h.count);
            }
        }
        let _ = writeln!(s, "# HELP uniml_queue_depth Admitted inference requests waiting for a slot.");
        let _ = writeln!(s, "# TYPE uniml_queue_depth gauge");
        let _ = writeln!(s, "uniml_queue_depth {}", admitted.saturating_sub(running));
        let _ = writeln!(s, "# HELP uniml_in_flight Inferences running now.");
        let _ = writeln!(s, "# TYPE uniml_in_flight gauge");
        let _ = writeln!(s, "uniml_in_flight {running}");
        let _ = writeln!(s, "# HELP uniml_max_concurrency Configured concurrent inferences.");
        let _ = writeln!(s, "# TYPE uniml_max_concurrency gauge");
        let _ = writeln!(s, "uniml_max_concurrency {max_concurrency}");
        let _ = writeln!(s, "# HELP uniml_max_queue Configured queue length.");
        let _ = writeln!(s, "# TYPE uniml_max_queue gauge");
        let _ = writeln!(s, "uniml_max_queue {max_queue}");
        s
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// Counts one admitted request until dropped (a cancelled request still leaves the gauges right).
pub struct Admitted(pub std::sync::Arc<Metrics>);
impl Admitted {
    /// Admits one request; `None` (and nothing counted) when `limit` are already admitted.
    pub fn try_new(m: &std::sync::Arc<Metrics>, limit: usize) -> Option<Admitted> {
        m.admitted.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < limit).then_some(n + 1)).ok().map(|_| Admitted(m.clone()))
    }
}
impl Drop for Admitted {
    fn drop(&mut self) {
        self.0.admitted.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Counts one running inference until dropped.
pub struct Running(pub std::sync::Arc<Metrics>);
impl Running {
    pub fn new(m: &std::sync::Arc<Metrics>) -> Running {
        m.running.fetch_add(1, Ordering::AcqRel);
        Running(m.clone())
    }
}
impl Drop for Running {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::AcqRel);
    }
}
