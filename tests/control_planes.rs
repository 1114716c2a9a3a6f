//! A control plane that survives losing a server: three etcd members
//! (Debian's `etcd-server`) and three `kedge server`s on them, the second
//! and third given the first one's CA and keys as kubeadm gives a second
//! control-plane machine. Hollow nodes reach the API servers through their
//! load balancer (`--api-servers`).
//!
//! Shown: one scheduler and one controller manager lead (their Leases in
//! `kube-system`); `kill -9` of the server that leads the scheduler hands
//! the Lease to another and pods keep being scheduled; `kill -9` of an etcd
//! member does not stop writes; 100 writes acknowledged across both kills
//! are all there afterwards; the nodes stay Ready throughout.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::etcd::EtcdCluster;
use common::{eventually, Cluster};

const WAIT: Duration = Duration::from_secs(120);

fn running_pods(server: &Cluster) -> usize {
    let out = server.kubectl_output(&[
        "get",
        "pods",
        "-l",
        "app=web",
        "-o",
        "jsonpath={range .items[*]}{.status.phase}{\"\\n\"}{end}",
    ]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| *l == "Running")
        .count()
}

fn ready_nodes(server: &Cluster) -> usize {
    let out = server.kubectl_output(&[
        "get",
        "nodes",
        "-o",
        "jsonpath={range .items[*]}{.status.conditions[?(@.type==\"Ready\")].status}{\"\\n\"}{end}",
    ]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| *l == "True")
        .count()
}

/// Create ConfigMap `name` through the first server of `servers` that
/// acknowledges it, trying them in turn for a while; whether one did.
fn write_through(servers: &[&Cluster], name: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        for s in servers {
            let out = s.kubectl_output(&[
                "create",
                "configmap",
                name,
                "--from-literal=n=1",
                "--request-timeout=5s",
            ]);
            if out.status.success() {
                return true;
            }
            // Acknowledged earlier on a server that died before answering:
            // it is there.
            if String::from_utf8_lossy(&out.stderr).contains("AlreadyExists")
                || String::from_utf8_lossy(&out.stderr).contains("already exists")
            {
                return true;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}

#[test]
fn three_servers_on_three_etcd_members_survive_losing_one_of_each() {
    let mut etcd = EtcdCluster::start();
    let urls = etcd.client_urls.join(",");
    let args = ["--etcd-servers", urls.as_str()];
    let env = [("KEDGE_NODE_MONITOR_GRACE_SECONDS", "20")];
    let first = Cluster::start_with_env(&args, &env);
    let second = Cluster::start_beside(&first, &args, &env);
    let third = Cluster::start_beside(&first, &args, &env);
    let mut servers = vec![first, second, third];
    let identities: Vec<String> = servers
        .iter()
        .map(|s| kedge_control::leaderelection::identity(&s.data_dir))
        .collect();
    assert_eq!(
        identities.iter().collect::<BTreeSet<_>>().len(),
        3,
        "each control plane is a candidate of its own"
    );

    // Each component has one leader among the three.
    let mut scheduler_leader = None;
    assert!(eventually(WAIT, || {
        scheduler_leader = common::lease_holder(|a| servers[1].kubectl_output(a), "kube-scheduler");
        scheduler_leader.is_some()
            && common::lease_holder(|a| servers[2].kubectl_output(a), "kube-controller-manager")
                .is_some()
    }));
    let leader = identities
        .iter()
        .position(|i| Some(i) == scheduler_leader.as_ref())
        .expect("the scheduler's leader is one of the servers");

    // Two hollow nodes reaching all three servers through their balancer.
    let endpoints: Vec<String> = servers
        .iter()
        .map(|s| format!("127.0.0.1:{}", s.port()))
        .collect();
    let endpoints = endpoints.join(",");
    let _nodes = servers[0].hollow_nodes(2, "cp-", &["--api-servers", &endpoints]);
    assert!(eventually(WAIT, || ready_nodes(&servers[1]) == 2));
    servers[2].kubectl(&[
        "create",
        "deployment",
        "web",
        "--image=kedge-test/none",
        "--replicas=2",
    ]);
    assert!(eventually(WAIT, || running_pods(&servers[0]) == 2));

    // 100 writes, with the scheduler's leader killed after 30 and an etcd
    // member after 60.
    let mut acknowledged = Vec::new();
    for i in 0..100 {
        if i == 30 {
            servers[leader].kill();
        }
        if i == 60 {
            etcd.kill(1);
        }
        let alive: Vec<&Cluster> = servers
            .iter()
            .enumerate()
            .filter(|(n, _)| *n != leader || i < 30)
            .map(|(_, s)| s)
            .collect();
        let name = format!("write-{i}");
        assert!(
            write_through(&alive, &name),
            "no server acknowledged {name}"
        );
        acknowledged.push(name);
    }
    let survivor = &servers[(leader + 1) % 3];

    // Another server leads the scheduler and schedules new pods on the
    // nodes, which stayed Ready through their balancer.
    assert!(
        eventually(WAIT, || common::lease_holder(
            |a| survivor.kubectl_output(a),
            "kube-scheduler"
        )
        .is_some_and(|h| h != identities[leader])),
        "no other server took the scheduler's Lease"
    );
    survivor.kubectl(&["scale", "deployment", "web", "--replicas=4"]);
    assert!(
        eventually(WAIT, || running_pods(survivor) == 4),
        "pods were not scheduled after the leader was lost: {} running",
        running_pods(survivor)
    );
    assert_eq!(ready_nodes(survivor), 2, "a node went NotReady");

    // Nothing acknowledged is missing.
    let out = survivor.kubectl(&["get", "configmaps", "-o", "name"]);
    let stored: BTreeSet<&str> = out
        .lines()
        .filter_map(|l| l.strip_prefix("configmap/"))
        .collect();
    let missing: Vec<&String> = acknowledged
        .iter()
        .filter(|n| !stored.contains(n.as_str()))
        .collect();
    assert!(missing.is_empty(), "acknowledged writes lost: {missing:?}");
    servers.clear();
}
