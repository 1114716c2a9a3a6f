//! The echo server of the end-to-end tests: answers every HTTP request
//! with JSON describing the pod that served it (name, namespace, IP from
//! the downward API environment) and the request as it arrived (method,
//! path, headers). It is built as a static binary, with nothing but the
//! standard library, and packed alone into a test image.
//!
//! `/readyz` answers 200, or 503 after a request to `/set-unready` (until
//! one to `/set-ready`); `/status/N` answers with status N.
//!
//! `PORT` (default 8080) sets the port. SIGTERM ends it at once, so pods
//! of this image stop without waiting out their grace period.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};

/// Set by `/set-unready`, cleared by `/set-ready`: `/readyz` answers 503
/// while set, so a test can make one replica fail its readiness probe.
static UNREADY: AtomicBool = AtomicBool::new(false);

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
        let hostname = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
        let header_json: Vec<String> = headers
            .iter()
            .map(|(k, v)| format!("{}:{}", quote(k), quote(v)))
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
            _ => {}
        }
        let status = if path.starts_with("/status/") {
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
