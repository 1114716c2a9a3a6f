//! The mesh's data path between two pod namespaces the test makes (a veth
//! pair between them, named after the test process, removed when done):
//! an application in pod A connects to pod B's address as it would without
//! a mesh; A's capture rules steer it to A's proxy listener, which carries
//! it through the mutual-TLS tunnel to B's tunnel listener, which connects
//! to B's application from inside B. B's side knows the caller as A's
//! ServiceAccount. Needs root, `ip` and `nft`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use kedge_control::apiserver::certs::MeshCa;
use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;
use crate::mesh::netns::{capture_rules, original_destination, OUTBOUND_PORT};
use crate::mesh::testing::issue;
use crate::mesh::tls::{client_config, server_config};
use crate::mesh::tunnel::serve_connection;
use crate::mesh::tunnel::{TunnelPool, HBONE_PORT};

/// Two namespaces `kedge-mesh-<pid>-<n>a`/`b` joined by a veth pair,
/// 10.77.0.1 and 10.77.0.2; deleted (with the pair) on drop.
struct TwoPods {
    names: [String; 2],
}

impl TwoPods {
    fn new() -> Self {
        crate::mesh::testing::sweep_namespaces();
        // Tests run in parallel: each pair is numbered.
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let pid = std::process::id();
        let names = [
            format!("kedge-mesh-{pid}-{n}a"),
            format!("kedge-mesh-{pid}-{n}b"),
        ];
        let pods = Self { names };
        let [a, b] = &pods.names;
        let (link_a, link_b) = (format!("km{pid}{n}a"), format!("km{pid}{n}b"));
        let steps: Vec<Vec<&str>> = vec![
            vec!["netns", "add", a],
            vec!["netns", "add", b],
            vec![
                "link", "add", &link_a, "netns", a, "type", "veth", "peer", "name", &link_b,
                "netns", b,
            ],
            vec!["-n", a, "addr", "add", "10.77.0.1/24", "dev", &link_a],
            vec!["-n", b, "addr", "add", "10.77.0.2/24", "dev", &link_b],
            vec!["-n", a, "link", "set", &link_a, "up"],
            vec!["-n", b, "link", "set", &link_b, "up"],
            vec!["-n", a, "link", "set", "lo", "up"],
            vec!["-n", b, "link", "set", "lo", "up"],
        ];
        for args in steps {
            let out = Command::new("ip").args(&args).output().unwrap();
            assert!(out.status.success(), "ip {args:?}: {out:?}");
        }
        pods
    }

    fn netns(&self, i: usize) -> Arc<Netns> {
        Arc::new(Netns::open(&Path::new("/var/run/netns").join(&self.names[i])).unwrap())
    }
}

impl Drop for TwoPods {
    fn drop(&mut self) {
        for name in &self.names {
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
    }
}

/// An echo server on `port` of every address of `ns`; the addresses its
/// connections came from.
fn echo_in(ns: &Netns, port: u16) -> Arc<Mutex<Vec<SocketAddr>>> {
    let app =
        TcpListener::from_std(ns.listen(SocketAddr::from(([0, 0, 0, 0], port))).unwrap()).unwrap();
    let peers = Arc::new(Mutex::new(Vec::new()));
    let seen = peers.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, peer)) = app.accept().await {
            seen.lock().push(peer);
            tokio::spawn(async move {
                let (mut r, mut w) = socket.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    peers
}

/// `ns`'s proxy: its outbound listener, each captured connection carried
/// on by [`dial`]: through the tunnel with `tls` when `meshed` says the
/// destination is in the mesh (as `server`), else straight.
fn outbound_proxy(
    ns: Arc<Netns>,
    meshed: impl Fn(SocketAddr) -> bool + Clone + Send + Sync + 'static,
    tls: Option<(Arc<rustls::ClientConfig>, String)>,
) {
    let pool = Arc::new(TunnelPool::default());
    let outbound = TcpListener::from_std(
        ns.listen(SocketAddr::from(([0, 0, 0, 0], OUTBOUND_PORT)))
            .unwrap(),
    )
    .unwrap();
    tokio::spawn(async move {
        while let Ok((app, _)) = outbound.accept().await {
            let (ns, meshed, tls, pool) = (ns.clone(), meshed.clone(), tls.clone(), pool.clone());
            tokio::spawn(async move {
                let destination = original_destination(&app).unwrap();
                let route = match &tls {
                    Some((_, identity)) if meshed(destination) => Route::Tunnel {
                        destination,
                        identity: identity.clone(),
                    },
                    _ => Route::Direct(destination),
                };
                let config = |_: &str| Ok(tls.as_ref().unwrap().0.clone());
                let mut upstream = dial(&ns, &route, &pool, config).await.unwrap();
                let mut app = app;
                tokio::io::copy_bidirectional(&mut app, &mut upstream)
                    .await
                    .unwrap();
            });
        }
    });
}

/// What an application in `ns` gets back for `text` from `destination`.
async fn exchange(ns: &Netns, destination: SocketAddr, text: &str) -> String {
    let socket = ns
        .run(|| std::net::TcpStream::connect(destination))
        .unwrap();
    socket.set_nonblocking(true).unwrap();
    let mut socket = tokio::net::TcpStream::from_std(socket).unwrap();
    socket.write_all(text.as_bytes()).await.unwrap();
    let mut echoed = vec![0u8; text.len()];
    socket.read_exact(&mut echoed).await.unwrap();
    String::from_utf8(echoed).unwrap()
}

#[tokio::test]
async fn a_pods_connection_crosses_the_tunnel_and_arrives_with_its_identity() {
    let pods = TwoPods::new();
    let (a, b) = (pods.netns(0), pods.netns(1));
    let dir = tempfile::tempdir().unwrap();
    let ca = MeshCa::ensure(dir.path()).unwrap();
    let (client_id, server_id) = (issue(&ca, "client"), issue(&ca, "server"));
    for ns in [&a, &b] {
        ns.apply_nft(&capture_rules(HBONE_PORT, None)).unwrap();
    }

    // Pod B: its application (an echo server on :8080), and B's tunnel
    // listener, which reaches the application from inside B with the
    // caller's address.
    let app_peers = echo_in(&b, 8080);
    b.route_answers_to_proxy().unwrap();
    let callers = Arc::new(Mutex::new(Vec::new()));
    let tunnel = TcpListener::from_std(
        b.listen(SocketAddr::from(([0, 0, 0, 0], HBONE_PORT)))
            .unwrap(),
    )
    .unwrap();
    let server = server_config(&server_id, ca.pem()).unwrap();
    let (seen, b_inside) = (callers.clone(), b.clone());
    tokio::spawn(async move {
        while let Ok((tcp, caller)) = tunnel.accept().await {
            let seen = seen.clone();
            let b_inside = b_inside.clone();
            let connect: crate::mesh::tunnel::Connector = Arc::new(move |destination| {
                let b_inside = b_inside.clone();
                Box::pin(async move { b_inside.connect_as(caller.ip(), destination).await })
            });
            tokio::spawn(serve_connection(
                tcp,
                server.clone(),
                move |caller, destination| {
                    seen.lock().push((caller.to_string(), destination));
                    true
                },
                connect,
            ));
        }
    });

    // Pod A's proxy: everything to 10.77.0.2 is meshed.
    let client = client_config(&client_id, ca.pem(), vec![server_id.spiffe_id.clone()]).unwrap();
    outbound_proxy(
        a.clone(),
        |d: SocketAddr| d.ip() == IpAddr::V4(Ipv4Addr::new(10, 77, 0, 2)),
        Some((client, server_id.spiffe_id.clone())),
    );

    // Pod A's application, knowing nothing of the mesh; the second
    // connection rides the first one's session.
    let destination = SocketAddr::from(([10, 77, 0, 2], 8080));
    for text in ["hello through the mesh", "and again"] {
        assert_eq!(exchange(&a, destination, text).await, text);
    }
    let callers = callers.lock().clone();
    assert_eq!(
        callers,
        [
            (client_id.spiffe_id.clone(), destination),
            (client_id.spiffe_id.clone(), destination)
        ],
        "B's side saw A's identity and the destination A's application asked for"
    );
    let sources: Vec<IpAddr> = app_peers.lock().iter().map(SocketAddr::ip).collect();
    assert_eq!(
        sources,
        [IpAddr::V4(Ipv4Addr::new(10, 77, 0, 1)); 2],
        "B's application saw A's address, not its own"
    );
}

#[tokio::test]
async fn a_connection_to_a_pod_outside_the_mesh_goes_as_it_is() {
    let pods = TwoPods::new();
    let (a, b) = (pods.netns(0), pods.netns(1));
    // Only A is meshed; B has no capture rules and no proxy.
    a.apply_nft(&capture_rules(HBONE_PORT, None)).unwrap();
    echo_in(&b, 8080);
    outbound_proxy(a.clone(), |_| false, None);
    let destination = SocketAddr::from(([10, 77, 0, 2], 8080));
    assert_eq!(exchange(&a, destination, "plain").await, "plain");
}
