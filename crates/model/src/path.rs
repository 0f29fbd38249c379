//! Request path normalization, done once before route matching.
//!
//! The matched prefix is the security boundary between routes, so the path
//! the table sees must be the path the upstream will act on. We resolve dot
//! segments (RFC 3986 §5.2.4) after decoding `%2e`, merge empty segments
//! (`//`), decode percent-encoded unreserved characters (RFC 3986 §2.3, so
//! `/w/%61bc/` and `/w/abc/` are one route), and refuse what could only be a
//! traversal attempt: dot segments hidden behind an encoded separator
//! (`%2f`, `%5c`) or a raw backslash, Tomcat-style `..;`, NUL bytes, and
//! malformed escapes. Encoded separators in ordinary names (`a%2Fb`) pass
//! through untouched, since some apps (e.g. object browsers) rely on them.

use std::borrow::Cow;
use std::fmt::Write as _;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the request path must start with '/'")]
    NotAbsolute,
    #[error("the request path has a malformed percent escape")]
    BadEscape,
    #[error("the request path contains a NUL byte")]
    Nul,
    #[error("the request path climbs above the root")]
    AboveRoot,
    #[error("the request path hides a dot segment behind an encoded separator")]
    HiddenTraversal,
}

/// Returns the normalized form of an origin-form path (no query): the path
/// itself, borrowed, when it is already normal (almost every request).
///
/// # Errors
/// A [`PathError`] naming why the path is refused; callers answer 400.
pub fn normalize(raw: &str) -> Result<Cow<'_, str>, PathError> {
    if !raw.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    if is_plain(raw) {
        return Ok(Cow::Borrowed(raw));
    }
    normalize_segments(raw).map(Cow::Owned)
}

/// Whether `raw` is already in normal form, as almost every real path is:
/// no escapes, no backslash or NUL, no empty segment and no segment that
/// starts with a dot (which covers `.`, `..` and `..;`). Such a path
/// normalizes to itself, so it is taken as it is without the segment walk.
fn is_plain(raw: &str) -> bool {
    let b = raw.as_bytes();
    !b.iter().any(|c| matches!(c, b'%' | b'\\' | 0))
        && !b
            .windows(2)
            .any(|w| w[0] == b'/' && matches!(w[1], b'/' | b'.'))
}

fn normalize_segments(raw: &str) -> Result<String, PathError> {
    let trailing_slash = raw.len() > 1 && raw.ends_with('/');
    let mut out: Vec<String> = Vec::new();
    for seg in raw.split('/') {
        if seg.is_empty() {
            continue;
        }
        let decoded = decode(seg)?;
        if decoded.contains(&0) {
            return Err(PathError::Nul);
        }
        match classify(&decoded) {
            Dot::Current => continue,
            Dot::Parent => {
                if out.pop().is_none() {
                    return Err(PathError::AboveRoot);
                }
                continue;
            }
            Dot::None => {}
        }
        if decoded
            .split(|b| *b == b'/' || *b == b'\\')
            .any(|part| classify(part) != Dot::None)
            && decoded.iter().any(|b| *b == b'/' || *b == b'\\')
        {
            return Err(PathError::HiddenTraversal);
        }
        out.push(canonical_segment(seg));
    }
    let mut path = String::with_capacity(raw.len());
    for seg in &out {
        path.push('/');
        path.push_str(seg);
    }
    if path.is_empty() || (trailing_slash && !out.is_empty()) {
        path.push('/');
    }
    Ok(path)
}

#[derive(Debug, PartialEq, Eq)]
enum Dot {
    None,
    Current,
    Parent,
}

/// `.` and `..` segments, including `..;params` which Java servers treat as
/// `..`.
fn classify(decoded: &[u8]) -> Dot {
    let base = decoded.split(|b| *b == b';').next().unwrap_or(decoded);
    match base {
        b"." => Dot::Current,
        b".." => Dot::Parent,
        _ if decoded.starts_with(b"..;") => Dot::Parent,
        _ => Dot::None,
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn decode(seg: &str) -> Result<Vec<u8>, PathError> {
    let bytes = seg.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hi = bytes.get(i + 1).copied().and_then(hex);
            let lo = bytes.get(i + 2).copied().and_then(hex);
            match (hi, lo) {
                (Some(h), Some(l)) => out.push(h * 16 + l),
                _ => return Err(PathError::BadEscape),
            }
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Ok(out)
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Decodes escapes of unreserved characters and upper-cases the hex digits of
/// the escapes that stay (RFC 3986 §6.2.2.1-2). The input's escapes are known
/// to be well formed.
fn canonical_segment(seg: &str) -> String {
    if !seg.contains('%') {
        return seg.to_owned();
    }
    let bytes = seg.as_bytes();
    let mut out = String::with_capacity(seg.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() + 1 {
            if let (Some(h), Some(l)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            ) {
                let v = h * 16 + l;
                if is_unreserved(v) {
                    out.push(char::from(v));
                } else {
                    let _ = write!(out, "%{v:02X}");
                }
                i += 3;
                continue;
            }
        }
        out.push(char::from(bytes[i]));
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plain_path_shortcut_agrees_with_the_segment_walk() {
        let plain = [
            "/",
            "/a",
            "/a/",
            "/1k.txt",
            "/w/x/web/lab/tree",
            "/a.b/c..d/e.",
            "/a;b=c/d",
            "/~u/x-y_z",
            "/lab/api/contents?x",
        ];
        for p in plain {
            assert!(is_plain(p), "{p}");
            assert!(matches!(normalize(p), Ok(Cow::Borrowed(_))), "{p}");
            assert_eq!(
                normalize(p).map(Cow::into_owned),
                normalize_segments(p),
                "{p}"
            );
        }
        let not_plain = [
            "//a",
            "/./a",
            "/a/..",
            "/..;x/a",
            "/.well-known",
            "/a%2e",
            "/a\\b",
            "/a//",
        ];
        for p in not_plain {
            assert!(!is_plain(p), "{p}");
        }
    }

    #[test]
    fn normal_paths_are_unchanged() {
        for p in ["/", "/a", "/a/", "/w/x/web/lab", "/a%2Fb", "/a%20b", "/~u"] {
            assert_eq!(normalize(p).as_deref(), Ok(p), "{p}");
        }
    }

    #[test]
    fn table() {
        let cases: &[(&str, Result<&str, PathError>)] = &[
            ("//a//b//", Ok("/a/b/")),
            ("/a/./b", Ok("/a/b")),
            ("/a/b/../c", Ok("/a/c")),
            ("/a/b/..", Ok("/a")),
            ("/a/%2e%2e/c", Ok("/c")),
            ("/a/%2E%2e/c", Ok("/c")),
            ("/a/.%2e/c", Ok("/c")),
            ("/a/%2e./c", Ok("/c")),
            ("/a/%2e/c", Ok("/a/c")),
            ("/%61bc", Ok("/abc")),
            ("/a%2fb", Ok("/a%2Fb")),
            ("/..", Err(PathError::AboveRoot)),
            ("/a/../../b", Err(PathError::AboveRoot)),
            ("/a/..%2f..%2fb", Err(PathError::HiddenTraversal)),
            ("/a/..%2F", Err(PathError::HiddenTraversal)),
            ("/a/%2e%2e%2fb", Err(PathError::HiddenTraversal)),
            ("/a/..%5cb", Err(PathError::HiddenTraversal)),
            ("/a/..\\b", Err(PathError::HiddenTraversal)),
            ("/a/%2e%2e%5c", Err(PathError::HiddenTraversal)),
            ("/a/..;/b", Ok("/b")),
            ("/..;/b", Err(PathError::AboveRoot)),
            ("/a/%00", Err(PathError::Nul)),
            ("/a/%zz", Err(PathError::BadEscape)),
            ("/a/%2", Err(PathError::BadEscape)),
            ("a/b", Err(PathError::NotAbsolute)),
            ("/a/%252e%252e/b", Ok("/a/%252e%252e/b")),
        ];
        for (input, want) in cases {
            assert_eq!(normalize(input).as_deref(), want.as_deref(), "{input}");
        }
    }

    #[test]
    fn output_is_a_fixed_point() {
        for p in ["//a/./b/../c/", "/a%2fb/%7e", "/x/%2e%2e/y"] {
            let once = normalize(p).expect("valid");
            assert_eq!(normalize(&once).expect("valid"), once);
        }
    }
}
