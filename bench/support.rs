//! What the benchmarks share: processes they start and ports they pick.

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
