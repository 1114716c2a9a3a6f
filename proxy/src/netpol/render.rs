//! The nftables table that enforces NetworkPolicies in the node's forward
//! path: for each isolated pod of this node a chain that returns for what
//! its policies allow and drops the rest. Replies of established
//! connections pass first, so a policy change never cuts a connection it
//! allowed when it was made. Traffic from the nodes themselves (probes,
//! the userspace service proxy, which checks policies before it connects)
//! passes.

use std::fmt::Write;
use std::net::IpAddr;

use super::model::{Allow, Compiled, Peers, PortMatch, Proto};
use crate::mesh::tunnel::HBONE_PORT;

fn family(ip: IpAddr) -> &'static str {
    if ip.is_ipv4() {
        "ip"
    } else {
        "ip6"
    }
}

fn set(items: &[String]) -> String {
    format!("{{ {} }}", items.join(", "))
}

/// `meta l4proto tcp th dport { 80, 8000-8080 }` clauses, one per
/// protocol; one empty clause when every port is allowed.
fn port_clauses(ports: &[PortMatch]) -> Vec<String> {
    if ports.is_empty() {
        return vec![String::new()];
    }
    let mut out = Vec::new();
    for proto in [Proto::Tcp, Proto::Udp, Proto::Sctp] {
        let of_proto: Vec<&PortMatch> = ports.iter().filter(|p| p.proto == proto).collect();
        if of_proto.is_empty() {
            continue;
        }
        if of_proto.iter().any(|p| p.range.is_none()) {
            out.push(format!(" meta l4proto {}", proto.nft()));
            continue;
        }
        let ranges: Vec<String> = of_proto
            .iter()
            .filter_map(|p| p.range)
            .map(|(a, b)| {
                if a == b {
                    a.to_string()
                } else {
                    format!("{a}-{b}")
                }
            })
            .collect();
        out.push(format!(
            " meta l4proto {} th dport {}",
            proto.nft(),
            set(&ranges)
        ));
    }
    out
}

/// The rules of one allow, matching the peer by `dir` (`saddr` for
/// ingress, `daddr` for egress).
fn allow_rules(allow: &Allow, dir: &str, out: &mut String) {
    let ports = port_clauses(&allow.ports);
    let mut peers: Vec<String> = Vec::new();
    match &allow.peers {
        Peers::Any => peers.push(String::new()),
        Peers::Some { pods, blocks } => {
            for fam in ["ip", "ip6"] {
                let of: Vec<String> = pods
                    .iter()
                    .filter(|p| family(**p) == fam)
                    .map(ToString::to_string)
                    .collect();
                if !of.is_empty() {
                    peers.push(format!(" {fam} {dir} {}", set(&of)));
                }
            }
            for b in blocks {
                let fam = family(b.cidr.0);
                let mut clause = format!(" {fam} {dir} {}/{}", b.cidr.0, b.cidr.1);
                let except: Vec<String> = b
                    .except
                    .iter()
                    .filter(|e| family(e.0) == fam)
                    .map(|e| format!("{}/{}", e.0, e.1))
                    .collect();
                if !except.is_empty() {
                    let _ = write!(clause, " {fam} {dir} != {}", set(&except));
                }
                peers.push(clause);
            }
        }
    }
    for peer in &peers {
        for port in &ports {
            let _ = writeln!(out, "    {}{} return", peer.trim_start(), port).map(|_| ());
        }
    }
}

/// The whole table for the pods of this node (`local`: each address, and
/// whether the pod is meshed), replacing any earlier one in one
/// transaction. A meshed pod's chains let the mesh's tunnel port through:
/// its connections with other meshed pods all cross as tunnels to that
/// port, and the node proxies at both ends apply the policies to each
/// tunnelled connection with its own port instead.
pub fn render(
    table: &str,
    compiled: &Compiled,
    local: &[(IpAddr, bool)],
    nodes: &[IpAddr],
) -> String {
    let mut chains = String::new();
    let mut jumps = String::new();
    let node_rules = |out: &mut String| {
        for fam in ["ip", "ip6"] {
            let of: Vec<String> = nodes
                .iter()
                .filter(|n| family(**n) == fam)
                .map(ToString::to_string)
                .collect();
            if !of.is_empty() {
                let _ = writeln!(out, "    {fam} saddr {} return", set(&of));
            }
        }
    };
    let tunnel = |meshed: bool, out: &mut String| {
        if meshed {
            let _ = writeln!(out, "    meta l4proto tcp th dport {HBONE_PORT} return");
        }
    };
    for (i, (ip, meshed)) in local.iter().enumerate() {
        let fam = family(*ip);
        if let Some(rules) = compiled.egress.get(ip) {
            let _ = writeln!(jumps, "    {fam} saddr {ip} jump egress-{i}");
            let _ = writeln!(chains, "  chain egress-{i} {{");
            tunnel(*meshed, &mut chains);
            for allow in rules {
                allow_rules(allow, "daddr", &mut chains);
            }
            let _ = writeln!(chains, "    drop\n  }}");
        }
        if let Some(rules) = compiled.ingress.get(ip) {
            let _ = writeln!(jumps, "    {fam} daddr {ip} jump ingress-{i}");
            let _ = writeln!(chains, "  chain ingress-{i} {{");
            node_rules(&mut chains);
            tunnel(*meshed, &mut chains);
            for allow in rules {
                allow_rules(allow, "saddr", &mut chains);
            }
            let _ = writeln!(chains, "    drop\n  }}");
        }
    }
    format!(
        "table inet {table}\ndelete table inet {table}\ntable inet {table} {{\n  chain forward {{\n    type filter hook forward priority filter - 5; policy accept;\n    ct state established,related accept\n{jumps}  }}\n{chains}}}\n"
    )
}

#[cfg(test)]
mod tests {
    use super::super::model::Block;
    use super::*;

    #[test]
    fn isolated_pods_get_chains_that_return_or_drop() {
        let server: IpAddr = "10.0.0.2".parse().unwrap();
        let mut c = Compiled::default();
        c.ingress.insert(
            server,
            vec![
                Allow {
                    peers: Peers::Some {
                        pods: vec!["10.0.0.3".parse().unwrap()],
                        blocks: vec![Block {
                            cidr: ("192.168.0.0".parse().unwrap(), 16),
                            except: vec![("192.168.9.0".parse().unwrap(), 24)],
                        }],
                    },
                    ports: vec![
                        PortMatch {
                            proto: Proto::Tcp,
                            range: Some((80, 80)),
                        },
                        PortMatch {
                            proto: Proto::Tcp,
                            range: Some((8000, 8080)),
                        },
                    ],
                },
                Allow {
                    peers: Peers::Some {
                        pods: vec![],
                        blocks: vec![],
                    },
                    ports: vec![],
                },
            ],
        );
        let script = render(
            "kedge-netpol",
            &c,
            &[(server, false)],
            &["10.0.0.1".parse().unwrap()],
        );
        assert!(
            script.contains("ip daddr 10.0.0.2 jump ingress-0"),
            "{script}"
        );
        assert!(script.contains("ip saddr { 10.0.0.1 } return"), "{script}");
        assert!(
            script.contains(
                "ip saddr { 10.0.0.3 } meta l4proto tcp th dport { 80, 8000-8080 } return"
            ),
            "{script}"
        );
        assert!(
            script.contains("ip saddr 192.168.0.0/16 ip saddr != { 192.168.9.0/24 } meta l4proto tcp th dport { 80, 8000-8080 } return"),
            "{script}"
        );
        assert!(script.contains("    drop\n"), "{script}");
        assert!(!script.contains("egress-0"), "{script}");
    }
}

#[cfg(test)]
mod from_objects {
    use super::super::model::{compile, PodView};
    use super::*;
    use serde_json::json;

    #[test]
    fn the_tutorials_policies_become_rules_for_both_pods() {
        let server: k8s_openapi::api::core::v1::Pod = serde_json::from_value(json!({
            "metadata": {"name": "server", "namespace": "np", "labels": {"app": "server"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "echo", "image": "e", "ports": [{"name": "http", "containerPort": 8080}]}]},
            "status": {"phase": "Running", "podIP": "10.0.0.2"}
        })).unwrap();
        let client: k8s_openapi::api::core::v1::Pod = serde_json::from_value(json!({
            "metadata": {"name": "client", "namespace": "np", "labels": {"role": "client"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "b"}]},
            "status": {"phase": "Running", "podIP": "10.0.0.3"}
        }))
        .unwrap();
        let deny: k8s_openapi::api::networking::v1::NetworkPolicy = serde_json::from_value(json!({
            "metadata": {"name": "d", "namespace": "np"},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}}))
        .unwrap();
        let allow: k8s_openapi::api::networking::v1::NetworkPolicy = serde_json::from_value(json!({
            "metadata": {"name": "a", "namespace": "np"},
            "spec": {"podSelector": {"matchLabels": {"app": "server"}}, "ingress": [
                {"from": [{"podSelector": {"matchLabels": {"role": "client"}}}], "ports": [{"port": "http"}]}]}})).unwrap();
        let views: Vec<PodView> = [server, client].iter().filter_map(PodView::of).collect();
        let c = compile(&[deny, allow], &views, &[]);
        let script = render(
            "t",
            &c,
            &views.iter().map(|v| (v.ip, v.meshed)).collect::<Vec<_>>(),
            &[],
        );
        assert!(
            script.contains("ip saddr { 10.0.0.3 } meta l4proto tcp th dport { 8080 } return"),
            "{script}"
        );
        // The client is isolated too (default deny selects it) and may
        // receive nothing new; replies still pass as established.
        assert!(
            script.contains("ip daddr 10.0.0.3 jump ingress-1"),
            "{script}"
        );
    }

    #[test]
    fn a_meshed_pods_chains_let_the_tunnel_through_before_their_rules() {
        let (server, client): (IpAddr, IpAddr) =
            ("10.0.0.2".parse().unwrap(), "10.0.0.3".parse().unwrap());
        let mut c = Compiled::default();
        c.ingress.insert(server, vec![]);
        c.egress.insert(server, vec![]);
        c.ingress.insert(client, vec![]);
        let script = render("t", &c, &[(server, true), (client, false)], &[]);
        let chain = |name: &str| {
            let start = script.find(&format!("chain {name} {{")).unwrap();
            script[start..][..script[start..].find('}').unwrap()].to_string()
        };
        for name in ["ingress-0", "egress-0"] {
            assert!(
                chain(name).contains("meta l4proto tcp th dport 15008 return\n    drop"),
                "{script}"
            );
        }
        assert!(!chain("ingress-1").contains("15008"), "{script}");
    }
}
