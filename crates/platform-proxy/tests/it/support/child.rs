//! The real `platform-proxy` binary as a child process, for measurements
//! that need a process of its own (resident memory), and a sampler that
//! watches its RSS.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::{base_toml, TempDir, API_HOST, TOKEN};

/// A running `platform-proxy serve`; killed when dropped.
pub struct ChildProxy {
    child: Child,
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub dir: TempDir,
}

impl ChildProxy {
    /// Starts the binary on a free loopback port with `extra` TOML appended
    /// (which must not set `[server]` or `[log]`), and waits until it accepts.
    pub async fn start(extra: &str) -> Self {
        let dir = TempDir::new();
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind probe");
            l.local_addr().expect("probe addr").port()
        };
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let toml = base_toml(
            &dir,
            &format!("[server]\nlisten = [\"{addr}\"]\n[log]\nlevel = \"warn\"\n{extra}"),
        );
        let config = dir.0.join("config.toml");
        std::fs::write(&config, toml).expect("write config");
        let log = std::fs::File::create(dir.0.join("stderr.log")).expect("log file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_platform-proxy"));
        // The config file under test is the whole truth: no overrides.
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("PLATFORM_PROXY_") {
                cmd.env_remove(&k);
            }
        }
        let child = cmd
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn platform-proxy");
        let mut me = Self {
            child,
            addr,
            client: reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("client"),
            dir,
        };
        for _ in 0..300 {
            if let Some(status) = me.child.try_wait().expect("try_wait") {
                panic!("platform-proxy exited with {status}: {}", me.log());
            }
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                return me;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "platform-proxy did not listen on {addr} within 15 s: {}",
            me.log()
        );
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the child wrote to stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.0.join("stderr.log")).unwrap_or_default()
    }

    /// A request to `path` on `host`, sent to the child's listener.
    pub fn req(&self, method: reqwest::Method, host: &str, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("http://{}{path}", self.addr))
            .header("host", host)
    }

    /// Creates a route through the child's API and returns its JSON.
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

    /// The child's resident set size now, in bytes.
    pub fn rss(&self) -> u64 {
        rss_of(self.pid()).expect("VmRSS of the child")
    }
}

impl Drop for ChildProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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
