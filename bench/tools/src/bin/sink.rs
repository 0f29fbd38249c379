//! `sink`: the far end of `bench/run.sh stream`'s uploads.
//!
//! Reads a request's whole `Content-Length` body, discarding it, and only
//! then answers `200` (keep-alive). nginx's `return 200` answers as soon as
//! the head is in and drains the body afterwards, so an upload to it ends
//! when the client chooses to stop, not when the body has arrived: direct
//! uploads to it measured anywhere from 0.3 to 3.7 GiB/s. Here the answer
//! comes after the last byte, so the client's upload rate is the rate the
//! bytes arrived. A request without a `Content-Length` (chunked) gets
//! `411`. Runs until SIGINT or SIGTERM.

use std::net::SocketAddr;

use clap::Parser;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Parser, Debug)]
#[command(about = "Upload sink for the bench: answers after the whole body (loopback only)")]
struct Args {
    /// Loopback address to listen on.
    #[arg(long, default_value = "127.0.0.1:18093")]
    listen: SocketAddr,
}

/// Largest request head read before the body.
const MAX_HEAD: usize = 16 * 1024;

/// One read's room: large, so a gigabyte goes in few calls, as a server
/// built for uploads would read it.
const READ: usize = 256 * 1024;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), String> {
    let args = Args::parse();
    let mut server = pp_bench_tools::Server::bind(args.listen, "sink").await?;
    while let Some(tcp) = server.next().await {
        tokio::spawn(async move {
            if let Err(e) = serve(tcp).await {
                eprintln!("sink: {e}");
            }
        });
    }
    Ok(())
}

/// Serves one connection's requests until the client closes it.
async fn serve(mut tcp: TcpStream) -> std::io::Result<()> {
    tcp.set_nodelay(true)?;
    let mut buf = vec![0u8; READ];
    // Bytes read past the last head: the start of its body (or more).
    let mut have = 0usize;
    loop {
        let end = loop {
            if let Some(i) = buf[..have].windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            if have >= MAX_HEAD {
                tcp.write_all(b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    .await?;
                return Ok(());
            }
            let n = tcp.read(&mut buf[have..]).await?;
            if n == 0 {
                return Ok(());
            }
            have += n;
        };
        let Some(mut left) = content_length(&buf[..end]) else {
            tcp.write_all(
                b"HTTP/1.1 411 Length Required\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            )
            .await?;
            return Ok(());
        };
        // curl asks before a large upload and waits a second for the go.
        if expects_continue(&buf[..end]) {
            tcp.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await?;
        }
        // The body's bytes already read, then the rest straight from the
        // socket; bytes past the body are the next request's.
        let early = (have - end) as u64;
        let taken = early.min(left);
        left -= taken;
        let past = end + usize::try_from(taken).unwrap_or(usize::MAX);
        buf.copy_within(past..have, 0);
        have -= past;
        while left > 0 {
            let want = usize::try_from(left).map_or(READ, |l| l.min(READ));
            let n = tcp.read(&mut buf[..want]).await?;
            if n == 0 {
                return Ok(());
            }
            left -= n as u64;
        }
        tcp.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n")
            .await?;
    }
}

/// The head's fields as (name, value) pairs, trimmed.
fn fields(head: &[u8]) -> impl Iterator<Item = (&str, &str)> {
    std::str::from_utf8(head)
        .unwrap_or("")
        .split("\r\n")
        .skip(1)
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim(), v.trim()))
}

/// Whether the head asks for `100 Continue` before its body.
fn expects_continue(head: &[u8]) -> bool {
    fields(head)
        .any(|(n, v)| n.eq_ignore_ascii_case("expect") && v.eq_ignore_ascii_case("100-continue"))
}

/// The head's `Content-Length`, if it has exactly one that parses.
fn content_length(head: &[u8]) -> Option<u64> {
    let mut found = None;
    for (name, value) in fields(head) {
        if name.eq_ignore_ascii_case("content-length") {
            if found.is_some() {
                return None;
            }
            found = Some(value.parse().ok()?);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_length_is_read_whatever_the_case_and_a_second_one_refuses() {
        assert_eq!(
            content_length(b"PUT /sink HTTP/1.1\r\nHost: x\r\ncontent-LENGTH: 42\r\n\r\n"),
            Some(42)
        );
        assert_eq!(
            content_length(b"PUT /sink HTTP/1.1\r\nHost: x\r\n\r\n"),
            None
        );
        assert_eq!(
            content_length(b"PUT / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n"),
            None
        );
        assert_eq!(
            content_length(b"PUT / HTTP/1.1\r\nContent-Length: x\r\n\r\n"),
            None
        );
        assert!(expects_continue(
            b"PUT / HTTP/1.1\r\nExpect: 100-Continue\r\n\r\n"
        ));
        assert!(!expects_continue(
            b"PUT / HTTP/1.1\r\nContent-Length: 1\r\n\r\n"
        ));
    }

    /// Serves one connection on loopback; the client's end.
    async fn connected() -> TcpStream {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.expect("accept");
            let _ = serve(tcp).await;
        });
        TcpStream::connect(addr).await.expect("connect")
    }

    /// A head past its bound gets 431 and a head without a length 411,
    /// each with the connection closed.
    #[tokio::test]
    async fn a_head_too_large_or_without_a_length_is_refused() {
        // Exactly the bound, unended: the sink has read all of it when it
        // refuses, so its close is not a reset.
        let start = "PUT /sink HTTP/1.1\r\nX-Pad: ";
        let long = format!("{start}{}\r\n", "a".repeat(MAX_HEAD - start.len() - 2));
        assert_eq!(long.len(), MAX_HEAD);
        let cases = [
            (long.as_str(), "HTTP/1.1 431 "),
            ("PUT /sink HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 411 "),
        ];
        for (head, want) in cases {
            let mut c = connected().await;
            c.write_all(head.as_bytes()).await.expect("head");
            let mut answer = Vec::new();
            c.read_to_end(&mut answer)
                .await
                .expect("answer, then the end");
            let text = String::from_utf8_lossy(&answer);
            assert!(text.starts_with(want), "{want}: {text}");
        }
    }

    #[tokio::test]
    async fn it_answers_after_the_whole_body_and_keeps_the_connection() {
        let mut c = connected().await;
        let body = vec![7u8; 3 * READ + 5];
        for expect in [false, true] {
            let ask = if expect {
                "Expect: 100-continue\r\n"
            } else {
                ""
            };
            c.write_all(
                format!(
                    "PUT /sink HTTP/1.1\r\nHost: x\r\n{ask}Content-Length: {}\r\n\r\n",
                    body.len()
                )
                .as_bytes(),
            )
            .await
            .expect("head");
            if expect {
                let mut go = [0u8; 25];
                c.read_exact(&mut go).await.expect("100");
                assert_eq!(&go[..], b"HTTP/1.1 100 Continue\r\n\r\n");
            }
            // No answer before the last byte.
            c.write_all(&body[..body.len() - 1]).await.expect("most");
            let mut one = [0u8; 1];
            let early =
                tokio::time::timeout(std::time::Duration::from_millis(100), c.read(&mut one)).await;
            assert!(early.is_err(), "answered before the body's end");
            c.write_all(&body[body.len() - 1..]).await.expect("last");
            let mut answer = [0u8; 41];
            c.read_exact(&mut answer).await.expect("answer");
            assert_eq!(
                &answer[..],
                b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n"
            );
        }
    }
}
