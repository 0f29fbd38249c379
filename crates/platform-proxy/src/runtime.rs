//! The one tokio runtime the process runs on, sized by `server.workers`.
//!
//! Always the work-stealing scheduler, one worker per core by default.
//! With a single worker tokio's single-threaded scheduler would be the
//! obvious pick, but measured on one core it ran the same instructions per
//! request and served the same requests a second (docs/performance.md), and
//! the work-stealing one keeps one behaviour for every size.

use std::io;
use std::num::NonZeroUsize;

use tokio::runtime::{Builder, Runtime};

/// The worker count `workers` stands for: itself, or for 0 the cores this
/// process may run on (its CPU affinity, so `taskset -c 1` means one).
#[must_use]
pub fn resolve(workers: usize) -> usize {
    if workers > 0 {
        return workers;
    }
    std::thread::available_parallelism().map_or(1, NonZeroUsize::get)
}

/// Builds the runtime for `workers` (0: one per available core).
///
/// # Errors
/// The operating system refused a thread or the I/O driver.
pub fn build(workers: usize) -> io::Result<Runtime> {
    Builder::new_multi_thread()
        .worker_threads(resolve(workers))
        .enable_all()
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_explicit_count_is_kept_and_zero_means_the_available_cores() {
        assert_eq!(resolve(3), 3);
        let cores = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
        assert_eq!(resolve(0), cores);
    }

    #[test]
    fn the_runtime_has_the_workers_asked_for() {
        for n in [1, 2] {
            let rt = build(n).expect("runtime");
            assert_eq!(rt.metrics().num_workers(), n);
            let main = std::thread::current().id();
            let spawned = rt.block_on(async {
                tokio::spawn(async { std::thread::current().id() })
                    .await
                    .expect("task")
            });
            assert_ne!(spawned, main, "tasks run on the runtime's own workers");
        }
    }
}
