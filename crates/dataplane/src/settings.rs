//! The typed, validated settings the data plane runs with. The binary builds
//! them from config; nothing here parses raw input.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Settings {
    /// Host (lower-case, no port) that serves the control-plane API.
    pub api_host: String,
    /// The apps domain: path routes on it, host routes under it.
    pub apps_domain: String,
    /// Largest total size of request header names and values.
    pub max_header_bytes: usize,
    /// Request body limit for routes that set none.
    pub default_max_body_bytes: u64,
    /// Time a client has to send a complete request head.
    pub header_read_timeout: Duration,
    /// Longest wait for the next bytes of a request body (HTTP/1.1 and
    /// HTTP/2).
    pub body_read_timeout: Duration,
    /// Longest wait for an HTTP/1.1 client to take more of its answer.
    pub send_timeout: Duration,
    pub upstream_connect_timeout: Duration,
    /// Time from sending the request to receiving the upstream's headers.
    pub upstream_response_timeout: Duration,
    /// How long an idle pooled upstream connection is kept.
    pub upstream_pool_idle_timeout: Duration,
    pub websocket_idle_timeout: Duration,
    pub websocket_max_lifetime: Duration,
    /// How long a shutdown waits for in-flight requests and tunnels.
    pub shutdown_grace: Duration,
    /// Which large bodies go socket to socket by `splice(2)`.
    pub splice: Splice,
}

/// Which large bodies (a `Content-Length` of 256 KiB or more between a
/// plain HTTP/1.1 client and the upstream) the proxy splices from one
/// socket to the other rather than copying through its own buffers.
/// Either way every byte arrives; which is faster depends on the machine
/// and its kernel (`docs/performance.md`, streaming).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Splice {
    /// Request bodies (uploads), client to upstream.
    pub requests: bool,
    /// Response bodies (downloads), upstream to client.
    pub responses: bool,
}

impl Default for Splice {
    fn default() -> Self {
        Self {
            requests: true,
            responses: true,
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            api_host: "api.localhost".into(),
            apps_domain: "apps.localhost".into(),
            max_header_bytes: 64 * 1024,
            default_max_body_bytes: 10 * 1024 * 1024 * 1024,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(60),
            send_timeout: Duration::from_secs(60),
            upstream_connect_timeout: Duration::from_secs(5),
            upstream_response_timeout: Duration::from_secs(60),
            upstream_pool_idle_timeout: Duration::from_secs(90),
            websocket_idle_timeout: Duration::from_secs(900),
            websocket_max_lifetime: Duration::from_secs(12 * 3600),
            shutdown_grace: Duration::from_secs(30),
            splice: Splice::default(),
        }
    }
}
