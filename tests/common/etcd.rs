//! A cluster of etcd members (Debian's `etcd-server`) on loopback ports,
//! for the tests and benches of several control planes.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{eventually, free_port};

const WAIT: Duration = Duration::from_secs(120);

/// Three etcd members on loopback; killed (by PID) on drop.
pub struct EtcdCluster {
    members: Vec<Option<Child>>,
    /// The members' client URLs.
    pub client_urls: Vec<String>,
    _dir: tempfile::TempDir,
}

impl EtcdCluster {
    /// Three members, once every one reports health.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ports: Vec<(u16, u16)> = (0..3).map(|_| (free_port(), free_port())).collect();
        let initial: Vec<String> = ports
            .iter()
            .enumerate()
            .map(|(i, (_, peer))| format!("e{i}=http://127.0.0.1:{peer}"))
            .collect();
        let token = format!("kedge-test-{}", std::process::id());
        let mut members = Vec::new();
        let mut client_urls = Vec::new();
        for (i, (client, peer)) in ports.iter().enumerate() {
            let url = format!("http://127.0.0.1:{client}");
            let child = Command::new("etcd")
                .arg(format!("--name=e{i}"))
                .arg(format!(
                    "--data-dir={}",
                    dir.path().join(format!("e{i}")).display()
                ))
                .arg(format!("--listen-client-urls={url}"))
                .arg(format!("--advertise-client-urls={url}"))
                .arg(format!("--listen-peer-urls=http://127.0.0.1:{peer}"))
                .arg(format!(
                    "--initial-advertise-peer-urls=http://127.0.0.1:{peer}"
                ))
                .arg(format!("--initial-cluster={}", initial.join(",")))
                .arg(format!("--initial-cluster-token={token}"))
                .arg("--initial-cluster-state=new")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("starting etcd (apt-get install etcd-server)");
            members.push(Some(child));
            client_urls.push(url);
        }
        let cluster = Self {
            members,
            client_urls,
            _dir: dir,
        };
        for url in &cluster.client_urls {
            let addr = url.trim_start_matches("http://").to_string();
            assert!(
                eventually(WAIT, || health(&addr)),
                "etcd at {url} did not become healthy"
            );
        }
        cluster
    }

    /// SIGKILL member `i`.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.members[i].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }
}

/// etcd's `/health` on its client port says the cluster has a leader.
pub fn health(addr: &str) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = write!(s, "GET /health HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.contains(r#""health":"true""#)
}
