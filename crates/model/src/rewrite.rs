//! Response header rewriting: `Location`, `Content-Location` and
//! `Set-Cookie` emitted by the upstream are mapped onto the public origin and
//! prefix the browser used.
//!
//! The rule for paths (seed 000, "redirects that already include the reserved
//! prefix are preserved"): a path already under the public prefix is left
//! alone, so a prefix is never doubled; a path under the upstream's runtime
//! prefix is moved to the public prefix; an app that believes it lives at `/`
//! (`base_url_strategy = none`) gets the public prefix put in front.

use crate::adapter::BaseUrlStrategy;

/// What the rewriter needs to know about one response.
#[derive(Debug, Clone, Copy)]
pub struct RewriteContext<'a> {
    /// `http` or `https`, as the browser connected.
    pub public_scheme: &'a str,
    /// `host[:port]` the browser addressed.
    pub public_authority: &'a str,
    /// Public path prefix without trailing slash (empty on host routes).
    pub public_prefix: &'a str,
    /// Upstream runtime prefix without trailing slash (empty for root apps).
    pub upstream_prefix: &'a str,
    pub strategy: BaseUrlStrategy,
    /// The route's upstream targets (`host:port`, lower-case). Absolute URLs
    /// on these or on the public authority are brought onto the public
    /// origin.
    pub upstream_authorities: &'a [String],
}

fn under(path: &str, prefix: &str) -> bool {
    !prefix.is_empty()
        && path.starts_with(prefix)
        && matches!(
            path.as_bytes().get(prefix.len()),
            None | Some(b'/' | b'?' | b'#')
        )
}

/// Maps a root-relative path (may carry query and fragment) emitted by the
/// upstream to the path the browser must use.
#[must_use]
pub fn map_path(path: &str, ctx: &RewriteContext<'_>) -> String {
    if under(path, ctx.public_prefix) {
        return path.to_owned();
    }
    if under(path, ctx.upstream_prefix) {
        let rest = &path[ctx.upstream_prefix.len()..];
        let mapped = format!("{}{rest}", ctx.public_prefix);
        return if mapped.is_empty() || mapped.starts_with(['?', '#']) {
            format!("/{mapped}")
        } else {
            mapped
        };
    }
    if ctx.strategy == BaseUrlStrategy::None && !ctx.public_prefix.is_empty() {
        return format!("{}{path}", ctx.public_prefix);
    }
    path.to_owned()
}

/// Rewrites a `Location` / `Content-Location` value. `None` means unchanged.
#[must_use]
pub fn rewrite_location(value: &str, ctx: &RewriteContext<'_>) -> Option<String> {
    let v = value.trim();
    let after_scheme = v
        .strip_prefix("http://")
        .or_else(|| v.strip_prefix("https://"))
        .or_else(|| v.strip_prefix("HTTP://"))
        .or_else(|| v.strip_prefix("HTTPS://"))
        .or_else(|| v.strip_prefix("//"));
    if let Some(rest) = after_scheme {
        let split = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(split);
        let own = authority.eq_ignore_ascii_case(ctx.public_authority)
            || ctx
                .upstream_authorities
                .iter()
                .any(|a| a.eq_ignore_ascii_case(authority));
        if !own {
            return None;
        }
        let path = if tail.starts_with('/') {
            map_path(tail, ctx)
        } else {
            map_path(&format!("/{tail}"), ctx)
        };
        let out = format!("{}://{}{path}", ctx.public_scheme, ctx.public_authority);
        return (out != v).then_some(out);
    }
    if v.starts_with('/') {
        let out = map_path(v, ctx);
        return (out != v).then_some(out);
    }
    None
}

/// Rewrites one `Set-Cookie` value (RFC 6265 §4.1): `Path` is mapped like a
/// redirect path and `Domain` is dropped, so upstream cookies stay host-only
/// on the public host and cannot be widened to sibling apps. `None` means
/// unchanged.
#[must_use]
pub fn rewrite_set_cookie(value: &str, ctx: &RewriteContext<'_>) -> Option<String> {
    let mut parts = value.split(';');
    let pair = parts.next()?;
    let mut changed = false;
    let mut out = String::with_capacity(value.len() + ctx.public_prefix.len());
    out.push_str(pair);
    for attr in parts {
        let trimmed = attr.trim();
        let (name, val) = trimmed.split_once('=').unwrap_or((trimmed, ""));
        let name_lc = name.trim().to_ascii_lowercase();
        if name_lc == "domain" {
            changed = true;
            continue;
        }
        if name_lc == "path" && val.trim().starts_with('/') {
            let mapped = map_path(val.trim(), ctx);
            if mapped != val.trim() {
                changed = true;
                out.push_str("; Path=");
                out.push_str(&mapped);
                continue;
            }
        }
        out.push(';');
        out.push_str(attr);
    }
    changed.then_some(out)
}

#[cfg(test)]
mod tests;
