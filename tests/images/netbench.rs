//! A network measurement run inside pods by the benches: a TCP bulk
//! transfer and a one-byte request/response loop, built, as the echo
//! server, as a static binary with nothing but the standard library.
//!
//! `netbench serve PORT`: each connection's first byte picks `S` (read to
//! the end, answer the byte count) or `R` (answer every byte with one).
//! `netbench stream HOST:PORT BYTES` and `netbench rr HOST:PORT COUNT`
//! print one line of `key=value` results; `netbench http HOST:PORT COUNT`
//! sends COUNT HTTP/1.1 GETs on one kept-alive connection (a new one only
//! when the server closes it) and prints, per status and echo server
//! `hostname`, how many answers came (`PATH`, default `/`, as a fourth
//! argument); `netbench h2 HOST:PORT COUNT` does the same over one HTTP/2
//! connection (h2c with prior knowledge, as gRPC clients speak), up to
//! `H2_IN_FLIGHT` requests at once; `netbench sleep` waits forever.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::time::{Duration, Instant};

const CHUNK: usize = 256 * 1024;

fn serve(port: &str) {
    let listener = TcpListener::bind(format!("0.0.0.0:{port}")).expect("binding");
    for conn in listener.incoming().flatten() {
        std::thread::spawn(move || handle(conn));
    }
}

fn handle(mut conn: TcpStream) {
    let _ = conn.set_nodelay(true);
    let mut mode = [0u8; 1];
    if conn.read_exact(&mut mode).is_err() {
        return;
    }
    match mode[0] {
        b'S' => {
            let mut buf = vec![0u8; CHUNK];
            let mut total: u64 = 0;
            loop {
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => total += n as u64,
                }
            }
            let _ = conn.write_all(&total.to_be_bytes());
        }
        _ => {
            let mut b = [0u8; 1];
            while conn.read_exact(&mut b).is_ok() {
                if conn.write_all(&b).is_err() {
                    return;
                }
            }
        }
    }
}

fn stream(addr: &str, bytes: u64) {
    let mut conn = TcpStream::connect(addr).expect("connecting");
    let start = Instant::now();
    conn.write_all(b"S").unwrap();
    let buf = vec![7u8; CHUNK];
    let mut left = bytes;
    while left > 0 {
        let n = left.min(CHUNK as u64) as usize;
        conn.write_all(&buf[..n]).unwrap();
        left -= n as u64;
    }
    conn.shutdown(Shutdown::Write).unwrap();
    let mut count = [0u8; 8];
    conn.read_exact(&mut count).unwrap();
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(u64::from_be_bytes(count), bytes, "the server counted otherwise");
    println!(
        "stream bytes={bytes} seconds={secs:.4} gbit_s={:.3}",
        bytes as f64 * 8.0 / secs / 1e9
    );
}

fn rr(addr: &str, count: usize) {
    let mut conn = TcpStream::connect(addr).expect("connecting");
    conn.set_nodelay(true).unwrap();
    conn.write_all(b"R").unwrap();
    let mut rtts = Vec::with_capacity(count);
    let mut b = [1u8; 1];
    for _ in 0..count {
        let t = Instant::now();
        conn.write_all(&b).unwrap();
        conn.read_exact(&mut b).unwrap();
        rtts.push(t.elapsed());
    }
    rtts.sort();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let mean = rtts.iter().map(|d| us(*d)).sum::<f64>() / count as f64;
    println!(
        "rr count={count} mean_us={mean:.1} p50_us={:.1} p99_us={:.1}",
        us(rtts[count / 2]),
        us(rtts[(count * 99 / 100).min(count - 1)])
    );
}

/// One HTTP/1.1 answer on `conn`: its status and body (by Content-Length).
fn answer(conn: &mut std::io::BufReader<TcpStream>) -> Option<(u16, String)> {
    use std::io::BufRead;
    let mut line = String::new();
    if conn.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let status: u16 = line.split_whitespace().nth(1)?.parse().ok()?;
    let mut length = 0usize;
    let mut close = false;
    loop {
        line.clear();
        conn.read_line(&mut line).ok()?;
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':')?;
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => length = value.trim().parse().ok()?,
            "connection" => close = value.trim().eq_ignore_ascii_case("close"),
            _ => {}
        }
    }
    let mut body = vec![0u8; length];
    conn.read_exact(&mut body).ok()?;
    let body = String::from_utf8_lossy(&body).to_string();
    Some((status, if close { format!("{body}\u{0}close") } else { body }))
}

fn http(addr: &str, count: usize, path: &str) {
    let request = format!("GET {path} HTTP/1.1\r\nHost: web\r\n\r\n");
    let start = Instant::now();
    let mut answers: std::collections::BTreeMap<(u16, String), usize> = Default::default();
    let (mut connections, mut failures) = (0, 0);
    let mut conn: Option<std::io::BufReader<TcpStream>> = None;
    for _ in 0..count {
        if conn.is_none() {
            match TcpStream::connect(addr) {
                Ok(c) => {
                    let _ = c.set_nodelay(true);
                    connections += 1;
                    conn = Some(std::io::BufReader::new(c));
                }
                Err(_) => {
                    failures += 1;
                    continue;
                }
            }
        }
        let reader = conn.as_mut().unwrap();
        let sent = reader
            .get_mut()
            .write_all(request.as_bytes());
        match sent.ok().and_then(|()| answer(reader)) {
            Some((status, body)) => {
                let close = body.ends_with("\u{0}close");
                let host = hostname_in(&body);
                *answers.entry((status, host)).or_default() += 1;
                if close {
                    conn = None;
                }
            }
            None => {
                failures += 1;
                conn = None;
            }
        }
    }
    for ((status, host), n) in answers {
        println!("answer status={status} hostname={host} count={n}");
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "http connections={connections} failures={failures} seconds={secs:.4} requests_s={:.1}",
        count as f64 / secs
    );
}

/// The echo server's `hostname` in its JSON answer.
fn hostname_in(body: &str) -> String {
    body.split("\"hostname\":\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or("-")
        .to_string()
}

const H2_IN_FLIGHT: usize = 8;
const DATA: u8 = 0;
const HEADERS: u8 = 1;
const RST_STREAM: u8 = 3;
const SETTINGS: u8 = 4;
const PING: u8 = 6;
const GOAWAY: u8 = 7;
const WINDOW_UPDATE: u8 = 8;
const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = (payload.len() as u32).to_be_bytes();
    let mut out = vec![len[1], len[2], len[3], kind, flags];
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// The status at the start of a response's header block: `:status` comes
/// first; 200 is indexed (static entry 8), others a literal value of that
/// entry's name (0 when the block says it otherwise, from the dynamic
/// table say).
fn status_of(block: &[u8]) -> u16 {
    match block {
        [0x88, ..] => 200,
        [0x08 | 0x18 | 0x48, 3, digits @ ..] if digits.len() >= 3 => {
            std::str::from_utf8(&digits[..3]).ok().and_then(|d| d.parse().ok()).unwrap_or(0)
        }
        _ => 0,
    }
}

fn h2(addr: &str, count: usize) {
    use std::collections::{BTreeMap, HashMap};
    let start = Instant::now();
    let conn = TcpStream::connect(addr).expect("connecting");
    let _ = conn.set_nodelay(true);
    let mut reader = std::io::BufReader::new(conn.try_clone().unwrap());
    let mut out = conn;
    let mut hello = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    hello.extend(frame(SETTINGS, 0, 0, &[]));
    out.write_all(&hello).unwrap();
    // GET / on :scheme http (static entries 2, 6, 4), :authority `web`
    // as a literal of static entry 1's name, not indexed.
    let block = [0x82, 0x86, 0x84, 0x01, 3, b'w', b'e', b'b'];
    let (mut sent, mut done, mut failures, mut next) = (0usize, 0usize, 0usize, 1u32);
    let mut open: HashMap<u32, (u16, Vec<u8>)> = HashMap::new();
    let mut answers: BTreeMap<(u16, String), usize> = BTreeMap::new();
    while done < count {
        let mut burst = Vec::new();
        while sent < count && open.len() < H2_IN_FLIGHT {
            burst.extend(frame(HEADERS, END_HEADERS | END_STREAM, next, &block));
            open.insert(next, (0, Vec::new()));
            next += 2;
            sent += 1;
        }
        if !burst.is_empty() {
            out.write_all(&burst).unwrap();
        }
        let mut head = [0u8; 9];
        if reader.read_exact(&mut head).is_err() {
            failures += count - done;
            break;
        }
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let (kind, flags) = (head[3], head[4]);
        let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        let mut payload = vec![0u8; len];
        reader.read_exact(&mut payload).unwrap();
        let mut body = &payload[..];
        if matches!(kind, DATA | HEADERS) && flags & PADDED != 0 {
            let pad = body[0] as usize;
            body = &body[1..body.len() - pad];
        }
        if kind == HEADERS && flags & PRIORITY != 0 {
            body = &body[5..];
        }
        let mut finished = flags & END_STREAM != 0 && matches!(kind, DATA | HEADERS);
        match kind {
            SETTINGS if flags & ACK == 0 => out.write_all(&frame(SETTINGS, ACK, 0, &[])).unwrap(),
            PING if flags & ACK == 0 => out.write_all(&frame(PING, ACK, 0, &payload)).unwrap(),
            GOAWAY => {
                failures += count - done;
                break;
            }
            HEADERS => {
                if let Some(entry) = open.get_mut(&stream) {
                    if entry.0 == 0 {
                        entry.0 = status_of(body);
                    }
                }
            }
            DATA => {
                if !payload.is_empty() {
                    // Give the connection's window back; each stream's
                    // answer is far below its own.
                    let n = (payload.len() as u32).to_be_bytes();
                    out.write_all(&frame(WINDOW_UPDATE, 0, 0, &n)).unwrap();
                }
                if let Some(entry) = open.get_mut(&stream) {
                    entry.1.extend_from_slice(body);
                }
            }
            RST_STREAM => {
                if open.remove(&stream).is_some() {
                    failures += 1;
                    done += 1;
                }
                finished = false;
            }
            _ => {}
        }
        if finished {
            if let Some((status, text)) = open.remove(&stream) {
                let host = hostname_in(&String::from_utf8_lossy(&text));
                *answers.entry((status, host)).or_default() += 1;
                done += 1;
            }
        }
    }
    for ((status, host), n) in answers {
        println!("answer status={status} hostname={host} count={n}");
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "h2 connections=1 failures={failures} seconds={secs:.4} requests_s={:.1}",
        count as f64 / secs
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("serve") => serve(args.get(2).map_or("5001", String::as_str)),
        Some("stream") => stream(&args[2], args[3].parse().expect("bytes")),
        Some("rr") => rr(&args[2], args[3].parse().expect("count")),
        Some("http") => http(
            &args[2],
            args[3].parse().expect("count"),
            args.get(4).map_or("/", String::as_str),
        ),
        Some("h2") => h2(&args[2], args[3].parse().expect("count")),
        _ => loop {
            std::thread::sleep(Duration::from_secs(3600));
        },
    }
}
