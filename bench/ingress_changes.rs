//! How fast an Ingress change reaches traffic, and what 1,000 Ingresses
//! cost in memory: `kedge ingress` (a process of its own, watching a
//! `kedge server`) side by side with nginx (Debian's) reloaded with the
//! same change, in one run.
//!
//! - Ingress added → first request routed to it: a new host per round;
//!   the clock starts when the API server acknowledges the create and stops
//!   at the first 200 for that host. The peer: nginx's configuration
//!   rewritten with one more server block and `nginx -s reload`, the clock
//!   starting at the reload signal (ingress-nginx reloads nginx for every
//!   new host; writing the file is not counted).
//! - EndpointSlice changed → requests reach the new endpoint: the slice is
//!   switched between two upstreams; the clock stops at the first answer
//!   from the new one. (ingress-nginx applies endpoint changes without a
//!   reload, through Lua; no nginx figure is given for this row.)
//! - Resident memory of `kedge ingress` with 1,000 Ingresses (one host and
//!   path each, all routed), and of nginx (master and workers) with the
//!   same 1,000 server blocks.
//!
//! Bounded: `ROUNDS` changes of each kind (default 50), every wait 10 s at
//! most. Needs the release binary: `cargo build --release`.
//!
//! ```sh
//! cargo build --release && cargo bench --bench ingress_changes
//! ```

#[path = "support.rs"]
mod support;

use support::{free_port, Proc};

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(10);

fn kedge_bin() -> String {
    std::env::var("KEDGE_BIN").unwrap_or_else(|_| {
        let mut p = std::env::current_exe().unwrap();
        p.pop();
        p.pop();
        p.join("kedge").display().to_string()
    })
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

/// nginx's master and its workers.
fn nginx_rss_kib(master: u32) -> u64 {
    let mut total = rss_kib(master);
    if let Ok(children) = std::fs::read_to_string(format!("/proc/{master}/task/{master}/children"))
    {
        for pid in children.split_whitespace().filter_map(|p| p.parse().ok()) {
            total += rss_kib(pid);
        }
    }
    total
}

/// An upstream answering every request with its name.
fn upstream(name: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let mut seen = Vec::new();
                loop {
                    let Ok(n) = conn.read(&mut buf) else { return };
                    if n == 0 {
                        return;
                    }
                    seen.extend_from_slice(&buf[..n]);
                    while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                        seen.drain(..end + 4);
                        let resp = format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{name}",
                            name.len()
                        );
                        if conn.write_all(resp.as_bytes()).is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    addr
}

/// One GET on a fresh connection: the status and body.
fn get(addr: SocketAddr, host: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text.split_once("\r\n\r\n")?;
    Some((
        head.split_whitespace().nth(1)?.parse().ok()?,
        body.to_string(),
    ))
}

/// Poll until `check` holds; the time it took.
fn until(started: Instant, mut check: impl FnMut() -> bool) -> Duration {
    while !check() {
        assert!(started.elapsed() < WAIT, "change never took effect");
        std::thread::sleep(Duration::from_micros(200));
    }
    started.elapsed()
}

fn pct(v: &mut [Duration], p: f64) -> f64 {
    v.sort();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i].as_secs_f64() * 1000.0
}

fn ingress(name: &str, host: &str) -> Ingress {
    serde_json::from_value(json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"rules": [{"host": host, "http": {"paths": [{"path": "/", "pathType": "Prefix",
            "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}
    }))
    .unwrap()
}

fn slice(to: SocketAddr) -> EndpointSlice {
    serde_json::from_value(json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "web-1", "namespace": "default",
                     "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": to.port(), "protocol": "TCP"}],
        "endpoints": [{"addresses": [to.ip().to_string()], "conditions": {"ready": true}}]
    }))
    .unwrap()
}

fn nginx_conf(dir: &Path, port: u16, upstream: SocketAddr, hosts: usize) -> std::path::PathBuf {
    let mut servers = String::new();
    for i in 0..hosts {
        servers.push_str(&format!(
            "server {{ listen 127.0.0.1:{port}; server_name host-{i}.bench;\n\
               location / {{ proxy_pass http://{upstream}; proxy_set_header Host $host; }} }}\n"
        ));
    }
    let p = dir.display();
    let conf = format!(
        "worker_processes 2; daemon off; pid {p}/nginx.pid; error_log {p}/error.log warn;\n\
         events {{ worker_connections 1024; }}\n\
         http {{ access_log off; server_names_hash_max_size 4096; server_names_hash_bucket_size 64;\n\
         client_body_temp_path {p}/body; proxy_temp_path {p}/proxy; fastcgi_temp_path {p}/fcgi;\n\
         uwsgi_temp_path {p}/uwsgi; scgi_temp_path {p}/scgi;\n\
         server {{ listen 127.0.0.1:{port} default_server; return 404; }}\n{servers} }}\n"
    );
    let path = dir.join("nginx.conf");
    std::fs::write(&path, conf).unwrap();
    path
}

#[tokio::main]
async fn main() {
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let dir = tempfile::tempdir().unwrap();
    let exe = kedge_bin();

    // The API server.
    let api_port = free_port();
    let data = dir.path().join("data");
    let _server = Proc(
        Command::new(&exe)
            .args(["server", "--data-dir"])
            .arg(&data)
            .args(["--listen", &format!("127.0.0.1:{api_port}")])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {exe}: {e} (cargo build --release)")),
    );
    let kubeconfig = data.join("kubeconfig");
    let client = loop {
        if kubeconfig.exists() {
            if let Ok(c) = kedge_control::server::client_from_kubeconfig(&kubeconfig).await {
                if c.apiserver_version().await.is_ok() {
                    break c;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let pp = PatchParams::apply("bench").force();
    let classes: Api<k8s_openapi::api::networking::v1::IngressClass> = Api::all(client.clone());
    classes
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "kedge",
                    "annotations": {"ingressclass.kubernetes.io/is-default-class": "true"}},
                "spec": {"controller": kedge_ingress::CONTROLLER_NAME}
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    let (up_a, up_b) = (upstream("a"), upstream("b"));
    let services: Api<k8s_openapi::api::core::v1::Service> =
        Api::namespaced(client.clone(), "default");
    services
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "web"},
                "spec": {"ports": [{"name": "http", "port": 80}]}
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    slices
        .patch("web-1", &pp, &Patch::Apply(&slice(up_a)))
        .await
        .unwrap();

    // The controller, a process of its own.
    let http_port = free_port();
    let ingress_proc = Proc(
        Command::new(&exe)
            .arg("ingress")
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(["--listen-address", "127.0.0.1"])
            .args(["--http-port", &http_port.to_string()])
            .args(["--https-port", &free_port().to_string()])
            .args(["--metrics-addr", &format!("127.0.0.1:{}", free_port())])
            .args(["--threads", "2", "--no-access-log"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let kedge_addr: SocketAddr = format!("127.0.0.1:{http_port}").parse().unwrap();
    let ingresses: Api<Ingress> = Api::namespaced(client.clone(), "default");
    ingresses
        .create(&PostParams::default(), &ingress("warmup", "warmup.bench"))
        .await
        .unwrap();
    until(Instant::now(), || {
        get(kedge_addr, "warmup.bench").is_some_and(|r| r.0 == 200)
    });
    let idle_rss = rss_kib(ingress_proc.0.id());

    // Ingress added → routed.
    let mut kedge_add = Vec::new();
    for i in 0..rounds {
        let host = format!("add-{i}.bench");
        ingresses
            .create(&PostParams::default(), &ingress(&format!("add-{i}"), &host))
            .await
            .unwrap();
        let t = Instant::now();
        kedge_add.push(until(t, || {
            get(kedge_addr, &host).is_some_and(|r| r.0 == 200)
        }));
    }
    // EndpointSlice switched → the new endpoint answers.
    let mut kedge_slice = Vec::new();
    for i in 0..rounds {
        let (to, name) = if i % 2 == 0 { (up_b, "b") } else { (up_a, "a") };
        slices
            .patch("web-1", &pp, &Patch::Apply(&slice(to)))
            .await
            .unwrap();
        let t = Instant::now();
        kedge_slice.push(until(t, || {
            get(kedge_addr, "warmup.bench").is_some_and(|r| r.1 == name)
        }));
    }

    // The peer: nginx reloaded with one more server each round.
    let ndir = dir.path().join("nginx");
    std::fs::create_dir_all(&ndir).unwrap();
    let nport = free_port();
    let conf = nginx_conf(&ndir, nport, up_a, 1);
    let nginx = Proc(
        Command::new("nginx")
            .arg("-p")
            .arg(&ndir)
            .arg("-c")
            .arg(&conf)
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx (apt-get install nginx-light)"),
    );
    let nginx_addr: SocketAddr = format!("127.0.0.1:{nport}").parse().unwrap();
    until(Instant::now(), || {
        get(nginx_addr, "host-0.bench").is_some_and(|r| r.0 == 200)
    });
    let mut nginx_add = Vec::new();
    for i in 1..=rounds {
        nginx_conf(&ndir, nport, up_a, i + 1);
        let t = Instant::now();
        let ok = Command::new("nginx")
            .arg("-p")
            .arg(&ndir)
            .arg("-c")
            .arg(&conf)
            .args(["-s", "reload"])
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .success();
        assert!(ok, "nginx -s reload failed");
        let host = format!("host-{i}.bench");
        nginx_add.push(until(t, || {
            get(nginx_addr, &host).is_some_and(|r| r.0 == 200)
        }));
    }

    // Memory with 1,000 Ingresses (and nginx with 1,000 servers).
    let total = 1000;
    let existing = rounds + 1;
    for i in existing..total {
        ingresses
            .create(
                &PostParams::default(),
                &ingress(&format!("mem-{i}"), &format!("mem-{i}.bench")),
            )
            .await
            .unwrap();
    }
    let last = format!("mem-{}.bench", total - 1);
    until(Instant::now(), || {
        get(kedge_addr, &last).is_some_and(|r| r.0 == 200)
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    let kedge_rss = rss_kib(ingress_proc.0.id());
    nginx_conf(&ndir, nport, up_a, total);
    Command::new("nginx")
        .arg("-p")
        .arg(&ndir)
        .arg("-c")
        .arg(&conf)
        .args(["-s", "reload"])
        .stderr(Stdio::null())
        .status()
        .unwrap();
    let last = format!("host-{}.bench", total - 1);
    until(Instant::now(), || {
        get(nginx_addr, &last).is_some_and(|r| r.0 == 200)
    });
    // Old workers finish their requests and leave.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let nginx_rss = nginx_rss_kib(nginx.0.id());

    println!("{rounds} changes of each kind\n");
    println!("| change | kedge p50 / p99 ms | nginx reload p50 / p99 ms | nginx / kedge (p50) |");
    println!("| --- | ---: | ---: | ---: |");
    let (k50, k99) = (pct(&mut kedge_add, 0.5), pct(&mut kedge_add, 0.99));
    let (n50, n99) = (pct(&mut nginx_add, 0.5), pct(&mut nginx_add, 0.99));
    println!(
        "| Ingress added → first request routed | {k50:.2} / {k99:.2} | {n50:.2} / {n99:.2} | {:.1} |",
        n50 / k50
    );
    let (s50, s99) = (pct(&mut kedge_slice, 0.5), pct(&mut kedge_slice, 0.99));
    println!("| EndpointSlice switched → new endpoint answers | {s50:.2} / {s99:.2} | — | — |");
    println!();
    println!(
        "Resident memory: kedge ingress idle {:.1} MiB, with {total} Ingresses {:.1} MiB; \
         nginx with {total} server blocks {:.1} MiB (kedge / nginx {:.2}).",
        idle_rss as f64 / 1024.0,
        kedge_rss as f64 / 1024.0,
        nginx_rss as f64 / 1024.0,
        kedge_rss as f64 / nginx_rss as f64
    );
}
