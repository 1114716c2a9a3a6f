//! NetworkPolicies compiled against the pods and namespaces they select:
//! for each pod address, what it may receive and send (Kubernetes'
//! semantics: a pod no policy selects for a direction is open in that
//! direction; once selected, only what some selecting policy allows gets
//! through; replies to allowed connections always do).

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// A transport protocol a rule names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

impl Proto {
    fn parse(s: Option<&str>) -> Self {
        match s {
            Some("UDP") => Proto::Udp,
            Some("SCTP") => Proto::Sctp,
            _ => Proto::Tcp,
        }
    }

    /// The name nftables knows it by.
    pub fn nft(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Sctp => "sctp",
        }
    }
}

/// A port or range of a protocol; `None` ports: every port of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortMatch {
    /// The protocol.
    pub proto: Proto,
    /// First and last port.
    pub range: Option<(u16, u16)>,
}

/// An address block and the blocks cut out of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// `addr/len`.
    pub cidr: (IpAddr, u8),
    /// Excluded `addr/len`s.
    pub except: Vec<(IpAddr, u8)>,
}

/// Who a rule lets through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peers {
    /// Anyone.
    Any,
    /// These pod addresses and address blocks.
    Some {
        /// Pod addresses.
        pods: Vec<IpAddr>,
        /// Blocks.
        blocks: Vec<Block>,
    },
}

/// One allowing rule: peers × ports (no ports: all).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allow {
    /// The other end.
    pub peers: Peers,
    /// The ports (of the selected pod for ingress, of the peer for egress).
    pub ports: Vec<PortMatch>,
}

/// The policy of every selected pod, by address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Compiled {
    /// Pods isolated for ingress and what they may receive.
    pub ingress: BTreeMap<IpAddr, Vec<Allow>>,
    /// Pods isolated for egress and what they may send.
    pub egress: BTreeMap<IpAddr, Vec<Allow>>,
}

/// A pod as the policies see it.
#[derive(Debug, Clone)]
pub struct PodView {
    /// Its address.
    pub ip: IpAddr,
    /// Its namespace.
    pub namespace: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its node.
    pub node: String,
    /// Named container ports: name → (protocol, port).
    pub named_ports: Vec<(String, Proto, u16)>,
    /// Whether it is in the mesh: its connections with other meshed pods
    /// cross as tunnels to port 15008, which the node proxies check
    /// against the policies with the connection's own port.
    pub meshed: bool,
}

impl PodView {
    /// The view of a running pod with an address; hostNetwork pods are not
    /// selected by policies.
    pub fn of(pod: &Pod) -> Option<Self> {
        let spec = pod.spec.as_ref()?;
        if spec.host_network == Some(true) {
            return None;
        }
        let phase = pod.status.as_ref()?.phase.as_deref();
        if matches!(phase, Some("Succeeded" | "Failed")) {
            return None;
        }
        let ip: IpAddr = pod.status.as_ref()?.pod_ip.as_deref()?.parse().ok()?;
        let named_ports = spec
            .containers
            .iter()
            .flat_map(|c| c.ports.iter().flatten())
            .filter_map(|p| {
                Some((
                    p.name.clone()?,
                    Proto::parse(p.protocol.as_deref()),
                    u16::try_from(p.container_port).ok()?,
                ))
            })
            .collect();
        Some(PodView {
            ip,
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            labels: pod.metadata.labels.clone().unwrap_or_default(),
            node: spec.node_name.clone().unwrap_or_default(),
            named_ports,
            meshed: false,
        })
    }
}

/// Whether `labels` satisfy `sel` (an empty selector matches all).
pub fn selects(sel: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    kedge_config::selector::LabelSelector::from_label_selector(sel).is_ok_and(|s| s.matches(labels))
}

fn cidr(s: &str) -> Option<(IpAddr, u8)> {
    let (ip, len) = s.split_once('/')?;
    Some((ip.parse().ok()?, len.parse().ok()?))
}

/// Whether `ip` lies in `block`.
pub fn in_cidr(ip: IpAddr, (net, len): (IpAddr, u8)) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX
                .checked_shl(32 - u32::from(len.min(32)))
                .unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX
                .checked_shl(128 - u32::from(len.min(128)))
                .unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// Compile `policies` over `pods` and `namespaces`.
pub fn compile(policies: &[NetworkPolicy], pods: &[PodView], namespaces: &[Namespace]) -> Compiled {
    let ns_labels: HashMap<&str, BTreeMap<String, String>> = namespaces
        .iter()
        .map(|n| {
            let mut labels = n.metadata.labels.clone().unwrap_or_default();
            // Every namespace carries its name as a label (as Kubernetes
            // sets it), so policies can select one by name.
            let name = n.metadata.name.as_deref().unwrap_or_default();
            labels.insert("kubernetes.io/metadata.name".into(), name.into());
            (name, labels)
        })
        .collect();
    let empty = BTreeMap::new();
    let mut out = Compiled::default();
    for policy in policies {
        let ns = policy.metadata.namespace.as_deref().unwrap_or_default();
        let Some(spec) = &policy.spec else { continue };
        let types = spec.policy_types.clone().unwrap_or_else(|| {
            let mut t = vec!["Ingress".to_string()];
            if spec.egress.is_some() {
                t.push("Egress".into());
            }
            t
        });
        let everyone = LabelSelector::default();
        let pod_selector = spec.pod_selector.as_ref().unwrap_or(&everyone);
        let selected: Vec<&PodView> = pods
            .iter()
            .filter(|p| p.namespace == ns && selects(pod_selector, &p.labels))
            .collect();
        let peers_of = |peers: Option<&Vec<NetworkPolicyPeer>>| -> Peers {
            let Some(peers) = peers.filter(|p| !p.is_empty()) else {
                return Peers::Any;
            };
            let mut ips = Vec::new();
            let mut blocks = Vec::new();
            for peer in peers {
                if let Some(b) = &peer.ip_block {
                    if let Some(c) = cidr(&b.cidr) {
                        blocks.push(Block {
                            cidr: c,
                            except: b.except.iter().flatten().filter_map(|e| cidr(e)).collect(),
                        });
                    }
                    continue;
                }
                for p in pods {
                    let in_ns = match &peer.namespace_selector {
                        None => p.namespace == ns,
                        Some(sel) => {
                            selects(sel, ns_labels.get(p.namespace.as_str()).unwrap_or(&empty))
                        }
                    };
                    let by_labels = peer
                        .pod_selector
                        .as_ref()
                        .is_none_or(|sel| selects(sel, &p.labels));
                    if in_ns && by_labels && !ips.contains(&p.ip) {
                        ips.push(p.ip);
                    }
                }
            }
            Peers::Some { pods: ips, blocks }
        };
        let ports_of = |ports: Option<&Vec<NetworkPolicyPort>>, named: &[(String, Proto, u16)]| {
            let mut out = Vec::new();
            for p in ports.into_iter().flatten() {
                let proto = Proto::parse(p.protocol.as_deref());
                match &p.port {
                    None => out.push(PortMatch { proto, range: None }),
                    Some(IntOrString::Int(n)) => {
                        let from = u16::try_from(*n).unwrap_or(0);
                        let to = p
                            .end_port
                            .and_then(|e| u16::try_from(e).ok())
                            .unwrap_or(from);
                        out.push(PortMatch {
                            proto,
                            range: Some((from, to)),
                        });
                    }
                    Some(IntOrString::String(name)) => {
                        for (n, pr, port) in named {
                            if n == name && *pr == proto {
                                out.push(PortMatch {
                                    proto,
                                    range: Some((*port, *port)),
                                });
                            }
                        }
                        if out.is_empty() {
                            // A name no container has matches nothing: a
                            // port no packet uses stands for it.
                            out.push(PortMatch {
                                proto,
                                range: Some((0, 0)),
                            });
                        }
                    }
                }
            }
            out
        };
        for pod in &selected {
            if types.iter().any(|t| t == "Ingress") {
                let rules = out.ingress.entry(pod.ip).or_default();
                for rule in spec.ingress.iter().flatten() {
                    rules.push(Allow {
                        peers: peers_of(rule.from.as_ref()),
                        ports: ports_of(rule.ports.as_ref(), &pod.named_ports),
                    });
                }
            }
            if types.iter().any(|t| t == "Egress") {
                let rules = out.egress.entry(pod.ip).or_default();
                // Named ports of egress rules are the peers' ports.
                let all_named: Vec<(String, Proto, u16)> =
                    pods.iter().flat_map(|p| p.named_ports.clone()).collect();
                for rule in spec.egress.iter().flatten() {
                    rules.push(Allow {
                        peers: peers_of(rule.to.as_ref()),
                        ports: ports_of(rule.ports.as_ref(), &all_named),
                    });
                }
            }
        }
    }
    out
}

impl Allow {
    fn admits(&self, peer: IpAddr, proto: Proto, port: u16) -> bool {
        let peer_ok = match &self.peers {
            Peers::Any => true,
            Peers::Some { pods, blocks } => {
                pods.contains(&peer)
                    || blocks.iter().any(|b| {
                        in_cidr(peer, b.cidr) && !b.except.iter().any(|e| in_cidr(peer, *e))
                    })
            }
        };
        let port_ok = self.ports.is_empty()
            || self.ports.iter().any(|p| {
                p.proto == proto && p.range.is_none_or(|(from, to)| (from..=to).contains(&port))
            });
        peer_ok && port_ok
    }
}

impl Compiled {
    /// Whether a new connection from `src` to `dst:port` may be made:
    /// `src` may send it and `dst` may receive it.
    pub fn allows(&self, src: IpAddr, dst: IpAddr, proto: Proto, port: u16) -> bool {
        let sends = self
            .egress
            .get(&src)
            .is_none_or(|rules| rules.iter().any(|r| r.admits(dst, proto, port)));
        let receives = self
            .ingress
            .get(&dst)
            .is_none_or(|rules| rules.iter().any(|r| r.admits(src, proto, port)));
        sends && receives
    }

    /// Whether no pod is isolated (the common case: nothing to check).
    pub fn is_open(&self) -> bool {
        self.ingress.is_empty() && self.egress.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(ip: &str, ns: &str, labels: serde_json::Value) -> PodView {
        PodView {
            ip: ip.parse().unwrap(),
            namespace: ns.into(),
            labels: serde_json::from_value(labels).unwrap(),
            node: "n".into(),
            named_ports: vec![("http".into(), Proto::Tcp, 8080)],
            meshed: false,
        }
    }

    fn policy(ns: &str, spec: serde_json::Value) -> NetworkPolicy {
        serde_json::from_value(json!({"metadata": {"name": "p", "namespace": ns}, "spec": spec}))
            .unwrap()
    }

    fn ns(name: &str, labels: serde_json::Value) -> Namespace {
        serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}})).unwrap()
    }

    #[test]
    fn default_deny_then_allow_by_label_namespace_port_and_block() {
        let server = pod("10.0.0.2", "shop", json!({"app": "server"}));
        let client = pod("10.0.0.3", "shop", json!({"role": "client"}));
        let other = pod("10.0.0.4", "shop", json!({}));
        let monitor = pod("10.0.1.5", "ops", json!({}));
        let pods = vec![
            server.clone(),
            client.clone(),
            other.clone(),
            monitor.clone(),
        ];
        let namespaces = vec![ns("shop", json!({})), ns("ops", json!({"team": "ops"}))];
        let ip = |p: &PodView| p.ip;
        let t = Proto::Tcp;

        // Nothing selects anyone: open.
        assert!(compile(&[], &pods, &namespaces).allows(ip(&other), ip(&server), t, 80));

        let deny = policy(
            "shop",
            json!({"podSelector": {}, "policyTypes": ["Ingress"]}),
        );
        let c = compile(std::slice::from_ref(&deny), &pods, &namespaces);
        assert!(!c.allows(ip(&client), ip(&server), t, 8080));
        // Another namespace's pods stay open.
        assert!(c.allows(ip(&server), ip(&monitor), t, 80));

        let allow = policy(
            "shop",
            json!({"podSelector": {"matchLabels": {"app": "server"}}, "ingress": [
                {"from": [{"podSelector": {"matchLabels": {"role": "client"}}}],
                 "ports": [{"port": "http"}]},
                {"from": [{"namespaceSelector": {"matchLabels": {"team": "ops"}}}]},
                {"from": [{"ipBlock": {"cidr": "192.168.0.0/16", "except": ["192.168.9.0/24"]}}],
                 "ports": [{"port": 9000, "endPort": 9010, "protocol": "UDP"}]},
            ]}),
        );
        let c = compile(&[deny, allow], &pods, &namespaces);
        assert!(c.allows(ip(&client), ip(&server), t, 8080));
        assert!(!c.allows(ip(&client), ip(&server), t, 80));
        assert!(!c.allows(ip(&other), ip(&server), t, 8080));
        assert!(c.allows(ip(&monitor), ip(&server), t, 22));
        let outside: IpAddr = "192.168.1.1".parse().unwrap();
        let cut: IpAddr = "192.168.9.1".parse().unwrap();
        assert!(c.allows(outside, ip(&server), Proto::Udp, 9005));
        assert!(!c.allows(outside, ip(&server), Proto::Udp, 9011));
        assert!(!c.allows(cut, ip(&server), Proto::Udp, 9005));
    }

    #[test]
    fn egress_deny_blocks_what_the_pod_sends() {
        let a = pod("10.0.0.2", "x", json!({"app": "a"}));
        let b = pod("10.0.0.3", "x", json!({}));
        let deny = policy(
            "x",
            json!({"podSelector": {"matchLabels": {"app": "a"}}, "policyTypes": ["Egress"]}),
        );
        let c = compile(&[deny], &[a.clone(), b.clone()], &[]);
        assert!(!c.allows(a.ip, b.ip, Proto::Tcp, 80));
        assert!(c.allows(b.ip, a.ip, Proto::Tcp, 80));
    }
}
