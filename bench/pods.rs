//! Pod create → Ready on a real node (`kedge up`, pods in Docker), side by
//! side with a bare `docker run` of the same image on the same machine, in
//! the same run.
//!
//! kedge: N pods of the echo image (a readiness probe on 8080 every
//! second) are created at once through the API; a watch records when each
//! is scheduled, running and Ready. Docker: N concurrent `docker run -d` of
//! the same image on a network the bench makes, each timed until an HTTP
//! GET to the container's port 8080 succeeds. `docker events` splits both
//! into steps (containers created, started). Each size runs `ROUNDS`
//! times, kedge and Docker taking turns to go first; the tables give
//! medians. Every wait is bounded, and everything the bench starts is
//! removed at the end, on a panic or on Ctrl-C.
//!
//! ```sh
//! cargo bench --bench pods                  # PODS=1,10,50 ROUNDS=3
//! PODS=1,10 ROUNDS=1 cargo bench --bench pods
//! ```

// Only the echo image is used here.
#[allow(dead_code)]
#[path = "../tests/common/images.rs"]
mod images;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::watcher::{self, watcher};
use kube::runtime::WatchStreamExt;
use parking_lot::Mutex;

/// The label of the bench's pods.
const POD_LABEL: &str = "app=bench-pods";
/// Marks the peer's containers and network (with `io.kedge.managed`).
const PEER_LABEL: &str = "kedge.bench=1";
/// The label naming the bench process that made a peer container or
/// network, so a later run can sweep what a crashed one left.
const RUN_LABEL: &str = "kedge.bench.run";

const START_TIMEOUT: Duration = Duration::from_secs(60);
const READY_TIMEOUT: Duration = Duration::from_secs(180);
const GONE_TIMEOUT: Duration = Duration::from_secs(120);
const DOCKER_TIMEOUT: Duration = Duration::from_secs(60);
/// How often the peer's HTTP GET is tried.
const POLL: Duration = Duration::from_millis(20);

fn sizes() -> Vec<usize> {
    let sizes: Vec<usize> = std::env::var("PODS")
        .unwrap_or_else(|_| "1,10,50".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .filter(|n| *n > 0)
        .collect();
    assert!(
        !sizes.is_empty() && sizes.iter().all(|n| *n <= 200),
        "PODS is a list of sizes from 1 to 200, e.g. PODS=1,10,50"
    );
    sizes
}

fn rounds() -> usize {
    std::env::var("ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(3)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Resident set size of a process in MiB, from /proc.
fn rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The `p` quantile of `v` (nearest rank), in ms.
fn pct(v: &[Duration], p: f64) -> f64 {
    let mut v = v.to_vec();
    v.sort();
    if v.is_empty() {
        return 0.0;
    }
    ms(v[((v.len() as f64 - 1.0) * p).round() as usize])
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return 0.0;
    }
    v[v.len() / 2]
}

// === docker ===

/// Run a command to its end; after `timeout` it is killed (by its PID)
/// and there is no output.
fn run_bounded(cmd: &mut Command, timeout: Duration) -> Option<Output> {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running docker");
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(timeout) {
        Ok(out) => out.ok(),
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            eprintln!("{cmd:?} did not finish within {timeout:?}");
            None
        }
    }
}

/// A docker command, bounded; `None` if it did not finish in time (the
/// cleanup uses this, as it must not panic).
fn try_docker(args: &[&str]) -> Option<Output> {
    run_bounded(Command::new("docker").args(args), DOCKER_TIMEOUT)
}

fn docker(args: &[&str]) -> Output {
    try_docker(args).unwrap_or_else(|| panic!("docker {args:?} failed or did not finish"))
}

fn docker_lines(args: &[&str]) -> Vec<String> {
    let out = try_docker(args).map(|o| o.stdout).unwrap_or_default();
    String::from_utf8_lossy(&out)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// Containers with this label (`key=value`), running or not.
fn containers_labelled(label: &str) -> Vec<String> {
    docker_lines(&["ps", "-aq", "--filter", &format!("label={label}")])
}

fn remove_containers(label: &str) {
    let ids = containers_labelled(label);
    if !ids.is_empty() {
        let mut args = vec!["rm", "-f", "-v"];
        args.extend(ids.iter().map(String::as_str));
        try_docker(&args);
    }
}

/// Remove what bench runs whose process is gone left in Docker: the
/// networks of their nodes (`bench-<pid>`) and peers, with their containers.
fn sweep_crashed_runs() {
    let nets = docker_lines(&[
        "network",
        "ls",
        "--filter",
        "label=io.kedge.managed=true",
        "--format",
        &format!("{{{{.Name}}}} {{{{.Label \"io.kedge.node\"}}}}/{{{{.Label \"{RUN_LABEL}\"}}}}"),
    ]);
    for line in nets {
        let Some((name, labels)) = line.split_once(' ') else {
            continue;
        };
        let (node, run) = labels.split_once('/').unwrap_or((labels, ""));
        let pid = node
            .strip_prefix("bench-")
            .unwrap_or(run)
            .parse::<u32>()
            .ok();
        let Some(pid) = pid else { continue };
        if Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        if node.starts_with("bench-") {
            remove_containers(&format!("io.kedge.node={node}"));
        } else {
            remove_containers(&format!("{RUN_LABEL}={pid}"));
        }
        try_docker(&["network", "rm", name]);
    }
    // The proxy's holder interfaces (`kb<pid>`) of runs that were killed.
    let links = Command::new("ip")
        .args(["-br", "link"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
        .unwrap_or_default();
    for line in links.lines() {
        let name = line.split_whitespace().next().unwrap_or_default();
        let name = name.split('@').next().unwrap_or_default();
        let Some(pid) = name.strip_prefix("kb").and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            remove_link(name);
        }
    }
}

fn remove_link(name: &str) {
    let _ = Command::new("ip")
        .args(["link", "del", name])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// An IPv4 subnet `a.b.c.d/len` as (network, prefix length).
fn parse_subnet(s: &str) -> Option<(u32, u32)> {
    let (addr, len) = s.split_once('/')?;
    let addr: Ipv4Addr = addr.parse().ok()?;
    let len: u32 = len.parse().ok().filter(|l| *l <= 32)?;
    Some((u32::from(addr), len))
}

fn overlaps(a: (u32, u32), b: (u32, u32)) -> bool {
    let len = a.1.min(b.1);
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    a.0 & mask == b.0 & mask
}

/// The third octet, starting from `start`, at which none of `10.<x>.<o>.0/24`
/// for `x` in `seconds` overlaps a Docker network on this machine.
fn free_octet(start: u8, seconds: &[u8]) -> u8 {
    let ids = docker_lines(&["network", "ls", "-q"]);
    let mut args = vec!["network", "inspect", "--format"];
    args.push("{{range .IPAM.Config}}{{.Subnet}} {{end}}");
    args.extend(ids.iter().map(String::as_str));
    let used: Vec<(u32, u32)> = docker_lines(&args)
        .iter()
        .flat_map(|l| {
            l.split_whitespace()
                .filter_map(parse_subnet)
                .collect::<Vec<_>>()
        })
        .collect();
    (0..250u16)
        .map(|i| ((u16::from(start) + i) % 250) as u8)
        .find(|o| {
            seconds.iter().all(|x| {
                let ours = (u32::from(Ipv4Addr::new(10, *x, *o, 0)), 24);
                !used.iter().any(|u| overlaps(*u, ours))
            })
        })
        .expect("no free /24 for the bench's networks")
}

// === cleanup ===

/// Everything the bench starts: the kedge process, stopped by its PID, and
/// what the node and the peer made in Docker, removed by label.
struct Cleanup {
    kedge: Mutex<Option<Child>>,
    /// The `docker events` follower.
    events: Mutex<Option<Child>>,
    node: String,
    /// The service proxy's holder interface of the node.
    proxy_interface: String,
    peer_network: String,
}

impl Cleanup {
    /// Idempotent: the guard runs it on drop (a panic too), the Ctrl-C
    /// handler before it exits.
    fn run(&self) {
        // kedge first gets SIGTERM (by its PID), so its proxy removes the
        // holder interface itself; SIGKILL after a grace period.
        if let Some(mut child) = self.kedge.lock().take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(mut child) = self.events.lock().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        remove_containers(&format!("io.kedge.node={}", self.node));
        remove_containers(&format!("{RUN_LABEL}={}", std::process::id()));
        remove_link(&self.proxy_interface);
        for net in [format!("kedge-{}", self.node), self.peer_network.clone()] {
            remove_network(&net);
        }
    }
}

/// Remove a Docker network; the engine can take a moment to let go of
/// the endpoints of containers just removed, so this tries a few times.
fn remove_network(name: &str) {
    for attempt in 0..5 {
        let Some(out) = try_docker(&["network", "rm", name]) else {
            continue;
        };
        let err = String::from_utf8_lossy(&out.stderr);
        if out.status.success() || err.contains("No such network") || err.contains("not found") {
            return;
        }
        if attempt == 4 {
            eprintln!("could not remove docker network {name}: {}", err.trim());
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

struct Guard(Arc<Cleanup>);

impl Drop for Guard {
    fn drop(&mut self) {
        self.0.run();
    }
}

// === docker events ===

/// When Docker created and started each container of the bench, from
/// `docker events`: keyed by (pod name, `podsandbox`/`container` and the
/// action) for kedge's containers, by (container name, action) for the
/// peer's. Docker stamps events with the wall clock; they are placed on
/// the bench's monotonic clock through one reading of both.
#[derive(Clone, Default)]
struct DockerEvents(Arc<Mutex<HashMap<(String, String), Instant>>>);

impl DockerEvents {
    fn follow(cleanup: &Cleanup) -> Self {
        let mut child = Command::new("docker")
            .args(["events", "--filter", "type=container"])
            .args(["--filter", "event=create", "--filter", "event=start"])
            .args(["--filter", "label=io.kedge.managed=true", "--format"])
            .arg(
                r#"{{.TimeNano}}|{{.Action}}|{{index .Actor.Attributes "name"}}|{{index .Actor.Attributes "io.kubernetes.pod.name"}}|{{index .Actor.Attributes "io.kedge.type"}}"#,
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("running docker events");
        let stdout = child.stdout.take().unwrap();
        *cleanup.events.lock() = Some(child);
        let (mono, wall) = (Instant::now(), std::time::SystemTime::now());
        let wall_ns = wall
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as i128;
        let events = DockerEvents::default();
        let seen = events.0.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let f: Vec<&str> = line.trim().split('|').collect();
                let [ns, action, name, pod, kind] = f[..] else {
                    continue;
                };
                let Ok(ns) = ns.parse::<i128>() else { continue };
                let offset = Duration::from_nanos((ns - wall_ns).unsigned_abs() as u64);
                let at = if ns >= wall_ns {
                    mono + offset
                } else {
                    mono.checked_sub(offset).unwrap_or(mono)
                };
                let key = if !pod.is_empty() && !kind.is_empty() {
                    (pod.to_string(), format!("{kind} {action}"))
                } else {
                    (name.to_string(), action.to_string())
                };
                seen.lock().entry(key).or_insert(at);
            }
        });
        events
    }

    fn at(&self, key: &str, what: &str) -> Option<Instant> {
        self.0
            .lock()
            .get(&(key.to_string(), what.to_string()))
            .copied()
    }
}

// === measurements ===

/// One round of one side: each pod's (or container's) latency, the time
/// from the first create to the last Ready, and the phases in between.
struct Round {
    latencies: Vec<Duration>,
    total: Duration,
    phases: Vec<Vec<Duration>>,
}

/// Medians over the rounds of one side at one size.
struct Summary {
    p50: f64,
    p99: f64,
    total: f64,
    phases: Vec<f64>,
}

impl Summary {
    fn of(rounds: &[Round]) -> Self {
        let phases = rounds.first().map_or(0, |r| r.phases.len());
        Summary {
            p50: median(rounds.iter().map(|r| pct(&r.latencies, 0.5)).collect()),
            p99: median(rounds.iter().map(|r| pct(&r.latencies, 0.99)).collect()),
            total: median(rounds.iter().map(|r| ms(r.total)).collect()),
            phases: (0..phases)
                .map(|i| median(rounds.iter().map(|r| pct(&r.phases[i], 0.5)).collect()))
                .collect(),
        }
    }
}

// === kedge ===

/// When the bench saw each milestone of one pod.
#[derive(Debug, Clone, Copy)]
struct Seen {
    created: Instant,
    scheduled: Option<Instant>,
    running: Option<Instant>,
    ready: Option<Instant>,
}

type Board = Arc<Mutex<HashMap<String, Seen>>>;

/// Record the milestones a pod's new state shows; a later milestone
/// implies the earlier ones (the watch may carry several in one event).
fn observe(board: &Board, pod: &Pod) {
    let now = Instant::now();
    let Some(name) = pod.metadata.name.as_deref() else {
        return;
    };
    let mut board = board.lock();
    let Some(seen) = board.get_mut(name) else {
        return;
    };
    let status = pod.status.as_ref();
    let ready = status
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    let running = ready
        || status
            .and_then(|s| s.container_statuses.as_ref())
            .is_some_and(|cs| {
                cs.iter()
                    .any(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()))
            });
    let scheduled = running || pod.spec.as_ref().is_some_and(|s| s.node_name.is_some());
    for (hit, at) in [
        (scheduled, &mut seen.scheduled),
        (running, &mut seen.running),
        (ready, &mut seen.ready),
    ] {
        if hit && at.is_none() {
            *at = Some(now);
        }
    }
}

/// The steps from a pod's create call to its Ready status as the watch
/// shows it; the middle ones are Docker's events for its containers.
const KEDGE_STEPS: [&str; 7] = [
    "create → scheduled",
    "→ sandbox created",
    "→ sandbox started",
    "→ container created",
    "→ container started",
    "→ Running seen",
    "→ Ready seen",
];

/// The steps from `docker run` to the first successful GET.
const DOCKER_STEPS: [&str; 4] = [
    "run → created",
    "→ started",
    "→ `docker run` returned",
    "→ serving",
];

/// Add the time between each pair of consecutive `steps` (where both are
/// known) to its phase.
fn add_steps(phases: &mut [Vec<Duration>], steps: &[Option<Instant>]) {
    for (i, pair) in steps.windows(2).enumerate() {
        if let [Some(a), Some(b)] = pair {
            phases[i].push(b.saturating_duration_since(*a));
        }
    }
}

struct Kedge {
    pid: u32,
    events: DockerEvents,
    node: String,
    pods: Api<Pod>,
    board: Board,
    image: String,
}

fn pod(name: &str, image: &str) -> Pod {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "labels": {"app": "bench-pods"}},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "echo",
                "image": image,
                "imagePullPolicy": "IfNotPresent",
                "ports": [{"containerPort": 8080}],
                "readinessProbe": {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1},
            }],
        },
    }))
    .unwrap()
}

/// Start `kedge up` with its own node; returns the kubeconfig's path once
/// it serves.
/// The cluster has its own Service range and holder interface, so it
/// never meets the clusters of tests running at the same time, and its
/// DNS forwards only to a loopback port where nothing answers.
fn start_kedge(
    dir: &Path,
    pod_cidr: &str,
    service_cidr: &str,
    cleanup: &Cleanup,
) -> std::path::PathBuf {
    let data_dir = dir.join("data");
    let mut child = Command::new(env!("CARGO_BIN_EXE_kedge"))
        .arg("up")
        .arg("--data-dir")
        .arg(&data_dir)
        .args(["--listen", &format!("127.0.0.1:{}", free_port())])
        .args(["--node-name", &cleanup.node, "--pod-cidr", pod_cidr])
        .args(["--kubelet-port", &free_port().to_string()])
        .arg("--root-dir")
        .arg(dir.join("kubelet"))
        .args(["--service-cidr", service_cidr])
        .args(["--proxy-interface", &cleanup.proxy_interface])
        .args(["--metrics-addr", &format!("127.0.0.1:{}", free_port())])
        .args(["--dns-upstream", &format!("127.0.0.1:{}", free_port())])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("starting kedge");
    let stdout = child.stdout.take().unwrap();
    *cleanup.kedge.lock() = Some(child);
    // The binary prints the kubeconfig line once it serves; stdout is
    // drained after that so the child never blocks on a full pipe.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        for line in lines.by_ref() {
            let Ok(line) = line else { break };
            if line.starts_with("export KUBECONFIG=") {
                let _ = tx.send(());
                break;
            }
        }
        for _ in lines {}
    });
    rx.recv_timeout(START_TIMEOUT)
        .expect("kedge up did not print its kubeconfig");
    data_dir.join("kubeconfig")
}

async fn client(kubeconfig: &Path) -> kube::Client {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig).unwrap();
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    kube::Client::try_from(cfg).unwrap()
}

async fn wait_node_ready(client: &kube::Client, node: &str) {
    let nodes: Api<Node> = Api::all(client.clone());
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        let ready = nodes.get_opt(node).await.ok().flatten().is_some_and(|n| {
            n.status
                .and_then(|s| s.conditions)
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        });
        if ready {
            return;
        }
        assert!(Instant::now() < deadline, "node {node} did not turn Ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Follow the bench's pods into the board; returns once the first list is
/// in, so no later event is missed.
async fn start_watch(pods: Api<Pod>, board: Board) {
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut tx = Some(tx);
        let mut stream = watcher(pods, watcher::Config::default().labels(POD_LABEL))
            .default_backoff()
            .boxed();
        while let Some(event) = stream.next().await {
            match event {
                Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) => observe(&board, &p),
                Ok(watcher::Event::InitDone) => {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(());
                    }
                }
                Ok(_) => {}
                Err(e) => eprintln!("pod watch: {e}"),
            }
        }
    });
    tokio::time::timeout(START_TIMEOUT, rx)
        .await
        .expect("the pod watch did not start")
        .unwrap();
}

impl Kedge {
    /// Create `n` pods at once, wait until every one is Ready, then delete
    /// them and wait until their containers are gone. The phases are those
    /// of [`KEDGE_STEPS`].
    async fn round(&self, n: usize, tag: &str) -> (Round, Option<f64>) {
        let names: Vec<String> = (0..n).map(|i| format!("bench-{tag}-{i}")).collect();
        let creates = names.iter().map(|name| {
            let pod = pod(name, &self.image);
            let board = self.board.clone();
            let pods = self.pods.clone();
            async move {
                board.lock().insert(
                    name.clone(),
                    Seen {
                        created: Instant::now(),
                        scheduled: None,
                        running: None,
                        ready: None,
                    },
                );
                pods.create(&PostParams::default(), &pod).await
            }
        });
        for r in futures::future::join_all(creates).await {
            r.expect("creating a pod");
        }
        let deadline = Instant::now() + READY_TIMEOUT;
        let seen: Vec<Seen> = loop {
            let seen: Vec<Seen> = {
                let board = self.board.lock();
                names.iter().filter_map(|n| board.get(n).copied()).collect()
            };
            if seen.iter().all(|s| s.ready.is_some()) {
                break seen;
            }
            if Instant::now() > deadline {
                let count = |f: fn(&Seen) -> bool| seen.iter().filter(|s| f(s)).count();
                panic!(
                    "{n} pods not Ready within {READY_TIMEOUT:?}: {} scheduled, {} running, {} Ready",
                    count(|s| s.scheduled.is_some()),
                    count(|s| s.running.is_some()),
                    count(|s| s.ready.is_some()),
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        let rss = rss_mib(self.pid);
        let first = seen.iter().map(|s| s.created).min().unwrap();
        let last = seen.iter().filter_map(|s| s.ready).max().unwrap();
        self.delete(&names).await;
        let mut phases = vec![Vec::new(); KEDGE_STEPS.len()];
        let mut latencies = Vec::new();
        for (name, s) in names.iter().zip(&seen) {
            let docker = |what| self.events.at(name, what);
            let steps = [
                Some(s.created),
                s.scheduled,
                docker("podsandbox create"),
                docker("podsandbox start"),
                docker("container create"),
                docker("container start"),
                s.running,
                s.ready,
            ];
            add_steps(&mut phases, &steps);
            latencies.push(s.ready.unwrap().duration_since(s.created));
        }
        (
            Round {
                latencies,
                total: last.duration_since(first),
                phases,
            },
            rss,
        )
    }

    async fn delete(&self, names: &[String]) {
        let dp = DeleteParams::default();
        let deletes = names.iter().map(|name| self.pods.delete(name, &dp));
        for r in futures::future::join_all(deletes).await {
            if let Err(e) = r {
                eprintln!("deleting a bench pod: {e}");
            }
        }
        let deadline = Instant::now() + GONE_TIMEOUT;
        let node_label = format!("io.kedge.node={}", self.node);
        loop {
            let left = self
                .pods
                .list(&ListParams::default().labels(POD_LABEL))
                .await
                .map(|l| l.items.len())
                .unwrap_or(usize::MAX);
            let containers = tokio::task::block_in_place(|| containers_labelled(&node_label));
            if left == 0 && containers.is_empty() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "after {GONE_TIMEOUT:?}: {left} pods and {} containers remain",
                containers.len()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let mut board = self.board.lock();
        for name in names {
            board.remove(name);
        }
    }
}

// === the peer: docker run ===

struct Peer {
    events: DockerEvents,
    network: String,
    /// The first three octets of the network's /24.
    prefix: [u8; 3],
    image: String,
}

/// Whether an HTTP GET of `/` at `addr` answers 200.
fn http_ok(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    let _ = s.set_write_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"GET / HTTP/1.0\r\nHost: bench\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && &head == b"HTTP/1.1 200"
}

impl Peer {
    fn create(events: DockerEvents, network: String, prefix: [u8; 3], image: String) -> Self {
        let subnet = format!("{}.{}.{}.0/24", prefix[0], prefix[1], prefix[2]);
        let out = docker(&[
            "network",
            "create",
            "--driver",
            "bridge",
            "--subnet",
            &subnet,
            "--label",
            "io.kedge.managed=true",
            "--label",
            PEER_LABEL,
            "--label",
            &format!("{RUN_LABEL}={}", std::process::id()),
            &network,
        ]);
        assert!(
            out.status.success(),
            "docker network create {network}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Peer {
            events,
            network,
            prefix,
            image,
        }
    }

    /// Start container `i` and wait until it serves: when it was asked
    /// for, when `docker run` returned, when the first GET succeeded.
    fn one(&self, name: &str, i: usize) -> (Instant, Instant, Instant) {
        let [a, b, c] = self.prefix;
        let ip = Ipv4Addr::new(a, b, c, 10 + i as u8);
        let run_label = format!("{RUN_LABEL}={}", std::process::id());
        let start = Instant::now();
        let out = docker(&[
            "run",
            "-d",
            "--name",
            name,
            "--network",
            &self.network,
            "--ip",
            &ip.to_string(),
            "--label",
            "io.kedge.managed=true",
            "--label",
            PEER_LABEL,
            "--label",
            &run_label,
            &self.image,
        ]);
        let returned = Instant::now();
        assert!(
            out.status.success(),
            "docker run {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let addr = SocketAddr::from((ip, 8080));
        let deadline = start + DOCKER_TIMEOUT;
        loop {
            if http_ok(addr) {
                return (start, returned, Instant::now());
            }
            assert!(
                Instant::now() < deadline,
                "{name} did not serve within {DOCKER_TIMEOUT:?}"
            );
            std::thread::sleep(POLL);
        }
    }

    /// `n` concurrent `docker run`s until each serves, then remove them.
    /// The phases are those of [`DOCKER_STEPS`].
    fn round(&self, n: usize, tag: &str) -> Round {
        let names: Vec<String> = (0..n)
            .map(|i| format!("bench-peer-{}-{tag}-{i}", std::process::id()))
            .collect();
        let times: Vec<(Instant, Instant, Instant)> = std::thread::scope(|s| {
            let threads: Vec<_> = names
                .iter()
                .enumerate()
                .map(|(i, name)| s.spawn(move || self.one(name, i)))
                .collect();
            threads.into_iter().map(|t| t.join().unwrap()).collect()
        });
        let run_label = format!("{RUN_LABEL}={}", std::process::id());
        remove_containers(&run_label);
        assert!(
            containers_labelled(&run_label).is_empty(),
            "peer containers remain after docker rm"
        );
        let first = times.iter().map(|t| t.0).min().unwrap();
        let last = times.iter().map(|t| t.2).max().unwrap();
        let mut phases = vec![Vec::new(); DOCKER_STEPS.len()];
        for (name, (start, returned, serving)) in names.iter().zip(&times) {
            let steps = [
                Some(*start),
                self.events.at(name, "create"),
                self.events.at(name, "start"),
                Some(*returned),
                Some(*serving),
            ];
            add_steps(&mut phases, &steps);
        }
        Round {
            latencies: times.iter().map(|t| t.2.duration_since(t.0)).collect(),
            total: last.duration_since(first),
            phases,
        }
    }
}

// === the run ===

fn print_round(side: &str, n: usize, r: &Round) {
    println!(
        "  {side:<6} {n:>3} pods: p50 {:>7.1} ms  p99 {:>7.1} ms  all {:>7.1} ms",
        pct(&r.latencies, 0.5),
        pct(&r.latencies, 0.99),
        ms(r.total)
    );
}

fn main() {
    let sizes = sizes();
    let rounds = rounds();
    let pid = std::process::id();
    let node = format!("bench-{pid}");
    // Made before the guard, so it is removed after kedge is stopped.
    let tmp = tempfile::tempdir().unwrap();
    let cleanup = Arc::new(Cleanup {
        kedge: Mutex::new(None),
        events: Mutex::new(None),
        node: node.clone(),
        proxy_interface: format!("kb{pid}"),
        peer_network: format!("kedge-bench-peer-{pid}"),
    });
    let _guard = Guard(cleanup.clone());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    {
        let cleanup = cleanup.clone();
        rt.spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("interrupted: removing what the bench started");
                tokio::task::block_in_place(|| cleanup.run());
                std::process::exit(130);
            }
        });
    }
    sweep_crashed_runs();
    let image = images::echo().to_string();
    let docker_version = docker_lines(&["version", "--format", "{{.Server.Version}}"]);
    println!(
        "pod create → Ready: kedge up vs docker run {} (same machine, same run), image {image}",
        docker_version.first().map_or("?", String::as_str)
    );
    // Pods on 10.199.<o>.0/24, Services on 10.196.<o>.0/24, the peer on
    // 10.198.<o>.0/24.
    let octet = free_octet((pid % 250) as u8, &[199, 198, 196]);
    let kubeconfig = start_kedge(
        tmp.path(),
        &format!("10.199.{octet}.0/24"),
        &format!("10.196.{octet}.0/24"),
        &cleanup,
    );
    let kedge_pid = cleanup.kedge.lock().as_ref().map(Child::id).unwrap();
    let events = DockerEvents::follow(&cleanup);
    let peer = Peer::create(
        events.clone(),
        cleanup.peer_network.clone(),
        [10, 198, octet],
        image.clone(),
    );

    rt.block_on(async {
        let client = client(&kubeconfig).await;
        wait_node_ready(&client, &node).await;
        let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
        let board: Board = Arc::default();
        start_watch(pods.clone(), board.clone()).await;
        let kedge = Kedge {
            pid: kedge_pid,
            events,
            node: node.clone(),
            pods,
            board,
            image: image.clone(),
        };
        tokio::time::sleep(Duration::from_secs(2)).await;
        let idle_rss = rss_mib(kedge_pid);

        // One unrecorded pod and container first: caches, connections and
        // the kubelet's first sync are not part of any figure.
        kedge.round(1, "warm").await;
        tokio::task::block_in_place(|| peer.round(1, "warm"));

        let mut results = Vec::new();
        let mut rss_at_ready = Vec::new();
        for &n in &sizes {
            let (mut k, mut d) = (Vec::new(), Vec::new());
            for r in 0..rounds {
                let tag = format!("{n}-{r}");
                let mut run_kedge = async || {
                    let (round, rss) = kedge.round(n, &tag).await;
                    print_round("kedge", n, &round);
                    k.push(round);
                    if n == *sizes.iter().max().unwrap() {
                        rss_at_ready.extend(rss);
                    }
                };
                if r % 2 == 0 {
                    run_kedge().await;
                }
                let round = tokio::task::block_in_place(|| peer.round(n, &tag));
                print_round("docker", n, &round);
                d.push(round);
                if r % 2 == 1 {
                    run_kedge().await;
                }
            }
            results.push((n, Summary::of(&k), Summary::of(&d)));
        }
        let final_rss = rss_mib(kedge_pid);

        println!();
        println!("Medians of {rounds} rounds (ms):");
        println!();
        println!("| pods | kedge p50 / p99 | kedge all Ready | docker p50 / p99 | docker all serving | p50 kedge/docker | p99 kedge/docker |");
        println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        for (n, k, d) in &results {
            println!(
                "| {n} | {:.0} / {:.0} | {:.0} | {:.0} / {:.0} | {:.0} | {:.2} | {:.2} |",
                k.p50,
                k.p99,
                k.total,
                d.p50,
                d.p99,
                d.total,
                k.p50 / d.p50,
                k.p99 / d.p99
            );
        }
        let steps = |side: &str, names: &[&str], pick: &dyn Fn(&(usize, Summary, Summary)) -> &Summary| {
            println!();
            println!("{side}, p50 of each step (ms):");
            println!();
            println!("| pods | {} |", names.join(" | "));
            println!("| ---: |{}", " ---: |".repeat(names.len()));
            for r in &results {
                let cells: Vec<String> =
                    pick(r).phases.iter().map(|p| format!("{p:.0}")).collect();
                println!("| {} | {} |", r.0, cells.join(" | "));
            }
        };
        steps("kedge", &KEDGE_STEPS, &|r| &r.1);
        steps("docker run", &DOCKER_STEPS, &|r| &r.2);
        let mib = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1} MiB"));
        println!();
        println!(
            "kedge resident memory: idle {}, with {} pods Ready {}, after the run {}",
            mib(idle_rss),
            sizes.iter().max().unwrap(),
            mib((!rss_at_ready.is_empty()).then(|| median(rss_at_ready.clone()))),
            mib(final_rss)
        );
    });
}
