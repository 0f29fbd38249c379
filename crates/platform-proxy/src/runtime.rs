//! The one tokio runtime the process runs on, sized by `server.workers`.
//!
//! One worker per core by default, on tokio's work-stealing scheduler.
//! With one worker (`workers = 1`, or `0` under a one-core affinity such as
//! `taskset -c 1`) it is tokio's single-threaded scheduler instead, on the
//! thread that calls `block_on`: the work-stealing one would run that one
//! worker beside the blocked main thread, and any second thread costs the
//! data plane on every socket system call (the kernel takes and drops a
//! reference to the socket's file for each, where a single-threaded
//! process borrows it; 1.7% of a request's samples, docs/performance.md).
//! The threads that remain come and go: the blocking pool's after
//! [`BLOCKING_KEEP_ALIVE`] idle, the SQLite store's connections after theirs
//! (`pp_store`).

use std::io;
use std::num::NonZeroUsize;
use std::time::Duration;

use tokio::runtime::{Builder, Runtime};

/// How long an idle blocking-pool thread stays for more work. The pool runs
/// rare work (the route table's full rebuild, an old table's drop), so a
/// thread kept for tokio's default ten seconds would mostly wait.
const BLOCKING_KEEP_ALIVE: Duration = Duration::from_secs(1);

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
    let workers = resolve(workers);
    let mut builder = if workers == 1 {
        Builder::new_current_thread()
    } else {
        let mut b = Builder::new_multi_thread();
        b.worker_threads(workers);
        b
    };
    builder
        .thread_keep_alive(BLOCKING_KEEP_ALIVE)
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

    /// The thread a task spawned on a runtime of `workers` runs on.
    fn task_thread(rt: &Runtime) -> std::thread::ThreadId {
        rt.block_on(async {
            tokio::spawn(async { std::thread::current().id() })
                .await
                .expect("task")
        })
    }

    #[test]
    fn several_workers_run_tasks_on_threads_of_their_own() {
        let rt = build(2).expect("runtime");
        assert_eq!(rt.metrics().num_workers(), 2);
        assert_ne!(task_thread(&rt), std::thread::current().id());
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn one_worker_runs_tasks_on_the_calling_thread_and_lets_blocking_threads_go() {
        let rt = build(1).expect("runtime");
        assert_eq!(rt.metrics().num_workers(), 1);
        assert_eq!(task_thread(&rt), std::thread::current().id());
        // The blocking thread's entry in /proc ("PID/task/TID").
        let task = rt.block_on(async {
            tokio::task::spawn_blocking(|| {
                std::fs::read_link("/proc/thread-self").expect("thread-self")
            })
            .await
            .expect("blocking task")
        });
        let task = std::path::Path::new("/proc").join(task);
        assert!(task.exists(), "{} is a live thread", task.display());
        // Bounded: the thread goes after BLOCKING_KEEP_ALIVE idle.
        let deadline = std::time::Instant::now() + BLOCKING_KEEP_ALIVE * 5;
        while task.exists() {
            assert!(
                std::time::Instant::now() < deadline,
                "the idle blocking thread stayed past its keep-alive"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
