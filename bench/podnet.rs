//! The pod network across machines, measured: two machines on this one
//! (network namespaces with an engine each, tests/common/machines.rs),
//! `kedge init` on the first and `kedge join` on the second, a server pod
//! on the first and a client pod on each. The same client program
//! (tests/images/netbench.rs) measures a 1 GiB bulk transfer and 10,000
//! one-byte round trips to the server pod from the same machine (its
//! bridge) and from the other machine (through the VXLAN tunnel), in the
//! same run; the table gives medians of `ROUNDS` rounds. It also times
//! how long a joining machine takes from `kedge join` to its Node Ready.
//!
//! ```sh
//! cargo bench --bench podnet                # ROUNDS=3
//! ```

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "support.rs"]
mod support;

use std::time::{Duration, Instant};

use common::machines::{Machine, Machines};
use common::{eventually, images};
use support::{median, rounds, value};

const WAIT: Duration = Duration::from_secs(180);
const BYTES: u64 = 1 << 30;
const ROUND_TRIPS: usize = 10_000;

fn run_in(m: &Machine, pod: &str, args: &[&str]) -> String {
    let mut all = vec!["exec", pod, "--", "/netbench"];
    all.extend(args);
    m.kubectl(&all)
}

/// One path's figures, a sample per round.
#[derive(Default)]
struct Samples {
    gbit_s: Vec<f64>,
    p50_us: Vec<f64>,
    p99_us: Vec<f64>,
}

fn main() {
    let netbench = images::netbench();
    let mut ms = Machines::new(2);
    ms.load_image(netbench);
    ms.machine(1).init(&[], &[]);
    let join = ms.machines[0].join_commands(1).remove(0);
    let joined = Instant::now();
    ms.machine(2).join(&join, &[]);
    let m1 = &ms.machines[0];
    let ready = |name: &str| {
        m1.kubectl_output(&[
            "get",
            "node",
            name,
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
        ])
        .stdout
            == b"True"
    };
    let mut join_to_ready = None;
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        if ready("m2") {
            join_to_ready = Some(joined.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let join_to_ready = join_to_ready.expect("m2 did not go Ready");

    let pod = |name: &str, node: &str, args: &str| {
        format!(
            r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"{name}"}},"spec":{{"nodeName":"{node}","containers":[{{"name":"c","image":"{netbench}","imagePullPolicy":"Never","args":{args}}}]}}}}"#
        )
    };
    for (name, node, args) in [
        ("server", "m1", r#"["serve","5001"]"#),
        ("near", "m1", r#"["sleep"]"#),
        ("far", "m2", r#"["sleep"]"#),
    ] {
        let file = m1.dir.join(format!("{name}.json"));
        std::fs::write(&file, pod(name, node, args)).unwrap();
        m1.kubectl(&["apply", "-f", file.to_str().unwrap()]);
    }
    let running = |name: &str| {
        m1.kubectl(&["get", "pod", name, "-o", "jsonpath={.status.phase}"])
            .trim()
            == "Running"
    };
    assert!(eventually(WAIT, || running("server")
        && running("near")
        && running("far")));
    let server_ip = m1
        .kubectl(&["get", "pod", "server", "-o", "jsonpath={.status.podIP}"])
        .trim()
        .to_string();
    let target = format!("{server_ip}:5001");
    let bytes = BYTES.to_string();
    let trips = ROUND_TRIPS.to_string();
    let mut results: Vec<(&str, Samples)> = vec![
        ("same machine (bridge)", Samples::default()),
        ("other machine (VXLAN)", Samples::default()),
    ];
    let rounds = rounds();
    for round in 0..rounds {
        // Alternate which goes first.
        let order: [usize; 2] = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for i in order {
            let client = ["near", "far"][i];
            let s = run_in(m1, client, &["stream", &target, &bytes]);
            let r = run_in(m1, client, &["rr", &target, &trips]);
            results[i].1.gbit_s.push(value(&s, "gbit_s"));
            results[i].1.p50_us.push(value(&r, "p50_us"));
            results[i].1.p99_us.push(value(&r, "p99_us"));
        }
    }
    println!(
        "pod to pod, {rounds} rounds, medians (1 GiB stream; {ROUND_TRIPS} one-byte round trips)"
    );
    println!();
    println!("| path | Gbit/s | round trip p50 µs | p99 µs |");
    println!("| --- | ---: | ---: | ---: |");
    let mut med = Vec::new();
    for (name, samples) in &results {
        let m = (
            median(samples.gbit_s.clone()),
            median(samples.p50_us.clone()),
            median(samples.p99_us.clone()),
        );
        println!("| {name} | {:.2} | {:.1} | {:.1} |", m.0, m.1, m.2);
        med.push(m);
    }
    println!();
    println!(
        "across machines / same machine: throughput {:.2}, round trip p50 {:.2}",
        med[1].0 / med[0].0,
        med[1].1 / med[0].1
    );
    println!(
        "kedge join → Node Ready: {:.2} s",
        join_to_ready.as_secs_f64()
    );
}
