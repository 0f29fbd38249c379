//! `wsload`: opens many WebSocket connections and measures echo round trips.
//!
//! Phases, each bounded in count and time:
//! 1. ramp: `--connections` handshakes, at most `--ramp-concurrency` at once,
//!    each within `--connect-timeout-secs`, over TCP to `--connect` (so the
//!    URL's authority, the `Host` the proxy routes on, can differ from the
//!    socket address);
//! 2. hold: every connection stays open and idle for `--hold-secs` (a line on
//!    stderr marks its start, so a script can sample memory meanwhile);
//! 3. active: the first `--active` connections each send a `--message-bytes`
//!    binary message every `--interval-ms` for `--duration-secs`, wait for the
//!    echo (at most `--reply-timeout-secs`), and record the round trip; the
//!    first `--warmup-secs` of it are sent but not counted.
//!
//! Prints one JSON line on stdout. Talks to loopback addresses only.
//! Needs a file descriptor per connection: raise `ulimit -n` before running
//! it with thousands (bench/run.sh does).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// Round-trip samples kept in total; beyond it messages are counted only.
const MAX_SAMPLES: usize = 5_000_000;

#[derive(Parser, Debug)]
#[command(about = "WebSocket connection and echo-latency load tool (loopback only)")]
struct Args {
    /// Loopback TCP address to connect to (the proxy's or upstream's listener).
    #[arg(long)]
    connect: SocketAddr,
    /// WebSocket URL sent in the handshake, e.g. ws://s.apps.bench:18080/ws.
    #[arg(long)]
    url: String,
    /// Extra handshake header, `Name: value`; repeatable (Cookie, Origin).
    #[arg(long = "header")]
    headers: Vec<String>,
    /// Connections to open.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    connections: u32,
    /// Handshakes in flight at once during the ramp.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=4_096))]
    ramp_concurrency: u32,
    /// Seconds one TCP connect + handshake may take.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=120))]
    connect_timeout_secs: u64,
    /// Seconds every connection is held open and idle after the ramp.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=3_600))]
    hold_secs: u64,
    /// Connections (the first K opened) that then send echo messages.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=100_000))]
    active: u32,
    /// Seconds the active phase is measured.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3_600))]
    duration_secs: u64,
    /// Seconds of echo traffic before the measured phase, not recorded.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=600))]
    warmup_secs: u64,
    /// Milliseconds between one active connection's messages (0: back to back).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(0..=60_000))]
    interval_ms: u64,
    /// Payload size of each echo message.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=65_536))]
    message_bytes: u32,
    /// Seconds to wait for one echo before counting a timeout.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=60))]
    reply_timeout_secs: u64,
}

type Ws = WebSocketStream<TcpStream>;

/// What one active connection saw.
#[derive(Default)]
struct ActiveResult {
    samples_us: Vec<u32>,
    messages: u64,
    timeouts: u64,
    errors: u64,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), String> {
    let args = Args::parse();
    pp_bench_tools::require_loopback(args.connect, "--connect")?;
    if args.active > args.connections {
        return Err("--active cannot exceed --connections".into());
    }
    let mut headers = Vec::with_capacity(args.headers.len());
    for h in &args.headers {
        let (name, value) = h
            .split_once(':')
            .ok_or_else(|| format!("--header {h:?}: want `Name: value`"))?;
        let name = HeaderName::try_from(name.trim()).map_err(|e| format!("--header {h:?}: {e}"))?;
        let value =
            HeaderValue::try_from(value.trim()).map_err(|e| format!("--header {h:?}: {e}"))?;
        headers.push((name, value));
    }
    // Fail on a bad URL before opening anything.
    args.url
        .as_str()
        .into_client_request()
        .map_err(|e| format!("--url {}: {e}", args.url))?;

    let ramp_started = Instant::now();
    let (mut conns, failed, first_error) = ramp(&args, &Arc::new(headers)).await;
    let ramp_ms = ramp_started.elapsed().as_millis();
    eprintln!(
        "wsload: ramp done in {ramp_ms} ms: connected={} failed={failed}; holding {} s",
        conns.len(),
        args.hold_secs
    );
    tokio::time::sleep(Duration::from_secs(args.hold_secs)).await;

    // The idle ones stay open (unpolled) in `conns` while the first K work.
    let k = (args.active as usize).min(conns.len());
    if k > 0 {
        eprintln!(
            "wsload: {k} connections active for {} s",
            args.duration_secs
        );
    }
    let active: Vec<Ws> = conns.drain(..k).collect();
    let results = run_active(&args, active).await;
    let idle_held = conns.len();
    drop(conns);

    let mut samples: Vec<u32> = Vec::new();
    let (mut messages, mut timeouts, mut errors) = (0_u64, 0_u64, 0_u64);
    for r in results {
        samples.extend_from_slice(&r.samples_us);
        messages += r.messages;
        timeouts += r.timeouts;
        errors += r.errors;
    }
    samples.sort_unstable();
    let pct = |p| pp_bench_tools::percentile(&samples, p);
    let line = json!({
        "connected": k + idle_held,
        "failed": failed,
        "first_error": first_error,
        "ramp_ms": ramp_ms,
        "active": k,
        "messages": messages,
        "timeouts": timeouts,
        "errors": errors,
        "rtt_p50_us": pct(50.0),
        "rtt_p90_us": pct(90.0),
        "rtt_p99_us": pct(99.0),
        "rtt_max_us": samples.last(),
    });
    println!("{line}");
    Ok(())
}

/// Opens the connections, `--ramp-concurrency` at a time.
async fn ramp(
    args: &Args,
    headers: &Arc<Vec<(HeaderName, HeaderValue)>>,
) -> (Vec<Ws>, u64, Option<String>) {
    let slots = Arc::new(Semaphore::new(args.ramp_concurrency as usize));
    let timeout = Duration::from_secs(args.connect_timeout_secs);
    let mut set = JoinSet::new();
    for _ in 0..args.connections {
        let Ok(permit) = Arc::clone(&slots).acquire_owned().await else {
            break;
        };
        let (addr, url, headers) = (args.connect, args.url.clone(), Arc::clone(headers));
        set.spawn(async move {
            let r = tokio::time::timeout(timeout, open(addr, &url, &headers)).await;
            drop(permit);
            match r {
                Ok(r) => r,
                Err(_) => Err(format!("connect + handshake took over {timeout:?}")),
            }
        });
    }
    let mut conns = Vec::with_capacity(args.connections as usize);
    let (mut failed, mut first_error) = (0_u64, None);
    while let Some(joined) = set.join_next().await {
        match joined.map_err(|e| e.to_string()).and_then(|r| r) {
            Ok(ws) => conns.push(ws),
            Err(err) => {
                failed += 1;
                first_error.get_or_insert(err);
            }
        }
    }
    (conns, failed, first_error)
}

async fn open(
    addr: SocketAddr,
    url: &str,
    headers: &[(HeaderName, HeaderValue)],
) -> Result<Ws, String> {
    let mut req = url.into_client_request().map_err(|e| e.to_string())?;
    for (name, value) in headers {
        req.headers_mut().insert(name.clone(), value.clone());
    }
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    tcp.set_nodelay(true).map_err(|e| e.to_string())?;
    let (ws, _) = tokio_tungstenite::client_async(req, tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    Ok(ws)
}

/// Drives the active connections until the phase's deadline.
async fn run_active(args: &Args, active: Vec<Ws>) -> Vec<ActiveResult> {
    if active.is_empty() {
        return Vec::new();
    }
    let now = tokio::time::Instant::now();
    let measured_from = now + Duration::from_secs(args.warmup_secs);
    let deadline = measured_from + Duration::from_secs(args.duration_secs);
    let interval = Duration::from_millis(args.interval_ms);
    let reply_timeout = Duration::from_secs(args.reply_timeout_secs);
    let cap = (MAX_SAMPLES / active.len()).max(1);
    let n = u32::try_from(active.len()).unwrap_or(u32::MAX);
    let mut set = JoinSet::new();
    for (i, ws) in active.into_iter().enumerate() {
        // Spread the first sends over one interval so the connections do not
        // fire in lock step.
        let offset = interval * u32::try_from(i).unwrap_or(0) / n;
        let payload = vec![b'x'; args.message_bytes as usize];
        let phase = Phase {
            offset,
            interval,
            reply_timeout,
            measured_from,
            deadline,
            cap,
        };
        set.spawn(ping_loop(ws, payload, phase));
    }
    let mut out = Vec::new();
    while let Some(joined) = set.join_next().await {
        out.push(joined.unwrap_or_else(|_| ActiveResult {
            errors: 1,
            ..ActiveResult::default()
        }));
    }
    out
}

/// The schedule of one active connection.
struct Phase {
    /// Delay of its first send, spreading the connections over an interval.
    offset: Duration,
    interval: Duration,
    reply_timeout: Duration,
    /// Echoes before this are warm-up: sent, not counted.
    measured_from: tokio::time::Instant,
    deadline: tokio::time::Instant,
    /// Samples this connection keeps at most.
    cap: usize,
}

async fn ping_loop(mut ws: Ws, payload: Vec<u8>, phase: Phase) -> ActiveResult {
    let Phase {
        offset,
        interval,
        reply_timeout,
        measured_from,
        deadline,
        cap,
    } = phase;
    let mut r = ActiveResult::default();
    let mut next = tokio::time::Instant::now() + offset;
    loop {
        tokio::time::sleep_until(next).await;
        if tokio::time::Instant::now() >= deadline {
            break;
        }
        let sent = Instant::now();
        let counted = tokio::time::Instant::now() >= measured_from;
        if ws.send(Message::binary(payload.clone())).await.is_err() {
            r.errors += 1;
            break;
        }
        let reply = tokio::time::timeout(reply_timeout, async {
            loop {
                match ws.next().await {
                    Some(Ok(Message::Binary(data))) => return data[..] == payload[..],
                    Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                    _ => return false,
                }
            }
        })
        .await;
        match reply {
            Ok(true) if !counted => {}
            Ok(true) => {
                r.messages += 1;
                if r.samples_us.len() < cap {
                    let us = sent.elapsed().as_micros();
                    r.samples_us.push(u32::try_from(us).unwrap_or(u32::MAX));
                }
            }
            Ok(false) => {
                r.errors += 1;
                break;
            }
            Err(_) => {
                r.timeouts += 1;
                break;
            }
        }
        // Fixed schedule; when the echo came late, go again at once.
        next = (next + interval).max(tokio::time::Instant::now());
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(None)).await;
    r
}
