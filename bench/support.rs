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

/// CPU time (user + system) in seconds from a `/proc/.../stat` file.
#[allow(dead_code)]
fn stat_cpu_seconds(path: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(path) else {
        return 0.0;
    };
    // Fields after the command name in parentheses: state is field 3,
    // utime 14 and stime 15.
    let rest = &stat[stat.rfind(')').map_or(0, |i| i + 2)..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// CPU time of a process so far (its threads together), in seconds.
#[allow(dead_code)]
pub fn cpu_seconds(pid: u32) -> f64 {
    stat_cpu_seconds(&format!("/proc/{pid}/stat"))
}

/// CPU time of a process and its children so far (nginx's master and
/// workers), in seconds.
#[allow(dead_code)]
pub fn tree_cpu_seconds(pid: u32) -> f64 {
    let children =
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    cpu_seconds(pid)
        + children
            .split_whitespace()
            .filter_map(|c| c.parse().ok())
            .map(tree_cpu_seconds)
            .sum::<f64>()
}

/// CPU time so far of this process's threads whose name starts with
/// `prefix`, in seconds.
#[allow(dead_code)]
pub fn threads_cpu_seconds(prefix: &str) -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    tasks
        .flatten()
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm"))
                .is_ok_and(|name| name.starts_with(prefix))
        })
        .map(|t| stat_cpu_seconds(&t.path().join("stat").to_string_lossy()))
        .sum()
}
