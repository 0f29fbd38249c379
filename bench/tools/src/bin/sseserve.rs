//! `sseserve`: a Server-Sent Events upstream for `bench/run.sh sse`.
//!
//! Answers any GET at a loopback address with a `text/event-stream` of one
//! event every `--interval-ms`, each carrying the wall-clock time it was
//! written (`data: <unix nanoseconds>`), as one chunk of a chunked body.
//! `sseload` on the same machine subtracts it from the time it reads the
//! event: one clock, so the difference is the delivery latency. It sends
//! `X-Accel-Buffering: no`, as SSE apps do for nginx. Runs until SIGINT or
//! SIGTERM; every stream ends after `--max-stream-secs`.
//!
//! Streams opened together would tick together: every stream's event in
//! the same millisecond, a burst that the last event waits through, on
//! the proxy's core as on the reader's. Independent apps' streams do not
//! keep step, so by default each stream's ticks are shifted by a phase
//! of its own, spread evenly over the interval (the `k`th stream by the
//! fractional part of `k` times the golden ratio). `--aligned` keeps them
//! in step: the burst case.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Parser;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Parser, Debug)]
#[command(about = "Server-Sent Events upstream for the bench (loopback only)")]
struct Args {
    /// Loopback address to listen on.
    #[arg(long, default_value = "127.0.0.1:18092")]
    listen: SocketAddr,
    /// Milliseconds between two events of one stream.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    interval_ms: u64,
    /// Seconds after which a stream is ended.
    #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..=3_600))]
    max_stream_secs: u64,
    /// Every stream ticks from the moment it starts, so streams opened
    /// together send their events together (see the module's comment).
    #[arg(long)]
    aligned: bool,
}

/// The `k`th stream's first tick, as a fraction of the interval: `k` times
/// the golden ratio, modulo one. Any number of streams is spread evenly.
fn phase(k: u64) -> f64 {
    const GOLDEN: f64 = 0.618_033_988_749_894_9;
    (k as f64 * GOLDEN).fract()
}

/// Largest request head read before the stream starts.
const MAX_HEAD: usize = 16 * 1024;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), String> {
    let args = Args::parse();
    let mut server = pp_bench_tools::Server::bind(args.listen, "sseserve").await?;
    let interval = Duration::from_millis(args.interval_ms);
    let lifetime = Duration::from_secs(args.max_stream_secs);
    let mut k = 0u64;
    while let Some(tcp) = server.next().await {
        let shift = if args.aligned {
            Duration::ZERO
        } else {
            interval.mul_f64(phase(k))
        };
        k += 1;
        tokio::spawn(async move {
            let _ = tokio::time::timeout(lifetime, stream(tcp, interval, shift)).await;
        });
    }
    Ok(())
}

/// Serves one stream: an event every `interval`, the first `shift` after
/// the head.
async fn stream(mut tcp: TcpStream, interval: Duration, shift: Duration) -> std::io::Result<()> {
    tcp.set_nodelay(true)?;
    // Read the request head (a keep-alive proxy sends nothing more).
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tcp.read(&mut buf).await?;
        if n == 0 || head.len() + n > MAX_HEAD {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    tcp.write_all(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n\
          X-Accel-Buffering: no\r\nTransfer-Encoding: chunked\r\n\r\n",
    )
    .await?;
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + shift, interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let event = format!("data: {nanos}\n\n");
        let chunk = format!("{:x}\r\n{event}\r\n", event.len());
        tcp.write_all(chunk.as_bytes()).await?;
    }
}

#[cfg(test)]
mod tests {
    use super::phase;

    #[test]
    fn phases_spread_any_number_of_streams_over_the_interval() {
        for n in [2u64, 10, 200, 1000] {
            let mut at: Vec<f64> = (0..n).map(phase).collect();
            assert!(at.iter().all(|p| (0.0..1.0).contains(p)));
            at.sort_by(f64::total_cmp);
            // No gap between neighbours (the last wrapping to the first)
            // is wider than three even shares.
            let widest = at
                .windows(2)
                .map(|w| w[1] - w[0])
                .chain(std::iter::once(1.0 - at[at.len() - 1] + at[0]))
                .fold(0.0, f64::max);
            assert!(widest <= 3.0 / n as f64, "{n} streams: widest gap {widest}");
        }
    }
}
