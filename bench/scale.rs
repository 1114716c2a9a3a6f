//! Scale on hollow nodes (the kubemark method): 1,000 hollow nodes in one
//! agent process against one API server, then 10,000 pods. Measures node
//! registration, scheduling throughput, pod create→Running latency, list
//! latency at that size, and the server's memory. Bounded in count and time.
//!
//! ```sh
//! cargo bench --bench scale                  # NODES=1000 PODS=10000 by default
//! NODES=100 PODS=1000 cargo bench --bench scale
//! ```

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
use parking_lot::Mutex;

struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn env_usize(k: &str, d: usize) -> usize {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

fn kedge_bin() -> String {
    std::env::var("KEDGE_BIN").unwrap_or_else(|_| {
        let mut p = std::env::current_exe().unwrap();
        p.pop();
        p.pop();
        p.join("kedge").display().to_string()
    })
}

fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
        })
        .map(|k| k / 1024.0)
        .unwrap_or(0.0)
}

fn pct(v: &mut [Duration], p: f64) -> f64 {
    v.sort();
    if v.is_empty() {
        return 0.0;
    }
    v[((v.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1000.0
}

fn main() {
    let nodes = env_usize("NODES", 1000);
    let pods = env_usize("PODS", 10_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let tmp = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let server = Proc(
            Command::new(kedge_bin())
                .args(["server", "--data-dir"])
                .arg(tmp.path())
                .args(["--listen", &format!("127.0.0.1:{port}")])
                .env("RUST_LOG", "error")
                .stdout(Stdio::null())
                .spawn()
                .expect("kedge binary (cargo build --release)"),
        );
        let kubeconfig = tmp.path().join("kubeconfig");
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = loop {
            if kubeconfig.exists() {
                let kc = kube::config::Kubeconfig::read_from(&kubeconfig).unwrap();
                let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await.unwrap();
                let c = kube::Client::try_from(cfg).unwrap();
                if c.apiserver_version().await.is_ok() {
                    break c;
                }
            }
            assert!(Instant::now() < deadline, "server did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };

        // === nodes ===
        let t = Instant::now();
        let _agent = Proc(
            Command::new(kedge_bin())
                .args(["agent", "--hollow", "--count", &nodes.to_string(), "--kubeconfig"])
                .arg(&kubeconfig)
                .env("RUST_LOG", "error")
                .stdout(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let node_api: Api<Node> = Api::all(client.clone());
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            let ready = node_api
                .list(&ListParams::default())
                .await
                .unwrap()
                .items
                .iter()
                .filter(|n| {
                    n.status.as_ref().and_then(|s| s.conditions.as_ref()).is_some_and(|c| {
                        c.iter().any(|c| c.type_ == "Ready" && c.status == "True")
                    })
                })
                .count();
            if ready == nodes {
                break;
            }
            assert!(Instant::now() < deadline, "only {ready}/{nodes} nodes Ready");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let node_secs = t.elapsed().as_secs_f64();
        println!("{nodes} hollow nodes Ready in {node_secs:.1} s");

        // === pods ===
        let pod_api: Api<Pod> = Api::namespaced(client.clone(), "default");
        let rv = pod_api.list(&ListParams::default().limit(1)).await.unwrap().metadata.resource_version.unwrap();
        let created: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
        let bound: Arc<Mutex<Vec<Instant>>> = Arc::default();
        let running: Arc<Mutex<Vec<Duration>>> = Arc::default();
        let watcher = {
            let (created, bound, running) = (created.clone(), bound.clone(), running.clone());
            let pod_api = pod_api.clone();
            tokio::spawn(async move {
                let mut seen_bound = std::collections::HashSet::new();
                let mut seen_running = std::collections::HashSet::new();
                let mut rv = rv;
                while seen_running.len() < pods {
                    let mut s = pod_api.watch(&WatchParams::default().timeout(290), &rv).await.unwrap().boxed();
                    while let Some(Ok(ev)) = s.next().await {
                        let (WatchEvent::Added(p) | WatchEvent::Modified(p)) = ev else { continue };
                        rv = p.metadata.resource_version.clone().unwrap_or(rv);
                        let name = p.metadata.name.clone().unwrap_or_default();
                        let now = Instant::now();
                        if p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some() && seen_bound.insert(name.clone()) {
                            bound.lock().push(now);
                        }
                        let is_running = p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
                        if is_running && seen_running.insert(name.clone()) {
                            if let Some(c) = created.lock().get(&name) {
                                running.lock().push(now.duration_since(*c));
                            }
                        }
                        if seen_running.len() == pods {
                            break;
                        }
                    }
                }
            })
        };
        let t = Instant::now();
        let mut tasks = Vec::new();
        let writers = 16;
        for w in 0..writers {
            let pod_api = pod_api.clone();
            let created = created.clone();
            tasks.push(tokio::spawn(async move {
                let mut i = w;
                while i < pods {
                    let name = format!("scale-{i}");
                    let pod: Pod = serde_json::from_value(serde_json::json!({
                        "metadata": {"name": name, "labels": {"app": "scale"}},
                        "spec": {"containers": [{"name": "c", "image": "kedge/echo:v1",
                                 "resources": {"requests": {"cpu": "10m", "memory": "10Mi"}}}]},
                    }))
                    .unwrap();
                    created.lock().insert(name.clone(), Instant::now());
                    pod_api.create(&PostParams::default(), &pod).await.unwrap();
                    i += writers;
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let create_secs = t.elapsed().as_secs_f64();
        let all = tokio::time::timeout(Duration::from_secs(600), watcher).await;
        assert!(all.is_ok(), "not every pod reached Running within 10 minutes");
        let total_secs = t.elapsed().as_secs_f64();
        let bound = bound.lock().clone();
        let sched_secs = bound.iter().max().map(|m| m.duration_since(t).as_secs_f64()).unwrap_or(0.0);
        let mut running = running.lock().clone();

        // === list / watch at this size ===
        let mut lists = Vec::new();
        for _ in 0..10 {
            let s = Instant::now();
            let req = http::Request::get("/api/v1/pods").body(Vec::new()).unwrap();
            let text = client.request_text(req).await.unwrap();
            assert!(text.len() > pods * 100);
            lists.push(s.elapsed());
        }
        // Watch latency: one pod's label changed at a time; the time from
        // sending the patch until a watch on all pods delivers the change,
        // with every hollow node's and controller's watch also open.
        let mut watch_lat = Vec::new();
        {
            let rv = pod_api.list(&ListParams::default().limit(1)).await.unwrap().metadata.resource_version.unwrap();
            let mut s = pod_api.watch(&WatchParams::default().timeout(290), &rv).await.unwrap().boxed();
            for i in 0..200.min(pods) {
                let name = format!("scale-{i}");
                let mark = format!("m{i}");
                let patch = serde_json::json!({"metadata": {"labels": {"mark": mark}}});
                let sent = Instant::now();
                pod_api.patch(&name, &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch)).await.unwrap();
                loop {
                    let ev = tokio::time::timeout(Duration::from_secs(30), s.next()).await.expect("watch event").expect("watch open").unwrap();
                    if let WatchEvent::Modified(p) = ev {
                        let labels = p.metadata.labels.unwrap_or_default();
                        if p.metadata.name.as_deref() == Some(&name) && labels.get("mark") == Some(&mark) {
                            watch_lat.push(sent.elapsed());
                            break;
                        }
                    }
                }
            }
        }
        let rss = rss_mib(server.0.id());

        println!();
        println!("| measure | value |");
        println!("| --- | ---: |");
        println!("| hollow nodes Ready | {nodes} in {node_secs:.1} s |");
        println!("| pods created (16 writers) | {pods} in {create_secs:.1} s ({:.0}/s) |", pods as f64 / create_secs);
        println!("| scheduling throughput | {:.0} pods/s (all bound {sched_secs:.1} s after the first create) |", pods as f64 / sched_secs.max(0.001));
        println!("| create → Running p50 / p99 | {:.0} / {:.0} ms |", pct(&mut running, 0.5), pct(&mut running, 0.99));
        println!("| all {pods} Running | {total_secs:.1} s |");
        println!("| list all pods (raw JSON) p50 / p99 | {:.0} / {:.0} ms |", pct(&mut lists, 0.5), pct(&mut lists, 0.99));
        println!("| patch → watch event p50 / p99 | {:.1} / {:.1} ms |", pct(&mut watch_lat, 0.5) , pct(&mut watch_lat, 0.99));
        println!("| API server resident memory | {rss:.0} MiB |");
    });
}
