//! A pod sandbox's names and resolver: hostname and domain from
//! `spec.hostname` / `spec.subdomain`, `/etc/hosts` extras from
//! `spec.hostAliases`, and resolv.conf from `dnsPolicy` and `dnsConfig`,
//! as the kubelet's DNS configurer forms them.

use std::path::Path;

use k8s_openapi::api::core::v1::{Pod, PodDNSConfig};
use kedge_config::validation::is_dns1123_label;

use crate::runtime::DnsConfig;

/// At most this many `nameserver` lines (glibc reads no more).
pub const MAX_DNS_NAMESERVERS: usize = 3;
/// At most this many search domains.
pub const MAX_DNS_SEARCH_PATHS: usize = 32;
/// At most this many characters on the `search` line.
pub const MAX_DNS_SEARCH_LIST_CHARS: usize = 2048;
/// A search domain longer than a DNS name can be is dropped (glibc aborts
/// on them).
const MAX_SEARCH_DOMAIN_LEN: usize = 253;
/// The kernel's hostname limit.
const HOSTNAME_MAX_LEN: usize = 63;
/// A resolv.conf larger than this is not read past it.
const MAX_RESOLV_CONF_LEN: u64 = 10 * 1024 * 1024;

/// Why a pod's names are not usable (the kubelet's wording).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DnsError {
    /// `spec.hostname` is not a DNS label.
    #[error("pod Hostname {0:?} is not a valid DNS label: {1}")]
    Hostname(String, String),
    /// `spec.subdomain` is not a DNS label.
    #[error("pod Subdomain {0:?} is not a valid DNS label: {1}")]
    Subdomain(String, String),
    /// Truncating the hostname left nothing.
    #[error("hostname for pod {0:?} was invalid: {1:?}")]
    Truncated(String, String),
    /// `setHostnameAsFQDN` makes a hostname longer than the kernel allows.
    #[error("failed to construct FQDN from pod hostname and cluster domain, FQDN {fqdn} is too long ({max} characters is the max, {len} characters requested)")]
    FqdnTooLong {
        /// The name that does not fit.
        fqdn: String,
        /// The limit.
        max: usize,
        /// Its length.
        len: usize,
    },
}

/// The cluster's DNS service, as the kubelet's `--cluster-dns` and
/// `--cluster-domain` give it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterDns {
    /// The cluster DNS service IPs; empty when the cluster has none, which
    /// makes `ClusterFirst` pods use the node's resolver.
    pub servers: Vec<String>,
    /// The cluster domain, `cluster.local`.
    pub domain: String,
}

impl Default for ClusterDns {
    fn default() -> Self {
        Self {
            servers: Vec::new(),
            domain: "cluster.local".into(),
        }
    }
}

/// The node's resolv.conf, parsed as the kubelet parses it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostResolvConf {
    /// `nameserver` lines, in order.
    pub nameservers: Vec<String>,
    /// The last `search` line, without trailing dots.
    pub searches: Vec<String>,
    /// `options`, later ones replacing earlier ones of the same name.
    pub options: Vec<String>,
}

// === impl HostResolvConf ===

impl HostResolvConf {
    /// Parse resolv.conf text. `nameserver` lines accumulate; the last
    /// `search` line wins; `options` merge by name.
    pub fn parse(text: &str) -> Self {
        let mut conf = Self::default();
        for line in text.lines() {
            let line = line.trim();
            if line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            let mut fields = line.split_whitespace();
            match fields.next() {
                Some("nameserver") => {
                    if let Some(ns) = fields.next() {
                        conf.nameservers.push(ns.to_string());
                    }
                }
                Some("search") => {
                    // The same domain with and without its trailing dot
                    // counts once against the search limits.
                    conf.searches = fields
                        .filter(|s| *s != ".")
                        .map(|s| s.trim_end_matches('.').to_string())
                        .collect();
                }
                Some("options") => {
                    for opt in fields {
                        merge_option(&mut conf.options, opt.to_string());
                    }
                }
                _ => {}
            }
        }
        conf
    }

    /// Read and parse the node's resolv.conf (`/etc/resolv.conf`, or
    /// `/run/systemd/resolve/resolv.conf` where systemd-resolved's stub
    /// listener would be unreachable from a pod).
    pub async fn read(path: &Path) -> std::io::Result<Self> {
        use tokio::io::AsyncReadExt;
        let file = tokio::fs::File::open(path).await?;
        let mut text = String::new();
        file.take(MAX_RESOLV_CONF_LEN)
            .read_to_string(&mut text)
            .await?;
        Ok(Self::parse(&text))
    }
}

/// The parts of a pod's sandbox config that come from its names and DNS
/// settings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SandboxDns {
    /// The hostname, empty for hostNetwork pods (they keep the node's).
    pub hostname: String,
    /// `<subdomain>.<namespace>.svc.<cluster domain>` with a subdomain.
    pub domainname: Option<String>,
    /// The pod's resolv.conf.
    pub dns: Option<DnsConfig>,
    /// `spec.hostAliases`: IP and names.
    pub host_aliases: Vec<(String, Vec<String>)>,
}

/// The sandbox names and resolver of `pod`. `host` is the node's parsed
/// resolv.conf, or `None` when the kubelet has none (`--resolv-conf=""`),
/// in which case node-resolver pods get a resolver that looks nothing up
/// beyond the local host.
pub fn sandbox_dns(
    pod: &Pod,
    cluster: &ClusterDns,
    host: Option<&HostResolvConf>,
) -> Result<SandboxDns, DnsError> {
    let host_network = pod
        .spec
        .as_ref()
        .and_then(|s| s.host_network)
        .unwrap_or(false);
    let (hostname, domainname) = if host_network {
        (String::new(), None)
    } else {
        let (hostname, domain) = pod_hostname_and_domain(pod, &cluster.domain)?;
        let fqdn = pod
            .spec
            .as_ref()
            .and_then(|s| s.set_hostname_as_fqdn)
            .unwrap_or(false);
        (
            nodename_for_kernel(hostname, domain.as_deref(), fqdn)?,
            domain,
        )
    };
    let host_aliases = pod
        .spec
        .iter()
        .flat_map(|s| s.host_aliases.iter().flatten())
        .map(|a| (a.ip.clone(), a.hostnames.clone().unwrap_or_default()))
        .collect();
    Ok(SandboxDns {
        hostname,
        domainname,
        dns: Some(pod_dns(pod, cluster, host)),
        host_aliases,
    })
}

/// The pod's hostname (`spec.hostname` or its name, cut to 63 characters)
/// and, with a `spec.subdomain`, its domain.
pub fn pod_hostname_and_domain(
    pod: &Pod,
    cluster_domain: &str,
) -> Result<(String, Option<String>), DnsError> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let spec = pod.spec.as_ref();
    let mut hostname = name.clone();
    if let Some(h) = spec
        .and_then(|s| s.hostname.as_deref())
        .filter(|h| !h.is_empty())
    {
        let errs = is_dns1123_label(h);
        if !errs.is_empty() {
            return Err(DnsError::Hostname(h.to_string(), errs.join(";")));
        }
        hostname = h.to_string();
    }
    if hostname.len() > HOSTNAME_MAX_LEN {
        // Names are ASCII (DNS labels or object names), so byte slicing is
        // safe; a name that is not gets cut on a character boundary.
        let mut end = HOSTNAME_MAX_LEN;
        while !hostname.is_char_boundary(end) {
            end -= 1;
        }
        let truncated = hostname[..end].trim_end_matches(['-', '.']).to_string();
        if truncated.is_empty() {
            return Err(DnsError::Truncated(name, hostname));
        }
        tracing::warn!(pod = %name, hostname = %truncated, "hostname for pod was too long, truncated it");
        hostname = truncated;
    }
    let domain = match spec.and_then(|s| s.subdomain.as_deref()) {
        Some(sub) if !sub.is_empty() => {
            let errs = is_dns1123_label(sub);
            if !errs.is_empty() {
                return Err(DnsError::Subdomain(sub.to_string(), errs.join(";")));
            }
            let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
            Some(format!("{sub}.{ns}.svc.{cluster_domain}"))
        }
        _ => None,
    };
    Ok((hostname, domain))
}

/// With `setHostnameAsFQDN` the kernel hostname is the FQDN, which must
/// fit the kernel's 64 characters.
fn nodename_for_kernel(
    hostname: String,
    domain: Option<&str>,
    fqdn: bool,
) -> Result<String, DnsError> {
    const MAX: usize = 64;
    match domain {
        Some(d) if fqdn => {
            let name = format!("{hostname}.{d}");
            if name.len() > MAX {
                return Err(DnsError::FqdnTooLong {
                    len: name.len(),
                    fqdn: name,
                    max: MAX,
                });
            }
            Ok(name)
        }
        _ => Ok(hostname),
    }
}

/// Which resolver a pod's `dnsPolicy` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PodDnsType {
    Cluster,
    Host,
    None,
}

fn pod_dns_type(pod: &Pod) -> PodDnsType {
    let spec = pod.spec.as_ref();
    let host_network = spec.and_then(|s| s.host_network).unwrap_or(false);
    match spec.and_then(|s| s.dns_policy.as_deref()) {
        Some("None") => PodDnsType::None,
        Some("ClusterFirstWithHostNet") => PodDnsType::Cluster,
        Some("Default") => PodDnsType::Host,
        // A hostNetwork pod's ClusterFirst falls back to the node's
        // resolver: it may run before cluster DNS does.
        Some("ClusterFirst") | None if host_network => PodDnsType::Host,
        Some("ClusterFirst") | None => PodDnsType::Cluster,
        Some(other) => {
            tracing::warn!(policy = %other, "invalid dnsPolicy, using ClusterFirst");
            PodDnsType::Cluster
        }
    }
}

/// The resolv.conf of a pod: the base its `dnsPolicy` gives, `dnsConfig`
/// added on top, then cut to the resolver's limits.
pub fn pod_dns(pod: &Pod, cluster: &ClusterDns, host: Option<&HostResolvConf>) -> DnsConfig {
    let host_config = || match host {
        Some(h) => DnsConfig {
            servers: h.nameservers.clone(),
            searches: h.searches.clone(),
            options: h.options.clone(),
        },
        // No node resolv.conf: the local host only, and no search.
        None => DnsConfig {
            servers: vec!["127.0.0.1".into()],
            searches: vec![".".into()],
            options: Vec::new(),
        },
    };
    let mut config = match pod_dns_type(pod) {
        PodDnsType::None => DnsConfig::default(),
        PodDnsType::Cluster if !cluster.servers.is_empty() => {
            // Cluster DNS is the only nameserver: it forwards what it cannot
            // answer to the node's upstreams itself.
            let host_searches = host.map(|h| h.searches.clone()).unwrap_or_default();
            DnsConfig {
                servers: cluster.servers.clone(),
                searches: cluster_searches(pod, &cluster.domain, host_searches),
                options: vec!["ndots:5".into()],
            }
        }
        PodDnsType::Cluster => {
            tracing::warn!(
                pod = ?pod.metadata.name,
                "kubelet does not have ClusterDNS IP configured and cannot create Pod using \"ClusterFirst\" policy. Falling back to \"Default\" policy."
            );
            host_config()
        }
        PodDnsType::Host => host_config(),
    };
    if let Some(extra) = pod.spec.as_ref().and_then(|s| s.dns_config.as_ref()) {
        append_dns_config(&mut config, extra);
    }
    config.servers = fit_nameservers(config.servers);
    config.searches = fit_searches(config.searches);
    config
}

fn cluster_searches(pod: &Pod, domain: &str, host_searches: Vec<String>) -> Vec<String> {
    if domain.is_empty() {
        return host_searches;
    }
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let mut searches = vec![
        format!("{ns}.svc.{domain}"),
        format!("svc.{domain}"),
        domain.to_string(),
    ];
    searches.extend(host_searches);
    omit_duplicates(searches)
}

/// `dnsConfig` on top of the policy's resolver: nameservers and searches
/// appended without duplicates, options merged by name with the pod's
/// values winning.
fn append_dns_config(config: &mut DnsConfig, extra: &PodDNSConfig) {
    let servers = std::mem::take(&mut config.servers);
    config.servers = omit_duplicates(
        servers
            .into_iter()
            .chain(extra.nameservers.iter().flatten().cloned()),
    );
    let searches = std::mem::take(&mut config.searches);
    config.searches = omit_duplicates(
        searches
            .into_iter()
            .chain(extra.searches.iter().flatten().cloned()),
    );
    for opt in extra.options.iter().flatten() {
        let name = opt.name.as_deref().unwrap_or_default();
        let opt = match opt.value.as_deref().filter(|v| !v.is_empty()) {
            Some(v) => format!("{name}:{v}"),
            None => name.to_string(),
        };
        merge_option(&mut config.options, opt);
    }
}

/// Set an option, replacing one of the same name in place.
fn merge_option(options: &mut Vec<String>, opt: String) {
    let name = |o: &str| o.split_once(':').map_or(o, |(n, _)| n).to_string();
    let new_name = name(&opt);
    match options.iter_mut().find(|o| name(o) == new_name) {
        Some(o) => *o = opt,
        None => options.push(opt),
    }
}

fn omit_duplicates(items: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for item in items {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

fn fit_nameservers(mut servers: Vec<String>) -> Vec<String> {
    if servers.len() > MAX_DNS_NAMESERVERS {
        servers.truncate(MAX_DNS_NAMESERVERS);
        tracing::warn!(
            "Nameserver limits were exceeded, some nameservers have been omitted, the applied nameserver line is: {}",
            servers.join(" ")
        );
    }
    servers
}

fn fit_searches(mut searches: Vec<String>) -> Vec<String> {
    let mut exceeded = false;
    if searches.len() > MAX_DNS_SEARCH_PATHS {
        searches.truncate(MAX_DNS_SEARCH_PATHS);
        exceeded = true;
    }
    let before = searches.len();
    searches.retain(|s| s.len() <= MAX_SEARCH_DOMAIN_LEN);
    exceeded |= searches.len() != before;
    // Drop domains from the end until the line fits.
    let line_len =
        |s: &[String]| s.iter().map(|d| d.len()).sum::<usize>() + s.len().saturating_sub(1);
    while line_len(&searches) > MAX_DNS_SEARCH_LIST_CHARS {
        searches.pop();
        exceeded = true;
    }
    if exceeded {
        tracing::warn!(
            "Search Line limits were exceeded, some search paths have been omitted, the applied search line is: {}",
            searches.join(" ")
        );
    }
    searches
}

#[cfg(test)]
mod tests;
