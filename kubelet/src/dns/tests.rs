//! Unit tests of pod names and resolv.conf forming.

use super::*;
use k8s_openapi::api::core::v1::{HostAlias, PodDNSConfigOption, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

fn pod(policy: Option<&str>, host_network: bool) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some("web-0".into()),
            namespace: Some("shop".into()),
            ..Default::default()
        },
        spec: Some(PodSpec {
            dns_policy: policy.map(Into::into),
            host_network: Some(host_network),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn cluster() -> ClusterDns {
    ClusterDns {
        servers: vec!["10.96.0.10".into()],
        domain: "cluster.local".into(),
    }
}

fn host() -> HostResolvConf {
    HostResolvConf::parse(
        "# the node's resolver\n\
         nameserver 192.168.1.1\n\
         nameserver 192.168.1.2\n\
         search old.example\n\
         search corp.example. lab.example .\n\
         options ndots:1 timeout:2\n\
         options ndots:2 rotate\n\
         nameserver\n",
    )
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn parses_resolv_conf() {
    assert_eq!(
        host(),
        HostResolvConf {
            nameservers: strings(&["192.168.1.1", "192.168.1.2"]),
            searches: strings(&["corp.example", "lab.example"]),
            options: strings(&["ndots:2", "timeout:2", "rotate"]),
        }
    );
}

#[tokio::test]
async fn reads_resolv_conf_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("resolv.conf");
    std::fs::write(&path, "nameserver 1.1.1.1\nsearch a.example\n").unwrap();
    let conf = HostResolvConf::read(&path).await.unwrap();
    assert_eq!(conf.nameservers, strings(&["1.1.1.1"]));
    assert_eq!(conf.searches, strings(&["a.example"]));
    assert!(HostResolvConf::read(&dir.path().join("none"))
        .await
        .is_err());
}

#[test]
fn cluster_first() {
    for policy in [None, Some("ClusterFirst")] {
        let dns = pod_dns(&pod(policy, false), &cluster(), Some(&host()));
        assert_eq!(
            dns,
            DnsConfig {
                servers: strings(&["10.96.0.10"]),
                searches: strings(&[
                    "shop.svc.cluster.local",
                    "svc.cluster.local",
                    "cluster.local",
                    "corp.example",
                    "lab.example",
                ]),
                options: strings(&["ndots:5"]),
            }
        );
    }
}

#[test]
fn cluster_first_with_host_net() {
    let dns = pod_dns(
        &pod(Some("ClusterFirstWithHostNet"), true),
        &cluster(),
        Some(&host()),
    );
    assert_eq!(dns.servers, strings(&["10.96.0.10"]));
    assert_eq!(dns.searches[0], "shop.svc.cluster.local");
}

#[test]
fn host_network_cluster_first_falls_back_to_default() {
    let dns = pod_dns(&pod(Some("ClusterFirst"), true), &cluster(), Some(&host()));
    assert_eq!(dns.servers, strings(&["192.168.1.1", "192.168.1.2"]));
    assert_eq!(dns.searches, strings(&["corp.example", "lab.example"]));
    assert_eq!(dns.options, strings(&["ndots:2", "timeout:2", "rotate"]));
}

#[test]
fn default_policy_uses_node_resolver() {
    let dns = pod_dns(&pod(Some("Default"), false), &cluster(), Some(&host()));
    assert_eq!(dns.servers, strings(&["192.168.1.1", "192.168.1.2"]));
    // Without a node resolv.conf: the local host and no search.
    let dns = pod_dns(&pod(Some("Default"), false), &cluster(), None);
    assert_eq!(dns.servers, strings(&["127.0.0.1"]));
    assert_eq!(dns.searches, strings(&["."]));
}

#[test]
fn cluster_first_without_cluster_dns_falls_back_to_default() {
    let no_dns = ClusterDns {
        servers: vec![],
        ..cluster()
    };
    let dns = pod_dns(&pod(Some("ClusterFirst"), false), &no_dns, Some(&host()));
    assert_eq!(dns.servers, strings(&["192.168.1.1", "192.168.1.2"]));
}

#[test]
fn none_uses_only_dns_config() {
    let mut p = pod(Some("None"), false);
    p.spec.as_mut().unwrap().dns_config = Some(PodDNSConfig {
        nameservers: Some(strings(&["1.1.1.1"])),
        searches: Some(strings(&["my.example"])),
        options: Some(vec![PodDNSConfigOption {
            name: Some("ndots".into()),
            value: Some("2".into()),
        }]),
    });
    let dns = pod_dns(&p, &cluster(), Some(&host()));
    assert_eq!(
        dns,
        DnsConfig {
            servers: strings(&["1.1.1.1"]),
            searches: strings(&["my.example"]),
            options: strings(&["ndots:2"]),
        }
    );
    let empty = pod_dns(&pod(Some("None"), false), &cluster(), Some(&host()));
    assert_eq!(empty, DnsConfig::default());
}

#[test]
fn dns_config_merges() {
    let mut p = pod(Some("ClusterFirst"), false);
    p.spec.as_mut().unwrap().dns_config = Some(PodDNSConfig {
        nameservers: Some(strings(&["10.96.0.10", "8.8.8.8"])),
        searches: Some(strings(&["cluster.local", "extra.example"])),
        options: Some(vec![
            PodDNSConfigOption {
                name: Some("ndots".into()),
                value: Some("2".into()),
            },
            PodDNSConfigOption {
                name: Some("edns0".into()),
                value: None,
            },
        ]),
    });
    let dns = pod_dns(&p, &cluster(), Some(&host()));
    assert_eq!(dns.servers, strings(&["10.96.0.10", "8.8.8.8"]));
    assert_eq!(
        dns.searches,
        strings(&[
            "shop.svc.cluster.local",
            "svc.cluster.local",
            "cluster.local",
            "corp.example",
            "lab.example",
            "extra.example",
        ])
    );
    assert_eq!(dns.options, strings(&["ndots:2", "edns0"]));
}

#[test]
fn limits() {
    let mut p = pod(Some("None"), false);
    let long = |i: usize| format!("{i}-{}.example", "a".repeat(100));
    let mut searches: Vec<String> = (0..40).map(long).collect();
    searches.insert(1, "x".repeat(254));
    p.spec.as_mut().unwrap().dns_config = Some(PodDNSConfig {
        nameservers: Some(strings(&["1.1.1.1", "2.2.2.2", "3.3.3.3", "4.4.4.4"])),
        searches: Some(searches),
        options: None,
    });
    let dns = pod_dns(&p, &cluster(), None);
    assert_eq!(dns.servers, strings(&["1.1.1.1", "2.2.2.2", "3.3.3.3"]));
    // 32 domains at most, none over 253 characters, at most 2048 on the line.
    assert!(dns.searches.len() <= MAX_DNS_SEARCH_PATHS);
    assert!(dns.searches.join(" ").len() <= MAX_DNS_SEARCH_LIST_CHARS);
    assert!(dns.searches.iter().all(|s| s.len() <= 253));
    assert_eq!(dns.searches[0], long(0));
    assert_eq!(dns.searches[1], long(1));
    // 110 or 111 characters each: 18 fit in 2048 with their spaces.
    assert_eq!(dns.searches.len(), 18);

    let many: Vec<String> = (0..40).map(|i| format!("d{i}.example")).collect();
    let mut p = pod(Some("None"), false);
    p.spec.as_mut().unwrap().dns_config = Some(PodDNSConfig {
        searches: Some(many.clone()),
        ..Default::default()
    });
    assert_eq!(pod_dns(&p, &cluster(), None).searches, many[..32].to_vec());
}

#[test]
fn hostname_and_domain() {
    let mut p = pod(None, false);
    let names = sandbox_dns(&p, &cluster(), Some(&host())).unwrap();
    assert_eq!(names.hostname, "web-0");
    assert_eq!(names.domainname, None);

    let spec = p.spec.as_mut().unwrap();
    spec.hostname = Some("db".into());
    spec.subdomain = Some("backend".into());
    spec.host_aliases = Some(vec![HostAlias {
        ip: "10.0.0.9".into(),
        hostnames: Some(strings(&["foo.local", "bar.local"])),
    }]);
    let names = sandbox_dns(&p, &cluster(), Some(&host())).unwrap();
    assert_eq!(names.hostname, "db");
    assert_eq!(
        names.domainname.as_deref(),
        Some("backend.shop.svc.cluster.local")
    );
    assert_eq!(
        names.host_aliases,
        vec![("10.0.0.9".to_string(), strings(&["foo.local", "bar.local"]))]
    );
    assert_eq!(names.dns.unwrap().servers, strings(&["10.96.0.10"]));

    p.spec.as_mut().unwrap().set_hostname_as_fqdn = Some(true);
    let names = sandbox_dns(&p, &cluster(), None).unwrap();
    assert_eq!(names.hostname, "db.backend.shop.svc.cluster.local");

    p.spec.as_mut().unwrap().hostname = Some("Not_A_Label".into());
    let err = sandbox_dns(&p, &cluster(), None).unwrap_err().to_string();
    assert!(
        err.starts_with("pod Hostname \"Not_A_Label\" is not a valid DNS label: "),
        "{err}"
    );
}

#[test]
fn long_names_are_truncated() {
    let mut p = pod(None, false);
    // 62 characters, then a '-' at the 63rd: cut to 63 and the '-' dropped.
    let name = format!("{}-{}", "a".repeat(62), "b".repeat(10));
    p.metadata.name = Some(name);
    let (hostname, _) = pod_hostname_and_domain(&p, "cluster.local").unwrap();
    assert_eq!(hostname, "a".repeat(62));

    p.spec.as_mut().unwrap().set_hostname_as_fqdn = Some(true);
    p.spec.as_mut().unwrap().subdomain = Some("sub".into());
    let err = sandbox_dns(&p, &cluster(), None).unwrap_err();
    assert!(
        matches!(err, DnsError::FqdnTooLong { max: 64, .. }),
        "{err}"
    );
}

#[test]
fn host_network_keeps_node_hostname() {
    let names = sandbox_dns(&pod(None, true), &cluster(), Some(&host())).unwrap();
    assert_eq!(names.hostname, "");
    assert_eq!(names.domainname, None);
}
