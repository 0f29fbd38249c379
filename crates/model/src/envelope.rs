//! The error envelope every plane answers with (DESIGN.md, "Errors"), and
//! the correlation id that ties a response to its log lines and audit rows.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Header carrying the correlation id on every response the proxy produces.
pub const CORRELATION_HEADER: &str = "x-correlation-id";

/// The id of one request, generated at the listener and carried in request
/// extensions to every step, the upstream, the response and the logs.
///
/// An id [`CorrelationId::new`] makes is held inline: one is made for every
/// request, and a string of its own was an allocation each time.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CorrelationId(Repr);

#[derive(Clone, PartialEq, Eq, Hash)]
enum Repr {
    /// 32 hex digits, as [`CorrelationId::new`] writes them.
    Fresh([u8; 32]),
    /// Any other text (an id given by a test or a caller).
    Given(Box<str>),
}

const HEX: &[u8; 16] = b"0123456789abcdef";

impl CorrelationId {
    /// A fresh id: 32 hex digits, a per-process random half and a counter
    /// half. Ids need to be unique, not unguessable, so the hot path costs
    /// one atomic increment instead of a trip to the OS random source.
    #[must_use]
    pub fn new() -> Self {
        static SEED: std::sync::OnceLock<[u8; 16]> = std::sync::OnceLock::new();
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let seed = SEED.get_or_init(|| hex16(uuid::Uuid::new_v4().as_u64_pair().0));
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut id = [0u8; 32];
        id[..16].copy_from_slice(seed);
        id[16..].copy_from_slice(&hex16(n));
        Self(Repr::Fresh(id))
    }

    /// The id as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        match &self.0 {
            // Hex digits only: ASCII, so valid UTF-8 as they are.
            Repr::Fresh(id) => std::str::from_utf8(id).unwrap_or_default(),
            Repr::Given(id) => id,
        }
    }

    /// The 32 bytes of an id [`CorrelationId::new`] made; `None` for a
    /// given one.
    #[must_use]
    pub fn fresh_bytes(&self) -> Option<[u8; 32]> {
        match &self.0 {
            Repr::Fresh(id) => Some(*id),
            Repr::Given(_) => None,
        }
    }
}

impl From<&str> for CorrelationId {
    fn from(id: &str) -> Self {
        Self(Repr::Given(id.into()))
    }
}

impl From<String> for CorrelationId {
    fn from(id: String) -> Self {
        Self(Repr::Given(id.into_boxed_str()))
    }
}

impl std::fmt::Debug for CorrelationId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("CorrelationId")
            .field(&self.as_str())
            .finish()
    }
}

/// `n` as 16 lower-case hex digits.
fn hex16(n: u64) -> [u8; 16] {
    let mut out = [0u8; 16];
    for (i, digit) in out.iter_mut().enumerate() {
        *digit = HEX[((n >> (60 - 4 * i)) & 0xf) as usize];
    }
    out
}

impl Default for CorrelationId {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Display for CorrelationId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `{"error": {...}}`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorEnvelope {
    pub error: ErrorBody,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// Stable snake_case code, e.g. `route_not_found`.
    pub code: String,
    /// Human-readable explanation; never contains secrets.
    pub message: String,
    pub correlation_id: String,
    /// The request field at fault, for validation errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ErrorEnvelope {
    #[must_use]
    pub fn new(code: &str, message: impl Into<String>, correlation_id: &CorrelationId) -> Self {
        Self {
            error: ErrorBody {
                code: code.to_owned(),
                message: message.into(),
                correlation_id: correlation_id.as_str().to_owned(),
                field: None,
            },
        }
    }

    #[must_use]
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.error.field = Some(field.into());
        self
    }

    /// The small HTML page a browser navigation gets instead of JSON: the
    /// same facts, escaped.
    #[must_use]
    pub fn to_html(&self, status: u16) -> String {
        let e = &self.error;
        format!(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>{status} {code}</title>\
             <style>body{{font:16px system-ui,sans-serif;margin:3em auto;max-width:40em;color:#222}}\
             code{{background:#eee;padding:.1em .3em}}</style></head><body>\
             <h1>{status}</h1><p>{message}</p><p>Error <code>{code}</code>, \
             correlation id <code>{cid}</code>.</p></body></html>",
            code = escape_html(&e.code),
            message = escape_html(&e.message),
            cid = escape_html(&e.correlation_id),
        )
    }
}

/// Escapes text for an HTML element body or a quoted attribute.
#[must_use]
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_shape_is_the_public_contract() {
        let cid = CorrelationId::from("abc");
        let v =
            serde_json::to_value(ErrorEnvelope::new("route_not_found", "no", &cid)).expect("json");
        assert_eq!(
            v,
            serde_json::json!({"error": {"code": "route_not_found", "message": "no", "correlation_id": "abc"}})
        );
    }

    #[test]
    fn ids_are_distinct_and_32_hex_digits() {
        let a = CorrelationId::new();
        let b = CorrelationId::new();
        assert_ne!(a, b);
        let (a, b) = (a.as_str(), b.as_str());
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(a[..16], b[..16], "one process, one random half");
        assert_eq!(CorrelationId::from("given").as_str(), "given");
        assert_eq!(format!("{}", CorrelationId::from("shown")), "shown");
    }

    #[test]
    fn html_page_escapes() {
        let cid = CorrelationId::from("c");
        let html = ErrorEnvelope::new("x", "<script>", &cid).to_html(404);
        assert!(html.contains("&lt;script&gt;"));
        assert!(!html.contains("<script>"));
    }
}
