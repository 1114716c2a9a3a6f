//! The mesh's cost, measured: two machines on this one (network namespaces
//! with an engine each, tests/common/machines.rs), `kedge init` and `kedge
//! join`, and the same pods twice — in a namespace outside the mesh and in
//! one inside it: a netbench server and an echo server behind a Service
//! (port `http`) on the first machine, a client on each machine. The same
//! client program (tests/images/netbench.rs) measures, by pod IP, a 256 MiB
//! bulk transfer and 5,000 one-byte round trips, and, through the
//! Service's ClusterIP, 2,000 HTTP/1.1 requests on one connection, for
//! each path in the same run; the table gives medians of `ROUNDS` rounds
//! and the mesh's figures as ratios of the plain ones.
//!
//! Plain pod to pod is TCP straight over the bridge or the VXLAN tunnel;
//! through the mesh, each connection is captured in both pods'
//! namespaces and crosses as a stream of the mutual-TLS HTTP/2 tunnel
//! between the node proxies, and HTTP requests are balanced one by one.
//!
//! ```sh
//! cargo bench --bench mesh                  # ROUNDS=3
//! ```

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "support.rs"]
mod support;

use std::time::Duration;

use common::machines::{Machine, Machines};
use common::{eventually, images};
use support::{median, rounds, value};

const WAIT: Duration = Duration::from_secs(180);
const BYTES: u64 = 256 << 20;
const ROUND_TRIPS: usize = 5_000;
const REQUESTS: usize = 2_000;

fn run_in(m: &Machine, namespace: &str, pod: &str, args: &[&str]) -> String {
    let mut all = vec!["exec", "-n", namespace, pod, "--", "/netbench"];
    all.extend(args);
    m.kubectl(&all)
}

/// One path's figures, a sample per round.
#[derive(Default)]
struct Samples {
    gbit_s: Vec<f64>,
    p50_us: Vec<f64>,
    p99_us: Vec<f64>,
    requests_s: Vec<f64>,
}

fn manifest(namespace: &str, netbench: &str, echo: &str) -> String {
    let mut out = format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: {namespace}}}\n");
    for (name, node, image, args) in [
        ("server", "m1", netbench, r#"["serve", "5001"]"#),
        ("near", "m1", netbench, "[sleep]"),
        ("far", "m2", netbench, "[sleep]"),
        ("web", "m1", echo, "[]"),
    ] {
        out.push_str(&format!(
            "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: {namespace}, labels: {{app: {name}}}}}\n\
             spec:\n  nodeName: {node}\n  terminationGracePeriodSeconds: 1\n  containers:\n  \
             - {{name: c, image: {image}, imagePullPolicy: Never, args: {args}}}\n"
        ));
    }
    out.push_str(&format!(
        "---\napiVersion: v1\nkind: Service\nmetadata: {{name: web, namespace: {namespace}}}\n\
         spec:\n  selector: {{app: web}}\n  ports: [{{name: http, port: 80, targetPort: 8080}}]\n"
    ));
    out
}

fn main() {
    let (netbench, echo) = (images::netbench(), images::echo());
    let mut ms = Machines::new(2);
    ms.load_image(netbench);
    ms.load_image(echo);
    ms.machine(1)
        .init(&["--cluster-cidr", "10.245.0.0/16"], &[]);
    let join = ms.machines[0].join_commands(1).remove(0);
    ms.machine(2).join(&join, &[]);
    let m1 = &ms.machines[0];
    assert!(eventually(WAIT, || {
        let out = m1.kubectl_output(&["get", "nodes", "--no-headers"]);
        String::from_utf8_lossy(&out.stdout)
            .matches(" Ready ")
            .count()
            == 2
    }));
    for namespace in ["plain", "mesh"] {
        m1.apply(
            &format!("{namespace}.yaml"),
            &manifest(namespace, netbench, echo),
        );
    }
    m1.kubectl(&["label", "namespace", "mesh", "kedge.io/mesh=enabled"]);
    for namespace in ["plain", "mesh"] {
        for pod in ["server", "near", "far", "web"] {
            assert!(
                eventually(WAIT, || m1
                    .kubectl(&[
                        "get",
                        "pod",
                        pod,
                        "-n",
                        namespace,
                        "-o",
                        "jsonpath={.status.phase}"
                    ])
                    .trim()
                    == "Running"),
                "{namespace}/{pod} did not run"
            );
        }
    }
    let get = |namespace: &str, what: &[&str], path: &str| {
        let mut args = vec!["get"];
        args.extend(what);
        args.extend(["-n", namespace, "-o"]);
        let path = format!("jsonpath={path}");
        args.push(&path);
        m1.kubectl(&args).trim().to_string()
    };
    let targets: Vec<(String, String)> = ["plain", "mesh"]
        .iter()
        .map(|ns| {
            (
                format!("{}:5001", get(ns, &["pod", "server"], "{.status.podIP}")),
                format!("{}:80", get(ns, &["service", "web"], "{.spec.clusterIP}")),
            )
        })
        .collect();
    // Every path answers (the mesh's pods captured, its certificates
    // issued) before anything is timed.
    for (i, namespace) in ["plain", "mesh"].iter().enumerate() {
        for client in ["near", "far"] {
            assert!(eventually(WAIT, || {
                let out = m1.kubectl_output(&[
                    "exec",
                    "-n",
                    namespace,
                    client,
                    "--",
                    "/netbench",
                    "http",
                    &targets[i].1,
                    "5",
                ]);
                String::from_utf8_lossy(&out.stdout).contains("failures=0")
            }));
        }
    }

    let paths = [
        ("plain", "near", "same machine"),
        ("mesh", "near", "same machine, mesh"),
        ("plain", "far", "other machine"),
        ("mesh", "far", "other machine, mesh"),
    ];
    let mut results: Vec<Samples> = paths.iter().map(|_| Samples::default()).collect();
    let (bytes, trips, requests) = (
        BYTES.to_string(),
        ROUND_TRIPS.to_string(),
        REQUESTS.to_string(),
    );
    let rounds = rounds();
    for round in 0..rounds {
        // Alternate which goes first.
        let mut order: Vec<usize> = (0..paths.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for i in order {
            let (namespace, client, _) = paths[i];
            let (pod_target, service_target) = &targets[usize::from(namespace == "mesh")];
            let s = run_in(m1, namespace, client, &["stream", pod_target, &bytes]);
            let r = run_in(m1, namespace, client, &["rr", pod_target, &trips]);
            let h = run_in(m1, namespace, client, &["http", service_target, &requests]);
            assert!(h.contains("failures=0"), "{h}");
            results[i].gbit_s.push(value(&s, "gbit_s"));
            results[i].p50_us.push(value(&r, "p50_us"));
            results[i].p99_us.push(value(&r, "p99_us"));
            results[i].requests_s.push(value(&h, "requests_s"));
        }
    }
    println!(
        "pod to pod, plain and through the mesh, {rounds} rounds, medians \
         ({} MiB stream; {ROUND_TRIPS} one-byte round trips; {REQUESTS} HTTP/1.1 requests on one connection through the Service)",
        BYTES >> 20
    );
    println!();
    println!("| path | Gbit/s | round trip p50 µs | p99 µs | HTTP requests/s |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    let medians: Vec<[f64; 4]> = results
        .iter()
        .map(|s| {
            [
                median(s.gbit_s.clone()),
                median(s.p50_us.clone()),
                median(s.p99_us.clone()),
                median(s.requests_s.clone()),
            ]
        })
        .collect();
    for ((_, _, name), m) in paths.iter().zip(&medians) {
        println!(
            "| {name} | {:.2} | {:.1} | {:.1} | {:.0} |",
            m[0], m[1], m[2], m[3]
        );
    }
    println!();
    for (plain, mesh, name) in [(0, 1, "same machine"), (2, 3, "other machine")] {
        let (p, m) = (medians[plain], medians[mesh]);
        println!(
            "mesh / plain, {name}: throughput {:.2}, round trip p50 {:.2}, p99 {:.2}, HTTP requests/s {:.2}",
            m[0] / p[0],
            m[1] / p[1],
            m[2] / p[2],
            m[3] / p[3]
        );
    }
}
