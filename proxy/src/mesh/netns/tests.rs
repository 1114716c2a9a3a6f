//! In a network namespace the test makes (named after the test process,
//! removed when done): the capture rules steer a pod's outbound TCP to the
//! proxy's listener, keeping where it was going, and let the proxy's own
//! marked sockets through. Needs root, `ip` and `nft`, as the proxy does.

use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::process::Command;
use std::time::Duration;

use super::*;

/// `ip netns` namespace `kedge-mesh-<pid>-<n>`, deleted on drop.
struct TestNamespace {
    name: String,
}

impl TestNamespace {
    fn new(n: u32) -> Self {
        crate::mesh::testing::sweep_namespaces();
        let name = format!("kedge-mesh-{}-{n}", std::process::id());
        let ns = Self { name };
        for args in [
            vec!["netns", "add", &ns.name],
            vec!["-n", &ns.name, "link", "set", "lo", "up"],
            // The pod's own address, and a "remote" one, both local here
            // so that no packet leaves the namespace.
            vec!["-n", &ns.name, "addr", "add", "10.1.2.3/32", "dev", "lo"],
        ] {
            let out = Command::new("ip").args(&args).output().unwrap();
            assert!(out.status.success(), "ip {args:?}: {out:?}");
        }
        ns
    }

    fn netns(&self) -> Netns {
        Netns::open(&Path::new("/var/run/netns").join(&self.name)).unwrap()
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

#[test]
fn outbound_tcp_reaches_the_proxy_with_its_destination_and_marked_sockets_pass() {
    let ns = TestNamespace::new(1);
    let netns = ns.netns();
    netns.apply_nft(&capture_rules(15008, None)).unwrap();
    // Applying again replaces the table (one transaction), not a second copy.
    netns.apply_nft(&capture_rules(15008, None)).unwrap();
    let listener = netns
        .listen(SocketAddr::from(([0, 0, 0, 0], OUTBOUND_PORT)))
        .unwrap();
    listener.set_nonblocking(false).unwrap();

    // An application in the pod connects somewhere: the proxy gets it.
    let destination = SocketAddr::from(([10, 1, 2, 3], 8080));
    let _app = netns
        .run(|| TcpStream::connect_timeout(&destination, Duration::from_secs(2)))
        .unwrap();
    let (accepted, _) = listener.accept().unwrap();
    assert_eq!(original_destination(&accepted).unwrap(), destination);

    // The proxy's own socket, marked, goes where it asks: nothing listens
    // on 10.1.2.3:8080, so it is refused instead of redirected.
    let socket = netns.marked_socket().unwrap();
    let stream = std::net::TcpStream::from(socket);
    stream.set_nonblocking(false).unwrap();
    let refused = nix::sys::socket::connect(
        stream.as_raw_fd(),
        &nix::sys::socket::SockaddrIn::from(SocketAddrV4::new(Ipv4Addr::new(10, 1, 2, 3), 8080)),
    );
    assert_eq!(refused, Err(nix::errno::Errno::ECONNREFUSED));

    // The rules are in the pod's namespace only, never the host's.
    let host = Command::new("nft")
        .args(["list", "table", "ip", CAPTURE_TABLE])
        .output()
        .unwrap();
    assert!(!host.status.success(), "no capture table on the host");
}

#[test]
fn a_missing_namespace_is_an_error() {
    assert!(Netns::open(Path::new("/var/run/netns/kedge-mesh-no-such")).is_err());
}

#[test]
fn probes_are_exempt_from_inbound_capture_and_the_rules_come_off() {
    let ns = TestNamespace::new(2);
    let netns = ns.netns();
    let probes = Ipv4Addr::new(169, 254, 7, 127);
    netns
        .apply_nft(&capture_rules(15008, Some(probes)))
        .unwrap();
    let listed = netns
        .run(|| {
            Command::new("nft")
                .args(["list", "table", "ip", CAPTURE_TABLE])
                .output()
        })
        .unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout).to_string();
    assert!(listed.contains("ip saddr 169.254.7.127 return"), "{listed}");
    netns.apply_nft(&super::release_rules()).unwrap();
    let gone = netns
        .run(|| {
            Command::new("nft")
                .args(["list", "table", "ip", CAPTURE_TABLE])
                .output()
        })
        .unwrap();
    assert!(!gone.status.success(), "the table is gone");
}
