//! A network measurement run inside pods by the benches: a TCP bulk
//! transfer and a one-byte request/response loop, built, as the echo
//! server, as a static binary with nothing but the standard library.
//!
//! `netbench serve PORT`: each connection's first byte picks `S` (read to
//! the end, answer the byte count) or `R` (answer every byte with one).
//! `netbench stream HOST:PORT BYTES` and `netbench rr HOST:PORT COUNT`
//! print one line of `key=value` results; `netbench sleep` waits forever.

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

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("serve") => serve(args.get(2).map_or("5001", String::as_str)),
        Some("stream") => stream(&args[2], args[3].parse().expect("bytes")),
        Some("rr") => rr(&args[2], args[3].parse().expect("count")),
        _ => loop {
            std::thread::sleep(Duration::from_secs(3600));
        },
    }
}
