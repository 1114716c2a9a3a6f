//! What the benchmarks share: processes they start, ports they pick, and
//! how rounds are counted and summed up.

use std::net::TcpListener;
use std::process::{Child, Command};
use std::time::Duration;

/// A TCP port free on 127.0.0.1 just now.
#[allow(dead_code)]
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process stopped on drop, by its PID: SIGTERM first (nginx's
/// master stops its workers only when asked; killed outright it leaves
/// them running), SIGKILL after two seconds.
#[allow(dead_code)]
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        for _ in 0..100 {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// How many rounds a bench runs: `ROUNDS`, 3 by default.
#[allow(dead_code)]
pub fn rounds() -> usize {
    std::env::var("ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .filter(|r| *r > 0)
        .unwrap_or(3)
}

/// The median of one figure's samples (the upper one of an even count).
#[allow(dead_code)]
pub fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

/// `key=value` of a result line (netbench's).
#[allow(dead_code)]
pub fn value(line: &str, key: &str) -> f64 {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{key}=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {line:?}"))
}
