use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::render::{render, RenderOptions, Ruleset};
use crate::table::{
    Endpoint, Frontend, NodeInfo, Protocol, ProxyTable, ServiceKey, ServicePortEntry,
};

fn entry(name: &str, cluster_ip: &str, endpoints: &[(&str, &str)]) -> ServicePortEntry {
    ServicePortEntry {
        service: ServiceKey::new("default", name),
        port_name: "http".into(),
        protocol: Protocol::Tcp,
        cluster_ips: vec![cluster_ip.parse().unwrap()],
        port: 80,
        node_port: None,
        load_balancer: false,
        external_local: false,
        internal_local: false,
        affinity: None,
        http: None,
        sniff: None,
        traffic_split: Default::default(),
        endpoints: endpoints
            .iter()
            .map(|(addr, node)| Endpoint {
                addr: addr.parse().unwrap(),
                node_name: Some((*node).into()),
            })
            .collect(),
    }
}

fn node() -> NodeInfo {
    NodeInfo {
        name: "node-a".into(),
        addresses: vec!["192.0.2.10".parse().unwrap()],
    }
}

fn rendered(ports: Vec<ServicePortEntry>, locally_served: &BTreeSet<Frontend>) -> Ruleset {
    render(
        &ProxyTable { ports },
        &RenderOptions {
            table: "kedge_test",
            node: &node(),
            locally_served,
            local_ports: &Default::default(),
        },
    )
}

/// The lines of chain `name`'s body, tabs trimmed.
fn chain(r: &Ruleset, name: &str) -> Vec<String> {
    let head = format!("\tchain {name} {{\n");
    let text = r.text();
    let Some(start) = text.find(&head) else {
        return Vec::new();
    };
    text[start + head.len()..]
        .lines()
        .take_while(|l| *l != "\t}")
        .map(|l| l.trim().to_string())
        .collect()
}

#[test]
fn cluster_ip_with_two_endpoints() {
    let r = rendered(
        vec![entry(
            "web",
            "10.96.0.20",
            &[("10.244.0.5:8080", "node-a"), ("10.244.1.6:8080", "node-b")],
        )],
        &BTreeSet::new(),
    );
    let expected = "\
table ip kedge_test {
\tmap service-ports {
\t\ttype ipv4_addr . inet_proto . inet_service : verdict
\t\telements = { 10.96.0.20 . tcp . 80 : goto svc-default/web/tcp/80 }
\t}
\tset no-endpoints {
\t\ttype ipv4_addr . inet_proto . inet_service
\t}
\tset cluster-ips {
\t\ttype ipv4_addr
\t\telements = { 10.96.0.20 }
\t}
\tset hairpin {
\t\ttype ipv4_addr . ipv4_addr
\t\telements = { 10.244.0.5 . 10.244.0.5,
\t\t\t10.244.1.6 . 10.244.1.6 }
\t}
\tchain filter-forward {
\t\ttype filter hook forward priority -110; policy accept;
\t\tct state new ip daddr . meta l4proto . th dport @no-endpoints goto reject-chain
\t\tct state new ip daddr @cluster-ips goto reject-chain
\t}
\tchain filter-input {
\t\ttype filter hook input priority -110; policy accept;
\t\tct state new ip daddr . meta l4proto . th dport @no-endpoints goto reject-chain
\t}
\tchain filter-output {
\t\ttype filter hook output priority -110; policy accept;
\t\tct state new ip daddr . meta l4proto . th dport @no-endpoints goto reject-chain
\t}
\tchain masquerading {
\t\tct status dnat ip saddr . ip daddr @hairpin meta mark set meta mark | 0x4000
\t\tmeta mark & 0x4000 == 0 return
\t\tmeta mark set meta mark ^ 0x4000
\t\tmasquerade
\t}
\tchain nat-output {
\t\ttype nat hook output priority -100; policy accept;
\t\tjump services
\t}
\tchain nat-postrouting {
\t\ttype nat hook postrouting priority 100; policy accept;
\t\tjump masquerading
\t}
\tchain nat-prerouting {
\t\ttype nat hook prerouting priority -100; policy accept;
\t\tjump services
\t}
\tchain reject-chain {
\t\tmeta l4proto tcp counter reject with tcp reset
\t\tcounter reject
\t}
\tchain services {
\t\tip daddr . meta l4proto . th dport vmap @service-ports
\t}
\tchain svc-default/web/tcp/80 {
\t\tfib saddr type local meta mark set meta mark | 0x4000
\t\tnumgen random mod 2 == 0 meta l4proto tcp dnat to 10.244.0.5:8080
\t\tmeta l4proto tcp dnat to 10.244.1.6:8080
\t}
}
";
    assert_eq!(r.text(), expected, "{}", r.text());
    assert_eq!(r.rules, 17);
    assert!(r
        .replace_script()
        .starts_with("add table ip kedge_test\ndelete table ip kedge_test\ntable ip kedge_test {"));
}

#[test]
fn no_ready_endpoint_is_rejected_and_not_dnated() {
    let mut udp = entry("dns", "10.96.0.30", &[]);
    udp.protocol = Protocol::Udp;
    udp.port = 53;
    let r = rendered(vec![entry("web", "10.96.0.20", &[]), udp], &BTreeSet::new());
    assert!(
        r.text().contains(
            "set no-endpoints {\n\t\ttype ipv4_addr . inet_proto . inet_service\n\t\telements = { 10.96.0.20 . tcp . 80,\n\t\t\t10.96.0.30 . udp . 53 }"
        ),
        "{}",
        r.text()
    );
    assert!(!r.text().contains("svc-default"), "{}", r.text());
    assert!(!r.text().contains("dnat to"), "{}", r.text());
    // UDP gets ICMP port unreachable, TCP a reset.
    assert_eq!(
        chain(&r, "reject-chain"),
        [
            "meta l4proto tcp counter reject with tcp reset",
            "counter reject"
        ]
    );
}

#[test]
fn node_port_local_policy_uses_local_endpoints_and_keeps_the_source() {
    let mut np = entry(
        "np",
        "10.96.0.40",
        &[("10.244.0.5:8080", "node-a"), ("10.244.1.6:8080", "node-b")],
    );
    np.node_port = Some(30080);
    np.external_local = true;
    let mut lb = entry("lb", "10.96.0.41", &[("10.244.1.7:8080", "node-b")]);
    lb.node_port = Some(30081);
    lb.load_balancer = true;
    let r = rendered(vec![np.clone(), lb], &BTreeSet::new());

    assert!(r
        .text()
        .contains("192.0.2.10 . tcp . 30080 : goto ext-default/np/tcp/80"));
    assert_eq!(
        chain(&r, "ext-default/np/tcp/80"),
        [
            "fib saddr type local meta mark set meta mark | 0x4000",
            "meta l4proto tcp dnat to 10.244.0.5:8080",
        ]
    );
    // The ClusterIP still balances over both.
    assert_eq!(
        chain(&r, "svc-default/np/tcp/80")[1..],
        [
            "numgen random mod 2 == 0 meta l4proto tcp dnat to 10.244.0.5:8080",
            "meta l4proto tcp dnat to 10.244.1.6:8080",
        ]
    );
    // Cluster policy: every external connection is masqueraded, on the
    // NodePort and the load-balancer port alike.
    assert_eq!(
        chain(&r, "ext-default/lb/tcp/80"),
        [
            "meta mark set meta mark | 0x4000",
            "meta l4proto tcp dnat to 10.244.1.7:8080",
        ]
    );
    assert!(r
        .text()
        .contains("192.0.2.10 . tcp . 30081 : goto ext-default/lb/tcp/80"));
    assert!(r
        .text()
        .contains("192.0.2.10 . tcp . 80 : goto ext-default/lb/tcp/80"));

    // No local endpoint: the NodePort rejects, the ClusterIP serves.
    np.endpoints
        .retain(|e| e.node_name.as_deref() == Some("node-b"));
    let r = rendered(vec![np], &BTreeSet::new());
    assert!(
        r.text().contains("elements = { 192.0.2.10 . tcp . 30080 }"),
        "{}",
        r.text()
    );
    assert!(chain(&r, "ext-default/np/tcp/80").is_empty());
    assert_eq!(chain(&r, "svc-default/np/tcp/80").len(), 2);
}

#[test]
fn client_ip_affinity_sets_survive_an_update() {
    let mut web = entry(
        "web",
        "10.96.0.20",
        &[("10.244.0.5:8080", "node-a"), ("10.244.1.6:8080", "node-b")],
    );
    web.affinity = Some(Duration::from_secs(600));
    let r = rendered(vec![web.clone()], &BTreeSet::new());
    let set = "aff-default/web/tcp/80__10.244.0.5/8080";
    assert!(r.text().contains(&format!(
        "\tset {set} {{ type ipv4_addr; flags dynamic,timeout; timeout 600s; }}\n"
    )));
    assert_eq!(
        chain(&r, "svc-default/web/tcp/80")[1],
        format!("ip saddr @{set} goto ep-default/web/tcp/80__10.244.0.5/8080")
    );
    assert_eq!(
        chain(&r, "ep-default/web/tcp/80__10.244.0.5/8080")[0],
        format!("update @{set} {{ ip saddr }}")
    );

    // One endpoint goes: its chain and set are deleted, the other's set
    // (and the clients in it) stays, and nothing else is touched.
    web.endpoints.pop();
    let next = rendered(vec![web], &BTreeSet::new());
    let script = next.update_script(&r);
    let t = "kedge_test";
    let gone_chain = "ep-default/web/tcp/80__10.244.1.6/8080";
    assert!(!script.contains("flush table"), "{script}");
    assert!(script.contains(&format!(
        "flush chain ip {t} svc-default/web/tcp/80\nadd rule ip {t} svc-default/web/tcp/80 "
    )));
    // Deleted after the Service chain that jumped to it was refilled.
    let refilled = script.find("flush chain ip kedge_test svc-").unwrap();
    let deleted = script
        .find(&format!(
            "flush chain ip {t} {gone_chain}\ndelete chain ip {t} {gone_chain}\n"
        ))
        .unwrap();
    assert!(refilled < deleted, "{script}");
    assert!(script.ends_with(&format!(
        "delete set ip {t} aff-default/web/tcp/80__10.244.1.6/8080\n"
    )));
    assert!(!script.contains(&format!("delete set ip {t} {set}\n")));
    assert!(!script.contains("service-ports"), "{script}");
}

#[test]
fn an_update_touches_only_what_changed() {
    let services = |n: usize| {
        (0..n)
            .map(|i| {
                let mut e = entry(
                    &format!("s{i}"),
                    &format!("10.96.1.{i}"),
                    &[(&format!("10.244.0.{i}:8080"), "node-a")],
                );
                e.port = 80;
                e
            })
            .collect::<Vec<_>>()
    };
    let before = rendered(services(50), &BTreeSet::new());
    // One Service more.
    let after = rendered(services(51), &BTreeSet::new());
    let script = after.update_script(&before);
    assert_eq!(
        script,
        "add chain ip kedge_test svc-default/s50/tcp/80\n\
         add rule ip kedge_test svc-default/s50/tcp/80 fib saddr type local meta mark set meta mark | 0x4000\n\
         add rule ip kedge_test svc-default/s50/tcp/80 meta l4proto tcp dnat to 10.244.0.50:8080\n\
         add element ip kedge_test service-ports { 10.96.1.50 . tcp . 80 : goto svc-default/s50/tcp/80 }\n\
         add element ip kedge_test cluster-ips { 10.96.1.50 }\n\
         add element ip kedge_test hairpin { 10.244.0.50 . 10.244.0.50 }\n"
    );
    // And back: the same, undone, the chain last.
    let script = before.update_script(&after);
    assert_eq!(
        script,
        "delete element ip kedge_test service-ports { 10.96.1.50 . tcp . 80 }\n\
         delete element ip kedge_test cluster-ips { 10.96.1.50 }\n\
         delete element ip kedge_test hairpin { 10.244.0.50 . 10.244.0.50 }\n\
         flush chain ip kedge_test svc-default/s50/tcp/80\n\
         delete chain ip kedge_test svc-default/s50/tcp/80\n"
    );
    // Nothing changed: nothing to do.
    assert_eq!(after.update_script(&after), "");
}

#[test]
fn locally_served_frontends_and_ipv6_are_left_alone() {
    let mut dns = entry("kube-dns", "10.96.0.10", &[]);
    dns.port = 53;
    let mut v6 = entry("v6", "fd00::20", &[("[fd00:1::5]:8080", "node-a")]);
    v6.port = 81;
    let served = BTreeSet::from([Frontend {
        addr: "10.96.0.10:53".parse::<SocketAddr>().unwrap(),
        protocol: Protocol::Tcp,
    }]);
    let r = rendered(vec![dns, v6], &served);
    assert!(!r.text().contains("10.96.0.10"), "{}", r.text());
    assert!(!r.text().contains("fd00"), "{}", r.text());
}

#[test]
fn same_table_renders_the_same_text() {
    let t = || {
        rendered(
            vec![
                entry("b", "10.96.0.2", &[("10.244.0.9:80", "node-a")]),
                entry("a", "10.96.0.1", &[("10.244.0.8:80", "node-a")]),
            ],
            &BTreeSet::new(),
        )
    };
    assert_eq!(t(), t());
}

/// Whether this process may talk to nftables (root with nft installed).
fn nft_usable() -> bool {
    let root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false);
    let nft = std::process::Command::new("nft")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !(root && nft) {
        eprintln!("skipped: needs root and nft");
    }
    root && nft
}

#[tokio::test]
async fn nft_accepts_the_scripts() {
    if !nft_usable() {
        return;
    }
    let mut web = entry(
        "web",
        "10.96.0.20",
        &[("10.244.0.5:8080", "node-a"), ("10.244.1.6:8080", "node-b")],
    );
    web.affinity = Some(Duration::from_secs(10800));
    web.node_port = Some(30080);
    web.external_local = true;
    let mut lb = entry("lb", "10.96.0.21", &[("10.244.1.7:8080", "node-b")]);
    lb.load_balancer = true;
    lb.node_port = Some(30081);
    let mut udp = entry("dns", "10.96.0.22", &[]);
    udp.protocol = Protocol::Udp;
    let table = format!("kedge_c{}", std::process::id());
    let node = NodeInfo {
        name: "node-a".into(),
        addresses: vec![IpAddr::from([192, 0, 2, 10])],
    };
    // The cluster DNS on another port of its address.
    let dns = Frontend {
        addr: "10.96.0.10:53".parse().unwrap(),
        protocol: Protocol::Udp,
    };
    let local_ports = BTreeMap::from([(dns, 40053)]);
    let opts = |served| RenderOptions {
        table: &table,
        node: &node,
        locally_served: served,
        local_ports: &local_ports,
    };
    let none = BTreeSet::new();
    let first = render(
        &ProxyTable {
            ports: vec![web.clone(), lb, udp],
        },
        &opts(&none),
    );
    super::check(&first.replace_script())
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", first.replace_script()));
    // Check mode does not commit, so the update is checked against a table
    // made in the same script.
    let second = render(&ProxyTable { ports: vec![web] }, &opts(&none));
    let script = format!("{}{}", first.replace_script(), second.update_script(&first));
    super::check(&script)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{script}"));
    // An empty table is a valid one.
    let empty = render(&ProxyTable::default(), &opts(&none));
    super::check(&empty.replace_script()).await.unwrap();
}

#[test]
fn each_of_three_endpoints_is_taken_with_equal_chance() {
    let r = rendered(
        vec![entry(
            "web",
            "10.96.0.20",
            &[
                ("10.244.0.5:8080", "node-a"),
                ("10.244.0.6:8080", "node-a"),
                ("10.244.0.7:8080", "node-a"),
            ],
        )],
        &BTreeSet::new(),
    );
    // 1/3, then 1/2 of the remaining 2/3, then the rest: 1/3 each.
    assert_eq!(
        chain(&r, "svc-default/web/tcp/80")[1..],
        [
            "numgen random mod 3 == 0 meta l4proto tcp dnat to 10.244.0.5:8080",
            "numgen random mod 2 == 0 meta l4proto tcp dnat to 10.244.0.6:8080",
            "meta l4proto tcp dnat to 10.244.0.7:8080",
        ]
    );
}

/// A small deterministic generator (no dependency for one test).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

/// Random tables over a few names and addresses, so that ports come and
/// go, share endpoints and ClusterIPs, and now and then claim one frontend
/// twice; `affinity` adds ClientIP affinity to some.
fn random_table(rng: &mut Lcg, affinity: bool) -> ProxyTable {
    let mut ports = Vec::new();
    for i in 0..rng.below(12) {
        let name = format!("s{}", rng.below(10));
        let ip = format!("10.96.0.{}", rng.below(8) + 1);
        let endpoints: Vec<(String, &str)> = (0..rng.below(4))
            .map(|_| {
                let node = if rng.below(2) == 0 {
                    "node-a"
                } else {
                    "node-b"
                };
                (
                    format!("10.244.0.{}:{}", rng.below(6) + 2, 8080 + rng.below(2)),
                    node,
                )
            })
            .collect();
        let refs: Vec<(&str, &str)> = endpoints.iter().map(|(a, n)| (a.as_str(), *n)).collect();
        let mut e = entry(&name, &ip, &refs);
        e.endpoints.sort_by_key(|e| e.addr);
        e.endpoints.dedup_by(|a, b| a.addr == b.addr);
        e.port = [80, 443, 53][rng.below(3) as usize];
        if rng.below(4) == 0 {
            e.protocol = Protocol::Udp;
        }
        if rng.below(4) == 0 {
            e.node_port = Some(30000 + i as u16);
        }
        e.load_balancer = rng.below(6) == 0;
        e.external_local = rng.below(3) == 0;
        e.internal_local = rng.below(5) == 0;
        if affinity && rng.below(4) == 0 {
            e.affinity = Some(Duration::from_secs(60 * (1 + rng.below(2))));
        }
        // A Service lists a port and protocol once; now and then a table
        // breaks that all the same.
        let twice = ports.iter().any(|p: &ServicePortEntry| {
            (&p.service, p.protocol, p.port) == (&e.service, e.protocol, e.port)
        });
        if twice && rng.below(20) != 0 {
            continue;
        }
        ports.push(e);
    }
    ProxyTable { ports }
}

#[test]
fn an_update_port_by_port_ends_where_a_whole_render_does() {
    let mut rng = Lcg(7);
    let served = BTreeSet::from([Frontend {
        addr: "10.96.0.8:53".parse().unwrap(),
        protocol: Protocol::Udp,
    }]);
    let node = node();
    let opts = RenderOptions {
        table: "kedge_test",
        node: &node,
        locally_served: &served,
        local_ports: &Default::default(),
    };
    let mut current = render(&ProxyTable::default(), &opts);
    let (mut partial, mut whole) = (0, 0);
    for step in 0..2000 {
        let table = random_table(&mut rng, true);
        let expected = render(&table, &opts);
        let before = current.clone();
        let table = std::sync::Arc::new(table);
        match current.update(&table, &opts) {
            Ok(changes) => {
                partial += 1;
                assert_eq!(current, expected, "step {step}");
                assert_eq!(current.text(), expected.text(), "step {step}");
                // The script from two rendered tables says the same.
                assert_eq!(
                    expected.update_script(&before),
                    super::render::script("kedge_test", &changes),
                    "step {step}"
                );
            }
            Err(_) => {
                whole += 1;
                assert_eq!(current, before, "a refused update changed nothing");
                current = expected;
            }
        }
    }
    assert!(
        partial > 1000 && whole > 10,
        "{partial} partial, {whole} whole"
    );
}

/// The table as `nft -j list` gives it, each chain's rules and each set's
/// elements gathered by name, handles left out, the table's name
/// replaced: two tables built in different orders compare equal when the
/// kernel holds the same.
fn listing(table: &str) -> BTreeMap<String, Vec<String>> {
    let out = std::process::Command::new("nft")
        .args(["-j", "list", "table", "ip", table])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut by_name: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for item in json["nftables"].as_array().unwrap() {
        let (kind, body) = item.as_object().unwrap().iter().next().unwrap();
        let mut body = body.clone();
        let obj = body.as_object_mut().unwrap();
        obj.remove("handle");
        obj.remove("table");
        match kind.as_str() {
            "rule" => {
                let chain = obj["chain"].as_str().unwrap().to_string();
                by_name
                    .entry(format!("rule {chain}"))
                    .or_default()
                    .push(obj["expr"].to_string());
            }
            "set" | "map" => {
                let mut elems: Vec<String> = obj
                    .remove("elem")
                    .and_then(|e| e.as_array().cloned())
                    .unwrap_or_default()
                    .iter()
                    .map(|e| e.to_string())
                    .collect();
                elems.sort();
                let name = obj["name"].as_str().unwrap().to_string();
                let entry = by_name.entry(format!("{kind} {name}")).or_default();
                entry.push(body.to_string());
                entry.extend(elems);
            }
            "chain" => {
                let name = obj["name"].as_str().unwrap().to_string();
                by_name
                    .entry(format!("chain {name}"))
                    .or_default()
                    .push(body.to_string());
            }
            _ => {}
        }
    }
    by_name
}

/// Run `f` on a thread of its own in a network namespace of its own (gone
/// with the thread), so tables made there touch nothing of the host's.
fn in_own_network_namespace(f: impl FnOnce() + Send + 'static) {
    std::thread::spawn(move || {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("a network namespace");
        f()
    })
    .join()
    .unwrap();
}

fn nft_script(script: &str) {
    use std::io::Write as _;
    let mut child = std::process::Command::new("nft")
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}\n{script}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Partial updates sent over netlink leave the kernel holding what `nft`
/// loads from the whole rendered table, rule for rule and element for
/// element, through hundreds of random changes; in a network namespace of
/// the test's own (gone with its thread).
#[test]
fn updates_over_netlink_match_what_nft_loads() {
    if !nft_usable() {
        return;
    }
    in_own_network_namespace(|| {
        let node = node();
        let none = BTreeSet::new();
        let no_ports = BTreeMap::new();
        let opts = |table| RenderOptions {
            table,
            node: &node,
            locally_served: &none,
            local_ports: &no_ports,
        };
        let mut rng = Lcg(11);
        let mut current = render(&ProxyTable::default(), &opts("sent"));
        nft_script(&current.replace_script());
        let mut over_netlink = 0;
        let mut socket = super::netlink::Socket::open().unwrap();
        for step in 0..300 {
            let table = random_table(&mut rng, step % 3 == 0);
            let expected = render(&table, &opts("loaded"));
            nft_script(&expected.replace_script());
            let table = std::sync::Arc::new(table);
            match current.update(&table, &opts("sent")) {
                Ok(changes) => match socket.send("sent", &changes) {
                    Some(sent) => {
                        sent.unwrap_or_else(|e| panic!("step {step}: {e}\n{changes:?}"));
                        over_netlink += 1;
                    }
                    None => nft_script(&super::render::script("sent", &changes)),
                },
                Err(_) => {
                    let next = render(&table, &opts("sent"));
                    nft_script(&next.whole_update_script(&current));
                    current = next;
                }
            }
            assert_eq!(listing("sent"), listing("loaded"), "step {step}");
        }
        assert!(
            over_netlink > 100,
            "only {over_netlink} updates went over netlink"
        );
    });
}

#[test]
fn the_kernel_refusal_of_a_batch_is_reported() {
    if !nft_usable() {
        return;
    }
    in_own_network_namespace(|| {
        use super::render::{Change, Rule};
        // No such table.
        let changes = [Change::AddRule("svc-x".into(), Rule::Mark)];
        let mut socket = super::netlink::Socket::open().unwrap();
        let err = socket.send("missing", &changes).unwrap().unwrap_err();
        assert_eq!(err.raw_os_error(), Some(2), "{err}");
        // The same socket goes on working after a refusal.
        nft_script("add table ip t\nadd chain ip t svc-x\n");
        socket.send("t", &changes).unwrap().unwrap();
        // A text rule is left to nft.
        let text = [Change::AddRule(
            "svc-x".into(),
            Rule::Text("counter".into()),
        )];
        assert!(socket.send("t", &text).is_none());
        // Nothing to send is sent at once.
        socket.send("t", &[]).unwrap().unwrap();
    });
}

/// Thousands of Services at once (a relist, a node coming back) still go
/// in one batch: element runs are split below netlink's 64 KiB attribute
/// limit, the socket takes the whole batch, and only its end is answered.
#[test]
fn a_large_update_goes_over_netlink_in_one_batch() {
    if !nft_usable() {
        return;
    }
    in_own_network_namespace(|| {
        let node = node();
        let none = BTreeSet::new();
        let no_ports = BTreeMap::new();
        let opts = |table| RenderOptions {
            table,
            node: &node,
            locally_served: &none,
            local_ports: &no_ports,
        };
        let table = std::sync::Arc::new(ProxyTable {
            ports: (0..3000)
                .map(|i| {
                    entry(
                        &format!("s{i}"),
                        &format!("10.96.{}.{}", i / 250, i % 250 + 1),
                        &[
                            (
                                &format!("10.244.{}.{}:8080", i / 250, i % 250 + 1),
                                "node-a",
                            ),
                            (
                                &format!("10.245.{}.{}:8080", i / 250, i % 250 + 1),
                                "node-b",
                            ),
                        ],
                    )
                })
                .collect(),
        });
        let mut sent = render(&ProxyTable::default(), &opts("sent"));
        nft_script(&sent.replace_script());
        let changes = sent.update(&table, &opts("sent")).unwrap();
        assert!(changes.len() > 20_000, "{}", changes.len());
        let mut socket = super::netlink::Socket::open().unwrap();
        socket.send("sent", &changes).unwrap().unwrap();
        nft_script(&render(&table, &opts("loaded")).replace_script());
        assert_eq!(listing("sent"), listing("loaded"));
    });
}
