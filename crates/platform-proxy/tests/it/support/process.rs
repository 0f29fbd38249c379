//! The real binary as a child process, for what only a process has: exit
//! codes, signals, stderr, resident memory. The child is killed when its guard drops, so a
//! failing test never leaks a process; its log is printed on failure.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use super::{base_toml, TempDir, API_HOST, TOKEN};

pub const BIN: &str = env!("CARGO_BIN_EXE_platform-proxy");

/// The binary with an environment free of the caller's `PLATFORM_PROXY_…`
/// overrides and `RUST_LOG`, so the config under test is the whole truth.
pub fn command() -> Command {
    let mut c = Command::new(BIN);
    for (k, _) in std::env::vars_os() {
        let name = k.to_string_lossy();
        if name.starts_with(platform_proxy::config::ENV_PREFIX) || name == "RUST_LOG" {
            c.env_remove(&k);
        }
    }
    c.env("NO_COLOR", "1");
    c
}

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// `platform-proxy serve` in a child process.
pub struct ChildProxy {
    child: Child,
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    log: PathBuf,
    pub dir: TempDir,
}

impl ChildProxy {
    /// Starts `serve` on a free port with `server` appended to `[server]`
    /// and text logs at info level, and waits until it answers `/healthz`.
    /// Another process may take the port between our probe and the child's
    /// bind; then it tries again on a new one.
    pub async fn serve(server: &str) -> Self {
        for attempt in 1..=3 {
            let mut p = Self::spawn(server);
            match p.wait_healthy().await {
                Ok(()) => return p,
                Err(status) if attempt < 3 && p.log().contains("binding") => {
                    eprintln!(
                        "platform-proxy could not bind {} ({status}); retrying",
                        p.addr
                    );
                }
                Err(status) => panic!("platform-proxy exited with {status} before serving"),
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    fn spawn(server: &str) -> Self {
        let dir = TempDir::new();
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let extra = format!(
            "[server]\nlisten = [\"{addr}\"]\n{server}\n[log]\nformat = \"text\"\nlevel = \"info\"\n"
        );
        let config = dir.0.join("proxy.toml");
        std::fs::write(&config, base_toml(&dir, &extra)).expect("write config");
        let log = dir.0.join("proxy.log");
        let stderr = std::fs::File::create(&log).expect("log file");
        let child = command()
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawn platform-proxy");
        Self {
            child,
            addr,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("client"),
            log,
            dir,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the child wrote to stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for `/healthz`; `Err` if the child exits first.
    async fn wait_healthy(&mut self) -> Result<(), ExitStatus> {
        let end = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(status);
            }
            let ok = self
                .client
                .get(format!("http://{}/healthz", self.addr))
                .header("host", API_HOST)
                .timeout(Duration::from_secs(1))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200);
            if ok {
                return Ok(());
            }
            assert!(
                Instant::now() < end,
                "platform-proxy did not answer /healthz within 20 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A request to `path` on `host`, sent to the child's listener.
    pub fn req(&self, method: reqwest::Method, host: &str, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("http://{}{path}", self.addr))
            .header("host", host)
    }

    /// Creates a route through the child's API and returns its JSON. The
    /// child serves it a moment later (its change feed is in-process).
    pub async fn create_route(&self, body: Value) -> Value {
        let resp = self
            .req(reqwest::Method::POST, API_HOST, "/api/v1/routes")
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
            .await
            .expect("create route");
        let status = resp.status();
        let v: Value = resp.json().await.expect("json");
        assert_eq!(status, 201, "create route: {v}");
        v
    }

    /// Creates a host route `{label}.apps.test` to `target` through the
    /// child's API and waits until the data plane serves it.
    pub async fn host_route(&self, label: &str, target: SocketAddr) -> Value {
        let v = self
            .create_route(serde_json::json!({
                "owner_type": "app_instance", "owner_id": label, "endpoint_name": "web",
                "route_mode": "subdomain", "route_host": label,
                "upstream": {"targets": [target.to_string()]},
                // These tests are about shutdown and streaming, not access.
                "policy": {"public": true},
            }))
            .await;
        let host = format!("{label}.{}", super::APPS);
        super::eventually(Duration::from_secs(5), || async {
            // Any answer but the proxy's own 404 means the route is live
            // (the operator's token: anonymous callers get 401 either way).
            self.req(reqwest::Method::GET, &host, "/")
                .bearer_auth(TOKEN)
                .send()
                .await
                .is_ok_and(|r| r.status() != 404)
        })
        .await;
        v
    }

    /// The child's resident set size now, in bytes.
    pub fn rss(&self) -> u64 {
        rss_of(self.pid()).expect("VmRSS of the child")
    }

    /// Sends SIGTERM.
    pub fn sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed: {status}");
    }

    /// Waits until the log contains `needle`.
    pub async fn wait_log(&self, needle: &str, within: Duration) {
        let end = Instant::now() + within;
        while !self.log().contains(needle) {
            assert!(
                Instant::now() < end,
                "log never said {needle:?} within {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits for the child to exit.
    pub async fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let end = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < end,
                "platform-proxy still running after {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for ChildProxy {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!("--- platform-proxy log ---\n{}--- end ---", self.log());
        }
    }
}

/// `VmRSS` of process `pid` from /proc, in bytes.
pub fn rss_of(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Samples a process's RSS every 50 ms on a thread of its own, keeping
/// the peak, until [`RssSampler::finish`].
pub struct RssSampler {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<(u64, usize)>,
}

impl RssSampler {
    pub fn start(pid: u32) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut peak = 0u64;
            let mut samples = 0usize;
            while !flag.load(Ordering::SeqCst) {
                if let Some(r) = rss_of(pid) {
                    peak = peak.max(r);
                    samples += 1;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            (peak, samples)
        });
        Self { stop, thread }
    }

    /// Stops sampling; returns (peak RSS in bytes, number of samples).
    pub fn finish(self) -> (u64, usize) {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().expect("sampler thread")
    }
}
