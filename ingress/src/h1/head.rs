//! Request and response heads, parsed in place: what the lean path keeps
//! of a head is byte ranges into the connection's read buffer, so a
//! request's headers are neither copied nor allocated.
//!
//! The lean path takes only the common shape of a request; anything else
//! (absolute-form targets, `CONNECT`, upgrades, `Expect`, transfer
//! codings, repeated or unusual framing headers, heads over the size
//! limits, anything `httparse` refuses) is [`Parsed::Other`] and goes to
//! the Pingora path whole, which answers it as it always has.

use std::ops::Range;

use http::Method;

/// nginx's `large_client_header_buffers 4 8k`: no request line or header
/// line over 8 KiB, no more than 32 KiB of headers.
pub(crate) const MAX_LINE: usize = 8 * 1024;
pub(crate) const MAX_HEADERS: usize = 32 * 1024;

/// How many header lines a head may have on the lean path (more goes to
/// the Pingora path).
pub(crate) const MAX_HEADER_COUNT: usize = 96;

/// The most a head may take before it is certainly over the size limits.
pub(crate) const MAX_HEAD: usize = MAX_LINE + MAX_HEADERS + 4;

/// What reading a head found.
pub(crate) enum Parsed {
    /// A whole head of the shape the lean path takes.
    Lean,
    /// More bytes are needed.
    Partial,
    /// A head the Pingora path takes.
    Other,
}

/// A request head: ranges into the buffer it was parsed from.
#[derive(Debug, Default)]
pub(crate) struct RequestHead {
    pub method: Option<Method>,
    /// The request target as sent (origin form).
    pub target: Range<usize>,
    /// Every header line: name and value.
    pub headers: Vec<(Range<usize>, Range<usize>)>,
    /// The head's length, up to and including the blank line.
    pub len: usize,
    pub host: Option<Range<usize>>,
    pub request_id: Option<Range<usize>>,
    pub content_length: Option<u64>,
    /// `Connection: close`.
    pub close: bool,
    /// `Expect: 100-continue`: the client waits for a go-ahead before
    /// sending its body.
    pub expect_continue: bool,
}

impl RequestHead {
    /// Parse the head at the start of `buf`.
    pub(crate) fn parse(&mut self, buf: &[u8]) -> Parsed {
        let mut slots = [httparse::EMPTY_HEADER; MAX_HEADER_COUNT];
        let mut req = httparse::Request::new(&mut slots);
        let len = match req.parse(buf) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => return Parsed::Partial,
            _ => return Parsed::Other,
        };
        let (Some(method), Some(target), Some(version)) = (req.method, req.path, req.version)
        else {
            return Parsed::Other;
        };
        let method = match method {
            "GET" => Method::GET,
            "HEAD" => Method::HEAD,
            "POST" => Method::POST,
            "PUT" => Method::PUT,
            "DELETE" => Method::DELETE,
            "OPTIONS" => Method::OPTIONS,
            "PATCH" => Method::PATCH,
            _ => return Parsed::Other,
        };
        // HTTP/1.0 clients may not take chunked answers: Pingora's path
        // frames those.
        if version != 1 || !target.starts_with('/') || target.len() > MAX_LINE {
            return Parsed::Other;
        }
        let range = |s: &[u8]| range_in(buf, s);
        self.method = Some(method);
        self.target = range(target.as_bytes());
        self.len = len;
        self.headers.clear();
        self.host = None;
        self.request_id = None;
        self.content_length = None;
        self.expect_continue = false;
        let mut close = false;
        let mut total = 0;
        for h in req.headers.iter() {
            let line = h.name.len() + h.value.len() + 4;
            total += line;
            if line > MAX_LINE || total > MAX_HEADERS {
                return Parsed::Other;
            }
            let name = h.name.as_bytes();
            let value = h.value;
            match name.len() {
                4 if name.eq_ignore_ascii_case(b"host") => {
                    if self.host.is_some() || !visible(value) {
                        return Parsed::Other;
                    }
                    self.host = Some(range(value));
                }
                6 if name.eq_ignore_ascii_case(b"expect") => {
                    // Any other expectation: Pingora's answer.
                    if !value.eq_ignore_ascii_case(b"100-continue") || self.expect_continue {
                        return Parsed::Other;
                    }
                    self.expect_continue = true;
                }
                7 if name.eq_ignore_ascii_case(b"upgrade") => return Parsed::Other,
                10 if name.eq_ignore_ascii_case(b"connection") => {
                    for token in value.split(|b| *b == b',').map(|t| t.trim_ascii()) {
                        if token.eq_ignore_ascii_case(b"close") {
                            close = true;
                        } else if !token.is_empty() && !token.eq_ignore_ascii_case(b"keep-alive") {
                            // Nominated hop-by-hop headers: Pingora's
                            // rules for them apply.
                            return Parsed::Other;
                        }
                    }
                }
                12 if name.eq_ignore_ascii_case(b"x-request-id") => {
                    self.request_id = Some(range(value));
                }
                14 if name.eq_ignore_ascii_case(b"content-length") => {
                    let Some(n) = std::str::from_utf8(value)
                        .ok()
                        .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                        .and_then(|v| v.parse::<u64>().ok())
                    else {
                        return Parsed::Other;
                    };
                    if self.content_length.is_some() {
                        return Parsed::Other;
                    }
                    self.content_length = Some(n);
                }
                14 if name.eq_ignore_ascii_case(b"http2-settings") => return Parsed::Other,
                17 if name.eq_ignore_ascii_case(b"transfer-encoding") => return Parsed::Other,
                _ => {}
            }
            self.headers.push((range(name), range(value)));
        }
        self.close = close;
        Parsed::Lean
    }

    /// The method (set by a successful parse).
    pub(crate) fn method(&self) -> &Method {
        self.method.as_ref().unwrap_or(&Method::GET)
    }
}

/// Where `part` lies in `buf`. httparse hands out slices of the buffer,
/// except for some it makes up (an empty reason phrase for one that is not
/// UTF-8): those are an empty range.
fn range_in(buf: &[u8], part: &[u8]) -> Range<usize> {
    let start = (part.as_ptr() as usize).wrapping_sub(buf.as_ptr() as usize);
    if start <= buf.len() && part.len() <= buf.len() - start {
        start..start + part.len()
    } else {
        0..0
    }
}

/// Bytes a header value may hold to be read as text (`HeaderValue::to_str`).
fn visible(v: &[u8]) -> bool {
    v.iter().all(|&b| b == b'\t' || (b' '..0x7f).contains(&b))
}

/// Request headers the proxy does not pass on as they came: hop-by-hop
/// headers, and those it sets itself (lower case, by length first).
pub(crate) fn dropped_request_header(name: &[u8]) -> bool {
    const DROPPED: &[&[u8]] = &[
        b"te",
        b"host",
        b"expect",
        b"proxy",
        b"trailer",
        b"upgrade",
        b"x-scheme",
        b"x-real-ip",
        b"keep-alive",
        b"connection",
        b"x-request-id",
        b"http2-settings",
        b"x-forwarded-for",
        b"proxy-connection",
        b"x-forwarded-host",
        b"x-forwarded-port",
        b"transfer-encoding",
        b"x-forwarded-proto",
        b"proxy-authenticate",
        b"x-forwarded-scheme",
        b"proxy-authorization",
    ];
    DROPPED
        .iter()
        .any(|d| d.len() == name.len() && d.eq_ignore_ascii_case(name))
}

/// How a response's body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// No body (HEAD, 204, 304).
    Empty,
    /// `Content-Length`.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Read until the backend closes.
    Close,
}

/// A backend's response head: ranges into the buffer it was parsed from.
#[derive(Debug, Default)]
pub(crate) struct ResponseHead {
    pub status: u16,
    pub reason: Range<usize>,
    pub headers: Vec<(Range<usize>, Range<usize>)>,
    pub len: usize,
    pub framing: Option<Framing>,
    /// The backend keeps the connection open after this response.
    pub reusable: bool,
}

/// Why a response head is not taken.
#[derive(Debug)]
pub(crate) enum BadResponse {
    Partial,
    Invalid,
}

impl ResponseHead {
    /// Parse the head at the start of `buf`, answering `method`.
    pub(crate) fn parse(&mut self, buf: &[u8], method: &Method) -> Result<(), BadResponse> {
        let mut slots = [httparse::EMPTY_HEADER; MAX_HEADER_COUNT];
        let mut resp = httparse::Response::new(&mut slots);
        let len = match resp.parse(buf) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => {
                return Err(BadResponse::Partial)
            }
            _ => return Err(BadResponse::Invalid),
        };
        let (Some(status), Some(version)) = (resp.code, resp.version) else {
            return Err(BadResponse::Invalid);
        };
        let range = |s: &[u8]| range_in(buf, s);
        self.status = status;
        self.reason = resp.reason.map_or(0..0, |r| range(r.as_bytes()));
        self.len = len;
        self.headers.clear();
        let mut length: Option<u64> = None;
        let mut chunked = None;
        let mut close = version == 0;
        for h in resp.headers.iter() {
            let name = h.name.as_bytes();
            match name.len() {
                10 if name.eq_ignore_ascii_case(b"connection") => {
                    for token in h.value.split(|b| *b == b',').map(|t| t.trim_ascii()) {
                        if token.eq_ignore_ascii_case(b"close") {
                            close = true;
                        } else if version == 0 && token.eq_ignore_ascii_case(b"keep-alive") {
                            close = false;
                        }
                    }
                }
                14 if name.eq_ignore_ascii_case(b"content-length") => {
                    let n = std::str::from_utf8(h.value)
                        .ok()
                        .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                        .and_then(|v| v.parse::<u64>().ok())
                        .ok_or(BadResponse::Invalid)?;
                    if length.is_some_and(|l| l != n) {
                        return Err(BadResponse::Invalid);
                    }
                    length = Some(n);
                }
                17 if name.eq_ignore_ascii_case(b"transfer-encoding") => {
                    // Only the last coding decides: chunked or read to close.
                    let last = h.value.rsplit(|b| *b == b',').next().unwrap_or(b"");
                    chunked = Some(last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
                }
                _ => {}
            }
            self.headers.push((range(name), range(h.value)));
        }
        let framing = if *method == Method::HEAD
            || matches!(status, 204 | 304)
            || (100..200).contains(&status)
        {
            Framing::Empty
        } else {
            match (chunked, length) {
                (Some(true), _) => Framing::Chunked,
                (Some(false), _) => Framing::Close,
                (None, Some(n)) => Framing::Length(n),
                (None, None) => Framing::Close,
            }
        };
        // A body the backend both lengths and codes leaves its end in doubt.
        let doubtful = chunked.is_some() && length.is_some();
        self.framing = Some(framing);
        self.reusable = !close && framing != Framing::Close && !doubtful;
        Ok(())
    }
}

/// Response headers the proxy does not pass on: hop-by-hop headers, and
/// those it sets itself.
pub(crate) fn dropped_response_header(name: &[u8]) -> bool {
    const DROPPED: &[&[u8]] = &[
        b"date",
        b"server",
        b"keep-alive",
        b"connection",
        b"proxy-connection",
        b"transfer-encoding",
    ];
    DROPPED
        .iter()
        .any(|d| d.len() == name.len() && d.eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lean(raw: &str) -> RequestHead {
        let mut h = RequestHead::default();
        assert!(matches!(h.parse(raw.as_bytes()), Parsed::Lean), "{raw:?}");
        h
    }

    fn other(raw: &str) {
        let mut h = RequestHead::default();
        assert!(matches!(h.parse(raw.as_bytes()), Parsed::Other), "{raw:?}");
    }

    #[test]
    fn the_common_shapes_are_lean() {
        let raw = "GET /a?b=1 HTTP/1.1\r\nHost: x.com\r\nX-Request-ID: abc\r\n\r\nGET /";
        let h = lean(raw);
        assert_eq!(&raw[h.target.clone()], "/a?b=1");
        assert_eq!(&raw[h.host.clone().unwrap()], "x.com");
        assert_eq!(&raw[h.request_id.clone().unwrap()], "abc");
        assert_eq!(h.len, raw.len() - "GET /".len());
        assert!(!h.close);
        let h = lean("POST / HTTP/1.1\r\nContent-Length: 5\r\nConnection: close\r\n\r\n");
        assert_eq!(h.content_length, Some(5));
        assert!(h.close);
        let h = lean("POST / HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n");
        assert!(h.expect_continue);
        assert!(!lean("GET / HTTP/1.1\r\nConnection: Keep-Alive\r\n\r\n").close);
        let mut h = RequestHead::default();
        assert!(matches!(
            h.parse(b"GET / HTTP/1.1\r\nHost: x"),
            Parsed::Partial
        ));
    }

    #[test]
    fn unusual_shapes_go_to_pingora() {
        other("GET http://x.com/ HTTP/1.1\r\nHost: x.com\r\n\r\n");
        other("CONNECT x.com:443 HTTP/1.1\r\n\r\n");
        other("OPTIONS * HTTP/1.1\r\n\r\n");
        other("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
        other("POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n");
        other("POST / HTTP/1.1\r\nContent-Length: +1\r\n\r\n");
        other("POST / HTTP/1.1\r\nExpect: something\r\n\r\n");
        other("GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n");
        other("GET / HTTP/1.1\r\nConnection: close, X-Foo\r\n\r\n");
        other("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n");
        other("GET / HTTP/1.0\r\n\r\n");
        other("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
        other("GET / HTTP/1.1\r\nBad Header\r\n\r\n");
        other(&format!(
            "GET / HTTP/1.1\r\nA: {}\r\n\r\n",
            "a".repeat(MAX_LINE)
        ));
        let mut h = RequestHead::default();
        let long = format!("GET / HTTP/1.1\r\nA: {}", "a".repeat(MAX_HEAD));
        assert!(matches!(h.parse(long.as_bytes()), Parsed::Other));
    }

    #[test]
    fn response_framing() {
        let get = Method::GET;
        let mut r = ResponseHead::default();
        r.parse(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc", &get)
            .unwrap();
        assert_eq!(r.framing, Some(Framing::Length(3)));
        assert!(r.reusable);
        r.parse(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            &get,
        )
        .unwrap();
        assert_eq!(r.framing, Some(Framing::Chunked));
        r.parse(b"HTTP/1.1 200 OK\r\n\r\n", &get).unwrap();
        assert_eq!(r.framing, Some(Framing::Close));
        assert!(!r.reusable);
        r.parse(
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n",
            &Method::HEAD,
        )
        .unwrap();
        assert_eq!(r.framing, Some(Framing::Empty));
        r.parse(b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\n", &get)
            .unwrap();
        assert!(!r.reusable);
        r.parse(
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\n",
            &get,
        )
        .unwrap();
        assert!(!r.reusable);
        assert!(r
            .parse(
                b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
                &get
            )
            .is_err());
        r.parse(
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            &get,
        )
        .unwrap();
        assert_eq!(r.framing, Some(Framing::Chunked));
        assert!(!r.reusable);
        // A reason phrase that is not UTF-8 (found by the fuzzer: httparse
        // gives an empty phrase of its own for it).
        let raw = b"HTTP/1.1 333 \xe0\xe0S\r\nContent-Length: 0\r\n\r\n";
        r.parse(raw, &get).unwrap();
        assert_eq!(r.reason, 0..0);
    }
}
