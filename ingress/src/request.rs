//! What the proxy does with a request, whichever HTTP/1 path read it
//! (kedge's own, [`crate::h1`], or Pingora's, [`crate::proxy`]): the route
//! table decides the location, and the location's annotations either
//! answer the request from the proxy (redirects, CORS preflight,
//! allow-lists, size limits, the default backend) or let it through to a
//! backend, with the path rewritten and the forwarding headers set.

use std::net::IpAddr;
use std::sync::Arc;

use http::Method;

use crate::path;
use crate::table::{Location, Target};
use crate::Routes;

/// The body of the built-in default backend's 404, as nginx words it.
pub(crate) const NOT_FOUND_BODY: &[u8] = b"<html>\r\n<head><title>404 Not Found</title></head>\r\n<body>\r\n<center><h1>404 Not Found</h1></center>\r\n<hr><center>kedge</center>\r\n</body>\r\n</html>\r\n";

/// How many endpoints one request may be tried on when connecting fails
/// (ingress-nginx's `proxy-next-upstream-tries`).
pub(crate) const MAX_TRIES: usize = 3;

pub(crate) use crate::h1::{MAX_HEADERS, MAX_LINE};

/// What the decision needs to know of a request.
#[derive(Debug)]
pub(crate) struct Facts<'a> {
    pub method: &'a Method,
    /// The authority of an absolute-form target, else the Host header as
    /// sent; `None` without either (HTTP/1.0).
    pub host: Option<&'a str>,
    /// The path as sent, without the query.
    pub path: &'a str,
    /// Path and query as sent.
    pub path_and_query: &'a str,
    pub tls: bool,
    pub client: Option<IpAddr>,
    /// The declared Content-Length.
    pub content_length: Option<u64>,
}

/// Where the request was routed.
#[derive(Debug, Default)]
pub(crate) struct Routed {
    pub location: Option<Arc<Location>>,
    /// The Host header as sent (with any port), for the backend.
    pub host_header: String,
    /// The host without port, lower case.
    pub host: String,
    /// The normalized request path.
    pub path: String,
}

/// An answer from the proxy itself.
#[derive(Debug)]
pub(crate) struct Answer {
    pub code: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: &'static [u8],
}

impl Answer {
    fn status(code: u16) -> Self {
        Self {
            code,
            headers: Vec::new(),
            body: b"",
        }
    }

    fn with(code: u16, name: &'static str, value: String) -> Self {
        Self {
            code,
            headers: vec![(name, value)],
            body: b"",
        }
    }
}

/// Route the request and apply its location's annotations: `Err` with the
/// answer when the proxy answers it, `Ok` when it goes to a ready endpoint
/// of the location's backend.
pub(crate) fn decide(
    routes: &Routes,
    https_port: u16,
    facts: &Facts<'_>,
    routed: &mut Routed,
) -> Result<(), Answer> {
    let raw_host = facts.host.unwrap_or("");
    let host = host_of(raw_host).ok_or(Answer::status(400))?;
    let norm = path::normalize(facts.path).ok_or(Answer::status(400))?;
    let (location, server_tls) = {
        let table = routes.load();
        let server = table.server(&host);
        (server.locate(&norm).clone(), server.tls)
    };
    routed.host = host;
    routed.host_header = raw_host.to_string();
    routed.path = norm;
    routed.location = Some(location.clone());
    let cfg = &location.config;
    let scheme = if facts.tls { "https" } else { "http" };

    if let Some(root) = &cfg.app_root {
        if routed.path == "/" {
            let url = format!("{scheme}://{}{root}", routed.host_header);
            return Err(Answer::with(302, "Location", url));
        }
    }
    if let Some((url, code)) = &cfg.redirect {
        return Err(Answer::with(*code, "Location", url.clone()));
    }
    if !facts.tls && (cfg.force_ssl_redirect || (cfg.ssl_redirect && server_tls)) {
        let port = match https_port {
            443 => String::new(),
            p => format!(":{p}"),
        };
        let host = if routed.host.contains(':') {
            format!("[{}]", routed.host)
        } else {
            routed.host.clone()
        };
        let url = format!("https://{host}{port}{}", facts.path_and_query);
        return Err(Answer::with(308, "Location", url));
    }
    if let Some(cors) = &cfg.cors {
        if facts.method == Method::OPTIONS {
            let mut headers = cors_headers(cors);
            headers.push(("Content-Type", "text/plain; charset=utf-8".into()));
            return Err(Answer {
                code: 204,
                headers,
                body: b"",
            });
        }
    }
    if let Some(ranges) = &cfg.source_range {
        let allowed = facts
            .client
            .is_some_and(|ip| ranges.iter().any(|r| r.contains(ip)));
        if !allowed {
            return Err(Answer::status(403));
        }
    }
    if let Some(limit) = cfg.body_size {
        if facts.content_length.is_some_and(|n| n > limit) {
            return Err(Answer::status(413));
        }
    }
    match &location.target {
        Target::NotFound => Err(Answer {
            code: 404,
            headers: Vec::new(),
            body: NOT_FOUND_BODY,
        }),
        Target::Backend(b) if b.endpoints.is_empty() => Err(Answer::status(503)),
        Target::Backend(_) => Ok(()),
    }
}

/// The path and query to send upstream when they differ from what the
/// client sent (a `rewrite-target`); `Err` when the rewritten path climbs
/// above the root.
pub(crate) fn rewritten(
    location: &Location,
    path: &str,
    query: Option<&str>,
) -> Result<Option<String>, ()> {
    match location.rewritten(path) {
        // The replacement may have put back what normalizing took out.
        Some(p) => match path::normalize(&p) {
            Some(p) => Ok(Some(path::with_query(&p, query))),
            None => Err(()),
        },
        None => Ok(None),
    }
}

/// The CORS headers of a location with `enable-cors`.
pub(crate) fn cors_headers(cors: &crate::annotations::Cors) -> Vec<(&'static str, String)> {
    let mut h = vec![
        ("Access-Control-Allow-Origin", cors.allow_origin.clone()),
        ("Access-Control-Allow-Methods", cors.allow_methods.clone()),
        ("Access-Control-Allow-Headers", cors.allow_headers.clone()),
        ("Access-Control-Max-Age", cors.max_age.to_string()),
    ];
    if cors.allow_credentials {
        h.push(("Access-Control-Allow-Credentials", "true".into()));
    }
    if let Some(e) = &cors.expose_headers {
        h.push(("Access-Control-Expose-Headers", e.clone()));
    }
    h
}

/// Split a Host value into the host (lower case) and whether it is well formed.
pub(crate) fn host_of(raw: &str) -> Option<String> {
    let host = if let Some(rest) = raw.strip_prefix('[') {
        // [v6]:port
        let (inner, _) = rest.split_once(']')?;
        inner
    } else {
        match raw.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
            Some(_) => return None,
            None => raw,
        }
    };
    let ok = host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b':'));
    ok.then(|| host.to_ascii_lowercase())
}

/// A client address as logged and forwarded: IPv4 clients of a dual-stack
/// socket without their `::ffff:` prefix.
pub(crate) fn client_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// A fresh `X-Request-ID` (32 hex digits, as ingress-nginx's `$req_id`).
pub(crate) fn request_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

#[cfg(test)]
mod tests {
    use super::host_of;

    #[test]
    fn hosts() {
        assert_eq!(host_of("Foo.COM:8080").as_deref(), Some("foo.com"));
        assert_eq!(host_of("foo.com").as_deref(), Some("foo.com"));
        assert_eq!(host_of("[::1]:80").as_deref(), Some("::1"));
        assert_eq!(host_of("").as_deref(), Some(""));
        assert_eq!(host_of("a b"), None);
        assert_eq!(host_of("foo.com:x"), None);
        assert_eq!(host_of("foo/bar"), None);
    }
}
