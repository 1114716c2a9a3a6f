//! Work inside a pod's network namespace, as ztunnel does for ambient
//! pods: the node proxy opens its listeners and its outbound sockets there
//! (a socket belongs to the namespace it was made in, whatever thread uses
//! it later), and programs the pod's own nftables table that steers the
//! pod's TCP to those listeners. The pod's containers are never touched
//! and nothing restarts: the namespace is the pod's infra container's.
//!
//! A namespace is entered by a short-lived thread of its own (`setns`
//! changes only the calling thread), so no runtime thread ever leaves the
//! host's namespace.

use std::fs::File;
use std::io::{self, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::process::{Command, Stdio};

use nix::sched::{setns, CloneFlags};
use nix::sys::socket::{
    getsockopt, setsockopt, socket, sockopt, AddressFamily, SockFlag, SockType,
};

/// The mark on the proxy's own sockets in a pod's namespace: the capture
/// rules let marked traffic through (Istio's 0x539, 1337).
pub const PROXY_MARK: u32 = 0x539;
/// Where a pod's outbound TCP is steered (ztunnel's port).
pub const OUTBOUND_PORT: u16 = 15001;
/// Where plaintext inbound TCP to a pod is steered.
pub const INBOUND_PLAINTEXT_PORT: u16 = 15006;
/// The nftables table of the capture rules, in the pod's namespace.
pub const CAPTURE_TABLE: &str = "kedge_mesh";
/// The connection mark of connections the proxy made to its pod with the
/// caller's address as source (Istio's 0x111): the pod's answers carry it,
/// and a routing rule delivers them back to the proxy, not out to the
/// caller.
pub const TRANSPARENT_MARK: u32 = 0x111;
/// The routing table of that rule: everything is local.
pub const TRANSPARENT_TABLE: u32 = 133;

/// A pod's network namespace, held open.
#[derive(Debug)]
pub struct Netns {
    file: File,
}

impl Netns {
    /// Open a namespace file: `/proc/<pid>/ns/net` of a process in it, or a
    /// bind mount such as `/var/run/netns/<name>`.
    pub fn open(path: &Path) -> io::Result<Self> {
        Ok(Self {
            file: File::open(path)?,
        })
    }

    /// Run `f` on a thread of its own inside this namespace.
    pub fn run<T, F>(&self, f: F) -> io::Result<T>
    where
        T: Send,
        F: FnOnce() -> io::Result<T> + Send,
    {
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    setns(self.file.as_fd(), CloneFlags::CLONE_NEWNET).map_err(io::Error::from)?;
                    f()
                })
                .join()
                .unwrap_or_else(|_| {
                    Err(io::Error::other("a thread in the pod's namespace panicked"))
                })
        })
    }

    /// A non-blocking TCP listener in this namespace.
    pub fn listen(&self, addr: SocketAddr) -> io::Result<TcpListener> {
        self.run(|| {
            let listener = TcpListener::bind(addr)?;
            listener.set_nonblocking(true)?;
            Ok(listener)
        })
    }

    /// A non-blocking TCP socket made in this namespace with
    /// [`PROXY_MARK`], for the proxy's own connections there, which the
    /// capture rules then let through.
    pub fn marked_socket(&self) -> io::Result<OwnedFd> {
        self.run(|| {
            let fd = socket(
                AddressFamily::Inet,
                SockType::Stream,
                SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
                None,
            )?;
            setsockopt(&fd, sockopt::Mark, &PROXY_MARK)?;
            Ok(fd)
        })
    }

    /// A connection to `addr` from this namespace, on a marked socket (so
    /// the capture rules let it through).
    pub async fn connect_marked(&self, addr: SocketAddr) -> io::Result<tokio::net::TcpStream> {
        let socket = std::net::TcpStream::from(self.marked_socket()?);
        tokio::net::TcpSocket::from_std_stream(socket)
            .connect(addr)
            .await
    }

    /// A connection to `destination` (this pod) from this namespace that
    /// the pod sees coming from `source` (the caller's address, not the
    /// proxy's): a marked socket with `IP_TRANSPARENT`, bound there. Needs
    /// [`route_answers_to_proxy`](Self::route_answers_to_proxy) done once.
    pub async fn connect_as(
        &self,
        source: std::net::IpAddr,
        destination: SocketAddr,
    ) -> io::Result<tokio::net::TcpStream> {
        let fd = self.marked_socket()?;
        setsockopt(&fd, sockopt::IpTransparent, &true)?;
        let socket = std::net::TcpStream::from(fd);
        let socket = tokio::net::TcpSocket::from_std_stream(socket);
        socket.bind(SocketAddr::new(source, 0))?;
        socket.connect(destination).await
    }

    /// The routing rule that sends the pod's answers to connections made
    /// by [`connect_as`](Self::connect_as) back into the namespace (to
    /// the proxy) instead of out to the caller's address.
    pub fn route_answers_to_proxy(&self) -> io::Result<()> {
        let (mark, table) = (
            format!("{TRANSPARENT_MARK:#x}"),
            TRANSPARENT_TABLE.to_string(),
        );
        self.run(|| {
            // `replace` and a rule removed first: doing it twice is harmless.
            let _ = ip(&["rule", "del", "fwmark", &mark, "lookup", &table]);
            ip(&[
                "rule", "add", "fwmark", &mark, "lookup", &table, "pref", "32764",
            ])?;
            ip(&[
                "route",
                "replace",
                "local",
                "0.0.0.0/0",
                "dev",
                "lo",
                "table",
                &table,
            ])
        })
    }

    /// Undo [`route_answers_to_proxy`](Self::route_answers_to_proxy).
    pub fn stop_routing_answers_to_proxy(&self) -> io::Result<()> {
        let (mark, table) = (
            format!("{TRANSPARENT_MARK:#x}"),
            TRANSPARENT_TABLE.to_string(),
        );
        self.run(|| {
            ip(&["rule", "del", "fwmark", &mark, "lookup", &table])?;
            ip(&["route", "flush", "table", &table])
        })
    }

    /// Replace the capture table in this namespace with `script`'s (`nft
    /// -f -`, one transaction).
    pub fn apply_nft(&self, script: &str) -> io::Result<()> {
        self.run(|| {
            // A child made from this thread is born in its namespace.
            let mut child = Command::new("nft")
                .args(["-f", "-"])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()?;
            child
                .stdin
                .take()
                .ok_or_else(|| io::Error::other("no stdin for nft"))?
                .write_all(script.as_bytes())?;
            let out = child.wait_with_output()?;
            if out.status.success() {
                Ok(())
            } else {
                Err(io::Error::other(format!(
                    "nft: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                )))
            }
        })
    }
}

/// `ip <args>` from the calling thread (so in its namespace).
fn ip(args: &[&str]) -> io::Result<()> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// The capture rules of a meshed pod, in its own namespace: its outbound
/// TCP (not to itself, not the proxy's own marked sockets) is redirected
/// to [`OUTBOUND_PORT`]; inbound TCP other than the tunnel port to
/// [`INBOUND_PLAINTEXT_PORT`], except from `probes` (the address the
/// kubelet's probes come from, which a STRICT pod must still answer). The
/// original destination stays readable with `SO_ORIGINAL_DST`.
/// Connections the proxy makes to the pod with the caller's address
/// ([`Netns::connect_as`]) come back in on the loopback with the proxy's
/// mark: they pass uncaptured and get [`TRANSPARENT_MARK`] as their
/// connection mark, which the pod's answers then carry. Replacing the table
/// is one transaction.
pub fn capture_rules(tunnel_port: u16, probes: Option<Ipv4Addr>) -> String {
    let t = CAPTURE_TABLE;
    let from_node = probes
        .map(|ip| format!("\t\tip saddr {ip} return\n"))
        .unwrap_or_default();
    format!(
        "table ip {t}\ndelete table ip {t}\ntable ip {t} {{\n\
         \tchain output {{\n\t\ttype nat hook output priority -100; policy accept;\n\
         \t\tmeta mark {PROXY_MARK:#x} return\n\
         \t\tip daddr 127.0.0.0/8 return\n\
         \t\tmeta l4proto tcp redirect to :{OUTBOUND_PORT}\n\t}}\n\
         \tchain prerouting {{\n\t\ttype nat hook prerouting priority -100; policy accept;\n\
         \t\tmeta mark {PROXY_MARK:#x} return\n\
         \t\tmeta l4proto tcp tcp dport {tunnel_port} return\n{from_node}\
         \t\tmeta l4proto tcp redirect to :{INBOUND_PLAINTEXT_PORT}\n\t}}\n\
         \tchain transparent_in {{\n\t\ttype filter hook prerouting priority mangle; policy accept;\n\
         \t\tmeta mark {PROXY_MARK:#x} ct mark set {TRANSPARENT_MARK:#x}\n\t}}\n\
         \tchain transparent_out {{\n\t\ttype route hook output priority mangle; policy accept;\n\
         \t\tct mark {TRANSPARENT_MARK:#x} meta mark set {TRANSPARENT_MARK:#x}\n\t}}\n}}\n"
    )
}

/// What removes the capture rules (the pod left the mesh).
pub fn release_rules() -> String {
    let t = CAPTURE_TABLE;
    format!("table ip {t}\ndelete table ip {t}\n")
}

/// Where a redirected connection was going.
pub fn original_destination(socket: &impl AsFd) -> io::Result<SocketAddr> {
    let sin = getsockopt(socket, sockopt::OriginalDst)?;
    Ok(SocketAddr::V4(SocketAddrV4::new(
        Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)),
        u16::from_be(sin.sin_port),
    )))
}

#[cfg(test)]
mod tests;
