//! `server.splice`: which large bodies are spliced and which copied. The
//! bodies arrive byte for byte either way; what differs is whether the
//! proxy opens a pipe for them, which these tests watch in the process's
//! descriptor table while a transfer is held half-way.

use std::sync::atomic::AtomicBool;

use super::*;

/// The pipes this process holds open (`/proc/self/fd` entries that read
/// `pipe:[…]`).
fn pipes_open() -> usize {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return 0;
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter(|target| target.to_string_lossy().starts_with("pipe:"))
        .count()
}

/// Whether this test has the process to itself (nextest runs each test in
/// a process of its own): only then are the pipes counted its own.
fn alone_in_process() -> bool {
    std::env::var("NEXTEST_EXECUTION_MODE").as_deref() == Ok("process-per-test")
}

/// Samples [`pipes_open`] every millisecond until stopped; returns the
/// most seen above `base`.
fn watch_pipes(base: usize, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<usize> {
    tokio::task::spawn_blocking(move || {
        let mut most = 0;
        while !stop.load(Ordering::SeqCst) {
            most = most.max(pipes_open().saturating_sub(base));
            std::thread::sleep(Duration::from_millis(1));
        }
        most
    })
}

/// One large upload and one large download through a proxy started with
/// `server.splice = setting`, each held still for 300 ms (the client
/// pauses its upload half-way, and reads its download only after). Checks
/// both bodies byte for byte; returns the most pipes open above the
/// count before each transfer: (upload, download).
async fn transfer_both(setting: &str) -> (usize, usize) {
    let (p, seen) = proxy_to_digest(
        "sp",
        Some(&format!(
            "[server]\nlisten = [\"127.0.0.1:0\"]\nsplice = \"{setting}\"\n"
        )),
    )
    .await;
    let len = 4 * 1024 * 1024 + 11;
    let mut s = TcpStream::connect(p.addr).await.expect("connect");

    let base = pipes_open();
    let stop = Arc::new(AtomicBool::new(false));
    let watch = watch_pipes(base, Arc::clone(&stop));
    let body = pattern(3, len);
    let head = format!("PUT /sink HTTP/1.1\r\nHost: sp.apps.test\r\nContent-Length: {len}\r\n\r\n");
    s.write_all(head.as_bytes()).await.expect("write");
    s.write_all(&body[..len / 2]).await.expect("write");
    tokio::time::sleep(Duration::from_millis(300)).await;
    s.write_all(&body[len / 2..]).await.expect("write");
    let (head, answer) = read_answer(&mut s).await;
    stop.store(true, Ordering::SeqCst);
    let up = watch.await.expect("watch");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let want = digest_answer(&body);
    assert_eq!(
        String::from_utf8_lossy(&answer),
        want,
        "the upload, {setting}"
    );

    let base = pipes_open();
    let stop = Arc::new(AtomicBool::new(false));
    let watch = watch_pipes(base, Arc::clone(&stop));
    // Far more than the sockets' buffers hold while the client reads
    // nothing: the proxy is held in the body (its pipe, if any, open).
    let down_len = 32 * 1024 * 1024 + 5;
    let req = format!("GET /bytes/{down_len} HTTP/1.1\r\nHost: sp.apps.test\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("write");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (head, body) = read_answer(&mut s).await;
    stop.store(true, Ordering::SeqCst);
    let down = watch.await.expect("watch");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(body == pattern(0, down_len), "the download, {setting}");
    assert_eq!(seen.answered.load(Ordering::SeqCst), 2);
    // Whatever was opened for the bodies is closed with them.
    let settled = tokio::time::timeout(Duration::from_secs(5), async {
        while pipes_open() > base {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(settled.is_ok(), "the pipes are closed after the bodies");
    p.stop().await;
    (up, down)
}

#[tokio::test]
async fn splice_both_splices_uploads_and_downloads() {
    let (up, down) = transfer_both("both").await;
    if alone_in_process() {
        assert_eq!((up, down), (2, 2), "one pipe (two ends) for each body");
    }
}

#[tokio::test]
async fn splice_requests_copies_the_downloads() {
    let (up, down) = transfer_both("requests").await;
    if alone_in_process() {
        assert_eq!((up, down), (2, 0));
    }
}

#[tokio::test]
async fn splice_responses_copies_the_uploads() {
    let (up, down) = transfer_both("responses").await;
    if alone_in_process() {
        assert_eq!((up, down), (0, 2));
    }
}

#[tokio::test]
async fn splice_off_copies_every_body() {
    let (up, down) = transfer_both("off").await;
    if alone_in_process() {
        assert_eq!((up, down), (0, 0), "no pipe for either body");
    }
}
