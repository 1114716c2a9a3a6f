//! How long a control plane of three takes to recover its scheduler when
//! the server leading it is killed: three etcd members, three `kedge
//! server`s on them, two hollow nodes reaching them through their load
//! balancer. Each round builds the cluster anew, `kill -9`s the server
//! holding the `kube-scheduler` Lease, and times until another server
//! holds it and until a pod created right after the kill is Running.
//! Kubernetes' components bound the first by their lease settings (15 s
//! lease, 2 s retry: at most about 17 s); there is no other scheduler to
//! run beside it here, so that bound is the comparison.
//!
//! ```sh
//! cargo bench --bench failover              # ROUNDS=3
//! ```

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::etcd::EtcdCluster;
use common::{eventually, Cluster};

const WAIT: Duration = Duration::from_secs(120);

/// (until another server leads, until the new pod runs).
fn round() -> (Duration, Duration) {
    let etcd = EtcdCluster::start();
    let urls = etcd.client_urls.join(",");
    let args = ["--etcd-servers", urls.as_str()];
    let first = Cluster::start_with(&args);
    let second = Cluster::start_beside(&first, &args, &[]);
    let third = Cluster::start_beside(&first, &args, &[]);
    let mut servers = [first, second, third];
    let identities: Vec<String> = servers
        .iter()
        .map(|s| kedge_control::leaderelection::identity(&s.data_dir))
        .collect();
    let endpoints: Vec<String> = servers
        .iter()
        .map(|s| format!("127.0.0.1:{}", s.port()))
        .collect();
    let _nodes = servers[0].hollow_nodes(2, "fo-", &["--api-servers", &endpoints.join(",")]);
    let mut holder = None;
    assert!(eventually(WAIT, || {
        holder = common::lease_holder(|a| servers[1].kubectl_output(a), "kube-scheduler");
        holder.is_some()
    }));
    let leader = identities
        .iter()
        .position(|i| Some(i) == holder.as_ref())
        .expect("a server leads");
    let survivor = (leader + 1) % 3;
    assert!(eventually(WAIT, || {
        let out = servers[survivor].kubectl_output(&["get", "nodes", "-o", "name"]);
        String::from_utf8_lossy(&out.stdout).lines().count() == 2
    }));
    let killed = Instant::now();
    servers[leader].kill();
    servers[survivor].kubectl(&["run", "after", "--image=kedge-test/none"]);
    let mut led = None;
    let mut running = None;
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline && (led.is_none() || running.is_none()) {
        if led.is_none()
            && common::lease_holder(|a| servers[survivor].kubectl_output(a), "kube-scheduler")
                .is_some_and(|h| h != identities[leader])
        {
            led = Some(killed.elapsed());
        }
        if running.is_none()
            && servers[survivor]
                .kubectl_output(&["get", "pod", "after", "-o", "jsonpath={.status.phase}"])
                .stdout
                == b"Running"
        {
            running = Some(killed.elapsed());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    (
        led.expect("no other server took the Lease"),
        running.expect("the pod did not run"),
    )
}

fn main() {
    let rounds = std::env::var("ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .filter(|r: &usize| *r > 0)
        .unwrap_or(3);
    let mut led = Vec::new();
    let mut running = Vec::new();
    for _ in 0..rounds {
        let (l, r) = round();
        led.push(l.as_secs_f64());
        running.push(r.as_secs_f64());
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v[v.len() / 2]
    };
    println!("scheduler failover after kill -9 of its leader, {rounds} rounds, medians");
    println!();
    println!("| until another server holds the Lease | until a pod created then is Running | Kubernetes' bound from its lease settings |");
    println!("| ---: | ---: | ---: |");
    println!(
        "| {:.1} s | {:.1} s | ≤ 17 s |",
        median(led.clone()),
        median(running.clone())
    );
    println!();
    println!("rounds: lease {led:?} s, pod {running:?} s");
}
