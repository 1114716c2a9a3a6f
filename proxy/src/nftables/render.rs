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
//!
//! Each Service port renders alone ([`PortRules`]); a [`Ruleset`] is their
//! sum plus the shared chains, and keeps each port's part so that the next
//! sync re-renders and compares only the ports that changed
//! ([`Ruleset::update`]).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt::{self, Write as _};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::Duration;

use crate::table::{Frontend, NodeInfo, Protocol, ProxyTable, ServiceKey, ServicePortEntry};

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

/// One rule of a chain. The rules of Service, external and endpoint chains
/// are typed, so that a partial update can be sent to the kernel without
/// `nft` ([`super::netlink`]); the shared chains' rules are nft text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rule {
    /// `fib saddr type local` + [`Rule::Mark`]: this host's own connections.
    MarkLocalSource,
    /// `meta mark set meta mark | 0x4000`: masquerade on the way out.
    Mark,
    /// `[numgen random mod N == 0] meta l4proto P dnat to EP`.
    Dnat {
        /// `N`: taken with chance 1/N, or always.
        pick: Option<u32>,
        /// The Service port's protocol.
        protocol: Protocol,
        /// The endpoint.
        to: SocketAddrV4,
    },
    /// `[numgen random mod N == 0] goto CHAIN`.
    Goto {
        /// `N`: taken with chance 1/N, or always.
        pick: Option<u32>,
        /// An endpoint chain.
        chain: String,
    },
    /// `ip saddr @SET goto CHAIN`: a client seen within the affinity
    /// timeout goes back to its endpoint.
    Returning {
        /// The endpoint's affinity set.
        set: String,
        /// The endpoint's chain.
        chain: String,
    },
    /// `update @SET { ip saddr }`: remember the client for the endpoint.
    Remember {
        /// The endpoint's affinity set.
        set: String,
    },
    /// A shared chain's rule, in nft's syntax.
    Text(String),
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mark = || format!("meta mark set meta mark | 0x{MASQUERADE_MARK:x}");
        let pick = |f: &mut fmt::Formatter<'_>, pick: &Option<u32>| match pick {
            Some(n) => write!(f, "numgen random mod {n} == 0 "),
            None => Ok(()),
        };
        match self {
            Rule::MarkLocalSource => write!(f, "fib saddr type local {}", mark()),
            Rule::Mark => f.write_str(&mark()),
            Rule::Dnat {
                pick: p,
                protocol,
                to,
            } => {
                pick(f, p)?;
                write!(f, "meta l4proto {} dnat to {to}", nft_proto(*protocol))
            }
            Rule::Goto { pick: p, chain } => {
                pick(f, p)?;
                write!(f, "goto {chain}")
            }
            Rule::Returning { set, chain } => write!(f, "ip saddr @{set} goto {chain}"),
            Rule::Remember { set } => write!(f, "update @{set} {{ ip saddr }}"),
            Rule::Text(text) => f.write_str(text),
        }
    }
}

impl From<String> for Rule {
    fn from(text: String) -> Self {
        Rule::Text(text)
    }
}

impl From<&str> for Rule {
    fn from(text: &str) -> Self {
        Rule::Text(text.to_string())
    }
}

/// `address . protocol . port`, the key of `service-ports` and
/// `no-endpoints`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Tuple {
    /// The frontend's address.
    pub ip: Ipv4Addr,
    /// Its protocol.
    pub protocol: Protocol,
    /// Its port.
    pub port: u16,
}

impl fmt::Display for Tuple {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} . {} . {}",
            self.ip,
            nft_proto(self.protocol),
            self.port
        )
    }
}

/// An element of one of the table's maps and sets.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Element {
    /// `service-ports`: a frontend and the chain it goes to.
    ServicePort(Tuple, String),
    /// `no-endpoints`: a frontend with no ready endpoint.
    NoEndpoints(Tuple),
    /// `cluster-ips`.
    ClusterIp(Ipv4Addr),
    /// `hairpin`: an endpoint's address as source and destination.
    Hairpin(Ipv4Addr),
}

impl Element {
    /// The map or set it belongs to.
    pub fn set(&self) -> &'static str {
        match self {
            Element::ServicePort(..) => "service-ports",
            Element::NoEndpoints(_) => "no-endpoints",
            Element::ClusterIp(_) => "cluster-ips",
            Element::Hairpin(_) => "hairpin",
        }
    }

    /// The key as nft spells it.
    pub fn key(&self) -> String {
        match self {
            Element::ServicePort(t, _) | Element::NoEndpoints(t) => t.to_string(),
            Element::ClusterIp(ip) => ip.to_string(),
            Element::Hairpin(ip) => format!("{ip} . {ip}"),
        }
    }
}

impl fmt::Display for Element {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Element::ServicePort(t, chain) => write!(f, "{t} : goto {chain}"),
            _ => f.write_str(&self.key()),
        }
    }
}

/// One change to the table; a partial update is a list of them, in the
/// order the kernel must see them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// `add set` (an affinity set).
    AddSet(String, String),
    /// `add chain`.
    AddChain(String),
    /// `flush chain`.
    FlushChain(String),
    /// `add rule`.
    AddRule(String, Rule),
    /// `delete element`.
    DeleteElement(Element),
    /// `add element`.
    AddElement(Element),
    /// `delete chain` (flushed first).
    DeleteChain(String),
    /// `delete set`.
    DeleteSet(String),
}

/// Changes as an `nft -f` script for table `t`; elements of one set in one
/// command each way.
pub fn script(t: &str, changes: &[Change]) -> String {
    let mut s = String::new();
    let mut i = 0;
    while i < changes.len() {
        match &changes[i] {
            Change::AddSet(name, decl) => {
                let _ = writeln!(s, "add set ip {t} {name} {{ {decl} }}");
            }
            Change::AddChain(name) => {
                let _ = writeln!(s, "add chain ip {t} {name}");
            }
            Change::FlushChain(name) => {
                let _ = writeln!(s, "flush chain ip {t} {name}");
            }
            Change::AddRule(chain, rule) => {
                let _ = writeln!(s, "add rule ip {t} {chain} {rule}");
            }
            Change::DeleteChain(name) => {
                let _ = writeln!(s, "delete chain ip {t} {name}");
            }
            Change::DeleteSet(name) => {
                let _ = writeln!(s, "delete set ip {t} {name}");
            }
            Change::DeleteElement(e) | Change::AddElement(e) => {
                let add = matches!(&changes[i], Change::AddElement(_));
                let mut items = Vec::new();
                while let Some(Change::AddElement(next) | Change::DeleteElement(next)) =
                    changes.get(i)
                {
                    if next.set() != e.set() || add != matches!(&changes[i], Change::AddElement(_))
                    {
                        break;
                    }
                    items.push(if add { next.to_string() } else { next.key() });
                    i += 1;
                }
                let verb = if add { "add" } else { "delete" };
                let _ = writeln!(
                    s,
                    "{verb} element ip {t} {} {{ {} }}",
                    e.set(),
                    items.join(", ")
                );
                continue;
            }
        }
        i += 1;
    }
    s
}

/// What one Service port adds to the table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortRules {
    /// Its chains, by name.
    chains: Vec<(String, Vec<Rule>)>,
    /// Frontends it claims in `service-ports`, with their chain.
    claims: Vec<(Tuple, String)>,
    /// Its frontends with no ready endpoint.
    no_endpoints: Vec<Tuple>,
    /// Its ClusterIPs (not served on this node).
    cluster_ips: BTreeSet<Ipv4Addr>,
    /// Its ClusterIPs whose port a process on this node serves.
    local_ips: BTreeSet<Ipv4Addr>,
    /// Addresses of the endpoints it DNATs to.
    hairpin: BTreeSet<Ipv4Addr>,
    /// Its affinity sets, with their declaration.
    affinity_sets: Vec<(String, String)>,
}

/// Render one Service port for the node in `opts`.
pub fn render_port(entry: &ServicePortEntry, opts: &RenderOptions<'_>) -> PortRules {
    let mut out = PortRules::default();
    let id = port_id(entry);
    let proto = entry.protocol;
    let served = |ip: Ipv4Addr, port: u16| {
        opts.locally_served.contains(&Frontend {
            addr: SocketAddr::new(IpAddr::V4(ip), port),
            protocol: proto,
        })
    };
    let v4_endpoint = |e: &crate::table::Endpoint| match e.addr {
        SocketAddr::V4(a) => Some(a),
        SocketAddr::V6(_) => None,
    };
    let all: Vec<SocketAddrV4> = entry.endpoints.iter().filter_map(v4_endpoint).collect();
    let local: Vec<SocketAddrV4> = entry
        .endpoints
        .iter()
        .filter(|e| e.node_name.as_deref() == Some(opts.node.name.as_str()))
        .filter_map(v4_endpoint)
        .collect();
    let internal = if entry.internal_local { &local } else { &all };
    let external = if entry.external_local { &local } else { &all };
    let mut used = BTreeSet::new();

    // ClusterIP traffic.
    let tuple = |ip, port| Tuple {
        ip,
        protocol: proto,
        port,
    };
    let mut cluster = Vec::new();
    for ip in entry.cluster_ips.iter().filter_map(v4) {
        if served(ip, entry.port) {
            out.local_ips.insert(ip);
        } else {
            out.cluster_ips.insert(ip);
            cluster.push(ip);
        }
    }
    if !cluster.is_empty() {
        if internal.is_empty() {
            out.no_endpoints
                .extend(cluster.iter().map(|ip| tuple(*ip, entry.port)));
        } else {
            let chain = format!("svc-{id}");
            // This host's own connections leave with a source the endpoint
            // may not route back to (a ClusterIP on the holder, an address
            // of another interface).
            let mut rules = vec![Rule::MarkLocalSource];
            dispatch(&mut rules, &id, proto, internal, entry.affinity);
            used.extend(internal.iter().copied());
            out.claims.extend(
                cluster
                    .iter()
                    .map(|ip| (tuple(*ip, entry.port), chain.clone())),
            );
            out.chains.push((chain, rules));
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
    let external_frontends: Vec<Tuple> = opts
        .node
        .addresses
        .iter()
        .filter_map(v4)
        .flat_map(|ip| node_ports.iter().map(move |p| (ip, *p)))
        .filter(|(ip, p)| !served(*ip, *p))
        .map(|(ip, p)| tuple(ip, p))
        .collect();
    if !external_frontends.is_empty() {
        if external.is_empty() {
            out.no_endpoints.extend(external_frontends);
        } else {
            let chain = format!("ext-{id}");
            // With `Local`, the client's address is kept for the endpoint;
            // only this host's own connections need a source it can answer.
            // Otherwise the endpoint may be on another node: replies must
            // come back through this one.
            let mut rules = vec![if entry.external_local {
                Rule::MarkLocalSource
            } else {
                Rule::Mark
            }];
            dispatch(&mut rules, &id, proto, external, entry.affinity);
            used.extend(external.iter().copied());
            out.claims
                .extend(external_frontends.into_iter().map(|t| (t, chain.clone())));
            out.chains.push((chain, rules));
        }
    }

    for ep in used {
        out.hairpin.insert(*ep.ip());
        // Endpoint chains only where affinity must record the choice.
        let Some(timeout) = entry.affinity else {
            continue;
        };
        let set = affinity_set(&id, ep);
        out.affinity_sets.push((
            set.clone(),
            format!(
                "type ipv4_addr; flags dynamic,timeout; timeout {}s;",
                timeout.max(Duration::from_secs(1)).as_secs()
            ),
        ));
        out.chains.push((
            endpoint_chain(&id, ep),
            vec![
                Rule::Remember { set },
                Rule::Dnat {
                    pick: None,
                    protocol: proto,
                    to: ep,
                },
            ],
        ));
    }
    out
}

/// The shared chains' rules: base chains, rejection, masquerading.
fn shared_chains(opts: &RenderOptions<'_>) -> BTreeMap<String, Vec<Rule>> {
    let mark = format!("0x{MASQUERADE_MARK:x}");
    let set_mark = format!("meta mark set meta mark | {mark}");
    let mut chains: BTreeMap<String, Vec<Rule>> = BTreeMap::new();
    let mut add = |chain: &str, rule: String| {
        chains
            .entry(chain.to_string())
            .or_default()
            .push(Rule::Text(rule));
    };
    let key = "ip daddr . meta l4proto . th dport";
    for hook in ["filter-input", "filter-forward", "filter-output"] {
        add(
            hook,
            format!("ct state new {key} @no-endpoints goto reject-chain"),
        );
    }
    // Without the holder bridge a ClusterIP is not local, and a port no
    // Service has would be routed out the default route and hang.
    add(
        "filter-forward",
        "ct state new ip daddr @cluster-ips goto reject-chain".into(),
    );
    // Counted, so that `nft list chain` shows how many were turned away.
    add(
        "reject-chain",
        "meta l4proto tcp counter reject with tcp reset".into(),
    );
    add("reject-chain", "counter reject".into());
    // Locally served frontends on another port of their address.
    for (f, port) in opts.local_ports {
        if let SocketAddr::V4(a) = f.addr {
            let proto = nft_proto(f.protocol);
            add(
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
    if opts.local_ports.keys().any(|f| f.addr.is_ipv4()) {
        add("nat-prerouting", "jump local-services".into());
        add("nat-output", "jump local-services".into());
    }
    add("nat-prerouting", "jump services".into());
    add("nat-output", "jump services".into());
    add("nat-postrouting", "jump masquerading".into());
    // Hairpin: an endpoint reaching itself through its Service would get
    // its own packet back with its own address as the source and answer
    // itself. One set lookup here instead of a rule per endpoint.
    add(
        "masquerading",
        format!("ct status dnat ip saddr . ip daddr @hairpin {set_mark}"),
    );
    add("masquerading", format!("meta mark & {mark} == 0 return"));
    add("masquerading", format!("meta mark set meta mark ^ {mark}"));
    // Not `fully-random`: a random source port per connection collided
    // with the endpoint's TIME_WAIT sockets and cut a sustained connection
    // rate to one endpoint from 0.9× to 0.05–0.2× direct (bench/proxy.rs).
    add("masquerading", "masquerade".into());
    add("services", format!("{key} vmap @service-ports"));
    chains
}

/// The chains hooked into netfilter, with their hooks.
const BASE_CHAINS: &[(&str, &str)] = &[
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
];

/// The maps and sets every table declares, in declaration order.
const DATA: &[(&str, &str, &str)] = &[
    (
        "map",
        "service-ports",
        "type ipv4_addr . inet_proto . inet_service : verdict",
    ),
    (
        "set",
        "no-endpoints",
        "type ipv4_addr . inet_proto . inet_service",
    ),
    ("set", "cluster-ips", "type ipv4_addr"),
    ("set", "hairpin", "type ipv4_addr . ipv4_addr"),
];

/// A rendered table: the Service ports' parts, what they add up to, and the
/// shared chains.
#[derive(Clone, Debug, PartialEq)]
pub struct Ruleset {
    /// The table's name.
    pub table: String,
    /// Rules in all chains (set and map elements not counted).
    pub rules: usize,
    /// The table rendered, as given (shared, not copied).
    entries: Arc<ProxyTable>,
    /// Each Service port's part.
    ports: HashMap<PortKey, PortRules>,
    /// Whether ports were skipped for clashing with earlier ones: which
    /// one wins then depends on the whole table.
    skipped: bool,
    /// Every chain's rules, base chains' hooks not included.
    chains: BTreeMap<String, Vec<Rule>>,
    /// `service-ports` claims: a frontend's chains in the order the ports
    /// claimed it; the first wins, as in the userspace mode.
    claims: BTreeMap<Tuple, Vec<String>>,
    /// Counted: several ports may add the same element.
    no_endpoints: BTreeMap<Tuple, usize>,
    cluster_ips: BTreeMap<Ipv4Addr, usize>,
    local_ips: BTreeMap<Ipv4Addr, usize>,
    hairpin: BTreeMap<Ipv4Addr, usize>,
    /// Affinity sets by name, with their declaration: kept across syncs
    /// while the declaration stays the same, so clients keep their endpoint.
    affinity_sets: BTreeMap<String, String>,
}

/// Render `table` for the node in `opts`. IPv6 addresses are skipped (the
/// table is of family `ip`); so are Service ports whose chain names clash.
pub fn render(table: &ProxyTable, opts: &RenderOptions<'_>) -> Ruleset {
    render_shared(Arc::new(table.clone()), opts)
}

/// [`render`] of a table the caller shares.
pub fn render_shared(table: Arc<ProxyTable>, opts: &RenderOptions<'_>) -> Ruleset {
    let mut r = Ruleset {
        table: opts.table.to_string(),
        rules: 0,
        entries: table.clone(),
        ports: HashMap::new(),
        skipped: false,
        chains: shared_chains(opts),
        claims: BTreeMap::new(),
        no_endpoints: BTreeMap::new(),
        cluster_ips: BTreeMap::new(),
        local_ips: BTreeMap::new(),
        hairpin: BTreeMap::new(),
        affinity_sets: BTreeMap::new(),
    };
    r.rules = r.chains.values().map(Vec::len).sum();
    for entry in &table.ports {
        let key = port_key(entry);
        let part = render_port(entry, opts);
        if r.ports.contains_key(&key) || part.chains.iter().any(|(c, _)| r.chains.contains_key(c)) {
            tracing::warn!(service = %entry.service, port = entry.port, "two Service ports render to one chain; skipping the second");
            r.skipped = true;
            continue;
        }
        r.add(&part);
        r.ports.insert(key, part);
    }
    r
}

/// Why [`Ruleset::update`] could not compare port by port: the caller
/// renders the whole table instead.
#[derive(Debug, PartialEq, Eq)]
pub struct NeedsWhole;

fn count<K: Ord + Clone>(m: &mut BTreeMap<K, usize>, k: &K, up: bool) {
    if up {
        *m.entry(k.clone()).or_default() += 1;
    } else if let Some(n) = m.get_mut(k) {
        *n -= 1;
        if *n == 0 {
            m.remove(k);
        }
    }
}

impl Ruleset {
    fn add(&mut self, part: &PortRules) {
        for (name, rules) in &part.chains {
            self.rules += rules.len();
            self.chains.insert(name.clone(), rules.clone());
        }
        for (t, chain) in &part.claims {
            self.claims.entry(*t).or_default().push(chain.clone());
        }
        self.tally(part, true);
        for (name, decl) in &part.affinity_sets {
            self.affinity_sets.insert(name.clone(), decl.clone());
        }
    }

    fn remove(&mut self, part: &PortRules) {
        for (name, rules) in &part.chains {
            self.rules -= rules.len();
            self.chains.remove(name);
        }
        for (t, chain) in &part.claims {
            if let Some(v) = self.claims.get_mut(t) {
                if let Some(i) = v.iter().position(|c| c == chain) {
                    v.remove(i);
                }
                if v.is_empty() {
                    self.claims.remove(t);
                }
            }
        }
        self.tally(part, false);
        for (name, _) in &part.affinity_sets {
            self.affinity_sets.remove(name);
        }
    }

    fn tally(&mut self, part: &PortRules, up: bool) {
        for t in &part.no_endpoints {
            count(&mut self.no_endpoints, t, up);
        }
        for ip in &part.cluster_ips {
            count(&mut self.cluster_ips, ip, up);
        }
        for ip in &part.local_ips {
            count(&mut self.local_ips, ip, up);
        }
        for ip in &part.hairpin {
            count(&mut self.hairpin, ip, up);
        }
    }

    /// Every element of the table's maps and sets.
    fn elements(&self) -> Vec<Element> {
        let mut all: Vec<Element> = self
            .claims
            .iter()
            .map(|(t, chains)| Element::ServicePort(*t, chains[0].clone()))
            .collect();
        all.extend(self.no_endpoints.keys().map(|t| Element::NoEndpoints(*t)));
        all.extend(self.cluster_ip_elements(self.cluster_ips.keys()));
        all.extend(self.hairpin.keys().map(|ip| Element::Hairpin(*ip)));
        all
    }

    /// A ClusterIP with a locally served port is reached on that port by
    /// routing alone; the whole address stays out of the catch-all.
    fn cluster_ip_elements<'a>(
        &'a self,
        ips: impl Iterator<Item = &'a Ipv4Addr> + 'a,
    ) -> impl Iterator<Item = Element> + 'a {
        ips.filter(|ip| self.cluster_ips.contains_key(ip) && !self.local_ips.contains_key(ip))
            .map(|ip| Element::ClusterIp(*ip))
    }

    /// The elements the keys of `part` have now.
    fn elements_of(&self, part: &PortRules) -> BTreeSet<Element> {
        let mut out = BTreeSet::new();
        for (t, _) in &part.claims {
            if let Some(chains) = self.claims.get(t) {
                out.insert(Element::ServicePort(*t, chains[0].clone()));
            }
        }
        for t in part
            .no_endpoints
            .iter()
            .chain(part.claims.iter().map(|(t, _)| t))
        {
            if self.no_endpoints.contains_key(t) {
                out.insert(Element::NoEndpoints(*t));
            }
        }
        out.extend(self.cluster_ip_elements(part.cluster_ips.iter().chain(&part.local_ips)));
        for ip in &part.hairpin {
            if self.hairpin.contains_key(ip) {
                out.insert(Element::Hairpin(*ip));
            }
        }
        out
    }

    /// Bring this table to `table` and say what changed, comparing only
    /// the Service ports whose entries differ (kube-proxy's partial syncs):
    /// new chains are added, chains whose rules changed are flushed and
    /// refilled, map and set elements are deleted and added one by one,
    /// chains nothing uses any more are flushed and deleted last. A change
    /// of one Service among thousands costs a few commands instead of the
    /// whole table.
    ///
    /// [`NeedsWhole`], with `self` untouched, where a port by port
    /// comparison would not give what [`render`] gives: a frontend claimed
    /// by two ports, clashing chain names, an affinity set declared anew.
    pub fn update(
        &mut self,
        table: &Arc<ProxyTable>,
        opts: &RenderOptions<'_>,
    ) -> Result<Vec<Change>, NeedsWhole> {
        if self.skipped {
            return Err(NeedsWhole);
        }
        // Both tables list Services in order: what lies between their
        // common beginning and end is all that can have changed. At
        // 10,000 Services this walk is what a sync costs besides the kernel.
        let (old, new) = (&self.entries.ports, &table.ports);
        let same = |a: &ServicePortEntry, b: &ServicePortEntry| a == b;
        let mut start = 0;
        while start < old.len().min(new.len()) && same(&old[start], &new[start]) {
            start += 1;
        }
        let mut end = 0;
        while end < (old.len() - start).min(new.len() - start)
            && same(&old[old.len() - 1 - end], &new[new.len() - 1 - end])
        {
            end += 1;
        }
        let (old, new) = (&old[start..old.len() - end], &new[start..new.len() - end]);
        let mut before: HashMap<PortKey, &ServicePortEntry> = HashMap::with_capacity(old.len());
        for entry in old {
            before.insert(port_key(entry), entry);
        }
        let mut after: HashMap<PortKey, &ServicePortEntry> = HashMap::with_capacity(new.len());
        let mut changed: Vec<(PortKey, Option<&ServicePortEntry>)> = Vec::new();
        for entry in new {
            let key = port_key(entry);
            if after.insert(key.clone(), entry).is_some() {
                return Err(NeedsWhole);
            }
            if before.get(&key) != Some(&entry) {
                changed.push((key, Some(entry)));
            }
        }
        changed.extend(
            before
                .into_keys()
                .filter(|key| !after.contains_key(key))
                .map(|key| (key, None)),
        );
        let parts = changed
            .into_iter()
            .map(|(key, entry)| (key, entry.map(|e| render_port(e, opts))))
            .collect();
        let changes = self.apply(parts)?;
        self.entries = table.clone();
        Ok(changes)
    }

    /// Replace the parts of the ports in `parts` (`None`: the port is
    /// gone) and say what changed; see [`update`](Self::update).
    fn apply(
        &mut self,
        parts: Vec<(PortKey, Option<PortRules>)>,
    ) -> Result<Vec<Change>, NeedsWhole> {
        let none = PortRules::default();
        let old = |key: &PortKey| self.ports.get(key).unwrap_or(&none);

        // Refuse what a port by port comparison cannot decide.
        let old_chains: HashSet<&str> = parts
            .iter()
            .flat_map(|(id, _)| old(id).chains.iter().map(|(c, _)| c.as_str()))
            .collect();
        let mut claimed: BTreeMap<Tuple, isize> = BTreeMap::new();
        for (id, new) in &parts {
            for (t, _) in &old(id).claims {
                *claimed.entry(*t).or_default() -= 1;
            }
            let Some(part) = new else { continue };
            for (t, _) in &part.claims {
                *claimed.entry(*t).or_default() += 1;
            }
            if part
                .chains
                .iter()
                .any(|(c, _)| self.chains.contains_key(c) && !old_chains.contains(c.as_str()))
            {
                return Err(NeedsWhole);
            }
            if part
                .affinity_sets
                .iter()
                .any(|(name, decl)| self.affinity_sets.get(name).is_some_and(|d| d != decl))
            {
                return Err(NeedsWhole);
            }
        }
        for (t, delta) in &claimed {
            let before = self.claims.get(t).map_or(0, Vec::len) as isize;
            if before > 1 || before + delta > 1 {
                return Err(NeedsWhole);
            }
        }

        // What the touched chains, sets and elements are before and after.
        let olds: Vec<PortRules> = parts.iter().map(|(id, _)| old(id).clone()).collect();
        let news: Vec<PortRules> = parts.iter().filter_map(|(_, new)| new.clone()).collect();
        let touched = || olds.iter().chain(&news);
        let snapshot = |r: &Ruleset| {
            let mut chains: BTreeMap<String, Option<Vec<Rule>>> = BTreeMap::new();
            let mut sets: BTreeMap<String, Option<String>> = BTreeMap::new();
            let mut elements = BTreeSet::new();
            for part in touched() {
                for (name, _) in &part.chains {
                    chains.insert(name.clone(), r.chains.get(name).cloned());
                }
                for (name, _) in &part.affinity_sets {
                    sets.insert(name.clone(), r.affinity_sets.get(name).cloned());
                }
                elements.extend(r.elements_of(part));
            }
            (chains, sets, elements)
        };
        let (chains_before, sets_before, elements_before) = snapshot(self);
        for part in &olds {
            self.remove(part);
        }
        for (id, new) in parts {
            self.ports.remove(&id);
            if let Some(part) = new {
                self.add(&part);
                self.ports.insert(id, part);
            }
        }
        let (chains_after, sets_after, elements_after) = snapshot(self);

        let mut changes = Vec::new();
        for (name, decl) in &sets_after {
            if let (Some(decl), None) = (decl, &sets_before[name]) {
                changes.push(Change::AddSet(name.clone(), decl.clone()));
            }
        }
        for (name, rules) in &chains_after {
            if rules.is_some() && chains_before[name].is_none() {
                changes.push(Change::AddChain(name.clone()));
            }
        }
        for (name, rules) in &chains_after {
            let (Some(rules), before) = (rules, &chains_before[name]) else {
                continue;
            };
            if before.as_ref() == Some(rules) {
                continue;
            }
            if before.is_some() {
                changes.push(Change::FlushChain(name.clone()));
            }
            changes.extend(
                rules
                    .iter()
                    .map(|r| Change::AddRule(name.clone(), r.clone())),
            );
        }
        for (_, set, _) in DATA {
            let of = |e: &&Element| e.set() == *set;
            changes.extend(
                elements_before
                    .difference(&elements_after)
                    .filter(of)
                    .map(|e| Change::DeleteElement(e.clone())),
            );
            changes.extend(
                elements_after
                    .difference(&elements_before)
                    .filter(of)
                    .map(|e| Change::AddElement(e.clone())),
            );
        }
        // All flushed before any is deleted: a Service chain that jumps to
        // an endpoint chain may sort after it.
        let gone: Vec<&String> = chains_after
            .iter()
            .filter(|(name, rules)| rules.is_none() && chains_before[*name].is_some())
            .map(|(name, _)| name)
            .collect();
        changes.extend(gone.iter().map(|name| Change::FlushChain((*name).clone())));
        changes.extend(gone.iter().map(|name| Change::DeleteChain((*name).clone())));
        for (name, decl) in &sets_after {
            if decl.is_none() && sets_before[name].is_some() {
                changes.push(Change::DeleteSet(name.clone()));
            }
        }
        Ok(changes)
    }

    /// The table in nft's syntax: `table ip <name> { … }`.
    pub fn text(&self) -> String {
        let mut elements: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for e in self.elements() {
            elements.entry(e.set()).or_default().push(e.to_string());
        }
        let mut text = format!("table ip {} {{\n", self.table);
        for (kind, name, decl) in DATA {
            let _ = write!(text, "\t{kind} {name} {{\n\t\t{decl}\n");
            if let Some(items) = elements.get(name) {
                let _ = writeln!(text, "\t\telements = {{ {} }}", items.join(",\n\t\t\t"));
            }
            text.push_str("\t}\n");
        }
        for (name, decl) in &self.affinity_sets {
            let _ = writeln!(text, "\tset {name} {{ {decl} }}");
        }
        for (name, rules) in &self.chains {
            let _ = writeln!(text, "\tchain {name} {{");
            if let Some((_, hook)) = BASE_CHAINS.iter().find(|(c, _)| c == name) {
                let _ = writeln!(text, "\t\t{hook}");
            }
            for rule in rules {
                let _ = writeln!(text, "\t\t{rule}");
            }
            text.push_str("\t}\n");
        }
        text.push_str("}\n");
        text
    }

    /// A script that replaces whatever table of that name exists (or none)
    /// with this one, in one transaction.
    pub fn replace_script(&self) -> String {
        format!(
            "add table ip {t}\ndelete table ip {t}\n{}",
            self.text(),
            t = self.table
        )
    }

    /// The script that turns `previous` (as applied) into this table: the
    /// changes of [`Ruleset::update`], or the whole table redefined in
    /// place where that cannot compare port by port.
    pub fn update_script(&self, previous: &Ruleset) -> String {
        let mut parts: Vec<_> = self
            .ports
            .iter()
            .filter(|(id, now)| previous.ports.get(*id) != Some(*now))
            .map(|(id, now)| (id.clone(), Some(now.clone())))
            .collect();
        parts.extend(
            previous
                .ports
                .keys()
                .filter(|id| !self.ports.contains_key(*id))
                .map(|id| (id.clone(), None)),
        );
        // The same order whatever the maps' order.
        parts.sort_by(|a, b| a.0.cmp(&b.0));
        let mut next = previous.clone();
        match next.apply(parts) {
            Ok(changes) => script(&self.table, &changes),
            Err(NeedsWhole) => self.whole_update_script(previous),
        }
    }

    /// The whole table redefined in place in one transaction, keeping the
    /// affinity sets both declare alike with their elements: `flush table`
    /// empties every chain but leaves sets alone.
    pub fn whole_update_script(&self, previous: &Ruleset) -> String {
        let t = &self.table;
        let mut s = format!("add table ip {t}\nflush table ip {t}\n");
        for (kind, name, _) in DATA {
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
        s.push_str(&self.text());
        s
    }

    /// The script that removes the table.
    pub fn delete_script(table: &str) -> String {
        format!("delete table ip {table}\n")
    }

    /// The rules of chain `name`, if the table has it.
    pub fn chain(&self, name: &str) -> Option<&[Rule]> {
        self.chains.get(name).map(Vec::as_slice)
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
    rules: &mut Vec<Rule>,
    id: &str,
    proto: Protocol,
    endpoints: &[SocketAddrV4],
    affinity: Option<Duration>,
) {
    if affinity.is_some() {
        for ep in endpoints {
            rules.push(Rule::Returning {
                set: affinity_set(id, *ep),
                chain: endpoint_chain(id, *ep),
            });
        }
    }
    let n = endpoints.len();
    for (k, ep) in endpoints.iter().enumerate() {
        // Rule k of n takes what is left with chance 1/(n−k).
        let pick = (k + 1 < n).then(|| (n - k) as u32);
        rules.push(if affinity.is_some() {
            Rule::Goto {
                pick,
                chain: endpoint_chain(id, *ep),
            }
        } else {
            Rule::Dnat {
                pick,
                protocol: proto,
                to: *ep,
            }
        });
    }
}

/// A Service port: its Service, protocol and port.
type PortKey = (ServiceKey, Protocol, u16);

fn port_key(entry: &ServicePortEntry) -> PortKey {
    (entry.service.clone(), entry.protocol, entry.port)
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

fn endpoint_chain(id: &str, ep: SocketAddrV4) -> String {
    format!("ep-{id}__{}/{}", ep.ip(), ep.port())
}

fn affinity_set(id: &str, ep: SocketAddrV4) -> String {
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
