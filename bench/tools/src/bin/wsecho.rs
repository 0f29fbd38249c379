//! `wsecho`: a WebSocket echo upstream for `bench/run.sh ws`.
//!
//! Accepts WebSocket handshakes on any path (RFC 6455 §4.2) at a loopback
//! address and echoes every text and binary message back; tungstenite answers
//! pings itself. Deliberately tiny and independent of platform-proxy's own
//! demo app, so the bench measures the proxy and not code it shares.
//! Runs until SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;

#[derive(Parser, Debug)]
#[command(about = "WebSocket echo server for the bench (loopback only)")]
struct Args {
    /// Loopback address to listen on.
    #[arg(long, default_value = "127.0.0.1:18091")]
    listen: SocketAddr,
    /// Connections served at once; more wait in the accept queue.
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    max_connections: u32,
    /// Seconds a client has to finish its handshake.
    #[arg(long, default_value_t = 10)]
    handshake_timeout_secs: u64,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), String> {
    let args = Args::parse();
    let mut server = pp_bench_tools::Server::bind(args.listen, "wsecho").await?;
    let slots = Arc::new(Semaphore::new(args.max_connections as usize));
    let handshake_timeout = Duration::from_secs(args.handshake_timeout_secs);
    loop {
        let permit = tokio::select! {
            p = Arc::clone(&slots).acquire_owned() => p.map_err(|e| e.to_string())?,
            () = server.stopped() => break,
        };
        let Some(tcp) = server.next().await else {
            break;
        };
        tokio::spawn(async move {
            serve(tcp, handshake_timeout).await;
            drop(permit);
        });
    }
    Ok(())
}

async fn serve(tcp: TcpStream, handshake_timeout: Duration) {
    let _ = tcp.set_nodelay(true);
    let Ok(Ok(mut ws)) =
        tokio::time::timeout(handshake_timeout, tokio_tungstenite::accept_async(tcp)).await
    else {
        return;
    };
    while let Some(msg) = ws.next().await {
        match msg {
            Ok(msg @ (Message::Text(_) | Message::Binary(_))) => {
                if ws.send(msg).await.is_err() {
                    return;
                }
            }
            // Pings are answered by tungstenite on the next flush; a Close is
            // echoed by it too, after which the stream ends.
            Ok(_) => {}
            Err(_) => return,
        }
    }
}
