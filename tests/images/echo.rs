//! The echo server of the end-to-end tests: answers every HTTP request
//! with JSON describing the pod that served it (name, namespace, IP from
//! the downward API environment) and the request as it arrived (method,
//! path, headers). It is built as a static binary, with nothing but the
//! standard library, and packed alone into a test image.
//!
//! `/readyz` answers 200, or 503 after a request to `/set-unready` (until
//! one to `/set-ready`); `/status/N` answers with status N; after
//! `/set-failing` (until `/set-working`) every other request gets 503.
//!
//! A connection that opens with HTTP/2's preface (h2c with prior
//! knowledge, as gRPC clients speak) is served as HTTP/2: every request
//! gets the same JSON, status 200 (503 while failing); its headers are not
//! decoded, so the JSON's method and path are "-".
//!
//! `PORT` (default 8080) sets the port. SIGTERM ends it at once, so pods
//! of this image stop without waiting out their grace period.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};

/// Set by `/set-unready`, cleared by `/set-ready`: `/readyz` answers 503
/// while set, so a test can make one replica fail its readiness probe.
static UNREADY: AtomicBool = AtomicBool::new(false);
/// Set by `/set-failing`, cleared by `/set-working`: requests answer 503,
/// so a test can make one replica fail while it stays ready.
static FAILING: AtomicBool = AtomicBool::new(false);

extern "C" {
    fn signal(signum: i32, handler: extern "C" fn(i32)) -> usize;
    fn _exit(code: i32) -> !;
}

extern "C" fn on_term(_: i32) {
    // Async-signal-safe: end the process with no cleanup.
    unsafe { _exit(0) }
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_default()
}

/// JSON string escaping.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn serve(stream: TcpStream) -> std::io::Result<()> {
    let peer = stream.peer_addr().map(|a| a.to_string()).unwrap_or_default();
    let _ = stream.set_nodelay(true);
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut out = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let line = line.trim_end().to_string();
        if line.is_empty() {
            continue;
        }
        if line == "PRI * HTTP/2.0" {
            let mut rest = [0u8; 8];
            reader.read_exact(&mut rest)?;
            if &rest != b"\r\nSM\r\n\r\n" {
                return Ok(());
            }
            return serve_h2(reader, out, &peer);
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or_default().to_string();
        let path = parts.next().unwrap_or_default().to_string();
        let version = parts.next().unwrap_or("HTTP/1.0").to_string();
        let mut headers: Vec<(String, String)> = Vec::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h)? == 0 {
                return Ok(());
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
        let header = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        };
        // Bodies are read and dropped, so keep-alive stays in step.
        if let Some(len) = header("content-length").and_then(|l| l.parse::<u64>().ok()) {
            std::io::copy(&mut (&mut reader).take(len), &mut std::io::sink())?;
        }
        let close = header("connection").is_some_and(|c| c.eq_ignore_ascii_case("close"))
            || version == "HTTP/1.0";
        let hostname = hostname();
        // Names in lower case (they are case-insensitive; proxies send
        // them in different cases), as HTTP/2 spells them.
        let header_json: Vec<String> = headers
            .iter()
            .map(|(k, v)| format!("{}:{}", quote(&k.to_ascii_lowercase()), quote(v)))
            .collect();
        let body = format!(
            "{{\"pod\":{},\"namespace\":{},\"podIP\":{},\"hostname\":{},\"method\":{},\"path\":{},\"proto\":{},\"host\":{},\"remote\":{},\"headers\":{{{}}}}}\n",
            quote(&env("POD_NAME")),
            quote(&env("POD_NAMESPACE")),
            quote(&env("POD_IP")),
            quote(hostname.trim()),
            quote(&method),
            quote(&path),
            quote(&version),
            quote(&header("host").unwrap_or_default()),
            quote(&peer),
            header_json.join(",")
        );
        match path.as_str() {
            "/set-unready" => UNREADY.store(true, Ordering::Relaxed),
            "/set-ready" => UNREADY.store(false, Ordering::Relaxed),
            "/set-failing" => FAILING.store(true, Ordering::Relaxed),
            "/set-working" => FAILING.store(false, Ordering::Relaxed),
            _ => {}
        }
        let status = if FAILING.load(Ordering::Relaxed)
            && path != "/readyz"
            && !path.starts_with("/set-")
        {
            503
        } else if path.starts_with("/status/") {
            path.trim_start_matches("/status/").parse().unwrap_or(200)
        } else if path == "/readyz" && UNREADY.load(Ordering::Relaxed) {
            503
        } else {
            200u16
        };
        // One write: pieces written one by one wait on Nagle's algorithm
        // and the client's delayed ACK (40 ms a request).
        let answer = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{}\r\n{body}",
            body.len(),
            if close { "Connection: close\r\n" } else { "" }
        );
        out.write_all(answer.as_bytes())?;
        if close {
            return Ok(());
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// One HTTP/2 frame: type, flags, stream and payload.
struct Frame {
    kind: u8,
    flags: u8,
    stream: u32,
    payload: Vec<u8>,
}

const DATA: u8 = 0;
const HEADERS: u8 = 1;
const SETTINGS: u8 = 4;
const PING: u8 = 6;
const GOAWAY: u8 = 7;
const WINDOW_UPDATE: u8 = 8;
const CONTINUATION: u8 = 9;
const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;

fn read_frame(r: &mut impl Read) -> std::io::Result<Frame> {
    let mut head = [0u8; 9];
    r.read_exact(&mut head)?;
    let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload)?;
    Ok(Frame {
        kind: head[3],
        flags: head[4],
        stream: u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff,
        payload,
    })
}

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = (payload.len() as u32).to_be_bytes();
    let mut out = vec![len[1], len[2], len[3], kind, flags];
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// HTTP/2 after the preface: settings and pings answered, each request
/// (once its headers, and body if any, are in) answered at once.
fn serve_h2(mut reader: impl Read, mut out: TcpStream, peer: &str) -> std::io::Result<()> {
    out.write_all(&frame(SETTINGS, 0, 0, &[]))?;
    loop {
        let f = read_frame(&mut reader)?;
        let complete = match f.kind {
            SETTINGS if f.flags & ACK == 0 => {
                out.write_all(&frame(SETTINGS, ACK, 0, &[]))?;
                false
            }
            PING if f.flags & ACK == 0 => {
                out.write_all(&frame(PING, ACK, 0, &f.payload))?;
                false
            }
            GOAWAY => return Ok(()),
            // Requests this server answers carry everything in HEADERS
            // (and CONTINUATION) with END_STREAM, or end in a DATA frame.
            HEADERS | CONTINUATION => f.flags & END_STREAM != 0,
            DATA => {
                if !f.payload.is_empty() {
                    let n = (f.payload.len() as u32).to_be_bytes();
                    out.write_all(&frame(WINDOW_UPDATE, 0, 0, &n))?;
                }
                f.flags & END_STREAM != 0
            }
            _ => false,
        };
        if !complete || f.stream == 0 {
            continue;
        }
        let failing = FAILING.load(Ordering::Relaxed);
        let body = format!(
            "{{\"pod\":{},\"namespace\":{},\"podIP\":{},\"hostname\":{},\"method\":\"-\",\"path\":\"-\",\"proto\":\"HTTP/2.0\",\"remote\":{}}}\n",
            quote(&env("POD_NAME")),
            quote(&env("POD_NAMESPACE")),
            quote(&env("POD_IP")),
            quote(&hostname()),
            quote(peer)
        );
        // `:status` 200 is entry 8 of HPACK's static table; 503 is a
        // literal value of that entry's name, not indexed.
        let status: &[u8] = if failing { &[0x08, 3, b'5', b'0', b'3'] } else { &[0x88] };
        let mut answer = frame(HEADERS, END_HEADERS, f.stream, status);
        answer.extend(frame(DATA, END_STREAM, f.stream, body.as_bytes()));
        out.write_all(&answer)?;
    }
}

fn main() {
    unsafe {
        signal(15, on_term);
    }
    let port = std::env::var("PORT").unwrap_or_else(|_| "8080".into());
    let listener = TcpListener::bind(format!("0.0.0.0:{port}")).expect("binding the port");
    println!("echo server listening on {port}");
    for stream in listener.incoming().flatten() {
        std::thread::spawn(move || {
            let _ = serve(stream);
        });
    }
}
