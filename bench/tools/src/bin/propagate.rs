//! `propagate`: how long a route created through the API takes to serve.
//!
//! For each of `--routes` new public subdomain routes: note the time, POST it
//! to the control-plane API, then probe `GET http://{host}.{apps-domain}{path}`
//! through the proxy's listener until the first 2xx (at most
//! `--timeout-secs`). Every request is a fresh HTTP/1.1 connection with
//! `Connection: close`, so no pooled socket hides a stale route table; a
//! probe costs about a loopback connect, far below a curl process start.
//!
//! Prints one JSON line: API latency and create → first success latency
//! (p50/p99/max in µs), and how many routes served at the very first probe
//! after the API answered. Talks to loopback addresses only.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Bytes of a response read at most; the status line is all we need.
const MAX_RESPONSE_BYTES: usize = 1 << 20;

#[derive(Parser, Debug)]
#[command(about = "Route creation → first proxied success latency (loopback only)")]
struct Args {
    /// Loopback address of the proxy's plain listener (API and data plane).
    #[arg(long)]
    connect: SocketAddr,
    /// Host the API answers on.
    #[arg(long, default_value = "api.bench")]
    api_host: String,
    /// Apps domain the routes live under.
    #[arg(long, default_value = "apps.bench")]
    apps_domain: String,
    /// Bearer token allowed to create routes.
    #[arg(long, env = "PROPAGATE_TOKEN")]
    token: String,
    /// Upstream target (`host:port`) the routes point at.
    #[arg(long)]
    upstream: String,
    /// Path probed on each new route.
    #[arg(long, default_value = "/")]
    path: String,
    /// Routes to create.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    routes: u32,
    /// Prefix of the route hosts (`{prefix}{i}`); vary it between runs.
    #[arg(long, default_value = "prop")]
    prefix: String,
    /// Seconds one route may take to serve before it counts as failed.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=120))]
    timeout_secs: u64,
    /// Microseconds between probes of one route.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
    probe_gap_us: u64,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), String> {
    let args = Args::parse();
    pp_bench_tools::require_loopback(args.connect, "--connect")?;
    let timeout = Duration::from_secs(args.timeout_secs);
    let gap = Duration::from_micros(args.probe_gap_us);
    let (mut api_us, mut live_us) = (Vec::new(), Vec::new());
    let (mut failed, mut immediate, mut probes) = (0_u32, 0_u32, 0_u64);
    let mut first_error: Option<String> = None;

    for i in 0..args.routes {
        let host = format!("{}{i}", args.prefix);
        let body = json!({
            "owner_type": "app_instance",
            "owner_id": host,
            "endpoint_name": "web",
            "route_mode": "subdomain",
            "route_host": host,
            "policy": { "public": true },
            "upstream": { "targets": [args.upstream] },
        })
        .to_string();
        let create = format!(
            "POST /api/v1/routes HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            args.api_host,
            args.token,
            body.len()
        );
        let probe = format!(
            "GET {} HTTP/1.1\r\nHost: {host}.{}\r\nConnection: close\r\n\r\n",
            args.path, args.apps_domain
        );

        let started = Instant::now();
        match request(args.connect, &create, timeout).await {
            Ok(s) if (200..300).contains(&s) => {}
            Ok(s) => {
                failed += 1;
                first_error.get_or_insert(format!("{host}: create answered {s}"));
                continue;
            }
            Err(e) => {
                failed += 1;
                first_error.get_or_insert(format!("{host}: create: {e}"));
                continue;
            }
        }
        api_us.push(micros(started.elapsed()));

        let mut first_probe = true;
        let served = loop {
            if started.elapsed() > timeout {
                break false;
            }
            probes += 1;
            let ok = matches!(request(args.connect, &probe, timeout).await, Ok(s) if (200..300).contains(&s));
            if ok {
                if first_probe {
                    immediate += 1;
                }
                break true;
            }
            first_probe = false;
            tokio::time::sleep(gap).await;
        };
        if served {
            live_us.push(micros(started.elapsed()));
        } else {
            failed += 1;
            first_error.get_or_insert(format!("{host}: no 2xx within {timeout:?}"));
        }
    }

    api_us.sort_unstable();
    live_us.sort_unstable();
    let p = |v: &[u32], q| pp_bench_tools::percentile(v, q);
    let line = json!({
        "routes": args.routes,
        "live": live_us.len(),
        "failed": failed,
        "first_error": first_error,
        "served_at_first_probe": immediate,
        "probes": probes,
        "api_p50_us": p(&api_us, 50.0),
        "api_p99_us": p(&api_us, 99.0),
        "live_p50_us": p(&live_us, 50.0),
        "live_p99_us": p(&live_us, 99.0),
        "live_max_us": live_us.last(),
    });
    println!("{line}");
    Ok(())
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

/// Sends one raw HTTP/1.1 request on a new connection and returns the
/// response's status code.
async fn request(addr: SocketAddr, raw: &str, timeout: Duration) -> Result<u16, String> {
    let exchange = async {
        let mut tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect {addr}: {e}"))?;
        tcp.set_nodelay(true).map_err(|e| e.to_string())?;
        tcp.write_all(raw.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut buf = Vec::with_capacity(4096);
        let mut chunk = [0_u8; 4096];
        // `Connection: close`: the answer ends when the server closes.
        while buf.len() < MAX_RESPONSE_BYTES {
            let n = tcp.read(&mut chunk).await.map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        status_of(&buf).ok_or_else(|| "no HTTP status line in the answer".to_owned())
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| format!("no answer within {timeout:?}"))?
}

/// The code of an `HTTP/1.x NNN reason` status line.
fn status_of(response: &[u8]) -> Option<u16> {
    let line = response.split(|&b| b == b'\n').next()?;
    let code = std::str::from_utf8(line).ok()?.split(' ').nth(1)?;
    code.parse().ok()
}
