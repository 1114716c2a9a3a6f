//! The ingress-nginx annotations kedge understands, read from an Ingress
//! into a [`LocationConfig`] that every path of that Ingress shares.
//!
//! Each annotation is accepted under `nginx.ingress.kubernetes.io/` (so
//! manifests written for ingress-nginx work unchanged) and under
//! `kedge.io/`, which wins when both are given. Values that do not parse
//! are reported and fall back to the default, except for the source-range
//! allow-list, where a bad value denies everyone rather than letting all in.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

/// The prefix ingress-nginx reads annotations under.
pub const NGINX_PREFIX: &str = "nginx.ingress.kubernetes.io/";
/// kedge's own prefix for the same annotations.
pub const KEDGE_PREFIX: &str = "kedge.io/";

/// Annotations that paste configuration text into ingress-nginx's
/// nginx.conf. kedge has no configuration text to paste into and refuses
/// Ingresses carrying them, so that nobody believes they took effect.
const SNIPPETS: &[&str] = &[
    "configuration-snippet",
    "server-snippet",
    "stream-snippet",
    "auth-snippet",
    "modsecurity-snippet",
];

/// ingress-nginx's default `client_max_body_size`.
pub const DEFAULT_BODY_SIZE: u64 = 1024 * 1024;

/// The protocol spoken to the backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendProtocol {
    /// Plain HTTP/1.1.
    Http,
    /// HTTP/1.1 over TLS; the backend's certificate is not verified, as
    /// ingress-nginx does not verify it by default.
    Https,
}

/// How a backend's endpoints are chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LoadBalance {
    /// In turn.
    RoundRobin,
    /// The endpoint with the lowest moving average of response time.
    Ewma,
}

/// Cross-origin resource sharing answers (`enable-cors` and its friends).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cors {
    /// `Access-Control-Allow-Origin`.
    pub allow_origin: String,
    /// `Access-Control-Allow-Methods`.
    pub allow_methods: String,
    /// `Access-Control-Allow-Headers`.
    pub allow_headers: String,
    /// `Access-Control-Expose-Headers`, if any.
    pub expose_headers: Option<String>,
    /// `Access-Control-Allow-Credentials: true`.
    pub allow_credentials: bool,
    /// `Access-Control-Max-Age`, seconds.
    pub max_age: u64,
}

impl Default for Cors {
    fn default() -> Self {
        // ingress-nginx's defaults.
        Self {
            allow_origin: "*".into(),
            allow_methods: "GET, PUT, POST, DELETE, PATCH, OPTIONS".into(),
            allow_headers: "DNT,Keep-Alive,User-Agent,X-Requested-With,If-Modified-Since,\
                            Cache-Control,Content-Type,Range,Authorization"
                .into(),
            expose_headers: None,
            allow_credentials: true,
            max_age: 1_728_000,
        }
    }
}

/// An IPv4 or IPv6 network, as written in `whitelist-source-range`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parse `10.0.0.0/8`, `2001:db8::/32` or a bare address.
    pub fn parse(s: &str) -> Option<Self> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a.parse::<IpAddr>().ok()?, p.parse::<u8>().ok()?),
            None => {
                let a = s.parse::<IpAddr>().ok()?;
                (a, if a.is_ipv4() { 32 } else { 128 })
            }
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        (prefix <= max).then_some(Self { addr, prefix })
    }

    /// Whether the address is inside this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        // An IPv4 client on a dual-stack socket shows up as ::ffff:a.b.c.d.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - self.prefix as u32).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - self.prefix as u32).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// What the annotations of one Ingress ask of each of its paths.
#[derive(Clone, Debug, PartialEq)]
pub struct LocationConfig {
    /// `rewrite-target`: the replacement for the matched path, `$1`… for
    /// the path regex's capture groups.
    pub rewrite_target: Option<String>,
    /// `use-regex`: paths are case-insensitive regular expressions.
    pub use_regex: bool,
    /// `app-root`: where `/` redirects to.
    pub app_root: Option<String>,
    /// `ssl-redirect` (default on): plain HTTP to a host with TLS redirects.
    pub ssl_redirect: bool,
    /// `force-ssl-redirect`: plain HTTP redirects even without TLS.
    pub force_ssl_redirect: bool,
    /// `backend-protocol`.
    pub backend_protocol: BackendProtocol,
    /// `proxy-connect-timeout`.
    pub connect_timeout: Duration,
    /// `proxy-read-timeout`.
    pub read_timeout: Duration,
    /// `proxy-send-timeout`.
    pub send_timeout: Duration,
    /// `proxy-body-size`; `None` is unlimited (`0` in nginx).
    pub body_size: Option<u64>,
    /// `upstream-vhost`: the Host header sent to the backend.
    pub upstream_vhost: Option<String>,
    /// `permanent-redirect` (URL) with `permanent-redirect-code`, or
    /// `temporal-redirect` with 302.
    pub redirect: Option<(String, u16)>,
    /// `enable-cors`.
    pub cors: Option<Cors>,
    /// `whitelist-source-range` / `allowlist-source-range`: `None` lets
    /// everyone in; an empty list (a value that did not parse) nobody.
    pub source_range: Option<Vec<Cidr>>,
    /// `load-balance`.
    pub load_balance: LoadBalance,
}

impl Default for LocationConfig {
    fn default() -> Self {
        // ingress-nginx's defaults.
        Self {
            rewrite_target: None,
            use_regex: false,
            app_root: None,
            ssl_redirect: true,
            force_ssl_redirect: false,
            backend_protocol: BackendProtocol::Http,
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(60),
            send_timeout: Duration::from_secs(60),
            body_size: Some(DEFAULT_BODY_SIZE),
            upstream_vhost: None,
            redirect: None,
            cors: None,
            source_range: None,
            load_balance: LoadBalance::RoundRobin,
        }
    }
}

/// The outcome of reading an Ingress's annotations.
#[derive(Debug, Default)]
pub struct Parsed {
    /// The configuration, defaults where an annotation was absent or bad.
    pub config: LocationConfig,
    /// One line per annotation that did not parse, for a Warning event.
    pub warnings: Vec<String>,
    /// Set when the Ingress must not be served at all, with the reason.
    pub refused: Option<String>,
}

/// Read the annotations of one Ingress.
pub fn parse(annotations: &BTreeMap<String, String>) -> Parsed {
    let mut out = Parsed::default();
    let get = |name: &str| -> Option<&str> {
        annotations
            .get(&format!("{KEDGE_PREFIX}{name}"))
            .or_else(|| annotations.get(&format!("{NGINX_PREFIX}{name}")))
            .map(|s| s.trim())
    };
    let refused: Vec<&str> = SNIPPETS
        .iter()
        .copied()
        .filter(|s| get(s).is_some())
        .collect();
    if !refused.is_empty() {
        out.refused = Some(format!(
            "snippet annotations are not supported and are never executed: {}",
            refused.join(", ")
        ));
    }
    let c = &mut out.config;
    let w = &mut out.warnings;

    if let Some(v) = get("rewrite-target").filter(|v| !v.is_empty()) {
        c.rewrite_target = Some(v.to_string());
    }
    if let Some(v) = get("use-regex") {
        c.use_regex = parse_bool(w, "use-regex", v, false);
    }
    if let Some(v) = get("app-root") {
        if v.starts_with('/') {
            c.app_root = Some(v.to_string());
        } else {
            w.push(format!("app-root {v:?}: must be a path starting with /"));
        }
    }
    if let Some(v) = get("ssl-redirect") {
        c.ssl_redirect = parse_bool(w, "ssl-redirect", v, true);
    }
    if let Some(v) = get("force-ssl-redirect") {
        c.force_ssl_redirect = parse_bool(w, "force-ssl-redirect", v, false);
    }
    if let Some(v) = get("backend-protocol") {
        match v.to_ascii_uppercase().as_str() {
            "HTTP" => c.backend_protocol = BackendProtocol::Http,
            "HTTPS" => c.backend_protocol = BackendProtocol::Https,
            _ => w.push(format!(
                "backend-protocol {v:?}: only HTTP and HTTPS are supported"
            )),
        }
    }
    for (name, field) in [
        ("proxy-connect-timeout", &mut c.connect_timeout),
        ("proxy-read-timeout", &mut c.read_timeout),
        ("proxy-send-timeout", &mut c.send_timeout),
    ] {
        if let Some(v) = get(name) {
            match parse_seconds(v) {
                Some(d) => *field = d,
                None => w.push(format!("{name} {v:?}: expected seconds")),
            }
        }
    }
    if let Some(v) = get("proxy-body-size") {
        match parse_size(v) {
            Some(0) => c.body_size = None,
            Some(n) => c.body_size = Some(n),
            None => w.push(format!("proxy-body-size {v:?}: expected a size like 8m")),
        }
    }
    if let Some(v) = get("upstream-vhost").filter(|v| !v.is_empty()) {
        if v.bytes().all(|b| b.is_ascii_graphic()) {
            c.upstream_vhost = Some(v.to_string());
        } else {
            w.push(format!("upstream-vhost {v:?}: not a host name"));
        }
    }
    if let Some(url) = get("permanent-redirect").filter(|v| !v.is_empty()) {
        let code = match get("permanent-redirect-code") {
            Some(v) => match v.parse::<u16>() {
                Ok(c) if (300..=308).contains(&c) => c,
                _ => {
                    w.push(format!("permanent-redirect-code {v:?}: expected 300–308"));
                    301
                }
            },
            None => 301,
        };
        c.redirect = Some((url.to_string(), code));
    } else if let Some(url) = get("temporal-redirect").filter(|v| !v.is_empty()) {
        c.redirect = Some((url.to_string(), 302));
    }
    if get("enable-cors").is_some_and(|v| parse_bool(w, "enable-cors", v, false)) {
        let mut cors = Cors::default();
        if let Some(v) = get("cors-allow-origin").filter(|v| !v.is_empty()) {
            cors.allow_origin = v.to_string();
        }
        if let Some(v) = get("cors-allow-methods").filter(|v| !v.is_empty()) {
            cors.allow_methods = v.to_string();
        }
        if let Some(v) = get("cors-allow-headers").filter(|v| !v.is_empty()) {
            cors.allow_headers = v.to_string();
        }
        if let Some(v) = get("cors-expose-headers").filter(|v| !v.is_empty()) {
            cors.expose_headers = Some(v.to_string());
        }
        if let Some(v) = get("cors-allow-credentials") {
            cors.allow_credentials = parse_bool(w, "cors-allow-credentials", v, true);
        }
        if let Some(v) = get("cors-max-age") {
            match v.parse() {
                Ok(n) => cors.max_age = n,
                Err(_) => w.push(format!("cors-max-age {v:?}: expected seconds")),
            }
        }
        c.cors = Some(cors);
    }
    if let Some(v) = get("allowlist-source-range").or_else(|| get("whitelist-source-range")) {
        let mut ranges = Vec::new();
        for part in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match Cidr::parse(part) {
                Some(c) => ranges.push(c),
                None => {
                    w.push(format!(
                        "source range {part:?}: not an address or CIDR; denying all"
                    ));
                    ranges.clear();
                    break;
                }
            }
        }
        c.source_range = Some(ranges);
    }
    if let Some(v) = get("load-balance") {
        match v {
            "round_robin" => c.load_balance = LoadBalance::RoundRobin,
            "ewma" => c.load_balance = LoadBalance::Ewma,
            _ => w.push(format!("load-balance {v:?}: expected round_robin or ewma")),
        }
    }
    out
}

fn parse_bool(warnings: &mut Vec<String>, name: &str, v: &str, default: bool) -> bool {
    match v.to_ascii_lowercase().as_str() {
        "true" => true,
        "false" => false,
        _ => {
            warnings.push(format!("{name} {v:?}: expected true or false"));
            default
        }
    }
}

/// Seconds as ingress-nginx takes them: `60`, also `60s`.
fn parse_seconds(v: &str) -> Option<Duration> {
    let n: u64 = v.strip_suffix('s').unwrap_or(v).parse().ok()?;
    (n > 0).then(|| Duration::from_secs(n))
}

/// An nginx size: bytes, or with a `k`, `m` or `g` suffix.
fn parse_size(v: &str) -> Option<u64> {
    let v = v.to_ascii_lowercase();
    let (digits, unit) = match v.as_bytes().last()? {
        b'k' => (&v[..v.len() - 1], 1024),
        b'm' => (&v[..v.len() - 1], 1024 * 1024),
        b'g' => (&v[..v.len() - 1], 1024 * 1024 * 1024),
        _ => (v.as_str(), 1),
    };
    digits.parse::<u64>().ok()?.checked_mul(unit)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_without_annotations() {
        let p = parse(&BTreeMap::new());
        assert_eq!(p.config, LocationConfig::default());
        assert!(p.warnings.is_empty() && p.refused.is_none());
    }

    #[test]
    fn nginx_and_kedge_prefixes_with_kedge_winning() {
        let p = parse(&annotations(&[
            ("nginx.ingress.kubernetes.io/rewrite-target", "/$2"),
            ("nginx.ingress.kubernetes.io/ssl-redirect", "false"),
            ("kedge.io/ssl-redirect", "true"),
            ("nginx.ingress.kubernetes.io/proxy-body-size", "8m"),
            ("nginx.ingress.kubernetes.io/proxy-read-timeout", "120"),
            ("nginx.ingress.kubernetes.io/backend-protocol", "https"),
        ]));
        assert_eq!(p.config.rewrite_target.as_deref(), Some("/$2"));
        assert!(p.config.ssl_redirect);
        assert_eq!(p.config.body_size, Some(8 * 1024 * 1024));
        assert_eq!(p.config.read_timeout, Duration::from_secs(120));
        assert_eq!(p.config.backend_protocol, BackendProtocol::Https);
        assert!(p.warnings.is_empty());
    }

    #[test]
    fn snippets_refuse_the_ingress() {
        let p = parse(&annotations(&[(
            "nginx.ingress.kubernetes.io/configuration-snippet",
            "more_set_headers \"X: y\";",
        )]));
        assert!(p.refused.unwrap().contains("configuration-snippet"));
    }

    #[test]
    fn bad_values_warn_and_keep_defaults() {
        let p = parse(&annotations(&[
            ("nginx.ingress.kubernetes.io/proxy-body-size", "lots"),
            ("nginx.ingress.kubernetes.io/ssl-redirect", "yes"),
            ("nginx.ingress.kubernetes.io/backend-protocol", "FCGI"),
        ]));
        assert_eq!(p.warnings.len(), 3);
        assert_eq!(p.config, LocationConfig::default());
    }

    #[test]
    fn body_size_zero_is_unlimited() {
        let p = parse(&annotations(&[(
            "nginx.ingress.kubernetes.io/proxy-body-size",
            "0",
        )]));
        assert_eq!(p.config.body_size, None);
    }

    #[test]
    fn source_ranges() {
        let p = parse(&annotations(&[(
            "nginx.ingress.kubernetes.io/whitelist-source-range",
            "10.0.0.0/8, 192.168.1.7,2001:db8::/32",
        )]));
        let ranges = p.config.source_range.unwrap();
        let allowed = |ip: &str| ranges.iter().any(|c| c.contains(ip.parse().unwrap()));
        assert!(allowed("10.1.2.3"));
        assert!(allowed("::ffff:10.9.9.9"));
        assert!(allowed("192.168.1.7"));
        assert!(!allowed("192.168.1.8"));
        assert!(allowed("2001:db8::1"));
        assert!(!allowed("127.0.0.1"));

        let bad = parse(&annotations(&[(
            "nginx.ingress.kubernetes.io/whitelist-source-range",
            "10.0.0.0/8,nonsense",
        )]));
        assert_eq!(bad.config.source_range, Some(vec![]));
        assert_eq!(bad.warnings.len(), 1);
    }

    #[test]
    fn redirects_and_cors() {
        let p = parse(&annotations(&[
            (
                "nginx.ingress.kubernetes.io/permanent-redirect",
                "https://example.com/new",
            ),
            ("nginx.ingress.kubernetes.io/permanent-redirect-code", "308"),
            ("nginx.ingress.kubernetes.io/enable-cors", "true"),
            (
                "nginx.ingress.kubernetes.io/cors-allow-origin",
                "https://a.example",
            ),
        ]));
        assert_eq!(
            p.config.redirect,
            Some(("https://example.com/new".into(), 308))
        );
        let cors = p.config.cors.unwrap();
        assert_eq!(cors.allow_origin, "https://a.example");
        assert_eq!(cors.max_age, 1_728_000);
    }
}
