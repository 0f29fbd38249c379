//! Shared pieces of the bench tools (load tools and upstreams).
//!
//! Both tools talk to loopback addresses only: `bench/run.sh` runs every
//! server on 127.0.0.1, and a load tool pointed anywhere else is a mistake,
//! so they refuse any other address up front.

use std::net::SocketAddr;

/// Refuses any address outside the loopback range (127.0.0.0/8, `::1`).
///
/// # Errors
/// Names the address when it is not a loopback one.
pub fn require_loopback(addr: SocketAddr, what: &str) -> Result<(), String> {
    if addr.ip().is_loopback() {
        Ok(())
    } else {
        Err(format!(
            "{what} {addr} is not a loopback address; the bench tools only talk to 127.0.0.0/8 or ::1"
        ))
    }
}

/// The nearest-rank percentile of an ascending slice: the smallest sample
/// that at least `p` percent of the samples are not above. `None` when there
/// are no samples. `p` is clamped to 0..=100; `p = 0` gives the minimum.
#[must_use]
pub fn percentile(sorted: &[u32], p: f64) -> Option<u32> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let p = p.clamp(0.0, 100.0);
    // Nearest rank: ceil(p/100 * n), 1-based; a rank of 0 means the minimum.
    // n is at most a few million here, so the f64 round trip is exact.
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let rank = ((p / 100.0) * n as f64).ceil() as usize;
    sorted.get(rank.clamp(1, n) - 1).copied()
}

/// A loopback listener for the bench's upstreams (`wsecho`, `sseserve`)
/// that hands out connections until SIGINT or SIGTERM.
pub struct Server {
    listener: tokio::net::TcpListener,
    term: tokio::signal::unix::Signal,
    name: &'static str,
}

impl Server {
    /// Binds `addr` (loopback only) and says so on stderr as `name`.
    ///
    /// # Errors
    /// A non-loopback address, a failed bind or signal registration.
    pub async fn bind(addr: SocketAddr, name: &'static str) -> Result<Self, String> {
        require_loopback(addr, "--listen")?;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| format!("bind {addr}: {e}"))?;
        let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(|e| e.to_string())?;
        eprintln!("{name}: listening on {addr}");
        Ok(Self {
            listener,
            term,
            name,
        })
    }

    /// The next connection; `None` once asked to stop. Accept errors
    /// (EMFILE and friends) back off instead of spinning.
    pub async fn next(&mut self) -> Option<tokio::net::TcpStream> {
        loop {
            tokio::select! {
                r = self.listener.accept() => match r {
                    Ok((tcp, _)) => return Some(tcp),
                    Err(err) => {
                        eprintln!("{}: accept: {err}", self.name);
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    }
                },
                () = Self::signalled(&mut self.term) => return None,
            }
        }
    }

    /// Resolves once asked to stop (for waits other than accepting).
    pub async fn stopped(&mut self) {
        Self::signalled(&mut self.term).await;
    }

    async fn signalled(term: &mut tokio::signal::unix::Signal) {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_uses_nearest_rank() {
        let ten: Vec<u32> = (1..=10).collect();
        let hundred: Vec<u32> = (1..=100).collect();
        let cases: &[(&[u32], f64, Option<u32>)] = &[
            (&[], 50.0, None),
            (&[7], 0.0, Some(7)),
            (&[7], 50.0, Some(7)),
            (&[7], 100.0, Some(7)),
            (&ten, 0.0, Some(1)),
            (&ten, 50.0, Some(5)),
            (&ten, 90.0, Some(9)),
            (&ten, 99.0, Some(10)),
            (&ten, 100.0, Some(10)),
            (&hundred, 50.0, Some(50)),
            (&hundred, 99.0, Some(99)),
            (&hundred, 99.9, Some(100)),
            (&[1, 2], 50.0, Some(1)),
            (&[1, 2], 51.0, Some(2)),
            // Out-of-range p is clamped, not a panic.
            (&ten, -5.0, Some(1)),
            (&ten, 150.0, Some(10)),
        ];
        for &(samples, p, want) in cases {
            assert_eq!(percentile(samples, p), want, "p{p} of {samples:?}");
        }
    }

    #[test]
    fn only_loopback_addresses_are_accepted() {
        let cases = [
            ("127.0.0.1:80", true),
            ("127.1.2.3:80", true),
            ("[::1]:80", true),
            ("10.0.0.1:80", false),
            ("192.168.1.1:80", false),
            ("0.0.0.0:80", false),
            ("[::]:80", false),
        ];
        for (addr, ok) in cases {
            let addr: SocketAddr = addr.parse().expect("test address");
            assert_eq!(require_loopback(addr, "target").is_ok(), ok, "{addr}");
        }
    }
}
