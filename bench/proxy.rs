//! The service proxy's data planes against a direct connection, in the
//! same run: ClusterIP TCP throughput and connection rate through the
//! userspace mode and the nftables mode, as ratios of the same client
//! talking to the backend directly; and how long the nftables mode takes
//! to program 1,000 and 10,000 Services.
//!
//! The backend is this binary again, run in a network namespace of its own
//! behind a veth pair (as a pod is), listening on one port per path so
//! that the paths never share a connection's four-tuple (TIME_WAIT and PAWS
//! would otherwise mix them). The userspace proxy runs on a one-thread
//! runtime of its own; the client on another. Rounds alternate the order
//! of the paths; the figures are medians. Every load loop is bounded in
//! count and time, and the namespace, links and tables (named after this
//! process) are removed at the end, also on a panic.
//!
//! The switch latency is the whole path of an endpoint change: an
//! EndpointSlice patched through an in-process API server, the proxy's
//! watch, its table, its data plane, until a new connection to the
//! ClusterIP reaches the new endpoint (a client connecting in a loop, each
//! connection asking the backend which port it reached).
//!
//! ```sh
//! cargo bench --bench proxy                 # ROUNDS=3 BYTES_MIB=256 SERVICES=1000,10000 SWITCHES=20
//! ROUNDS=1 BYTES_MIB=64 SERVICES=1000 cargo bench --bench proxy
//! TRAFFIC=0 SWITCHES=0 SERVICES=1000 cargo bench --bench proxy   # sync time only
//! TRAFFIC=0 SERVICES= SWITCHES=20 cargo bench --bench proxy      # switch latency only
//! ```
//!
//! Needs root and `nft`.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kedge_proxy::table::{Endpoint, ServicePortEntry};
use kedge_proxy::{
    NftablesProxier, Protocol, Proxier, ProxyConfig, ProxyMode, ProxyTable, ServiceKey,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Set in the backend's environment: run as the backend.
const BACKEND_ENV: &str = "KEDGE_PROXY_BENCH_BACKEND";
/// The backend's ports: direct, behind userspace, behind nftables.
const PORTS: [u16; 3] = [8001, 8002, 8003];
/// The backend's ports the switch rounds move between: two behind the
/// userspace mode, two behind the nftables mode.
const SWITCH_PORTS: [[u16; 2]; 2] = [[8004, 8005], [8006, 8007]];
/// Connection-rate load: concurrent clients, and per round the most
/// connections and the longest time.
const CLIENTS: usize = 4;
const MAX_CONNECTIONS: usize = 8000;
const RATE_TIME: Duration = Duration::from_secs(2);

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    if std::env::var_os(BACKEND_ENV).is_some() {
        backend();
        return;
    }
    let rounds: usize = env_or("ROUNDS", 3).max(1);
    let bytes: u64 = env_or::<u64>("BYTES_MIB", 256).max(1) << 20;
    let sizes: Vec<usize> = std::env::var("SERVICES")
        .unwrap_or_else(|_| "1000,10000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let switches: usize = env_or("SWITCHES", 20);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        if env_or("TRAFFIC", 1) != 0 {
            traffic(rounds, bytes).await;
        }
        for n in sizes {
            sync_time(n).await;
        }
    });
    if switches > 0 {
        switch_latency(switches);
    }
}

// === the backend ===

/// Per connection: `P` → one byte back, then close (connection rate);
/// `T` + u64 → that many bytes, then close (throughput).
fn backend() {
    for port in PORTS.into_iter().chain(SWITCH_PORTS.into_iter().flatten()) {
        let listener = std::net::TcpListener::bind(("0.0.0.0", port)).expect("binding");
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                std::thread::spawn(move || serve(conn));
            }
        });
    }
    // Killed by the bench when it is done.
    loop {
        std::thread::park();
    }
}

fn serve(mut conn: std::net::TcpStream) -> std::io::Result<()> {
    let _ = conn.set_nodelay(true);
    let mut cmd = [0u8; 1];
    conn.read_exact(&mut cmd)?;
    match cmd[0] {
        b'P' => conn.write_all(b"p"),
        // Which port was reached (the switch rounds).
        b'I' => {
            let port = conn.local_addr()?.port();
            conn.write_all(&port.to_be_bytes())
        }
        b'T' => {
            let mut n = [0u8; 8];
            conn.read_exact(&mut n)?;
            let mut left = u64::from_be_bytes(n);
            let chunk = vec![7u8; 256 << 10];
            while left > 0 {
                let k = left.min(chunk.len() as u64) as usize;
                conn.write_all(&chunk[..k])?;
                left -= k as u64;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

// === the network ===

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("running ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The backend's namespace, veth pair and process.
struct Net {
    ns: String,
    link: String,
    backend_ip: Ipv4Addr,
    child: Option<Child>,
}

impl Net {
    fn start() -> Self {
        let pid = std::process::id();
        let ns = format!("kb{pid}");
        let link = format!("kb{pid}h");
        let base = Ipv4Addr::new(10, 202, (pid >> 6) as u8, ((pid & 0x3f) << 2) as u8);
        let o = base.octets();
        let host_ip = Ipv4Addr::new(o[0], o[1], o[2], o[3] + 1);
        let backend_ip = Ipv4Addr::new(o[0], o[1], o[2], o[3] + 2);
        let mut net = Self {
            ns: ns.clone(),
            link: link.clone(),
            backend_ip,
            child: None,
        };
        let inner = format!("kb{pid}n");
        ip(&["netns", "add", &ns]);
        ip(&[
            "link", "add", &link, "type", "veth", "peer", "name", &inner, "netns", &ns,
        ]);
        ip(&["addr", "add", &format!("{host_ip}/30"), "dev", &link]);
        ip(&["link", "set", &link, "up"]);
        ip(&[
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{backend_ip}/30"),
            "dev",
            &inner,
        ]);
        ip(&["-n", &ns, "link", "set", &inner, "up"]);
        ip(&["-n", &ns, "link", "set", "lo", "up"]);
        ip(&[
            "-n",
            &ns,
            "route",
            "add",
            "default",
            "via",
            &host_ip.to_string(),
        ]);
        let exe = std::env::current_exe().unwrap();
        net.child = Some(
            Command::new("ip")
                .args(["netns", "exec", &ns])
                .arg(exe)
                .env(BACKEND_ENV, "1")
                .stdin(Stdio::null())
                .spawn()
                .expect("starting the backend"),
        );
        net
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.link])
            .output();
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).output();
    }
}

fn one_service(cluster_ip: Ipv4Addr, endpoint: SocketAddr) -> ProxyTable {
    ProxyTable {
        ports: vec![ServicePortEntry {
            service: ServiceKey::new("bench", "svc"),
            port_name: "p".into(),
            protocol: Protocol::Tcp,
            cluster_ips: vec![IpAddr::V4(cluster_ip)],
            port: 80,
            node_port: None,
            load_balancer: false,
            external_local: false,
            internal_local: false,
            affinity: None,
            http: None,
            sniff: None,
            traffic_split: Default::default(),
            endpoints: vec![Endpoint {
                addr: endpoint,
                node_name: None,
            }],
        }],
    }
}

// === traffic ===

async fn throughput(addr: SocketAddr, bytes: u64) -> f64 {
    let mut s = TcpStream::connect(addr).await.expect("connecting");
    let start = Instant::now();
    let mut req = vec![b'T'];
    req.extend_from_slice(&bytes.to_be_bytes());
    s.write_all(&req).await.unwrap();
    let mut buf = vec![0u8; 256 << 10];
    let mut got = 0u64;
    while got < bytes {
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
            .await
            .expect("throughput read timed out")
            .unwrap();
        assert!(n > 0, "closed after {got} of {bytes} bytes");
        got += n as u64;
    }
    got as f64 / (1 << 20) as f64 / start.elapsed().as_secs_f64()
}

/// Connections per second: each connects, asks for one byte, reads to the
/// end and closes.
async fn connection_rate(addr: SocketAddr) -> f64 {
    let start = Instant::now();
    let per_client = MAX_CONNECTIONS / CLIENTS;
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        tasks.push(tokio::spawn(async move {
            let mut done = 0usize;
            while done < per_client && start.elapsed() < RATE_TIME {
                let mut s = tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(addr))
                    .await
                    .expect("connect timed out")
                    .expect("connecting");
                let _ = s.set_nodelay(true);
                s.write_all(b"P").await.unwrap();
                let mut b = Vec::with_capacity(1);
                s.read_to_end(&mut b).await.unwrap();
                assert_eq!(b, b"p");
                done += 1;
            }
            done
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    total as f64 / start.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

async fn traffic(rounds: usize, bytes: u64) {
    let pid = std::process::id();
    let net = Net::start();
    let backend = |i: usize| SocketAddr::from((net.backend_ip, PORTS[i]));
    let ready = Instant::now();
    while TcpStream::connect(backend(0)).await.is_err() {
        assert!(
            ready.elapsed() < Duration::from_secs(10),
            "the backend did not start"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Userspace: its own one-thread runtime, as the proxy would have.
    let user_ip = Ipv4Addr::new(10, 203, (pid >> 8) as u8, pid as u8);
    let user_table = one_service(user_ip, backend(1));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<()>();
    let user_holder = format!("kb{pid}u");
    let user_thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let config = ProxyConfig {
                holder_interface: Some(user_holder),
                // The userspace mode's redirect table, its own.
                nftables_table: format!("kedge_u{pid}"),
                ..Default::default()
            };
            let mut proxier = Proxier::new(&config).await.expect("userspace proxier");
            proxier.sync(&user_table).await;
            assert!(!proxier.has_pending());
            let _ = ready_tx.send(());
            let _ = stop_rx.await;
        });
    });
    ready_rx.await.expect("the userspace proxy started");

    let nft_ip = Ipv4Addr::new(10, 204, (pid >> 8) as u8, pid as u8);
    let nft_config = ProxyConfig {
        mode: ProxyMode::Nftables,
        nftables_table: format!("kedge_b{pid}"),
        holder_interface: Some(format!("kb{pid}k")),
        ..Default::default()
    };
    let mut nft = NftablesProxier::new(&nft_config)
        .await
        .expect("nftables proxier");
    nft.sync(&Arc::new(one_service(nft_ip, backend(2)))).await;
    assert!(!nft.has_pending(), "the nftables table was not applied");

    let paths = [
        ("direct", backend(0)),
        ("userspace", SocketAddr::from((user_ip, 80))),
        ("nftables", SocketAddr::from((nft_ip, 80))),
    ];
    let mut mib_s = vec![Vec::new(); 3];
    let mut conn_s = vec![Vec::new(); 3];
    for round in 0..rounds {
        for k in 0..3 {
            let i = (k + round) % 3;
            let (name, addr) = paths[i];
            let t = throughput(addr, bytes).await;
            let c = connection_rate(addr).await;
            eprintln!("round {round}: {name}: {t:.0} MiB/s, {c:.0} connections/s");
            mib_s[i].push(t);
            conn_s[i].push(c);
        }
    }
    let direct_t = median(mib_s[0].clone());
    let direct_c = median(conn_s[0].clone());
    println!(
        "\n{} MiB on one connection; connections: {CLIENTS} clients, up to {MAX_CONNECTIONS} or {:?} per round; medians of {rounds} rounds\n",
        bytes >> 20,
        RATE_TIME
    );
    println!("| path | MiB/s | × direct | connections/s | × direct |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    for i in 0..3 {
        let t = median(mib_s[i].clone());
        let c = median(conn_s[i].clone());
        println!(
            "| {} | {t:.0} | {:.2} | {c:.0} | {:.2} |",
            paths[i].0,
            t / direct_t,
            c / direct_c
        );
    }
    let _ = stop_tx.send(());
    let _ = user_thread.join();
    drop(nft);
    drop(net);
}

// === sync time ===

/// `n` Services of two endpoints each, on addresses nothing else uses
/// (and that no traffic is sent to).
fn services(n: usize, shift: u8) -> ProxyTable {
    let ports = (0..n)
        .map(|i| {
            let ep = |k: u8| Endpoint {
                addr: SocketAddr::from((
                    Ipv4Addr::new(10, 207, (i >> 8) as u8, i as u8),
                    8000 + u16::from(k + shift),
                )),
                node_name: None,
            };
            ServicePortEntry {
                service: ServiceKey::new("bench", &format!("svc-{i}")),
                port_name: "http".into(),
                protocol: Protocol::Tcp,
                cluster_ips: vec![IpAddr::V4(Ipv4Addr::new(10, 206, (i >> 8) as u8, i as u8))],
                port: 80,
                node_port: None,
                load_balancer: false,
                external_local: false,
                internal_local: false,
                affinity: None,
                http: None,
                sniff: None,
                traffic_split: Default::default(),
                endpoints: vec![ep(0), ep(1)],
            }
        })
        .collect();
    ProxyTable { ports }
}

async fn sync_time(n: usize) {
    let pid = std::process::id();
    let config = ProxyConfig {
        mode: ProxyMode::Nftables,
        nftables_table: format!("kedge_s{pid}"),
        holder_interface: None,
        metrics: Arc::new(kedge_proxy::Metrics::new()),
        ..Default::default()
    };
    let node = kedge_proxy::NodeInfo::default();
    let table = Arc::new(services(n, 0));
    let start = Instant::now();
    let rendered = kedge_proxy::nftables::render(
        &table,
        &kedge_proxy::nftables::RenderOptions {
            table: &config.nftables_table,
            node: &node,
            locally_served: &Default::default(),
            local_ports: &Default::default(),
        },
    );
    let render = start.elapsed();
    let mut nft = NftablesProxier::new(&config)
        .await
        .expect("nftables proxier");
    let start = Instant::now();
    nft.sync(&table).await;
    let first = start.elapsed();
    assert!(!nft.has_pending(), "{n} Services were not applied");
    // One Service more, then one Service's endpoints move, then that
    // Service goes: each a partial update of the table (median of 5).
    let one = |k: usize| {
        let mut t = services(n, 0);
        t.ports
            .push(services(n + 1, k as u8 % 2).ports.pop().unwrap());
        t
    };
    let mut added = Vec::new();
    let mut moved = Vec::new();
    let mut removed = Vec::new();
    for k in 0..5 {
        // Built before the clock starts: only the sync is timed.
        let (with_one, moved_one) = (Arc::new(one(0)), Arc::new(one(1 + k)));
        let start = Instant::now();
        nft.sync(&with_one).await;
        added.push(start.elapsed());
        let start = Instant::now();
        nft.sync(&moved_one).await;
        moved.push(start.elapsed());
        let start = Instant::now();
        nft.sync(&table).await;
        removed.push(start.elapsed());
        assert!(!nft.has_pending(), "a partial update was not applied");
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2].as_secs_f64() * 1e3
    };
    // Every Service's endpoints move: every chain is refilled.
    let all_moved = Arc::new(services(n, 1));
    let start = Instant::now();
    nft.sync(&all_moved).await;
    let update = start.elapsed();
    assert!(
        !nft.has_pending(),
        "the update of {n} Services was not applied"
    );
    drop(nft);
    let compile = table_compile_time(n);
    println!(
        "\n{n} Services (2 endpoints each), {} rules, {} KiB of script: render {:.1} ms, first sync {:.0} ms, \
         one Service added {:.1} ms, its endpoints moved {:.1} ms, removed {:.1} ms, every Service's endpoints moved {:.0} ms, \
         table compiled from the watched objects {:.1} ms",
        rendered.rules,
        rendered.text().len() >> 10,
        render.as_secs_f64() * 1e3,
        first.as_secs_f64() * 1e3,
        median(&mut added),
        median(&mut moved),
        median(&mut removed),
        update.as_secs_f64() * 1e3,
        compile.as_secs_f64() * 1e3
    );
}

/// How long the proxy takes to compile its [`ProxyTable`] from `n`
/// Services and their EndpointSlices as the watch holds them (done once
/// per sync, before the proxier sees the table; median of 5).
fn table_compile_time(n: usize) -> Duration {
    use k8s_openapi::api::core::v1::Service;
    use k8s_openapi::api::discovery::v1::EndpointSlice;
    let mut state = kedge_proxy::ServiceState::new();
    for i in 0..n {
        let svc: Service = serde_json::from_value(serde_json::json!({
            "metadata": {"namespace": "bench", "name": format!("svc-{i}")},
            "spec": {
                "clusterIP": format!("10.206.{}.{}", i >> 8, i & 255),
                "clusterIPs": [format!("10.206.{}.{}", i >> 8, i & 255)],
                "ports": [{"name": "http", "port": 80, "protocol": "TCP"}],
            },
        }))
        .unwrap();
        let slice: EndpointSlice = serde_json::from_value(serde_json::json!({
            "metadata": {
                "namespace": "bench",
                "name": format!("svc-{i}-abc"),
                "labels": {"kubernetes.io/service-name": format!("svc-{i}")},
            },
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8000, "protocol": "TCP"}],
            "endpoints": [
                {"addresses": [format!("10.207.{}.{}", i >> 8, i & 255)], "conditions": {"ready": true}},
                {"addresses": [format!("10.208.{}.{}", i >> 8, i & 255)], "conditions": {"ready": true}},
            ],
        }))
        .unwrap();
        state.apply_service(&svc);
        state.apply_slice(&slice);
    }
    let mut times: Vec<Duration> = (0..5)
        .map(|_| {
            let start = Instant::now();
            let table = state.table();
            let elapsed = start.elapsed();
            assert_eq!(table.ports.len(), n);
            elapsed
        })
        .collect();
    times.sort();
    times[2]
}

// === switch latency ===

/// The backend port a new connection to `addr` reaches, if it connects.
fn reached_port(addr: SocketAddr) -> Option<u16> {
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_millis(500))).ok()?;
    s.write_all(b"I").ok()?;
    let mut port = [0u8; 2];
    s.read_exact(&mut port).ok()?;
    Some(u16::from_be_bytes(port))
}

/// `rounds` endpoint moves per mode through an in-process API server and
/// `kedge_proxy::run`, each timed from the PATCH of the EndpointSlice to
/// the first new connection that reaches the new endpoint.
fn switch_latency(rounds: usize) {
    use k8s_openapi::api::core::v1::Service;
    use k8s_openapi::api::discovery::v1::EndpointSlice;
    use kube::api::{Api, Patch, PatchParams, PostParams};
    use serde_json::json;

    let pid = std::process::id();
    let net = Net::start();
    let backend_ip = net.backend_ip;
    // The API server and the proxies on a runtime of their own; the client
    // connects from this thread, blocking.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let prefix = format!("10.205.{}", pid % 250);
    let cfg = kedge_config::cluster::ClusterConfig {
        data_dir: dir.path().join("data"),
        listen: std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port"),
        service_cidr: format!("{prefix}.0/24"),
        ..Default::default()
    };
    // On a worker: the store opens in `block_in_place`.
    let running = rt
        .block_on(rt.spawn(kedge_control::server::start(cfg, Default::default())))
        .unwrap()
        .expect("starting the API server");
    let client = rt.block_on(running.client()).expect("API client");

    // One selector-less Service per mode, each served only by its own proxy
    // (the service-proxy-name label), with a slice written here.
    let modes = [(ProxyMode::Userspace, 20u8), (ProxyMode::Nftables, 21u8)];
    let mut proxies = Vec::new();
    let mut syncs = Vec::new();
    for (i, (mode, last)) in modes.iter().enumerate() {
        let name = format!("switch-{mode}");
        let services: Api<Service> = Api::namespaced(client.clone(), "default");
        let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
        rt.block_on(async {
            services
                .create(
                    &PostParams::default(),
                    &serde_json::from_value(json!({
                        "metadata": {"name": name, "labels": {
                            kedge_proxy::SERVICE_PROXY_NAME_LABEL: name}},
                        "spec": {"clusterIP": format!("{prefix}.{last}"),
                            "ports": [{"name": "p", "port": 80, "protocol": "TCP"}]}
                    }))
                    .unwrap(),
                )
                .await
                .expect("creating the Service");
            slices
                .create(
                    &PostParams::default(),
                    &serde_json::from_value(json!({
                        "metadata": {"name": name, "labels": {
                            "kubernetes.io/service-name": name,
                            "endpointslice.kubernetes.io/managed-by": "bench"}},
                        "addressType": "IPv4",
                        "endpoints": [{"addresses": [backend_ip.to_string()],
                            "conditions": {"ready": true}}],
                        "ports": [{"name": "p", "port": SWITCH_PORTS[i][0], "protocol": "TCP"}]
                    }))
                    .unwrap(),
                )
                .await
                .expect("creating the EndpointSlice");
        });
        let metrics = Arc::new(kedge_proxy::Metrics::new());
        syncs.push(metrics.clone());
        let config = ProxyConfig {
            mode: *mode,
            metrics,
            node_name: "bench".into(),
            holder_interface: Some(format!("kb{pid}w{i}")),
            service_proxy_name: Some(name.clone()),
            // Each mode's own table (userspace: its redirects).
            nftables_table: format!("kedge_w{pid}x{i}"),
            ..Default::default()
        };
        proxies.push(rt.spawn(kedge_proxy::run(client.clone(), config)));
    }

    let mut results = Vec::new();
    for (i, (mode, last)) in modes.iter().enumerate() {
        let name = format!("switch-{mode}");
        let addr = SocketAddr::from(([10, 205, (pid % 250) as u8, *last], 80));
        let first = Instant::now();
        while reached_port(addr) != Some(SWITCH_PORTS[i][0]) {
            assert!(
                first.elapsed() < Duration::from_secs(10),
                "{mode}: the Service never answered"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
        let mut acked = Vec::new();
        let mut switched = Vec::new();
        let mut probes = 0usize;
        for round in 0..rounds {
            let to = SWITCH_PORTS[i][(round + 1) % 2];
            let patch = json!({"ports": [{"name": "p", "port": to, "protocol": "TCP"}]});
            // The PATCH on the runtime, the probes from here at once: the
            // data plane may switch before the PATCH's answer arrives.
            let start = Instant::now();
            let (api, slice) = (slices.clone(), name.clone());
            let patched = rt.spawn(async move {
                api.patch(&slice, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .expect("patching the EndpointSlice");
                start.elapsed()
            });
            loop {
                probes += 1;
                if reached_port(addr) == Some(to) {
                    break;
                }
                assert!(
                    start.elapsed() < Duration::from_secs(5),
                    "{mode}: traffic never moved to port {to}"
                );
            }
            switched.push(start.elapsed().as_secs_f64() * 1e3);
            acked.push(rt.block_on(patched).unwrap().as_secs_f64() * 1e3);
            // Let the old endpoint's connections drain between rounds.
            std::thread::sleep(Duration::from_millis(50));
        }
        // The proxy's own time per sync: its sync-duration histogram.
        let text = syncs[i].encode();
        let value = |name: &str| -> f64 {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
                .unwrap_or(0.0)
        };
        let sync_ms = value("kedge_proxy_sync_duration_seconds_sum") * 1e3
            / value("kedge_proxy_sync_duration_seconds_count").max(1.0);
        results.push((*mode, acked, switched, probes, sync_ms));
    }
    for p in proxies {
        p.abort();
    }
    running.shutdown();
    // Dropping the runtime drops the proxies: holders and the table go.
    drop(rt);
    drop(net);

    println!(
        "\nEndpointSlice PATCH → first new connection reaching the new endpoint, {rounds} moves per mode (ms)\n"
    );
    println!("| mode | PATCH acked p50 | switched p50 | switched p90 | switched max | probes | proxy sync mean |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (mode, acked, switched, probes, sync_ms) in results {
        let pct = |v: &[f64], q: f64| {
            let mut v = v.to_vec();
            v.sort_by(|a, b| a.total_cmp(b));
            v[((v.len() - 1) as f64 * q).round() as usize]
        };
        println!(
            "| {mode} | {:.2} | {:.2} | {:.2} | {:.2} | {probes} | {sync_ms:.2} |",
            pct(&acked, 0.5),
            pct(&switched, 0.5),
            pct(&switched, 0.9),
            pct(&switched, 1.0),
        );
    }
}
