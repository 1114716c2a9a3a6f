//! A [`ProxyTable`] rendered as one nftables table in `nft`'s text syntax.
//! Pure: no IO, so the output can be checked line by line.
//!
//! The layout follows kube-proxy's nftables mode:
//! - `service-ports`, a verdict map from `address . protocol . port` (every
//!   ClusterIP port, and every NodePort and load-balancer port on each node
//!   address) to the Service port's chain, looked up once per new connection
//!   from the `nat` hooks `prerouting` (pods, other hosts) and `output` (this
//!   host);
//! - per Service port a chain `svc-…` (ClusterIP traffic) and `ext-…`
//!   (NodePort and load-balancer traffic) that marks for masquerade where
//!   needed, follows ClientIP affinity, then picks an endpoint with
//!   `numgen random` and DNATs;
//! - with ClientIP affinity, per endpoint a chain `ep-…` that records the
//!   client in the endpoint's timeout set and DNATs;
//! - `no-endpoints`, the frontends with no ready endpoint, rejected in the
//!   `filter` hooks at once (TCP reset, ICMP port unreachable) instead of
//!   leaving the client to time out;
//! - `masquerading` in `postrouting` for marked connections and hairpin
//!   ones (`hairpin`: an endpoint's address as both source and destination).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use crate::table::{Frontend, NodeInfo, Protocol, ProxyTable, ServicePortEntry};

/// The packet mark bit asking `postrouting` to masquerade; kube-proxy's
/// own, so the two never disagree about what the bit means on one node.
pub const MASQUERADE_MARK: u32 = 0x4000;

/// What a table is rendered for besides the [`ProxyTable`].
#[derive(Clone, Copy, Debug)]
pub struct RenderOptions<'a> {
    /// The nftables table's name (family `ip`).
    pub table: &'a str,
    /// The node: its name for traffic policies, its addresses for NodePorts.
    pub node: &'a NodeInfo,
    /// Frontends a process on this node serves itself: neither DNATed nor
    /// rejected.
    pub locally_served: &'a BTreeSet<Frontend>,
    /// Of those, the ones served on another port of the same address:
    /// DNATed to it.
    pub local_ports: &'a BTreeMap<Frontend, u16>,
}

/// A rendered table, with the names of what it declares so that the next
/// sync can replace it in place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ruleset {
    /// The table's name.
    pub table: String,
    /// `table ip <name> { … }`.
    pub text: String,
    /// Rules in all chains (set and map elements not counted).
    pub rules: usize,
    /// Every chain's rules, base chains' hooks not included.
    chains: BTreeMap<String, Vec<String>>,
    /// Maps and sets whose elements are all in `text`.
    data: Vec<(&'static str, String)>,
    /// Their elements by map or set name: `key → value` (value empty for
    /// a set's elements).
    elements: BTreeMap<String, BTreeMap<String, String>>,
    /// Affinity sets by name, with their declaration: kept across syncs
    /// while the declaration stays the same, so clients keep their endpoint.
    affinity_sets: BTreeMap<String, String>,
}

impl Ruleset {
    /// A script that replaces whatever table of that name exists (or none)
    /// with this one, in one transaction.
    pub fn replace_script(&self) -> String {
        format!(
            "add table ip {t}\ndelete table ip {t}\n{}",
            self.text,
            t = self.table
        )
    }

    /// A script that turns `previous` (as applied) into this table in one
    /// transaction, touching only what differs (kube-proxy's partial
    /// syncs): new chains are added, chains whose rules changed are flushed
    /// and refilled, map and set elements are deleted and added one by
    /// one, chains nothing uses any more are flushed and deleted last. A
    /// change of one Service among thousands costs a few commands instead
    /// of the whole table. ClientIP affinity sets both declare alike keep
    /// their elements; a changed declaration (or base chain) redefines the
    /// whole table in place ([`whole_update_script`](Self::whole_update_script)).
    pub fn update_script(&self, previous: &Ruleset) -> String {
        let redeclared = previous
            .affinity_sets
            .iter()
            .any(|(name, decl)| self.affinity_sets.get(name).is_some_and(|d| d != decl));
        let base_changed = BASE_CHAINS
            .iter()
            .any(|c| self.chains.contains_key(*c) != previous.chains.contains_key(*c));
        if redeclared || base_changed || self.data != previous.data {
            return self.whole_update_script(previous);
        }
        let t = &self.table;
        let mut s = String::new();
        for (name, decl) in &self.affinity_sets {
            if !previous.affinity_sets.contains_key(name) {
                let _ = writeln!(s, "add set ip {t} {name} {{ {decl} }}");
            }
        }
        for name in self.chains.keys() {
            if !previous.chains.contains_key(name) {
                let _ = writeln!(s, "add chain ip {t} {name}");
            }
        }
        for (name, rules) in &self.chains {
            let before = previous.chains.get(name);
            if before == Some(rules) {
                continue;
            }
            if before.is_some() {
                let _ = writeln!(s, "flush chain ip {t} {name}");
            }
            for rule in rules {
                let _ = writeln!(s, "add rule ip {t} {name} {rule}");
            }
        }
        let none = BTreeMap::new();
        for (_, name) in &self.data {
            let now = self.elements.get(name).unwrap_or(&none);
            let then = previous.elements.get(name).unwrap_or(&none);
            let gone: Vec<&String> = then
                .iter()
                .filter(|(k, v)| now.get(*k) != Some(*v))
                .map(|(k, _)| k)
                .collect();
            let new: Vec<String> = now
                .iter()
                .filter(|(k, v)| then.get(*k) != Some(*v))
                .map(|(k, v)| element(k, v))
                .collect();
            if !gone.is_empty() {
                let keys: Vec<&str> = gone.iter().map(|k| k.as_str()).collect();
                let _ = writeln!(s, "delete element ip {t} {name} {{ {} }}", keys.join(", "));
            }
            if !new.is_empty() {
                let _ = writeln!(s, "add element ip {t} {name} {{ {} }}", new.join(", "));
            }
        }
        for name in previous.chains.keys() {
            if !self.chains.contains_key(name) {
                let _ = writeln!(s, "flush chain ip {t} {name}\ndelete chain ip {t} {name}");
            }
        }
        for name in previous.affinity_sets.keys() {
            if !self.affinity_sets.contains_key(name) {
                let _ = writeln!(s, "delete set ip {t} {name}");
            }
        }
        s
    }

    /// The whole table redefined in place in one transaction, keeping the
    /// affinity sets both declare alike with their elements: `flush table`
    /// empties every chain but leaves sets alone.
    pub fn whole_update_script(&self, previous: &Ruleset) -> String {
        let t = &self.table;
        let mut s = format!("add table ip {t}\nflush table ip {t}\n");
        for (kind, name) in &previous.data {
            let _ = writeln!(s, "delete {kind} ip {t} {name}");
        }
        for chain in previous.chains.keys() {
            if !self.chains.contains_key(chain) {
                let _ = writeln!(s, "delete chain ip {t} {chain}");
            }
        }
        for (name, decl) in &previous.affinity_sets {
            if self.affinity_sets.get(name) != Some(decl) {
                let _ = writeln!(s, "delete set ip {t} {name}");
            }
        }
        s.push_str(&self.text);
        s
    }

    /// The script that removes the table.
    pub fn delete_script(table: &str) -> String {
        format!("delete table ip {table}\n")
    }
}

/// The chains hooked into netfilter.
const BASE_CHAINS: &[&str] = &[
    "filter-input",
    "filter-forward",
    "filter-output",
    "nat-prerouting",
    "nat-output",
    "nat-postrouting",
];

/// A map element `key : value`, or a set element `key`.
fn element(key: &str, value: &str) -> String {
    if value.is_empty() {
        key.to_string()
    } else {
        format!("{key} : {value}")
    }
}

/// One chain's rules being written.
#[derive(Default)]
struct Chains {
    /// By name; BTreeMap so that the text is the same for the same table.
    bodies: BTreeMap<String, Vec<String>>,
    rules: usize,
}

impl Chains {
    fn add(&mut self, chain: &str, rule: String) {
        self.rules += 1;
        self.bodies.entry(chain.to_string()).or_default().push(rule);
    }

    fn declare(&mut self, chain: &str) {
        self.bodies.entry(chain.to_string()).or_default();
    }
}

/// Render `table` for the node in `opts`. IPv6 addresses are skipped (the
/// table is of family `ip`); so are Service ports whose chain names clash.
pub fn render(table: &ProxyTable, opts: &RenderOptions<'_>) -> Ruleset {
    let mark = format!("0x{MASQUERADE_MARK:x}");
    let set_mark = format!("meta mark set meta mark | {mark}");
    let mut chains = Chains::default();
    // address . protocol . port → the chain to go to; first claim wins, as
    // in the userspace mode.
    let mut service_ports: BTreeMap<(Ipv4Addr, Protocol, u16), String> = BTreeMap::new();
    let mut no_endpoints: BTreeSet<(Ipv4Addr, Protocol, u16)> = BTreeSet::new();
    let mut cluster_ips: BTreeSet<Ipv4Addr> = BTreeSet::new();
    let mut local_ips: BTreeSet<Ipv4Addr> = BTreeSet::new();
    let mut affinity_sets: BTreeMap<String, String> = BTreeMap::new();
    let mut hairpin: BTreeSet<IpAddr> = BTreeSet::new();
    let node_v4: Vec<Ipv4Addr> = opts.node.addresses.iter().filter_map(v4).collect();
    let served = |ip: Ipv4Addr, proto: Protocol, port: u16| {
        opts.locally_served.contains(&Frontend {
            addr: SocketAddr::new(IpAddr::V4(ip), port),
            protocol: proto,
        })
    };

    for entry in &table.ports {
        let id = port_id(entry);
        let svc_chain = format!("svc-{id}");
        if chains.bodies.contains_key(&svc_chain) {
            tracing::warn!(service = %entry.service, chain = %svc_chain, "two Service ports render to one chain; skipping the second");
            continue;
        }
        let proto = entry.protocol;
        let on_node =
            |e: &&crate::table::Endpoint| e.node_name.as_deref() == Some(opts.node.name.as_str());
        let all: Vec<SocketAddr> = entry
            .endpoints
            .iter()
            .filter(|e| e.addr.is_ipv4())
            .map(|e| e.addr)
            .collect();
        let local: Vec<SocketAddr> = entry
            .endpoints
            .iter()
            .filter(|e| e.addr.is_ipv4())
            .filter(on_node)
            .map(|e| e.addr)
            .collect();
        let internal = if entry.internal_local { &local } else { &all };
        let external = if entry.external_local { &local } else { &all };

        let mut used = BTreeSet::new();
        // ClusterIP traffic.
        let cluster: Vec<Ipv4Addr> = entry.cluster_ips.iter().filter_map(v4).collect();
        for ip in &cluster {
            if served(*ip, proto, entry.port) {
                local_ips.insert(*ip);
            } else {
                cluster_ips.insert(*ip);
            }
        }
        let cluster: Vec<Ipv4Addr> = cluster
            .into_iter()
            .filter(|ip| !served(*ip, proto, entry.port))
            .collect();
        if !cluster.is_empty() {
            if internal.is_empty() {
                no_endpoints.extend(cluster.iter().map(|ip| (*ip, proto, entry.port)));
            } else {
                // This host's own connections leave with a source the
                // endpoint may not route back to (a ClusterIP on the
                // holder, an address of another interface).
                chains.add(&svc_chain, format!("fib saddr type local {set_mark}"));
                dispatch(
                    &mut chains,
                    &svc_chain,
                    &id,
                    proto,
                    internal,
                    entry.affinity.is_some(),
                );
                used.extend(internal.iter().copied());
                for ip in &cluster {
                    service_ports
                        .entry((*ip, proto, entry.port))
                        .or_insert_with(|| svc_chain.clone());
                }
            }
        }

        // NodePort and load-balancer traffic on the node's addresses.
        let mut node_ports = Vec::new();
        if let Some(p) = entry.node_port {
            node_ports.push(p);
        }
        if entry.load_balancer {
            node_ports.push(entry.port);
        }
        let external_frontends: Vec<(Ipv4Addr, u16)> = node_v4
            .iter()
            .flat_map(|ip| node_ports.iter().map(move |p| (*ip, *p)))
            .filter(|(ip, p)| !served(*ip, proto, *p))
            .collect();
        if !external_frontends.is_empty() {
            if external.is_empty() {
                no_endpoints.extend(external_frontends.iter().map(|(ip, p)| (*ip, proto, *p)));
            } else {
                let ext_chain = format!("ext-{id}");
                if entry.external_local {
                    // The client's address is kept for the endpoint; only
                    // this host's own connections need a source it can
                    // answer.
                    chains.add(&ext_chain, format!("fib saddr type local {set_mark}"));
                } else {
                    // The endpoint may be on another node: replies must
                    // come back through this one.
                    chains.add(&ext_chain, set_mark.clone());
                }
                dispatch(
                    &mut chains,
                    &ext_chain,
                    &id,
                    proto,
                    external,
                    entry.affinity.is_some(),
                );
                used.extend(external.iter().copied());
                for (ip, p) in external_frontends {
                    service_ports
                        .entry((ip, proto, p))
                        .or_insert_with(|| ext_chain.clone());
                }
            }
        }

        for ep in used {
            hairpin.insert(ep.ip());
            // Endpoint chains only where affinity must record the choice.
            let Some(timeout) = entry.affinity else {
                continue;
            };
            let chain = endpoint_chain(&id, ep);
            let set = affinity_set(&id, ep);
            chains.add(&chain, format!("update @{set} {{ ip saddr }}"));
            affinity_sets.insert(
                set,
                format!(
                    "type ipv4_addr; flags dynamic,timeout; timeout {}s;",
                    timeout.max(Duration::from_secs(1)).as_secs()
                ),
            );
            chains.add(
                &chain,
                format!("meta l4proto {} dnat to {ep}", nft_proto(proto)),
            );
        }
    }

    // Base chains and the shared ones.
    let key = "ip daddr . meta l4proto . th dport";
    for hook in ["filter-input", "filter-forward", "filter-output"] {
        chains.add(
            hook,
            format!("ct state new {key} @no-endpoints goto reject-chain"),
        );
    }
    // Without the holder bridge a ClusterIP is not local, and a port no
    // Service has would be routed out the default route and hang.
    chains.add(
        "filter-forward",
        "ct state new ip daddr @cluster-ips goto reject-chain".into(),
    );
    // Counted, so that `nft list chain` shows how many were turned away.
    chains.add(
        "reject-chain",
        "meta l4proto tcp counter reject with tcp reset".into(),
    );
    chains.add("reject-chain", "counter reject".into());
    // Locally served frontends on another port of their address.
    for (f, port) in opts.local_ports {
        if let SocketAddr::V4(a) = f.addr {
            let proto = nft_proto(f.protocol);
            chains.add(
                "local-services",
                format!(
                    "ip daddr {} {proto} dport {} dnat to {}:{port}",
                    a.ip(),
                    a.port(),
                    a.ip()
                ),
            );
        }
    }
    if chains.bodies.contains_key("local-services") {
        chains.add("nat-prerouting", "jump local-services".into());
        chains.add("nat-output", "jump local-services".into());
    }
    chains.add("nat-prerouting", "jump services".into());
    chains.add("nat-output", "jump services".into());
    chains.add("nat-postrouting", "jump masquerading".into());
    // Hairpin: an endpoint reaching itself through its Service would get
    // its own packet back with its own address as the source and answer
    // itself. One set lookup here instead of a rule per endpoint.
    chains.add(
        "masquerading",
        format!("ct status dnat ip saddr . ip daddr @hairpin {set_mark}"),
    );
    chains.add("masquerading", format!("meta mark & {mark} == 0 return"));
    chains.add("masquerading", format!("meta mark set meta mark ^ {mark}"));
    // Not `fully-random`: a random source port per connection collided
    // with the endpoint's TIME_WAIT sockets and cut a sustained connection
    // rate to one endpoint from 0.9× to 0.05–0.2× direct (bench/proxy.rs).
    chains.add("masquerading", "masquerade".into());
    chains.add("services", format!("{key} vmap @service-ports"));

    let hooks: BTreeMap<&str, &str> = BTreeMap::from([
        (
            "filter-input",
            "type filter hook input priority -110; policy accept;",
        ),
        (
            "filter-forward",
            "type filter hook forward priority -110; policy accept;",
        ),
        (
            "filter-output",
            "type filter hook output priority -110; policy accept;",
        ),
        (
            "nat-prerouting",
            "type nat hook prerouting priority -100; policy accept;",
        ),
        (
            "nat-output",
            "type nat hook output priority -100; policy accept;",
        ),
        (
            "nat-postrouting",
            "type nat hook postrouting priority 100; policy accept;",
        ),
    ]);

    let tuple = "ipv4_addr . inet_proto . inet_service";
    // Maps and sets in declaration order, with their elements.
    let mut data: Vec<(&'static str, String, String, BTreeMap<String, String>)> = Vec::new();
    data.push((
        "map",
        "service-ports".into(),
        format!("type {tuple} : verdict"),
        service_ports
            .iter()
            .map(|((ip, p, port), chain)| {
                (
                    format!("{ip} . {} . {port}", nft_proto(*p)),
                    format!("goto {chain}"),
                )
            })
            .collect(),
    ));
    data.push((
        "set",
        "no-endpoints".into(),
        format!("type {tuple}"),
        no_endpoints
            .iter()
            .map(|(ip, p, port)| (format!("{ip} . {} . {port}", nft_proto(*p)), String::new()))
            .collect(),
    ));
    // A ClusterIP with a locally served port is reached on that port by
    // routing alone; leave the whole address out of the catch-all.
    data.push((
        "set",
        "cluster-ips".into(),
        "type ipv4_addr".into(),
        cluster_ips
            .difference(&local_ips)
            .map(|ip| (ip.to_string(), String::new()))
            .collect(),
    ));
    data.push((
        "set",
        "hairpin".into(),
        "type ipv4_addr . ipv4_addr".into(),
        hairpin
            .iter()
            .map(|ip| (format!("{ip} . {ip}"), String::new()))
            .collect(),
    ));

    let mut text = format!("table ip {} {{\n", opts.table);
    for (kind, name, decl, items) in &data {
        let _ = write!(text, "\t{kind} {name} {{\n\t\t{decl}\n");
        if !items.is_empty() {
            let items: Vec<String> = items.iter().map(|(k, v)| element(k, v)).collect();
            let _ = writeln!(text, "\t\telements = {{ {} }}", items.join(",\n\t\t\t"));
        }
        text.push_str("\t}\n");
    }
    for (name, decl) in &affinity_sets {
        let _ = writeln!(text, "\tset {name} {{ {decl} }}");
    }
    for (name, rules) in &chains.bodies {
        let _ = writeln!(text, "\tchain {name} {{");
        if let Some(hook) = hooks.get(name.as_str()) {
            let _ = writeln!(text, "\t\t{hook}");
        }
        for rule in rules {
            let _ = writeln!(text, "\t\t{rule}");
        }
        text.push_str("\t}\n");
    }
    text.push_str("}\n");

    Ruleset {
        table: opts.table.to_string(),
        text,
        rules: chains.rules,
        chains: chains.bodies,
        data: data
            .iter()
            .map(|(kind, name, _, _)| (*kind, name.clone()))
            .collect(),
        elements: data
            .into_iter()
            .map(|(_, name, _, items)| (name, items))
            .collect(),
        affinity_sets,
    }
}

/// Affinity first (a client seen within the timeout goes back to its
/// endpoint), then a random endpoint: rule k of N takes the connection
/// with probability 1/(N−k), which is 1/N for each endpoint overall (what
/// kube-proxy's iptables mode does with `statistic`). Plain rules load in
/// time linear in their number; a verdict map or an anonymous map per
/// Service did not: the kernel names each anonymous set by scanning all
/// others, and checks a named map's every element at each rule that uses
/// it, so 10,000 Services took tens of seconds (and stalled a CPU).
fn dispatch(
    chains: &mut Chains,
    chain: &str,
    id: &str,
    proto: Protocol,
    endpoints: &[SocketAddr],
    affinity: bool,
) {
    chains.declare(chain);
    if affinity {
        for ep in endpoints {
            chains.add(
                chain,
                format!(
                    "ip saddr @{} goto {}",
                    affinity_set(id, *ep),
                    endpoint_chain(id, *ep)
                ),
            );
        }
    }
    let target = |ep: SocketAddr| {
        if affinity {
            format!("goto {}", endpoint_chain(id, ep))
        } else {
            format!("meta l4proto {} dnat to {ep}", nft_proto(proto))
        }
    };
    let n = endpoints.len();
    for (k, ep) in endpoints.iter().enumerate() {
        if k + 1 == n {
            chains.add(chain, target(*ep));
        } else {
            chains.add(
                chain,
                format!("numgen random mod {} == 0 {}", n - k, target(*ep)),
            );
        }
    }
}

/// `namespace/name/protocol/port`: unique per Service port, and readable in
/// `nft list`.
fn port_id(entry: &ServicePortEntry) -> String {
    format!(
        "{}/{}/{}/{}",
        identifier(&entry.service.namespace),
        identifier(&entry.service.name),
        nft_proto(entry.protocol),
        entry.port
    )
}

fn endpoint_chain(id: &str, ep: SocketAddr) -> String {
    format!("ep-{id}__{}/{}", ep.ip(), ep.port())
}

fn affinity_set(id: &str, ep: SocketAddr) -> String {
    format!("aff-{id}__{}/{}", ep.ip(), ep.port())
}

/// Only what nft's identifiers allow; Kubernetes names are DNS labels
/// already, this guards against anything else reaching the script.
fn identifier(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn nft_proto(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
    }
}

fn v4(ip: &IpAddr) -> Option<Ipv4Addr> {
    match ip {
        IpAddr::V4(v4) => Some(*v4),
        IpAddr::V6(_) => None,
    }
}

/// Whether `name` can be an nftables table name as the scripts spell it.
pub fn valid_table_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && name.len() <= 64
}
