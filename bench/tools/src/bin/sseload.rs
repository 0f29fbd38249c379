//! `sseload`: holds many Server-Sent Events streams open and measures how
//! late each event arrives.
//!
//! Each of `--streams` connections sends one `GET` (with `--host` and any
//! `--header`) to `--connect`, expects `200` and a chunked
//! `text/event-stream`, and reads events from `sseserve` (`data: <unix
//! nanoseconds>`) for `--warmup-secs` + `--duration-secs`. The latency of an
//! event is the time it was read minus the time it was written; both ends
//! run on this machine's one clock. Prints one JSON line on stdout. Talks
//! to loopback addresses only.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Parser;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

/// Samples one stream keeps at most.
const MAX_SAMPLES_PER_STREAM: usize = 100_000;
/// Largest response head accepted.
const MAX_HEAD: usize = 16 * 1024;

#[derive(Parser, Debug)]
#[command(about = "Server-Sent Events latency load tool (loopback only)")]
struct Args {
    /// Loopback TCP address to connect to (the proxy's or the upstream's).
    #[arg(long)]
    connect: SocketAddr,
    /// `Host` header of the request (the route the proxy picks).
    #[arg(long, default_value = "localhost")]
    host: String,
    /// Request path.
    #[arg(long, default_value = "/events")]
    path: String,
    /// Extra request header, `Name: value`; repeatable (Cookie).
    #[arg(long = "header")]
    headers: Vec<String>,
    /// Streams held open at once.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    streams: u32,
    /// Seconds of events read before the measured phase, not recorded.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(0..=600))]
    warmup_secs: u64,
    /// Seconds measured.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3_600))]
    duration_secs: u64,
}

#[derive(Default)]
struct StreamResult {
    samples_us: Vec<u32>,
    events: u64,
    error: Option<String>,
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let args = Args::parse();
    pp_bench_tools::require_loopback(args.connect, "--connect")?;
    let mut request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\n",
        args.path, args.host
    );
    for h in &args.headers {
        if h.contains(['\r', '\n']) || !h.contains(':') {
            return Err(format!(
                "--header {h:?}: expected `Name: value` on one line"
            ));
        }
        request.push_str(h);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    let start = tokio::time::Instant::now();
    let measured_from = start + Duration::from_secs(args.warmup_secs);
    let deadline = measured_from + Duration::from_secs(args.duration_secs);
    let mut set = JoinSet::new();
    for _ in 0..args.streams {
        let (addr, request) = (args.connect, request.clone());
        set.spawn(async move {
            let mut r = StreamResult::default();
            if let Err(e) = tokio::time::timeout_at(
                deadline,
                read_stream(addr, &request, measured_from, &mut r),
            )
            .await
            .unwrap_or(Ok(()))
            {
                r.error = Some(e);
            }
            r
        });
    }
    let (mut samples, mut events, mut failed, mut first_error) = (Vec::new(), 0_u64, 0_u64, None);
    while let Some(joined) = set.join_next().await {
        let r = joined.unwrap_or_else(|e| StreamResult {
            error: Some(e.to_string()),
            ..StreamResult::default()
        });
        samples.extend_from_slice(&r.samples_us);
        events += r.events;
        if let Some(e) = r.error {
            failed += 1;
            first_error.get_or_insert(e);
        }
    }
    samples.sort_unstable();
    let pct = |p| pp_bench_tools::percentile(&samples, p);
    println!(
        "{}",
        json!({
            "streams": args.streams,
            "failed": failed,
            "first_error": first_error,
            "events": events,
            "latency_p50_us": pct(50.0),
            "latency_p90_us": pct(90.0),
            "latency_p99_us": pct(99.0),
            "latency_max_us": samples.last(),
        })
    );
    Ok(())
}

fn now_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// Reads one stream until the caller's deadline cancels it; an error ends
/// it early.
async fn read_stream(
    addr: SocketAddr,
    request: &str,
    measured_from: tokio::time::Instant,
    r: &mut StreamResult,
) -> Result<(), String> {
    let mut tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    tcp.set_nodelay(true).map_err(|e| e.to_string())?;
    tcp.write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut buf = Vec::with_capacity(8192);
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > MAX_HEAD || read_more(&mut tcp, &mut buf).await? == 0 {
            return Err("the response head did not arrive".into());
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    if !head.starts_with("http/1.1 200") {
        return Err(format!("answer: {}", head.lines().next().unwrap_or("")));
    }
    if !head.contains("transfer-encoding: chunked") {
        return Err("the stream is not chunked".into());
    }
    buf.drain(..head_end);
    // Chunked body → event text → events.
    let mut text = Vec::new();
    loop {
        let Some(line_end) = buf.windows(2).position(|w| w == b"\r\n") else {
            if read_more(&mut tcp, &mut buf).await? == 0 {
                return Err("the stream ended".into());
            }
            continue;
        };
        let size_text = std::str::from_utf8(&buf[..line_end]).map_err(|e| e.to_string())?;
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| format!("bad chunk size {size_text:?}"))?;
        if size == 0 {
            return Err("the stream ended".into());
        }
        while buf.len() < line_end + 2 + size + 2 {
            if read_more(&mut tcp, &mut buf).await? == 0 {
                return Err("the stream ended mid-chunk".into());
            }
        }
        let read_at = now_nanos();
        text.extend_from_slice(&buf[line_end + 2..line_end + 2 + size]);
        buf.drain(..line_end + 2 + size + 2);
        while let Some(end) = text.windows(2).position(|w| w == b"\n\n") {
            let event = String::from_utf8_lossy(&text[..end]).into_owned();
            text.drain(..end + 2);
            let sent: u128 = event
                .lines()
                .find_map(|l| l.strip_prefix("data: "))
                .and_then(|d| d.trim().parse().ok())
                .ok_or_else(|| format!("not an sseserve event: {event:?}"))?;
            if tokio::time::Instant::now() < measured_from {
                continue;
            }
            r.events += 1;
            if r.samples_us.len() < MAX_SAMPLES_PER_STREAM {
                let us = read_at.saturating_sub(sent) / 1000;
                r.samples_us.push(u32::try_from(us).unwrap_or(u32::MAX));
            }
        }
    }
}

async fn read_more(tcp: &mut TcpStream, buf: &mut Vec<u8>) -> Result<usize, String> {
    let mut chunk = [0u8; 8192];
    let n = tcp.read(&mut chunk).await.map_err(|e| e.to_string())?;
    buf.extend_from_slice(&chunk[..n]);
    Ok(n)
}
