//! The cluster configuration file (YAML, camelCase keys; every key optional):
//!
//! ```yaml
//! serviceCIDR: 10.96.0.0/12
//! podCIDR: 10.244.0.0/16
//! nodePortRange: "30000-32767"
//! clusterDomain: cluster.local
//! listenAddress: 127.0.0.1:6443
//! dataDir: /var/lib/kedge
//! ```

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The address the kubelet's probes come from on a node's pod network (a
/// link-local address on the pods' bridge, Istio's choice): the mesh
/// tells probes from other traffic of the node by it, so a pod that takes
/// mutual TLS only still answers its probes.
pub const KUBELET_PROBE_SOURCE: Ipv4Addr = Ipv4Addr::new(169, 254, 7, 127);

/// Why a configuration could not be loaded or is not usable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file is not valid YAML for a cluster configuration.
    #[error("parsing {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What went wrong (with line and column when known).
        message: String,
    },
    /// A value is out of range or malformed.
    #[error("invalid {field}: {message}")]
    Invalid {
        /// The configuration key.
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },
}

/// The cluster-wide settings every component agrees on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct ClusterConfig {
    /// The range Service ClusterIPs come from (IPv4 CIDR).
    #[serde(rename = "serviceCIDR")]
    pub service_cidr: String,
    /// The range pod IPs come from (IPv4 CIDR).
    #[serde(rename = "podCIDR")]
    pub pod_cidr: String,
    /// The inclusive NodePort range, written `"30000-32767"`.
    #[serde(serialize_with = "ser_port_range", deserialize_with = "de_port_range")]
    pub node_port_range: (u16, u16),
    /// The cluster DNS domain.
    pub cluster_domain: String,
    /// Where the API server listens.
    #[serde(rename = "listenAddress")]
    pub listen: SocketAddr,
    /// Where state is kept.
    pub data_dir: PathBuf,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            service_cidr: "10.96.0.0/12".into(),
            pod_cidr: "10.244.0.0/16".into(),
            node_port_range: (30000, 32767),
            cluster_domain: "cluster.local".into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 6443)),
            data_dir: PathBuf::from("/var/lib/kedge"),
        }
    }
}

fn ser_port_range<S: Serializer>(r: &(u16, u16), s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{}-{}", r.0, r.1))
}

fn de_port_range<'de, D: Deserializer<'de>>(d: D) -> Result<(u16, u16), D::Error> {
    let s = String::deserialize(d)?;
    parse_port_range(&s).map_err(serde::de::Error::custom)
}

/// Parses `"30000-32767"` (or a single port `"30000"`, or `"30000+767"` meaning base+size).
pub fn parse_port_range(s: &str) -> Result<(u16, u16), String> {
    let s = s.trim();
    let bad = || format!("{s:?} is not a port range like \"30000-32767\"");
    if let Some((a, b)) = s.split_once('-') {
        let a: u16 = a.trim().parse().map_err(|_| bad())?;
        let b: u16 = b.trim().parse().map_err(|_| bad())?;
        Ok((a, b))
    } else if let Some((a, n)) = s.split_once('+') {
        let a: u16 = a.trim().parse().map_err(|_| bad())?;
        let n: u16 = n.trim().parse().map_err(|_| bad())?;
        Ok((a, a.checked_add(n).ok_or_else(bad)?))
    } else {
        let a: u16 = s.parse().map_err(|_| bad())?;
        Ok((a, a))
    }
}

/// Parses an IPv4 CIDR (`10.96.0.0/12`) into its network address and prefix length. Host
/// bits are cleared.
pub fn parse_ipv4_cidr(s: &str) -> Result<(Ipv4Addr, u8), String> {
    let (ip, len) = s
        .split_once('/')
        .ok_or_else(|| format!("{s:?} is not a CIDR (address/prefix)"))?;
    let ip: Ipv4Addr = ip
        .parse()
        .map_err(|_| format!("{s:?}: {ip:?} is not an IPv4 address"))?;
    let len: u8 = len
        .parse()
        .ok()
        .filter(|l| *l <= 32)
        .ok_or_else(|| format!("{s:?}: prefix length must be 0-32"))?;
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    Ok((Ipv4Addr::from(u32::from(ip) & mask), len))
}

impl ClusterConfig {
    /// Reads a YAML file; keys that are missing take their defaults. The result is
    /// validated.
    pub fn from_file(path: impl AsRef<Path>) -> Result<ClusterConfig, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let cfg = Self::from_yaml(&text).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.to_path_buf(),
                message,
            },
            other => other,
        })?;
        Ok(cfg)
    }

    /// Parses YAML text; keys that are missing take their defaults. The result is validated.
    pub fn from_yaml(text: &str) -> Result<ClusterConfig, ConfigError> {
        let cfg: ClusterConfig = if text.trim().is_empty() {
            ClusterConfig::default()
        } else {
            serde_yaml::from_str::<Option<ClusterConfig>>(text)
                .map_err(|e| ConfigError::Parse {
                    path: PathBuf::new(),
                    message: e.to_string(),
                })?
                .unwrap_or_default()
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks that the CIDRs parse and the port range is sane.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let (_, svc_len) =
            parse_ipv4_cidr(&self.service_cidr).map_err(|message| ConfigError::Invalid {
                field: "serviceCIDR",
                message,
            })?;
        if svc_len > 28 {
            return Err(ConfigError::Invalid {
                field: "serviceCIDR",
                message: format!(
                    "{} is too small: at least a /28 is needed (the DNS service is the 10th address)",
                    self.service_cidr
                ),
            });
        }
        let (_, pod_len) =
            parse_ipv4_cidr(&self.pod_cidr).map_err(|message| ConfigError::Invalid {
                field: "podCIDR",
                message,
            })?;
        if pod_len > 24 {
            return Err(ConfigError::Invalid {
                field: "podCIDR",
                message: format!("{} is too small: at least a /24 is needed", self.pod_cidr),
            });
        }
        let (a, b) = self.node_port_range;
        if a == 0 || a > b {
            return Err(ConfigError::Invalid {
                field: "nodePortRange",
                message: format!("{a}-{b} is not a range of ports 1-65535 with start <= end"),
            });
        }
        let domain_errs = crate::validation::is_dns1123_subdomain(&self.cluster_domain);
        if !domain_errs.is_empty() {
            return Err(ConfigError::Invalid {
                field: "clusterDomain",
                message: domain_errs.join("; "),
            });
        }
        Ok(())
    }

    /// The Service CIDR as (network address, prefix length). Falls back to the default
    /// range when the configured one does not parse (call [`ClusterConfig::validate`] first).
    pub fn service_cidr_net(&self) -> (Ipv4Addr, u8) {
        parse_ipv4_cidr(&self.service_cidr).unwrap_or((Ipv4Addr::new(10, 96, 0, 0), 12))
    }

    /// The pod CIDR as (network address, prefix length), with the same fallback.
    pub fn pod_cidr_net(&self) -> (Ipv4Addr, u8) {
        parse_ipv4_cidr(&self.pod_cidr).unwrap_or((Ipv4Addr::new(10, 244, 0, 0), 16))
    }

    /// The `kubernetes` Service's ClusterIP: the first address of the Service CIDR.
    pub fn kubernetes_service_ip(&self) -> Ipv4Addr {
        let (net, _) = self.service_cidr_net();
        Ipv4Addr::from(u32::from(net) + 1)
    }

    /// The cluster DNS Service's ClusterIP: the 10th address of the Service CIDR.
    pub fn dns_service_ip(&self) -> Ipv4Addr {
        let (net, _) = self.service_cidr_net();
        Ipv4Addr::from(u32::from(net) + 10)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let c = ClusterConfig::default();
        c.validate().unwrap();
        assert_eq!(c.service_cidr_net(), (Ipv4Addr::new(10, 96, 0, 0), 12));
        assert_eq!(c.kubernetes_service_ip(), Ipv4Addr::new(10, 96, 0, 1));
        assert_eq!(c.dns_service_ip(), Ipv4Addr::new(10, 96, 0, 10));
        assert_eq!(c.listen.to_string(), "127.0.0.1:6443");
    }

    #[test]
    fn yaml_partial_and_full() {
        let c = ClusterConfig::from_yaml(
            "serviceCIDR: 10.100.0.0/16\nnodePortRange: \"31000-31999\"\n",
        )
        .unwrap();
        assert_eq!(c.service_cidr, "10.100.0.0/16");
        assert_eq!(c.node_port_range, (31000, 31999));
        assert_eq!(c.pod_cidr, "10.244.0.0/16");
        assert_eq!(c.dns_service_ip(), Ipv4Addr::new(10, 100, 0, 10));
        let full = serde_yaml::to_string(&ClusterConfig::default()).unwrap();
        assert!(full.contains("serviceCIDR: 10.96.0.0/12"), "{full}");
        assert!(full.contains("nodePortRange: 30000-32767"), "{full}");
        assert!(full.contains("listenAddress: 127.0.0.1:6443"), "{full}");
        assert_eq!(
            ClusterConfig::from_yaml(&full).unwrap(),
            ClusterConfig::default()
        );
        assert_eq!(
            ClusterConfig::from_yaml("").unwrap(),
            ClusterConfig::default()
        );
        assert_eq!(
            ClusterConfig::from_yaml("# nothing\n").unwrap(),
            ClusterConfig::default()
        );
    }

    #[test]
    fn invalid() {
        assert!(ClusterConfig::from_yaml("serviceCIDR: nope").is_err());
        assert!(ClusterConfig::from_yaml("nodePortRange: \"32767-30000\"").is_err());
        assert!(ClusterConfig::from_yaml("podCIDR: 10.0.0.0/33").is_err());
        assert!(ClusterConfig::from_yaml("bogus: 1").is_err());
        assert!(ClusterConfig::from_yaml("clusterDomain: Bad_Domain").is_err());
    }

    #[test]
    fn from_file_reads() {
        let dir = std::env::temp_dir().join(format!("kedge-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("cluster.yaml");
        std::fs::write(&path, "clusterDomain: example.local\ndataDir: /tmp/kedge\n").unwrap();
        let c = ClusterConfig::from_file(&path).unwrap();
        assert_eq!(c.cluster_domain, "example.local");
        assert_eq!(c.data_dir, PathBuf::from("/tmp/kedge"));
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(matches!(
            ClusterConfig::from_file(dir.join("missing.yaml")),
            Err(ConfigError::Io { .. })
        ));
    }

    #[test]
    fn port_ranges() {
        assert_eq!(parse_port_range("30000-32767").unwrap(), (30000, 32767));
        assert_eq!(parse_port_range("30000+767").unwrap(), (30000, 30767));
        assert!(parse_port_range("a-b").is_err());
    }
}
