//! API server throughput and latency, side by side with etcd (the store
//! under a Kubernetes API server) on the same machine in the same run.
//!
//! kedge is driven through the `kube` client over HTTPS (as a controller
//! would); etcd through its JSON gateway over plain HTTP with the same
//! object bodies. Both commit to disk before answering. Every phase is
//! bounded in count. Run with:
//!
//! ```sh
//! cargo bench --bench apiserver            # needs `etcd` (Debian: etcd-server)
//! ```
//!
//! kedge runs twice: on its embedded store, and with an etcd of its own as
//! its store (`--etcd-servers`, as a control plane of several machines).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use futures::StreamExt;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::TokioExecutor;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};

const SEQUENTIAL: usize = 1000;
const CONCURRENT_WRITERS: usize = 8;
const CONCURRENT_EACH: usize = 250;
const GETS: usize = 2000;
const LISTS: usize = 50;
const WATCHED: usize = 300;

struct Stats {
    ops: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Stats {
    fn from(mut latencies: Vec<Duration>, elapsed: Duration) -> Self {
        latencies.sort();
        Self {
            ops: latencies.len(),
            elapsed,
            latencies,
        }
    }
    fn per_sec(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64()
    }
    fn pct(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let i = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies[i]
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn payload() -> std::collections::BTreeMap<String, String> {
    [("config".to_string(), "x".repeat(512))].into()
}

fn configmap(name: &str) -> ConfigMap {
    ConfigMap {
        metadata: kube::api::ObjectMeta {
            name: Some(name.to_string()),
            labels: Some([("bench".to_string(), "yes".to_string())].into()),
            ..Default::default()
        },
        data: Some(payload()),
        ..Default::default()
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

// === kedge ===

async fn start_kedge(dir: &std::path::Path, extra: &[String]) -> (Proc, kube::Client) {
    let port = free_port();
    let exe = std::env::var("KEDGE_BIN").unwrap_or_else(|_| {
        let mut p = std::env::current_exe().unwrap();
        p.pop();
        p.pop();
        p.join("kedge").display().to_string()
    });
    let child = Proc(
        Command::new(&exe)
            .args(["server", "--data-dir"])
            .arg(dir)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("starting {exe}: {e} (build it with cargo build --release)")
            }),
    );
    // The admin's kubeconfig (authorized through RBAC) unless
    // KUBECONFIG_FILE names another of the data dir's (`super-admin.conf`:
    // `system:masters`, which no authorizer is asked about).
    let file = std::env::var("KUBECONFIG_FILE").unwrap_or_else(|_| "kubeconfig".into());
    let kubeconfig = dir.join(file);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if kubeconfig.exists() {
            let kc = kube::config::Kubeconfig::read_from(&kubeconfig).unwrap();
            let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
                .await
                .unwrap();
            let client = kube::Client::try_from(cfg).unwrap();
            if client.apiserver_version().await.is_ok() {
                return (child, client);
            }
        }
        assert!(Instant::now() < deadline, "kedge did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn bench_kedge(client: kube::Client) -> Vec<(&'static str, Stats)> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let mut out = Vec::new();

    let mut lat = Vec::new();
    let t = Instant::now();
    for i in 0..SEQUENTIAL {
        let s = Instant::now();
        api.create(&PostParams::default(), &configmap(&format!("seq-{i}")))
            .await
            .unwrap();
        lat.push(s.elapsed());
    }
    out.push(("create, sequential", Stats::from(lat, t.elapsed())));

    let t = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..CONCURRENT_WRITERS {
        let api = api.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            for i in 0..CONCURRENT_EACH {
                let s = Instant::now();
                api.create(&PostParams::default(), &configmap(&format!("par-{w}-{i}")))
                    .await
                    .unwrap();
                lat.push(s.elapsed());
            }
            lat
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.unwrap());
    }
    out.push(("create, 8 writers", Stats::from(lat, t.elapsed())));

    let mut lat = Vec::new();
    let t = Instant::now();
    for i in 0..GETS {
        let s = Instant::now();
        api.get(&format!("seq-{}", i % SEQUENTIAL)).await.unwrap();
        lat.push(s.elapsed());
    }
    out.push(("get", Stats::from(lat, t.elapsed())));

    // Lists are read as raw JSON on both sides: the figure is the server's,
    // not the client's typed decoding.
    let mut lat = Vec::new();
    let t = Instant::now();
    for _ in 0..LISTS {
        let s = Instant::now();
        let req = http::Request::get("/api/v1/namespaces/default/configmaps")
            .body(Vec::new())
            .unwrap();
        let text = client.request_text(req).await.unwrap();
        assert!(text.len() > SEQUENTIAL * 512);
        lat.push(s.elapsed());
    }
    out.push(("list 3000 objects", Stats::from(lat, t.elapsed())));

    // Watch delivery: time from a write's acknowledgement to its event.
    let rv = api
        .list(&ListParams::default().limit(1))
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut stream = api
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    let mut lat = Vec::new();
    let t = Instant::now();
    for i in 0..WATCHED {
        let name = format!("watch-{i}");
        api.create(&PostParams::default(), &configmap(&name))
            .await
            .unwrap();
        let acked = Instant::now();
        loop {
            match stream.next().await {
                Some(Ok(WatchEvent::Added(cm))) if cm.metadata.name.as_deref() == Some(&name) => {
                    break
                }
                Some(Ok(_)) => continue,
                other => panic!("watch ended: {other:?}"),
            }
        }
        lat.push(acked.elapsed());
    }
    out.push(("watch delivery after ack", Stats::from(lat, t.elapsed())));
    out
}

// === etcd ===

type Http = HttpClient<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

async fn etcd_post(http: &Http, port: u16, path: &str, body: String) -> Bytes {
    let req = hyper::Request::post(format!("http://127.0.0.1:{port}{path}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let resp = http.request(req).await.unwrap();
    assert!(resp.status().is_success(), "etcd {path}: {}", resp.status());
    resp.into_body().collect().await.unwrap().to_bytes()
}

fn etcd_value(name: &str) -> String {
    // The same JSON document kedge stores for the ConfigMap.
    serde_json::to_string(&serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "default", "labels": {"bench": "yes"},
                     "uid": "00000000-0000-0000-0000-000000000000", "creationTimestamp": "2026-01-01T00:00:00Z"},
        "data": payload(),
    }))
    .unwrap()
}

async fn etcd_put(http: &Http, port: u16, name: &str) {
    let key = format!("/registry/configmaps/default/{name}");
    etcd_post(
        http,
        port,
        "/v3/kv/put",
        format!(
            r#"{{"key":"{}","value":"{}"}}"#,
            b64(&key),
            b64(&etcd_value(name))
        ),
    )
    .await;
}

fn start_etcd(dir: &std::path::Path) -> Option<(Proc, u16)> {
    let client = free_port();
    let peer = free_port();
    let child = Command::new("etcd")
        .arg("--data-dir")
        .arg(dir)
        .args([
            "--listen-client-urls",
            &format!("http://127.0.0.1:{client}"),
        ])
        .args([
            "--advertise-client-urls",
            &format!("http://127.0.0.1:{client}"),
        ])
        .args(["--listen-peer-urls", &format!("http://127.0.0.1:{peer}")])
        .args([
            "--initial-advertise-peer-urls",
            &format!("http://127.0.0.1:{peer}"),
        ])
        .args([
            "--initial-cluster",
            &format!("default=http://127.0.0.1:{peer}"),
        ])
        .args(["--log-level", "error"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    Some((Proc(child), client))
}

async fn bench_etcd(port: u16) -> Vec<(&'static str, Stats)> {
    let http: Http = HttpClient::builder(TokioExecutor::new()).build_http();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let req = hyper::Request::post(format!("http://127.0.0.1:{port}/v3/kv/range"))
            .body(Full::new(Bytes::from(format!(
                r#"{{"key":"{}"}}"#,
                b64("x")
            ))))
            .unwrap();
        if http
            .request(req)
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            break;
        }
        assert!(Instant::now() < deadline, "etcd did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut out = Vec::new();

    let mut lat = Vec::new();
    let t = Instant::now();
    for i in 0..SEQUENTIAL {
        let s = Instant::now();
        etcd_put(&http, port, &format!("seq-{i}")).await;
        lat.push(s.elapsed());
    }
    out.push(("create, sequential", Stats::from(lat, t.elapsed())));

    let t = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..CONCURRENT_WRITERS {
        let http = http.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            for i in 0..CONCURRENT_EACH {
                let s = Instant::now();
                etcd_put(&http, port, &format!("par-{w}-{i}")).await;
                lat.push(s.elapsed());
            }
            lat
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.unwrap());
    }
    out.push(("create, 8 writers", Stats::from(lat, t.elapsed())));

    let mut lat = Vec::new();
    let t = Instant::now();
    for i in 0..GETS {
        let key = format!("/registry/configmaps/default/seq-{}", i % SEQUENTIAL);
        let s = Instant::now();
        etcd_post(
            &http,
            port,
            "/v3/kv/range",
            format!(r#"{{"key":"{}"}}"#, b64(&key)),
        )
        .await;
        lat.push(s.elapsed());
    }
    out.push(("get", Stats::from(lat, t.elapsed())));

    let mut lat = Vec::new();
    let t = Instant::now();
    let (start, end) = (
        "/registry/configmaps/default/",
        "/registry/configmaps/default0",
    );
    for _ in 0..LISTS {
        let s = Instant::now();
        let body = etcd_post(
            &http,
            port,
            "/v3/kv/range",
            format!(r#"{{"key":"{}","range_end":"{}"}}"#, b64(start), b64(end)),
        )
        .await;
        assert!(body.len() > SEQUENTIAL * 512);
        lat.push(s.elapsed());
    }
    out.push(("list 3000 objects", Stats::from(lat, t.elapsed())));

    // etcd's JSON gateway streams watch responses; measure the same way.
    let req = hyper::Request::post(format!("http://127.0.0.1:{port}/v3/watch"))
        .body(Full::new(Bytes::from(format!(
            r#"{{"create_request":{{"key":"{}","range_end":"{}"}}}}"#,
            b64("/registry/configmaps/default/watch-"),
            b64("/registry/configmaps/default/watch.")
        ))))
        .unwrap();
    let resp = http.request(req).await.unwrap();
    let mut body = resp.into_body();
    // The first message confirms the watch was created.
    let mut buf = Vec::new();
    let next_message =
        async |body: &mut hyper::body::Incoming, buf: &mut Vec<u8>| -> serde_json::Value {
            loop {
                if let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = buf.drain(..=pos).collect();
                    if let Ok(v) = serde_json::from_slice(&line) {
                        return v;
                    }
                    continue;
                }
                let frame = body.frame().await.unwrap().unwrap();
                if let Ok(d) = frame.into_data() {
                    buf.extend_from_slice(&d);
                }
            }
        };
    let _created = next_message(&mut body, &mut buf).await;
    let mut lat = Vec::new();
    let t = Instant::now();
    for i in 0..WATCHED {
        let name = format!("watch-{i}");
        etcd_put(&http, port, &name).await;
        let acked = Instant::now();
        loop {
            let m = next_message(&mut body, &mut buf).await;
            if m.pointer("/result/events")
                .and_then(|e| e.as_array())
                .is_some_and(|e| !e.is_empty())
            {
                break;
            }
        }
        lat.push(acked.elapsed());
    }
    out.push(("watch delivery after ack", Stats::from(lat, t.elapsed())));
    out
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let tmp = tempfile::tempdir().unwrap();
        println!("kedge API server vs etcd {} (same machine, same run)", etcd_version());
        let (kedge_proc, client) = start_kedge(&tmp.path().join("kedge"), &[]).await;
        let kedge = bench_kedge(client).await;
        let kedge_rss = rss_kib(kedge_proc.0.id());
        drop(kedge_proc);
        // kedge with etcd as its store (the control plane of several
        // machines), on an etcd of its own.
        let mut on_etcd_rss = None;
        let on_etcd = match start_etcd(&tmp.path().join("store")) {
            Some((store, port)) => {
                let extra = ["--etcd-servers".to_string(), format!("http://127.0.0.1:{port}")];
                let (p, client) = start_kedge(&tmp.path().join("kedge-etcd"), &extra).await;
                let r = bench_kedge(client).await;
                on_etcd_rss = rss_kib(p.0.id());
                drop(p);
                drop(store);
                Some(r)
            }
            None => None,
        };
        let mut etcd_rss = None;
        let etcd = match start_etcd(&tmp.path().join("etcd")) {
            Some((p, port)) => {
                let r = bench_etcd(port).await;
                etcd_rss = rss_kib(p.0.id());
                drop(p);
                Some(r)
            }
            None => {
                println!("etcd not found: install Debian's etcd-server for the side-by-side figures");
                None
            }
        };
        println!();
        println!("| operation | kedge ops/s | kedge p50 ms | kedge p99 ms | kedge on etcd ops/s | on etcd p50 ms | on etcd p99 ms | etcd ops/s | etcd p50 ms | etcd p99 ms | kedge/etcd ops/s | kedge on etcd/etcd ops/s |");
        println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        let cells = |s: Option<&Stats>| match s {
            Some(s) => format!("{:.0} | {:.2} | {:.2}", s.per_sec(), ms(s.pct(0.5)), ms(s.pct(0.99))),
            None => "- | - | -".into(),
        };
        let ratio = |a: Option<&Stats>, b: Option<&Stats>| match (a, b) {
            (Some(a), Some(b)) => format!("{:.2}", a.per_sec() / b.per_sec()),
            _ => "-".into(),
        };
        for (i, (name, k)) in kedge.iter().enumerate() {
            let e = etcd.as_ref().map(|e| &e[i].1);
            let o = on_etcd.as_ref().map(|o| &o[i].1);
            println!(
                "| {name} | {} | {} | {} | {} | {} |",
                cells(Some(k)),
                cells(o),
                cells(e),
                ratio(Some(k), e),
                ratio(o, e),
            );
        }
        // Memory after the run, with the same 3,300 objects (and history)
        // held by each.
        let mib = |k: Option<u64>| k.map(|k| format!("{:.1} MiB", k as f64 / 1024.0)).unwrap_or("-".into());
        println!();
        println!(
            "resident memory after the run: kedge {}, kedge on etcd {}, etcd {}",
            mib(kedge_rss),
            mib(on_etcd_rss),
            mib(etcd_rss)
        );
    });
}

/// Resident set size of a process, from /proc.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn etcd_version() -> String {
    Command::new("etcd")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.lines().next().map(|l| l.replace("etcd Version: ", "")))
        .unwrap_or_else(|| "(not installed)".into())
}
