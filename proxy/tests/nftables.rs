//! The kernel mode against an in-process API server, with real traffic
//! through the kernel: each backend runs the end-to-end tests' echo server
//! in a network namespace of its own behind a veth pair, and the proxy
//! programs an nftables table this test names for itself. Needs root and
//! `nft`; skipped otherwise. Every namespace, link and table is named after
//! this process and removed by guards, even when an assertion fails.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use kedge_proxy::{ProxyConfig, ProxyMode};
use kube::api::{Api, Patch, PatchParams};
use kube::Client;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

mod common;

use common::{create_service, put_slice, slice, start_api, LinkGuard, PROXY_NAME};
use kedge_control::testing::eventually_some;

// === test harness ===

fn run(cmd: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(cmd)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{cmd}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Whether this process may program nftables and make namespaces.
fn privileged() -> bool {
    let root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false);
    root && run("nft", &["--version"]).is_ok() && run("ip", &["-V"]).is_ok()
}

/// The echo server of the end-to-end tests, built static so it runs in any
/// namespace.
fn build_echo(dir: &Path) -> PathBuf {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/images/echo.rs");
    let out = dir.join("echo");
    let status = Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
        .args([
            "--edition",
            "2021",
            "-O",
            "-C",
            "target-feature=+crt-static",
        ])
        .arg(&source)
        .arg("-o")
        .arg(&out)
        .status()
        .expect("running rustc");
    assert!(status.success(), "building the echo server");
    out
}

/// A backend: namespace `kn<pid><tag>`, a veth pair (`kn<pid><tag>h` on the
/// host, `kn<pid><tag>n` inside) on a /30 of its own, and the echo server
/// answering with `POD_NAME=<tag>` on port 8080. Dropping it kills the
/// server and deletes the namespace and the link.
struct Backend {
    ns: String,
    host_link: String,
    /// The host's end of the pair, where NodePorts are served.
    host_ip: Ipv4Addr,
    /// The backend's address.
    ip: Ipv4Addr,
    server: Option<Child>,
}

impl Backend {
    fn start(tag: char, index: u8, echo: &Path) -> Self {
        let pid = std::process::id();
        let ns = format!("kn{pid}{tag}");
        let host_link = format!("{ns}h");
        assert!(host_link.len() <= 15);
        let base = Ipv4Addr::new(10, 200 + index, (pid >> 6) as u8, ((pid & 0x3f) << 2) as u8);
        let o = base.octets();
        let host_ip = Ipv4Addr::new(o[0], o[1], o[2], o[3] + 1);
        let ip = Ipv4Addr::new(o[0], o[1], o[2], o[3] + 2);
        // From here on, dropping cleans up whatever was made.
        let mut b = Self {
            ns: ns.clone(),
            host_link: host_link.clone(),
            host_ip,
            ip,
            server: None,
        };
        let inner = format!("{ns}n");
        let host_cidr = format!("{host_ip}/30");
        let cidr = format!("{ip}/30");
        let host_ip_s = host_ip.to_string();
        let steps: Vec<(&str, Vec<&str>)> = vec![
            ("ip", vec!["netns", "add", &ns]),
            (
                "ip",
                vec![
                    "link", "add", &host_link, "type", "veth", "peer", "name", &inner, "netns", &ns,
                ],
            ),
            ("ip", vec!["addr", "add", &host_cidr, "dev", &host_link]),
            ("ip", vec!["link", "set", &host_link, "up"]),
            ("ip", vec!["-n", &ns, "addr", "add", &cidr, "dev", &inner]),
            ("ip", vec!["-n", &ns, "link", "set", &inner, "up"]),
            ("ip", vec!["-n", &ns, "link", "set", "lo", "up"]),
            (
                "ip",
                vec!["-n", &ns, "route", "add", "default", "via", &host_ip_s],
            ),
        ];
        for (cmd, args) in steps {
            run(cmd, &args).unwrap();
        }
        // `ip netns exec` execs the server itself: its pid is the server's.
        let server = Command::new("ip")
            .args(["netns", "exec", &ns])
            .arg(echo)
            .env("POD_NAME", tag.to_string())
            .env("PORT", "8080")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("starting the echo server");
        b.server = Some(server);
        b
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from((self.ip, 8080))
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        if let Some(mut s) = self.server.take() {
            let _ = s.kill();
            let _ = s.wait();
        }
        let _ = run("ip", &["link", "del", &self.host_link]);
        let _ = run("ip", &["netns", "del", &self.ns]);
    }
}

/// Deletes the test's nftables table even if the proxy did not get to.
struct TableGuard(String);

impl Drop for TableGuard {
    fn drop(&mut self) {
        let _ = run("nft", &["delete", "table", "ip", &self.0]);
    }
}

/// TCP connections the table's reject chain has turned away. With the
/// holder the kernel would refuse a ClusterIP on its own; the counter shows
/// that the table did.
fn rejected_tcp(table: &str) -> u64 {
    let out = Command::new("nft")
        .args(["list", "chain", "ip", table, "reject-chain"])
        .output()
        .expect("nft list chain");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.contains("tcp reset"))
        .and_then(|l| l.split("counter packets ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn table_exists(name: &str) -> bool {
    run("nft", &["list", "table", "ip", name]).is_ok()
}

/// One HTTP request on a fresh connection; the name of the backend that
/// answered.
async fn ask(addr: SocketAddr) -> std::io::Result<String> {
    let mut s = tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(addr))
        .await
        .map_err(|_| std::io::Error::other("connect timed out"))??;
    s.write_all(b"GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        .await?;
    let mut body = String::new();
    tokio::time::timeout(Duration::from_secs(2), s.read_to_string(&mut body))
        .await
        .map_err(|_| std::io::Error::other("no answer"))??;
    let pod = body
        .split("\"pod\":\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .ok_or_else(|| std::io::Error::other(format!("no pod in {body:?}")))?;
    Ok(pod.to_string())
}

/// Who answers `n` connections made one after another.
async fn answers(addr: SocketAddr, n: usize) -> Vec<String> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(ask(addr).await.unwrap());
    }
    out
}

fn refused(r: &std::io::Result<String>) -> bool {
    matches!(r, Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused)
}

async fn patch_service(client: &Client, name: &str, spec: serde_json::Value) {
    let api: Api<Service> = Api::namespaced(client.clone(), "default");
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({ "spec": spec })),
    )
    .await
    .unwrap();
}

// === tests ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_ip_and_node_port_through_the_kernel() {
    if !privileged() {
        eprintln!("skipped: needs root, nft and ip");
        return;
    }
    let pid = std::process::id();
    let dir = tempfile::tempdir().unwrap();
    let echo = build_echo(dir.path());
    let a = Backend::start('a', 0, &echo);
    let b = Backend::start('b', 1, &echo);
    for backend in [&a, &b] {
        eventually_some("the echo server", || async {
            ask(backend.addr()).await.ok()
        })
        .await;
    }

    let c = start_api().await;
    // In the API server's 10.96.0.0/12, apart from the userspace tests' 10.101–10.110.
    let cluster_ip = Ipv4Addr::new(10, 111, (pid >> 8) as u8, pid as u8);
    let node_port = 30000 + (pid % 2000) as u16;
    create_service(
        &c.client,
        "web",
        json!({
            "type": "NodePort",
            "clusterIP": cluster_ip.to_string(),
            "ports": [{"name": "p", "port": 80, "targetPort": 8080, "nodePort": node_port}],
        }),
    )
    .await;
    let both = |ready: bool| {
        let mut s = slice(
            "web",
            "web-1",
            8080,
            "TCP",
            &[(IpAddr::V4(a.ip), ready), (IpAddr::V4(b.ip), ready)],
        );
        // a runs on this proxy's node, b on another.
        s.endpoints[1].node_name = Some("node-b".into());
        s
    };
    put_slice(&c.client, both(true)).await;

    let table = format!("kedge_t{pid}");
    let holder = format!("kn{pid}k");
    let _table_guard = TableGuard(table.clone());
    let _link_guard = LinkGuard(holder.clone());
    let metrics = Arc::new(kedge_proxy::Metrics::new());
    let config = ProxyConfig {
        mode: ProxyMode::Nftables,
        nftables_table: table.clone(),
        node_name: "node-a".into(),
        // The host's end of a's pair stands for the node's address.
        node_addresses: vec![IpAddr::V4(a.host_ip)],
        holder_interface: Some(holder.clone()),
        service_proxy_name: Some(PROXY_NAME.into()),
        metrics: metrics.clone(),
        ..Default::default()
    };
    let proxy = tokio::spawn(kedge_proxy::run(c.client.clone(), config));

    // ClusterIP: random over both endpoints.
    let front = SocketAddr::from((cluster_ip, 80));
    eventually_some("the ClusterIP to answer", || async {
        ask(front).await.ok()
    })
    .await;
    let seen = answers(front, 40).await;
    assert!(seen.iter().any(|n| n == "a"), "{seen:?}");
    assert!(seen.iter().any(|n| n == "b"), "{seen:?}");

    // NodePort on the node address, externalTrafficPolicy Cluster: both.
    let node_front = SocketAddr::from((a.host_ip, node_port));
    let seen = answers(node_front, 40).await;
    assert!(
        seen.iter().any(|n| n == "a") && seen.iter().any(|n| n == "b"),
        "{seen:?}"
    );

    // externalTrafficPolicy Local: the NodePort only reaches a, the
    // ClusterIP still both.
    patch_service(&c.client, "web", json!({"externalTrafficPolicy": "Local"})).await;
    eventually_some("the NodePort to keep to the local endpoint", || async {
        answers(node_front, 20)
            .await
            .iter()
            .all(|n| n == "a")
            .then_some(())
    })
    .await;
    let seen = answers(front, 40).await;
    assert!(seen.iter().any(|n| n == "b"), "{seen:?}");

    // ClientIP affinity: this host's connections stick to one endpoint.
    patch_service(
        &c.client,
        "web",
        json!({"sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}}}),
    )
    .await;
    eventually_some("affinity sets in the table", || async {
        let out = Command::new("nft")
            .args(["list", "table", "ip", &table])
            .output()
            .ok()?;
        String::from_utf8_lossy(&out.stdout)
            .contains("update @aff-")
            .then_some(())
    })
    .await;
    let seen = answers(front, 20).await;
    assert!(seen.iter().all(|n| n == &seen[0]), "{seen:?}");

    // From a pod (a namespace's connection DNATed in prerouting). Docker's
    // FORWARD policy on this machine drops traffic between our veths, so the
    // endpoint is a listener on the host's end of a's pair (input, not
    // forward). Needs busybox for the client.
    if run("busybox", &["true"]).is_ok() {
        let listener = tokio::net::TcpListener::bind((a.host_ip, 0)).await.unwrap();
        let host_ep = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = listener.accept().await else {
                    return;
                };
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(b"HTTP/1.0 200 OK\r\n\r\n{\"pod\":\"host\"}\n")
                    .await;
            }
        });
        let host_svc_ip = Ipv4Addr::new(10, 111, (pid >> 8) as u8 ^ 0x80, pid as u8);
        create_service(
            &c.client,
            "from-pod",
            json!({"clusterIP": host_svc_ip.to_string(), "ports": [{"name": "p", "port": 80}]}),
        )
        .await;
        put_slice(
            &c.client,
            slice(
                "from-pod",
                "from-pod-1",
                host_ep.port(),
                "TCP",
                &[(host_ep.ip(), true)],
            ),
        )
        .await;
        let url = format!("http://{host_svc_ip}/");
        let from_b = || async {
            let out = tokio::process::Command::new("ip")
                .args([
                    "netns", "exec", &b.ns, "timeout", "3", "busybox", "wget", "-qO-", &url,
                ])
                .stdin(Stdio::null())
                .output()
                .await
                .unwrap();
            (
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        };
        eventually_some("a pod to reach the ClusterIP", || async {
            from_b().await.0.contains("\"host\"").then_some(())
        })
        .await;
        // And a pod is refused at once when the Service has no endpoint.
        put_slice(
            &c.client,
            slice(
                "from-pod",
                "from-pod-1",
                host_ep.port(),
                "TCP",
                &[(host_ep.ip(), false)],
            ),
        )
        .await;
        eventually_some("a pod to be refused", || async {
            from_b().await.1.contains("refused").then_some(())
        })
        .await;
        assert!(rejected_tcp(&table) > 0);
        server.abort();
    } else {
        eprintln!("no busybox: the pod path (prerouting) is not exercised");
    }

    // No ready endpoint: refused at once (a reset, not a timeout), on the
    // ClusterIP and the NodePort.
    put_slice(&c.client, both(false)).await;
    eventually_some("the ClusterIP to refuse", || async {
        refused(&ask(front).await).then_some(())
    })
    .await;
    let before = rejected_tcp(&table);
    let r = ask(node_front).await;
    assert!(refused(&r), "{r:?}");
    let r = ask(front).await;
    assert!(refused(&r), "{r:?}");
    assert!(rejected_tcp(&table) >= before + 2);

    let text = metrics.encode();
    assert!(text.contains("kedge_proxy_nftables_rules "), "{text}");
    assert!(
        text.contains("kedge_proxy_sync_duration_seconds_count"),
        "{text}"
    );

    // Stopping the proxy removes its table and its holder.
    assert!(table_exists(&table));
    proxy.abort();
    let _ = proxy.await;
    assert!(!table_exists(&table), "the table outlived the proxy");
    assert!(run("ip", &["link", "show", "dev", &holder]).is_err());
}
