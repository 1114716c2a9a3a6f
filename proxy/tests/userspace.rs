//! The userspace proxy against an in-process API server, with real sockets:
//! echo backends on loopback, ClusterIPs on a holder bridge each test names
//! for itself, NodePorts and load-balancer ports on 127.0.0.1.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use kedge_proxy::{Backends, Frontend, Protocol, Proxier, ProxyConfig, ServiceKey};
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::Client;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

mod common;

use common::{create_service, put_slice, slice, start_api, LinkGuard, PROXY_NAME};
use kedge_control::testing::eventually_some;

// === test harness ===

/// A running proxy; dropping it stops the proxy and removes its interface.
struct RunningProxy {
    task: tokio::task::JoinHandle<Result<(), kedge_proxy::Error>>,
    metrics: Arc<kedge_proxy::Metrics>,
    link: LinkGuard,
}

impl Drop for RunningProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A holder name and a ClusterIP unique to this process and test.
fn names(test: u8) -> (String, Ipv4Addr) {
    let pid = std::process::id();
    let name = format!("kp{pid}t{test}");
    assert!(name.len() <= 15);
    let ip = Ipv4Addr::new(10, 100 + test, (pid >> 8) as u8, pid as u8);
    (name, ip)
}

fn start_proxy(client: &Client, holder: &str, node_addresses: Vec<IpAddr>) -> RunningProxy {
    let metrics = Arc::new(kedge_proxy::Metrics::new());
    let config = ProxyConfig {
        node_name: "node-a".into(),
        node_addresses,
        holder_interface: Some(holder.into()),
        service_proxy_name: Some(PROXY_NAME.into()),
        metrics: metrics.clone(),
        // The redirect table, as unique as the holder.
        nftables_table: holder.into(),
        ..Default::default()
    };
    RunningProxy {
        task: tokio::spawn(kedge_proxy::run(client.clone(), config)),
        metrics,
        link: LinkGuard(holder.into()),
    }
}

fn link_addresses(name: &str) -> Option<String> {
    let out = std::process::Command::new("ip")
        .args(["-o", "address", "show", "dev", name])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A TCP backend that greets with its name, then echoes.
async fn tcp_backend(name: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                s.write_all(format!("{name}\n").as_bytes()).await?;
                let (mut r, mut w) = s.split();
                tokio::io::copy(&mut r, &mut w).await?;
                Ok::<_, std::io::Error>(())
            });
        }
    });
    addr
}

/// A UDP backend that answers `name:payload`.
async fn udp_backend(name: &'static str) -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 2048];
        loop {
            let (n, peer) = socket.recv_from(&mut buf).await.unwrap();
            let mut answer = format!("{name}:").into_bytes();
            answer.extend_from_slice(&buf[..n]);
            socket.send_to(&answer, peer).await.unwrap();
        }
    });
    addr
}

/// Connect and read the backend's greeting.
async fn greeting(addr: SocketAddr) -> std::io::Result<(String, BufReader<TcpStream>)> {
    let s = tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(addr))
        .await
        .map_err(|_| std::io::Error::other("connect timed out"))??;
    let mut r = BufReader::new(s);
    let mut line = String::new();
    tokio::time::timeout(Duration::from_secs(2), r.read_line(&mut line))
        .await
        .map_err(|_| std::io::Error::other("no greeting"))??;
    if line.is_empty() {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Ok((line.trim().to_string(), r))
}

async fn echo(conn: &mut BufReader<TcpStream>, text: &str) -> String {
    conn.get_mut().write_all(text.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; text.len()];
    tokio::time::timeout(Duration::from_secs(2), conn.read_exact(&mut buf))
        .await
        .expect("echo timed out")
        .unwrap();
    String::from_utf8(buf).unwrap()
}

fn localhost() -> IpAddr {
    IpAddr::from([127, 0, 0, 1])
}

/// A port in the NodePort range that is free on 127.0.0.1 right now.
async fn free_node_port() -> u16 {
    let seed = std::process::id() as u64 * 7919
        + std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos() as u64;
    for i in 0..500u64 {
        let port = 30000 + ((seed + i * 131) % 2767) as u16;
        if TcpListener::bind((localhost(), port)).await.is_ok()
            && UdpSocket::bind((localhost(), port)).await.is_ok()
        {
            return port;
        }
    }
    panic!("no free NodePort");
}

// === tests ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_then_endpoint_removed_keeps_established_connections() {
    let c = start_api().await;
    let (holder, cluster_ip) = names(1);
    let a = tcp_backend("a").await;
    let b = tcp_backend("b").await;
    create_service(
        &c.client,
        "web",
        json!({"clusterIP": cluster_ip.to_string(), "ports": [{"name": "p", "port": 80, "targetPort": 8080}]}),
    )
    .await;
    // One slice per backend: an EndpointSlice has one port for all endpoints.
    put_slice(
        &c.client,
        slice("web", "web-a", a.port(), "TCP", &[(a.ip(), true)]),
    )
    .await;
    put_slice(
        &c.client,
        slice("web", "web-b", b.port(), "TCP", &[(b.ip(), true)]),
    )
    .await;
    let proxy = start_proxy(&c.client, &holder, vec![]);
    let front = SocketAddr::from((cluster_ip, 80));

    let first = eventually_some("the ClusterIP to answer", || async {
        greeting(front).await.ok()
    })
    .await;
    let mut seen = vec![first.0];
    for _ in 0..5 {
        seen.push(greeting(front).await.unwrap().0);
    }
    // Strict alternation between the two endpoints.
    for pair in seen.windows(2) {
        assert_ne!(pair[0], pair[1], "not round-robin: {seen:?}");
    }

    // An established connection to a, then a stops being ready.
    let mut on_a = loop {
        let (name, conn) = greeting(front).await.unwrap();
        if name == "a" {
            break conn;
        }
    };
    assert_eq!(echo(&mut on_a, "hello").await, "hello");
    put_slice(
        &c.client,
        slice("web", "web-a", a.port(), "TCP", &[(a.ip(), false)]),
    )
    .await;
    eventually_some("new connections only to b", || async {
        let mut names = Vec::new();
        for _ in 0..4 {
            names.push(greeting(front).await.ok()?.0);
        }
        names.iter().all(|n| n == "b").then_some(())
    })
    .await;
    assert_eq!(echo(&mut on_a, "still there").await, "still there");

    let metrics = proxy.metrics.encode();
    assert!(
        metrics.contains(r#"kedge_proxy_connections_total{namespace="default",service="web",port="p",protocol="TCP"}"#),
        "{metrics}"
    );
    assert!(
        metrics.contains("kedge_proxy_sync_duration_seconds_count"),
        "{metrics}"
    );

    // Stopping the proxy removes its interface.
    let name = proxy.link.0.clone();
    proxy.task.abort();
    drop(proxy);
    eventually_some("the holder interface removed", || async {
        link_addresses(&name).is_none().then_some(())
    })
    .await;
}

/// A host process (a hostNetwork pod) listening on the wildcard address
/// keeps its port while a Service uses the same port on a ClusterIP, in
/// whichever order the two come: the ClusterIP goes to the Service's
/// endpoint, every other local address to the process. Binding the
/// ClusterIP's port on the host made the later of the two fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wildcard_listener_on_the_host_and_a_cluster_ip_share_a_port() {
    let c = start_api().await;
    let (holder, cluster_ip) = names(6);
    let backend = tcp_backend("service").await;
    // First the host process, then the Service on its port.
    let early = TcpListener::bind("0.0.0.0:0").await.unwrap();
    let early_port = early.local_addr().unwrap().port();
    // A port for a Service that comes first, taken by the host process after.
    let late_port = {
        let l = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let (_, late_ip) = names(7);
    for (name, ip, port) in [
        ("early", cluster_ip, early_port),
        ("late", late_ip, late_port),
    ] {
        create_service(
            &c.client,
            name,
            json!({"clusterIP": ip.to_string(), "ports": [{"name": "p", "port": port, "targetPort": 8080}]}),
        )
        .await;
        put_slice(
            &c.client,
            slice(name, name, backend.port(), "TCP", &[(backend.ip(), true)]),
        )
        .await;
    }
    let _proxy = start_proxy(&c.client, &holder, vec![]);
    for (ip, port) in [(cluster_ip, early_port), (late_ip, late_port)] {
        let front = SocketAddr::from((ip, port));
        let name = eventually_some("the ClusterIP to answer", || async {
            greeting(front).await.ok().map(|g| g.0)
        })
        .await;
        assert_eq!(name, "service");
    }
    let late = TcpListener::bind(("0.0.0.0", late_port))
        .await
        .expect("the wildcard address stays free for host processes");
    for (listener, ip, port) in [(early, cluster_ip, early_port), (late, late_ip, late_port)] {
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let _ = s.write_all(b"host\n").await;
            }
        });
        let (name, _) = greeting(SocketAddr::from((localhost(), port)))
            .await
            .unwrap();
        assert_eq!(name, "host", "127.0.0.1:{port} is the host process's");
        let (name, _) = greeting(SocketAddr::from((ip, port))).await.unwrap();
        assert_eq!(name, "service", "{ip}:{port} is the Service's");
    }
    // A port of the ClusterIP no Service has is refused, not handed to a
    // host process that listens on it.
    let other = TcpListener::bind("0.0.0.0:0").await.unwrap();
    let other_port = other.local_addr().unwrap().port();
    let err = greeting(SocketAddr::from((cluster_ip, other_port)))
        .await
        .expect_err("an unknown port of a ClusterIP");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_ready_endpoint_refuses_at_once() {
    let c = start_api().await;
    let (holder, cluster_ip) = names(2);
    let backend = tcp_backend("only").await;
    create_service(
        &c.client,
        "empty",
        json!({"clusterIP": cluster_ip.to_string(), "ports": [{"name": "p", "port": 80}]}),
    )
    .await;
    let _proxy = start_proxy(&c.client, &holder, vec![]);
    // The ClusterIP is held even without endpoints.
    eventually_some("the ClusterIP on the holder", || async {
        link_addresses(&holder)
            .filter(|out| out.contains(&format!("inet {cluster_ip}/32")))
            .map(|_| ())
    })
    .await;
    let front = SocketAddr::from((cluster_ip, 80));
    let refused = |what: &'static str| async move {
        let started = std::time::Instant::now();
        let err = greeting(front).await.expect_err(what);
        assert_eq!(
            err.kind(),
            std::io::ErrorKind::ConnectionRefused,
            "{what}: {err}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{what}: refused only after {:?}",
            started.elapsed()
        );
    };
    refused("no EndpointSlice").await;

    put_slice(
        &c.client,
        slice(
            "empty",
            "empty-1",
            backend.port(),
            "TCP",
            &[(backend.ip(), true)],
        ),
    )
    .await;
    eventually_some("the endpoint to answer", || async {
        greeting(front).await.ok()
    })
    .await;

    put_slice(
        &c.client,
        slice(
            "empty",
            "empty-1",
            backend.port(),
            "TCP",
            &[(backend.ip(), false)],
        ),
    )
    .await;
    eventually_some("refused again", || async {
        matches!(greeting(front).await, Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused)
            .then_some(())
    })
    .await;
    refused("endpoint not ready").await;

    // Deleting the Service takes its address off the holder.
    let api: Api<Service> = Api::namespaced(c.client.clone(), "default");
    api.delete("empty", &DeleteParams::default()).await.unwrap();
    eventually_some("the ClusterIP removed", || async {
        link_addresses(&holder)
            .filter(|out| !out.contains(&format!("inet {cluster_ip}/32")))
            .map(|_| ())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_port_and_load_balancer_on_the_node_address() {
    let c = start_api().await;
    let (holder, cluster_ip) = names(3);
    let backend = tcp_backend("np").await;
    let node_port = free_node_port().await;
    create_service(
        &c.client,
        "np",
        json!({
            "type": "NodePort",
            "clusterIP": cluster_ip.to_string(),
            "ports": [{"name": "p", "port": 80, "nodePort": node_port}],
        }),
    )
    .await;
    put_slice(
        &c.client,
        slice("np", "np-1", backend.port(), "TCP", &[(backend.ip(), true)]),
    )
    .await;
    // A LoadBalancer on another ClusterIP, its port and NodePort free on 127.0.0.1.
    let lb_ip = Ipv4Addr::new(10, 110, cluster_ip.octets()[2], cluster_ip.octets()[3]);
    let lb_port = free_node_port().await;
    let lb_node_port = loop {
        let p = free_node_port().await;
        if p != lb_port && p != node_port {
            break p;
        }
    };
    create_service(
        &c.client,
        "lb",
        json!({
            "type": "LoadBalancer",
            "clusterIP": lb_ip.to_string(),
            "ports": [{"name": "p", "port": lb_port, "nodePort": lb_node_port}],
        }),
    )
    .await;
    put_slice(
        &c.client,
        slice("lb", "lb-1", backend.port(), "TCP", &[(backend.ip(), true)]),
    )
    .await;

    let _proxy = start_proxy(&c.client, &holder, vec![localhost()]);
    let (name, mut conn) = eventually_some("the NodePort to answer", || async {
        greeting(SocketAddr::new(localhost(), node_port)).await.ok()
    })
    .await;
    assert_eq!(name, "np");
    assert_eq!(echo(&mut conn, "via NodePort").await, "via NodePort");
    greeting(SocketAddr::from((cluster_ip, 80))).await.unwrap();

    for port in [lb_port, lb_node_port] {
        eventually_some("the load-balancer port to answer", || async {
            greeting(SocketAddr::new(localhost(), port)).await.ok()
        })
        .await;
    }
    let api: Api<Service> = Api::namespaced(c.client.clone(), "default");
    eventually_some("load-balancer status", || async {
        let svc = api.get("lb").await.ok()?;
        let ingress = svc.status?.load_balancer?.ingress?;
        (ingress.len() == 1 && ingress[0].ip.as_deref() == Some("127.0.0.1")).then_some(())
    })
    .await;

    // externalTrafficPolicy: Local with the only endpoint on another node:
    // the NodePort refuses while the ClusterIP still answers.
    api.patch(
        "np",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"externalTrafficPolicy": "Local"}})),
    )
    .await
    .unwrap();
    let mut other_node = slice("np", "np-1", backend.port(), "TCP", &[(backend.ip(), true)]);
    other_node.endpoints[0].node_name = Some("node-b".into());
    put_slice(&c.client, other_node).await;
    eventually_some("the Local NodePort to refuse", || async {
        matches!(greeting(SocketAddr::new(localhost(), node_port)).await,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused)
        .then_some(())
    })
    .await;
    greeting(SocketAddr::from((cluster_ip, 80))).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_through_the_cluster_ip() {
    let c = start_api().await;
    let (holder, cluster_ip) = names(4);
    let a = udp_backend("a").await;
    let b = udp_backend("b").await;
    create_service(
        &c.client,
        "dns",
        json!({"clusterIP": cluster_ip.to_string(), "ports": [{"name": "p", "port": 53, "protocol": "UDP"}]}),
    )
    .await;
    put_slice(
        &c.client,
        slice("dns", "dns-a", a.port(), "UDP", &[(a.ip(), true)]),
    )
    .await;
    put_slice(
        &c.client,
        slice("dns", "dns-b", b.port(), "UDP", &[(b.ip(), true)]),
    )
    .await;
    let _proxy = start_proxy(&c.client, &holder, vec![]);
    let front = SocketAddr::from((cluster_ip, 53));

    // A connected socket only accepts datagrams from the ClusterIP itself.
    let ask = |text: &'static str| async move {
        let s = UdpSocket::bind("0.0.0.0:0").await.ok()?;
        s.connect(front).await.ok()?;
        s.send(text.as_bytes()).await.ok()?;
        let mut buf = [0u8; 512];
        let n = tokio::time::timeout(Duration::from_millis(500), s.recv(&mut buf))
            .await
            .ok()?
            .ok()?;
        Some((s, String::from_utf8_lossy(&buf[..n]).into_owned()))
    };
    let (flow, answer) = eventually_some("a UDP answer", || ask("q1")).await;
    assert!(answer == "a:q1" || answer == "b:q1", "{answer}");
    // The same client stays on its flow. A datagram can be lost: resend,
    // skipping late answers to earlier sends.
    let backend = &answer[..1];
    let flow = &flow;
    for i in 0..3 {
        let question = format!("again{i}");
        let answer = eventually_some("an answer on the flow", || {
            let question = question.clone();
            async move {
                flow.send(question.as_bytes()).await.ok()?;
                let mut buf = [0u8; 512];
                let n = tokio::time::timeout(Duration::from_millis(500), flow.recv(&mut buf))
                    .await
                    .ok()?
                    .ok()?;
                let answer = String::from_utf8_lossy(&buf[..n]).into_owned();
                answer.ends_with(&format!(":{question}")).then_some(answer)
            }
        })
        .await;
        assert_eq!(answer, format!("{backend}:again{i}"));
    }
    // New clients are spread over both endpoints.
    let seen = std::sync::Mutex::new(std::collections::BTreeSet::new());
    eventually_some("answers from both endpoints", || async {
        let (_, answer) = ask("q").await?;
        let mut seen = seen.lock().unwrap();
        seen.insert(answer);
        (seen.len() == 2).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxier_driven_from_a_table() {
    // No API server and no holder: frontends on loopback.
    let metrics = Arc::new(kedge_proxy::Metrics::new());
    let config = ProxyConfig {
        holder_interface: None,
        metrics: metrics.clone(),
        nftables_table: format!("kpx{}", std::process::id()),
        ..Default::default()
    };
    let mut proxier = Proxier::new(&config).await.unwrap();
    let a = tcp_backend("a").await;
    let b = tcp_backend("b").await;
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap().port()
    };
    let front = Frontend {
        addr: SocketAddr::new(localhost(), port),
        protocol: Protocol::Tcp,
    };
    let backends = |eps: Vec<SocketAddr>| Backends {
        service: ServiceKey::new("default", "direct"),
        port_name: "p".into(),
        endpoints: eps.into(),
        affinity: None,
    };
    proxier
        .apply(BTreeMap::from([(front, backends(vec![a, b]))]))
        .await;
    assert!(!proxier.has_pending());
    let names: Vec<String> = greetings(front.addr, 4).await;
    assert_eq!(names, ["a", "b", "a", "b"]);

    // ClientIP affinity: every connection from 127.0.0.1 to the same endpoint.
    let mut sticky = backends(vec![a, b]);
    sticky.affinity = Some(Duration::from_secs(60));
    proxier.apply(BTreeMap::from([(front, sticky)])).await;
    let names = greetings(front.addr, 4).await;
    assert!(names.iter().all(|n| n == &names[0]), "{names:?}");

    // An endpoint that refuses is skipped for the next one.
    // Bound but not listening: connections are refused, and no other test
    // can take the port while this one holds it.
    let dead_socket = tokio::net::TcpSocket::new_v4().unwrap();
    dead_socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let dead = dead_socket.local_addr().unwrap();
    proxier
        .apply(BTreeMap::from([(front, backends(vec![dead, b]))]))
        .await;
    assert_eq!(greetings(front.addr, 3).await, ["b", "b", "b"]);

    // Nothing to serve: the listener is closed and connections are refused.
    // The freed port is an ordinary ephemeral port, which another test of
    // this binary binding port 0 may be handed at once: a connection that
    // does get through must then not be the proxy's (no backend greets).
    proxier.apply(BTreeMap::new()).await;
    assert!(proxier.frontends().is_empty());
    match TcpStream::connect(front.addr).await {
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused),
        Ok(s) => {
            let mut line = String::new();
            let mut r = BufReader::new(s);
            let _ = tokio::time::timeout(Duration::from_millis(300), r.read_line(&mut line)).await;
            assert!(
                !["a", "b"].contains(&line.trim()),
                "the proxy still answers"
            );
        }
    }
    // And it can come back on the same port (unless someone else holds it now).
    proxier
        .apply(BTreeMap::from([(front, backends(vec![a]))]))
        .await;
    if !proxier.has_pending() {
        assert_eq!(greetings(front.addr, 1).await, ["a"]);
    }
}

/// Greetings of `n` connections made one after another.
async fn greetings(addr: SocketAddr, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(greeting(addr).await.unwrap().0);
    }
    out
}

#[tokio::test]
async fn holder_adopts_its_own_leftover_and_refuses_other_bridges() {
    let (name, ip) = names(5);
    let _guard = LinkGuard(name.clone());
    let mut holder = kedge_proxy::Holder::ensure(&name).await.unwrap();
    holder
        .sync(&[IpAddr::from(ip)].into_iter().collect())
        .await
        .unwrap();
    holder.keep();
    // A restart adopts the leftover with its addresses, and reconciles them.
    let mut holder = kedge_proxy::Holder::ensure(&name).await.unwrap();
    assert_eq!(
        holder.addresses().iter().copied().collect::<Vec<_>>(),
        [IpAddr::from(ip)]
    );
    holder.sync(&Default::default()).await.unwrap();
    assert!(!link_addresses(&name).unwrap().contains("inet "));
    drop(holder);
    assert!(link_addresses(&name).is_none());

    // A bridge some other tool made is left alone.
    let status = std::process::Command::new("ip")
        .args(["link", "add", &name, "type", "bridge"])
        .status()
        .unwrap();
    assert!(status.success());
    let err = kedge_proxy::Holder::ensure(&name).await.unwrap_err();
    assert!(matches!(err, kedge_proxy::HolderError::NotOurs(_)), "{err}");
    assert!(link_addresses(&name).is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_closes_listeners_and_waits_for_open_connections() {
    let config = ProxyConfig {
        holder_interface: None,
        nftables_table: format!("kpd{}", std::process::id()),
        ..Default::default()
    };
    let mut proxier = Proxier::new(&config).await.unwrap();
    let a = tcp_backend("a").await;
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap().port()
    };
    let front = Frontend {
        addr: SocketAddr::new(localhost(), port),
        protocol: Protocol::Tcp,
    };
    let backends = Backends {
        service: ServiceKey::new("default", "drained"),
        port_name: "p".into(),
        endpoints: vec![a].into(),
        affinity: None,
    };
    proxier.apply(BTreeMap::from([(front, backends)])).await;
    assert!(!proxier.has_pending());
    let (name, mut open) = greeting(front.addr).await.unwrap();
    assert_eq!(name, "a");

    let drained = tokio::spawn(async move {
        proxier.drain().await;
        proxier
    });
    // New connections are refused (or, should another test be handed the
    // freed port, are not the proxy's: no backend greets).
    eventually_some("the listener closed", || async {
        match greeting(front.addr).await {
            Ok((name, _)) if name == "a" => None,
            _ => Some(()),
        }
    })
    .await;
    // The open connection still carries data both ways, and holds the
    // drain until it closes.
    open.get_mut().write_all(b"still here\n").await.unwrap();
    let mut line = String::new();
    tokio::time::timeout(Duration::from_secs(2), open.read_line(&mut line))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(line, "still here\n");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !drained.is_finished(),
        "the drain ended with a connection open"
    );
    drop(open);
    let proxier = tokio::time::timeout(Duration::from_secs(5), drained)
        .await
        .expect("the drain ends once the connection closes")
        .unwrap();
    assert!(proxier.frontends().is_empty());
}
