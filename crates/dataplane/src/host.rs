//! The request's authority: where it comes from (RFC 9112 §3.2: the
//! absolute-form target or HTTP/2 `:authority` wins over `Host`) and how it
//! splits into a lower-case host name and a port.

use http::{header, Request};

/// `(host, port)` of an authority such as `a.example.com:8080` or `[::1]:80`.
/// `None` for something that is not an authority.
#[must_use]
pub fn split_authority(auth: &str) -> Option<(String, Option<u16>)> {
    if auth.is_empty() || auth.len() > 255 || auth.contains(['/', '@', ' ', '\\']) {
        return None;
    }
    let (host, port) = if let Some(rest) = auth.strip_prefix('[') {
        let (h, after) = rest.split_once(']')?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?),
        };
        (format!("[{}]", h.to_ascii_lowercase()), port)
    } else {
        match auth.rsplit_once(':') {
            Some((h, p)) => (h.to_ascii_lowercase(), Some(p)),
            None => (auth.to_ascii_lowercase(), None),
        }
    };
    let port = match port {
        Some(p) => Some(p.parse::<u16>().ok()?),
        None => None,
    };
    let host = match host.strip_suffix('.') {
        Some(h) => h.trim_end_matches('.').to_owned(),
        None => host,
    };
    if host.is_empty() {
        return None;
    }
    Some((host, port))
}

/// The port of an authority that [`split_authority`] accepted, without
/// building the host name.
#[must_use]
pub fn port_of(auth: &str) -> Option<u16> {
    let tail = match auth.strip_prefix('[') {
        Some(rest) => rest.split_once(']')?.1.strip_prefix(':')?,
        None => auth.rsplit_once(':')?.1,
    };
    tail.parse().ok()
}

/// The authority string the client addressed, as sent.
#[must_use]
pub fn authority<B>(req: &Request<B>) -> Option<String> {
    // Only the absolute form (scheme present; always so for HTTP/2) names
    // the authority; a bare `x` target is authority-form, valid only for
    // CONNECT, and must not steer routing.
    if let (Some(_), Some(a)) = (req.uri().scheme(), req.uri().authority()) {
        return Some(a.as_str().to_owned());
    }
    req.headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let cases: &[(&str, Option<(&str, Option<u16>)>)] = &[
            ("Apps.Example.com", Some(("apps.example.com", None))),
            ("apps.example.com.", Some(("apps.example.com", None))),
            ("a.localhost:8080", Some(("a.localhost", Some(8080)))),
            ("[::1]:80", Some(("[::1]", Some(80)))),
            ("[::1]", Some(("[::1]", None))),
            ("a:b", None),
            ("a:99999", None),
            ("", None),
            ("u@host", None),
            ("a/b", None),
            (":80", None),
        ];
        for (input, want) in cases {
            let got = split_authority(input);
            if let Some((_, port)) = got {
                assert_eq!(port_of(input), port, "{input}");
            }
            let want = want.map(|(h, p)| (h.to_owned(), p));
            assert_eq!(got, want, "{input}");
        }
    }

    #[test]
    fn absolute_form_wins_over_host_header() {
        let req = Request::builder()
            .uri("http://a.example.com/x")
            .header("host", "b.example.com")
            .body(())
            .expect("req");
        assert_eq!(authority(&req).as_deref(), Some("a.example.com"));
        let req = Request::builder()
            .uri("/x")
            .header("host", "b.example.com")
            .body(())
            .expect("req");
        assert_eq!(authority(&req).as_deref(), Some("b.example.com"));
    }
}
