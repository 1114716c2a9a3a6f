//! The cluster DNS against unbound serving the same cluster names, in one
//! run: queries/s at saturation and latency at a fixed rate, measured with
//! `dnsperf` over UDP.
//!
//! The names are those of `SERVICES` ClusterIP Services in `default`
//! (`svc-N.default.svc.cluster.local`, A) and the SRV records of the named
//! port `http` of the first tenth of them
//! (`_http._tcp.svc-N.default.svc.cluster.local`). kedge's side is the
//! cluster DNS in this process, on a tokio runtime of `THREADS` workers,
//! its index fed the Service objects exactly as the API watch feeds it.
//! The peer is Debian's unbound with `THREADS` threads, the same records as
//! `local-data` of a static local zone (the way a cluster's names would be
//! served authoritatively by a general-purpose server). Both listen on
//! 127.0.0.1 on a free port; dnsperf shares the two cores with them.
//!
//! Each round runs, for each server in turn (the first alternating):
//! dnsperf at saturation for `SECONDS` (capped at `MAX_QPS`), then dnsperf
//! at a fixed `RATE` queries/s with per-query latencies (`-v`), from which
//! p50 and p99 come. The tables give medians over `ROUNDS`. CPU per query
//! is the server process's user + system time during the saturation run
//! divided by the queries answered. unbound is stopped with SIGTERM at the
//! end.
//!
//! ```sh
//! apt-get install dnsperf unbound
//! cargo bench --bench dns          # SERVICES=1000 ROUNDS=3 SECONDS=5 RATE=20000
//! ROUNDS=1 SECONDS=2 cargo bench --bench dns
//! ```

#[path = "support.rs"]
mod support;

use support::{cpu_seconds, median, Proc};

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use hickory_server::proto::op::{Message, Query, ResponseCode};
use hickory_server::proto::rr::{Name, RecordType};
use k8s_openapi::api::core::v1::Service;
use kedge_dns::{ClusterDns, DnsConfig};
use serde_json::json;

/// The allocator of the `kedge` binary, so the DNS measured here is the
/// one shipped.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Queries dnsperf keeps outstanding.
const OUTSTANDING: u32 = 100;

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A UDP port free on 127.0.0.1 just now.
fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The ClusterIP of Service `i`: 10.96.4.1 onwards, clear of the cluster
/// DNS address.
fn cluster_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 96, 4 + (i / 250) as u8, 1 + (i % 250) as u8)
}

fn service_name(i: usize) -> String {
    format!("svc-{i}.default.svc.cluster.local")
}

fn srv_name(i: usize) -> String {
    format!("_http._tcp.svc-{i}.default.svc.cluster.local")
}

fn services(count: usize) -> Vec<Service> {
    (0..count)
        .map(|i| {
            let ip = cluster_ip(i).to_string();
            serde_json::from_value(json!({
                "metadata": {"name": format!("svc-{i}"), "namespace": "default"},
                "spec": {"clusterIP": ip, "clusterIPs": [ip],
                         "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}
            }))
            .unwrap()
        })
        .collect()
}

fn unbound(dir: &Path, port: u16, threads: usize, count: usize, srv: usize) -> Proc {
    let mut conf = format!(
        "server:\n  interface: 127.0.0.1\n  port: {port}\n  do-daemonize: no\n  \
         username: \"\"\n  chroot: \"\"\n  directory: \"{dir}\"\n  pidfile: \"{dir}/unbound.pid\"\n  \
         use-syslog: no\n  logfile: \"\"\n  verbosity: 0\n  num-threads: {threads}\n  \
         so-reuseport: yes\n  access-control: 127.0.0.0/8 allow\n  module-config: \"iterator\"\n  \
         do-ip6: no\n  local-zone: \"cluster.local.\" static\n",
        dir = dir.display()
    );
    for i in 0..count {
        conf += &format!(
            "  local-data: \"{}. 5 IN A {}\"\n",
            service_name(i),
            cluster_ip(i)
        );
    }
    for i in 0..srv {
        conf += &format!(
            "  local-data: \"{}. 5 IN SRV 0 100 80 {}.\"\n",
            srv_name(i),
            service_name(i)
        );
    }
    conf += "remote-control:\n  control-enable: no\n";
    let path = dir.join("unbound.conf");
    std::fs::write(&path, conf).unwrap();
    let child = Command::new("unbound")
        .arg("-d")
        .arg("-c")
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("unbound (apt-get install unbound)");
    Proc(child)
}

/// Ask `server` for `name`/`rtype` over UDP, retrying while it starts.
fn ask(server: SocketAddr, name: &str, rtype: RecordType) -> Message {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut request = Message::query();
    request.metadata.id = 7;
    request.add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
    let bytes = request.to_vec().unwrap();
    let mut buf = [0u8; 4096];
    for _ in 0..50 {
        socket.send_to(&bytes, server).unwrap();
        if let Ok(n) = socket.recv(&mut buf) {
            return Message::from_vec(&buf[..n]).unwrap();
        }
    }
    panic!("{server} never answered");
}

/// The answer's records' data, sorted, as text.
fn rdata(message: &Message) -> Vec<String> {
    let mut v: Vec<String> = message.answers.iter().map(|r| r.data.to_string()).collect();
    v.sort();
    v
}

#[derive(Clone, Copy, Default)]
struct Run {
    qps: f64,
    completed: f64,
    lost: f64,
    cpu_us: f64,
    response_bytes: f64,
    p50_ms: f64,
    p99_ms: f64,
}

fn dnsperf(server: SocketAddr, queries: &Path, seconds: u64, qps: u64, verbose: bool) -> String {
    let mut cmd = Command::new("dnsperf");
    cmd.args([
        "-s",
        &server.ip().to_string(),
        "-p",
        &server.port().to_string(),
    ])
    .arg("-d")
    .arg(queries)
    .args(["-l", &seconds.to_string(), "-Q", &qps.to_string()])
    .args(["-q", &OUTSTANDING.to_string(), "-t", "2"]);
    if verbose {
        cmd.arg("-v");
    }
    let out = cmd
        .stderr(Stdio::null())
        .output()
        .expect("dnsperf (apt-get install dnsperf)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stat(output: &str, label: &str) -> f64 {
    output
        .lines()
        .find_map(|l| l.trim().strip_prefix(label))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

/// Saturation, then latency at a fixed rate, against one server whose
/// process is `pid`.
fn measure(server: SocketAddr, pid: u32, queries: &Path, seconds: u64, max: u64, rate: u64) -> Run {
    let before = cpu_seconds(pid);
    let out = dnsperf(server, queries, seconds, max, false);
    let cpu = cpu_seconds(pid) - before;
    let completed = stat(&out, "Queries completed:");
    let mut run = Run {
        qps: stat(&out, "Queries per second:"),
        completed,
        lost: stat(&out, "Queries lost:"),
        cpu_us: cpu * 1e6 / completed,
        response_bytes: out
            .lines()
            .find_map(|l| l.split_once("Average packet size:"))
            .and_then(|(_, sizes)| sizes.split("response ").nth(1)?.trim().parse().ok())
            .unwrap_or(f64::NAN),
        ..Run::default()
    };
    let out = dnsperf(server, queries, seconds, rate, true);
    let mut latencies: Vec<f64> = out
        .lines()
        .filter_map(|l| l.strip_prefix("> "))
        .filter_map(|l| l.split_whitespace().nth(3)?.parse::<f64>().ok())
        .collect();
    latencies.sort_by(f64::total_cmp);
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    if !latencies.is_empty() {
        run.p50_ms = at(0.50) * 1e3;
        run.p99_ms = at(0.99) * 1e3;
    }
    run
}

fn main() {
    let count: usize = env("SERVICES", 1000);
    let rounds: usize = env("ROUNDS", 3);
    let seconds: u64 = env("SECONDS", 5);
    let rate: u64 = env("RATE", 20_000);
    let max: u64 = env("MAX_QPS", 500_000);
    let threads: usize = env("THREADS", 1);
    let srv = count.div_ceil(10);
    let dir = tempfile::tempdir().unwrap();

    // The query file: every Service's A record, then the SRV records.
    let mut lines = String::new();
    for i in 0..count {
        lines += &format!("{} A\n", service_name(i));
    }
    for i in 0..srv {
        lines += &format!("{} SRV\n", srv_name(i));
    }
    let queries = dir.path().join("queries.txt");
    std::fs::write(&queries, lines).unwrap();

    // kedge: the cluster DNS in this process, fed the Services.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .unwrap();
    let (dns, server) = runtime.block_on(async {
        let dns = ClusterDns::new(DnsConfig {
            listen: vec![(Ipv4Addr::LOCALHOST, 0).into()],
            upstreams: vec![],
            ..DnsConfig::default()
        })
        .unwrap();
        dns.index().replace_services(&services(count));
        let server = dns.bind().await.unwrap();
        (dns, server)
    });
    let kedge = server.local_addrs()[0];

    // The peer.
    let port = free_udp_port();
    let peer = unbound(dir.path(), port, threads, count, srv);
    let unbound_addr: SocketAddr = (Ipv4Addr::LOCALHOST, port).into();

    // Both serve the same records.
    for (name, rtype) in [
        (service_name(0), RecordType::A),
        (service_name(count - 1), RecordType::A),
        (srv_name(srv - 1), RecordType::SRV),
    ] {
        let k = ask(kedge, &name, rtype);
        let u = ask(unbound_addr, &name, rtype);
        assert_eq!(k.metadata.response_code, ResponseCode::NoError, "{name}");
        assert_eq!(rdata(&k), rdata(&u), "{name} {rtype}");
    }

    let me = std::process::id();
    let peer_pid = peer.0.id();
    println!(
        "{count} Services ({count} A + {srv} SRV names), {threads} server thread(s), \
         {rounds} rounds of {seconds} s; latency at {rate} queries/s\n"
    );
    println!(
        "dnsperf -s 127.0.0.1 -p PORT -d queries.txt -l {seconds} -Q {max} -q {OUTSTANDING} -t 2    \
         # saturation; then -Q {rate} -v for latency\n"
    );
    let mut k = Vec::new();
    let mut u = Vec::new();
    for round in 0..rounds {
        let run_k = || measure(kedge, me, &queries, seconds, max, rate);
        let run_u = || measure(unbound_addr, peer_pid, &queries, seconds, max, rate);
        if round % 2 == 0 {
            k.push(run_k());
            u.push(run_u());
        } else {
            u.push(run_u());
            k.push(run_k());
        }
        let (a, b) = (k[round], u[round]);
        eprintln!(
            "round {round}: kedge {:.0} q/s ({:.0} lost) {:.1} µs/q p50 {:.3} p99 {:.3} ms | \
             unbound {:.0} q/s ({:.0} lost) {:.1} µs/q p50 {:.3} p99 {:.3} ms",
            a.qps,
            a.lost,
            a.cpu_us,
            a.p50_ms,
            a.p99_ms,
            b.qps,
            b.lost,
            b.cpu_us,
            b.p50_ms,
            b.p99_ms
        );
    }
    let med = |v: &[Run], f: fn(&Run) -> f64| median(v.iter().map(f).collect());
    let (kq, uq) = (med(&k, |r| r.qps), med(&u, |r| r.qps));
    let (kc, uc) = (med(&k, |r| r.cpu_us), med(&u, |r| r.cpu_us));
    let (k50, u50) = (med(&k, |r| r.p50_ms), med(&u, |r| r.p50_ms));
    let (k99, u99) = (med(&k, |r| r.p99_ms), med(&u, |r| r.p99_ms));
    let completed: f64 = k.iter().chain(u.iter()).map(|r| r.completed).sum();
    let lost: f64 = k.iter().chain(u.iter()).map(|r| r.lost).sum();
    println!("| measure | kedge | unbound | kedge / unbound |");
    println!("| --- | ---: | ---: | ---: |");
    println!(
        "| queries/s at saturation | {kq:.0} | {uq:.0} | {:.2} |",
        kq / uq
    );
    println!("| CPU per query, µs | {kc:.1} | {uc:.1} | {:.2} |", kc / uc);
    let (kb, ub) = (med(&k, |r| r.response_bytes), med(&u, |r| r.response_bytes));
    println!(
        "| response size, bytes (average) | {kb:.0} | {ub:.0} | {:.2} |",
        kb / ub
    );
    println!(
        "| p50 at {rate} q/s, ms | {k50:.3} | {u50:.3} | {:.2} |",
        k50 / u50
    );
    println!(
        "| p99 at {rate} q/s, ms | {k99:.3} | {u99:.3} | {:.2} |",
        k99 / u99
    );
    let paired = median(k.iter().zip(&u).map(|(a, b)| a.qps / b.qps).collect());
    println!("\nqueries/s, kedge / unbound within each round (median): {paired:.2}");
    println!("{completed:.0} queries completed at saturation, {lost:.0} lost");

    drop(peer);
    runtime.block_on(server.shutdown()).unwrap();
    drop(dns);

    let changes: usize = env("CHANGES", 50);
    if changes > 0 {
        change_latency(changes);
    }
}

/// Service created → its name answers: the cluster DNS watching an
/// in-process API server, the clock running from the create's
/// acknowledgement to the first answer with the ClusterIP.
fn change_latency(changes: usize) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let port = free_udp_port();
    let addr: SocketAddr = (Ipv4Addr::LOCALHOST, port).into();
    let (api, client) = runtime.block_on(async {
        let api = kedge_control::server::start(
            kedge_config::cluster::ClusterConfig {
                data_dir: dir.path().to_path_buf(),
                listen: "127.0.0.1:0".parse().unwrap(),
                ..Default::default()
            },
            Default::default(),
        )
        .await
        .unwrap();
        let client = api.client().await.unwrap();
        let dns = ClusterDns::new(DnsConfig {
            listen: vec![addr],
            upstreams: vec![],
            ..DnsConfig::default()
        })
        .unwrap();
        tokio::spawn(dns.run(client.clone()));
        (api, client)
    });
    let services: kube::Api<Service> = kube::Api::namespaced(client, "default");
    let mut took = Vec::new();
    for i in 0..changes {
        let name = format!("change-{i}");
        let svc: Service = serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"ports": [{"port": 80}]}
        }))
        .unwrap();
        let created = runtime
            .block_on(services.create(&Default::default(), &svc))
            .unwrap();
        let started = std::time::Instant::now();
        let ip = created.spec.and_then(|s| s.cluster_ip).unwrap();
        let fqdn = format!("{name}.default.svc.cluster.local.");
        loop {
            let m = ask(addr, &fqdn, RecordType::A);
            if rdata(&m).contains(&ip) {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "{fqdn} never answered"
            );
        }
        took.push(started.elapsed().as_secs_f64() * 1e3);
    }
    took.sort_by(f64::total_cmp);
    let at = |q: f64| took[((took.len() as f64 * q) as usize).min(took.len() - 1)];
    println!(
        "\nService created → its name answers ({changes} Services): p50 {:.2} ms, p99 {:.2} ms",
        at(0.5),
        at(0.99)
    );
    drop(api);
}
