//! The ingress proxy against nginx as the same reverse proxy, in one run:
//! requests/s and latency with `wrk`, plain HTTP and HTTPS over kept-alive
//! connections, and TLS handshakes/s (a new connection per request).
//!
//! One upstream serves both: an nginx instance answering a short fixed
//! body. The peer is a second nginx (Debian's) proxying to it the way
//! ingress-nginx's template does: HTTP/1.1 with kept-alive upstream
//! connections and the same forwarding headers kedge sets. kedge's side is
//! the ingress proxy with a route table compiled from an Ingress, a
//! Service, an EndpointSlice and a TLS Secret, exactly as the controller
//! compiles it from the API. Both proxies get two worker threads and no
//! access log; wrk shares the two cores with them. Each case runs `ROUNDS`
//! times, the two proxies taking turns to go first; the table gives
//! medians. Everything the bench starts is stopped at the end.
//!
//! ```sh
//! apt-get install nginx-light wrk
//! cargo bench --bench ingress                 # ROUNDS=3 SECONDS=8
//! ROUNDS=1 SECONDS=3 cargo bench --bench ingress
//! ```

#[path = "support.rs"]
mod support;

use support::{free_port, median, threads_cpu_seconds, tree_cpu_seconds, Proc};

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use kedge_ingress::table::{compile, EndpointRegistry, ObjectKey, Snapshot};
use serde_json::json;

/// The allocator of the `kedge` binary, so the proxy measured here is the
/// one shipped.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const HOST: &str = "bench.local";
const CONNECTIONS: u32 = 64;

fn nginx(dir: &Path, name: &str, servers: &str) -> Proc {
    let prefix = dir.join(name);
    std::fs::create_dir_all(prefix.join("logs")).unwrap();
    let conf = format!(
        "worker_processes 2;\n\
         daemon off;\n\
         pid {pid};\n\
         error_log {err} warn;\n\
         events {{ worker_connections 4096; }}\n\
         http {{\n\
           access_log off;\n\
           client_body_temp_path {p}/body; proxy_temp_path {p}/proxy;\n\
           fastcgi_temp_path {p}/fcgi; uwsgi_temp_path {p}/uwsgi; scgi_temp_path {p}/scgi;\n\
           {servers}\n\
         }}\n",
        pid = prefix.join("nginx.pid").display(),
        err = prefix.join("logs/error.log").display(),
        p = prefix.display(),
    );
    let conf_path = prefix.join("nginx.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let child = Command::new("nginx")
        .arg("-p")
        .arg(&prefix)
        .arg("-c")
        .arg(&conf_path)
        .stderr(Stdio::null())
        .spawn()
        .expect("nginx (apt-get install nginx-light)");
    Proc(child)
}

fn wait_port(addr: SocketAddr) {
    for _ in 0..200 {
        if std::net::TcpStream::connect(addr).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("{addr} never listened");
}

#[derive(Clone, Copy, Default)]
struct Wrk {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
    /// The proxy's CPU time per request, µs.
    cpu_us: f64,
}

fn parse_ms(s: &str) -> f64 {
    let s = s.trim();
    let (num, mul) = if let Some(v) = s.strip_suffix("us") {
        (v, 0.001)
    } else if let Some(v) = s.strip_suffix("ms") {
        (v, 1.0)
    } else if let Some(v) = s.strip_suffix('s') {
        (v, 1000.0)
    } else {
        (s, 1.0)
    };
    num.parse::<f64>().unwrap_or(f64::NAN) * mul
}

/// Run wrk against `url`; `cpu` reads the proxy's CPU seconds so far.
fn wrk(url: &str, seconds: u64, close: bool, cpu: impl Fn() -> f64) -> Wrk {
    let mut cmd = Command::new("wrk");
    cmd.args([
        "-t2",
        &format!("-c{CONNECTIONS}"),
        &format!("-d{seconds}s"),
        "--latency",
    ])
    .args(["-H", &format!("Host: {HOST}")]);
    if close {
        cmd.args(["-H", "Connection: close"]);
    }
    let before = cpu();
    let out = cmd.arg(url).output().expect("wrk (apt-get install wrk)");
    let used = cpu() - before;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut w = Wrk::default();
    for line in text.lines() {
        let t = line.trim();
        if let Some(v) = t.strip_prefix("Requests/sec:") {
            w.rps = v.trim().parse().unwrap_or(0.0);
        } else if let Some(v) = t.strip_prefix("50%") {
            w.p50_ms = parse_ms(v);
        } else if let Some(v) = t.strip_prefix("99%") {
            w.p99_ms = parse_ms(v);
        } else if t.starts_with("Non-2xx") || t.starts_with("Socket errors") {
            w.errors += t
                .split(|c: char| !c.is_ascii_digit())
                .filter_map(|n| n.parse::<u64>().ok())
                .sum::<u64>();
        }
    }
    assert!(w.rps > 0.0, "wrk printed no rate for {url}:\n{text}");
    w.cpu_us = used * 1e6 / (w.rps * seconds as f64);
    w
}

fn objects(upstream: SocketAddr, cert_pem: &str, key_pem: &str) -> Snapshot {
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let class: IngressClass = serde_json::from_value(json!({
        "metadata": {"name": "kedge"},
        "spec": {"controller": kedge_ingress::CONTROLLER_NAME}
    }))
    .unwrap();
    let ingress: Ingress = serde_json::from_value(json!({
        "metadata": {"name": "bench", "namespace": "default",
                     "annotations": {"nginx.ingress.kubernetes.io/ssl-redirect": "false"}},
        "spec": {"ingressClassName": "kedge",
                 "tls": [{"hosts": [HOST], "secretName": "bench-tls"}],
                 "rules": [{"host": HOST, "http": {"paths": [{"path": "/", "pathType": "Prefix",
                     "backend": {"service": {"name": "upstream", "port": {"number": 80}}}}]}}]}
    }))
    .unwrap();
    let service: Service = serde_json::from_value(json!({
        "metadata": {"name": "upstream", "namespace": "default"},
        "spec": {"ports": [{"name": "http", "port": 80, "targetPort": upstream.port()}]}
    }))
    .unwrap();
    let slice: EndpointSlice = serde_json::from_value(json!({
        "metadata": {"name": "upstream-1", "namespace": "default",
                     "labels": {"kubernetes.io/service-name": "upstream"}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": upstream.port(), "protocol": "TCP"}],
        "endpoints": [{"addresses": [upstream.ip().to_string()], "conditions": {"ready": true}}]
    }))
    .unwrap();
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "bench-tls", "namespace": "default"},
        "type": "kubernetes.io/tls",
        "data": {"tls.crt": b64(cert_pem), "tls.key": b64(key_pem)}
    }))
    .unwrap();
    let mut snap = Snapshot {
        ingresses: vec![Arc::new(ingress)],
        classes: vec![Arc::new(class)],
        services: HashMap::from([(ObjectKey::new("default", "upstream"), Arc::new(service))]),
        secrets: HashMap::from([(ObjectKey::new("default", "bench-tls"), Arc::new(secret))]),
        ..Default::default()
    };
    snap.add_slice(Arc::new(slice));
    snap
}

fn main() {
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let seconds: u64 = std::env::var("SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);
    let dir = tempfile::tempdir().unwrap();

    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec![HOST.to_string(), "127.0.0.1".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let (cert_pem, key_pem) = (cert.pem(), key.serialize_pem());
    std::fs::write(dir.path().join("tls.crt"), &cert_pem).unwrap();
    std::fs::write(dir.path().join("tls.key"), &key_pem).unwrap();

    // The upstream both proxies send to.
    let up_port = free_port();
    let upstream: SocketAddr = format!("127.0.0.1:{up_port}").parse().unwrap();
    let _up = nginx(
        dir.path(),
        "upstream",
        &format!(
            "server {{ listen 127.0.0.1:{up_port} reuseport; keepalive_requests 100000;\n\
               location / {{ default_type text/plain; return 200 \"hello from the upstream\\n\"; }} }}"
        ),
    );
    wait_port(upstream);

    // The peer: nginx as ingress-nginx configures it.
    let (n_http, n_https) = (free_port(), free_port());
    let headers = "proxy_http_version 1.1; proxy_set_header Connection \"\";\n\
        proxy_set_header Host $host; proxy_set_header X-Request-ID $request_id;\n\
        proxy_set_header X-Real-IP $remote_addr; proxy_set_header X-Forwarded-For $remote_addr;\n\
        proxy_set_header X-Forwarded-Host $host; proxy_set_header X-Forwarded-Port $server_port;\n\
        proxy_set_header X-Forwarded-Proto $scheme; proxy_set_header X-Forwarded-Scheme $scheme;\n\
        proxy_set_header X-Scheme $scheme; proxy_set_header Proxy \"\";";
    let peer = nginx(
        dir.path(),
        "peer",
        &format!(
            "upstream up {{ server {upstream}; keepalive 320; keepalive_requests 100000; }}\n\
             server {{ listen 127.0.0.1:{n_http} reuseport; listen 127.0.0.1:{n_https} ssl http2 reuseport;\n\
               server_name {HOST}; keepalive_requests 100000;\n\
               ssl_certificate {crt}; ssl_certificate_key {key};\n\
               location / {{ proxy_pass http://up; {headers} }} }}",
            crt = dir.path().join("tls.crt").display(),
            key = dir.path().join("tls.key").display(),
        ),
    );
    wait_port(format!("127.0.0.1:{n_http}").parse().unwrap());

    // kedge: the route table compiled from the objects, served by the proxy.
    let fallback = Arc::new(kedge_ingress::tls::TlsCert::fallback());
    let compiled = compile(
        &objects(upstream, &cert_pem, &key_pem),
        &Default::default(),
        &EndpointRegistry::default(),
        fallback.clone(),
    );
    assert!(compiled.problems.is_empty(), "{:?}", compiled.problems);
    let routes = kedge_ingress::new_routes(fallback);
    routes.store(Arc::new(compiled.table));
    let threads = std::env::var("THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    // The proxy as shipped, and the same proxy serving plain HTTP through
    // Pingora alone (its lean HTTP/1 path off), to see what that path gives.
    let start = |lean_http1: bool| {
        let listeners = kedge_ingress::Listeners::bind(
            &["127.0.0.1:0".parse().unwrap()],
            &["127.0.0.1:0".parse().unwrap()],
        )
        .unwrap();
        let server = kedge_ingress::server::start(
            routes.clone(),
            Arc::new(kedge_ingress::Metrics::new()),
            listeners,
            kedge_ingress::ServeOptions {
                threads,
                access_log: false,
                https_port: None,
                mesh: None,
                lean_http1,
            },
        )
        .unwrap();
        wait_port(server.http_addrs[0]);
        server
    };
    let server = start(true);
    let pingora = start(false);
    let (k_http, k_https) = (server.http_addrs[0].port(), server.https_addrs[0].port());
    let k_pingora = pingora.http_addrs[0].port();

    let cases: [(&str, &str, bool, u16); 4] = [
        ("HTTP/1.1, kept alive", "http", false, k_http),
        ("HTTPS, kept alive", "https", false, k_https),
        ("TLS handshake per request", "https", true, k_https),
        (
            "HTTP/1.1, kept alive, Pingora path",
            "http",
            false,
            k_pingora,
        ),
    ];
    println!("{rounds} rounds of {seconds} s, {CONNECTIONS} connections, 2 wrk threads\n");
    println!("| case | kedge req/s | kedge p50 / p99 ms | nginx req/s | nginx p50 / p99 ms | kedge / nginx | CPU µs/request, kedge / nginx |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    // CASES=1 runs only the first case (for profiling runs).
    let only: usize = std::env::var("CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases.len());
    for (name, scheme, close, kp) in cases.into_iter().take(only) {
        let np = if scheme == "http" { n_http } else { n_https };
        let mut k = Vec::new();
        let mut n = Vec::new();
        for round in 0..rounds {
            let kedge_cpu = || threads_cpu_seconds("ingress-proxy-");
            let nginx_cpu = || tree_cpu_seconds(peer.0.id());
            let run_k = || {
                wrk(
                    &format!("{scheme}://127.0.0.1:{kp}/"),
                    seconds,
                    close,
                    kedge_cpu,
                )
            };
            let run_n = || {
                wrk(
                    &format!("{scheme}://127.0.0.1:{np}/"),
                    seconds,
                    close,
                    nginx_cpu,
                )
            };
            if round % 2 == 0 {
                k.push(run_k());
                n.push(run_n());
            } else {
                n.push(run_n());
                k.push(run_k());
            }
        }
        let errors: u64 = k.iter().chain(n.iter()).map(|w| w.errors).sum();
        let med = |v: &[Wrk], f: fn(&Wrk) -> f64| median(v.iter().map(f).collect());
        let (krps, nrps) = (med(&k, |w| w.rps), med(&n, |w| w.rps));
        println!(
            "| {name} | {krps:.0} | {:.2} / {:.2} | {nrps:.0} | {:.2} / {:.2} | {:.2} | {:.1} / {:.1} |{}",
            med(&k, |w| w.p50_ms),
            med(&k, |w| w.p99_ms),
            med(&n, |w| w.p50_ms),
            med(&n, |w| w.p99_ms),
            krps / nrps,
            med(&k, |w| w.cpu_us),
            med(&n, |w| w.cpu_us),
            if errors > 0 {
                format!(" ({errors} errors)")
            } else {
                String::new()
            }
        );
    }
    drop(server);
    drop(pingora);
}
