//! Machines joining a cluster, kubeadm's way: bootstrap tokens
//! (`kedge token create|list|delete`), the `cluster-info` ConfigMap the
//! control plane publishes, and `kedge join`, which trusts the cluster's CA
//! only once the token's signature over `cluster-info` and the CA's hash
//! both check, then asks for its node's client certificate through a
//! CertificateSigningRequest and runs the node with it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestSpec,
};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::ByteString;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

use kedge_control::apiserver::certs;
use kedge_control::controllers::bootstraptokens::{
    verify_signature, CLUSTER_INFO, NAMESPACE, PUBLIC, SIGNATURE_PREFIX, TOKEN_TYPE,
};
use kedge_control::controllers::certificates::{CLIENT, DNS_USER, KUBELET_CLIENT, PROXY_USER};

/// How many times discovery reads cluster-info for the token's signature
/// (every half second).
const DISCOVERY_ATTEMPTS: u32 = 30;

/// The group of tokens made for joining nodes (kubeadm's default).
pub const DEFAULT_GROUP: &str = "system:bootstrappers:kubeadm:default-node-token";

/// Where kubeadm keeps the cluster's configuration.
const KUBEADM_CONFIG: &str = "kubeadm-config";

/// Publish the cluster's configuration (kubeadm's `kubeadm-config` in
/// `kube-system`: its pod and Service ranges, DNS domain and endpoint),
/// which joining nodes read their pod range from.
pub async fn publish_cluster_config(
    client: &kube::Client,
    cfg: &kedge_config::cluster::ClusterConfig,
    endpoint: &str,
) -> anyhow::Result<()> {
    let configuration = format!(
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\ncontrolPlaneEndpoint: {}\nnetworking:\n  dnsDomain: {}\n  podSubnet: {}\n  serviceSubnet: {}\n",
        endpoint.trim_start_matches("https://"),
        cfg.cluster_domain,
        cfg.pod_cidr,
        cfg.service_cidr,
    );
    let cm = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": KUBEADM_CONFIG, "namespace": NAMESPACE},
        "data": {"ClusterConfiguration": configuration},
    });
    Api::<ConfigMap>::namespaced(client.clone(), NAMESPACE)
        .patch(
            KUBEADM_CONFIG,
            &PatchParams::apply("kedge-init").force(),
            &Patch::Apply(&cm),
        )
        .await
        .context("publishing kubeadm-config")?;
    Ok(())
}

/// The published `kubeadm-config`'s ClusterConfiguration, if readable.
async fn cluster_configuration(client: &kube::Client) -> Option<serde_yaml::Value> {
    let cm = Api::<ConfigMap>::namespaced(client.clone(), NAMESPACE)
        .get_opt(KUBEADM_CONFIG)
        .await
        .ok()??;
    let text = cm.data?.remove("ClusterConfiguration")?;
    serde_yaml::from_str(&text).ok()
}

/// The cluster's pod range as `kubeadm-config` says, if it is published.
pub async fn cluster_pod_cidr(client: &kube::Client) -> Option<String> {
    let parsed = cluster_configuration(client).await?;
    Some(
        parsed
            .get("networking")?
            .get("podSubnet")?
            .as_str()?
            .to_string(),
    )
}

/// The control planes' shared address as `kubeadm-config` says, if it is
/// published and parses.
pub async fn cluster_control_plane_endpoint(
    client: &kube::Client,
) -> Option<kedge_control::server::Endpoint> {
    let parsed = cluster_configuration(client).await?;
    parsed.get("controlPlaneEndpoint")?.as_str()?.parse().ok()
}

/// The server `cluster-info` names, if it is published.
pub async fn cluster_info_server(client: &kube::Client) -> Option<String> {
    let cm = Api::<ConfigMap>::namespaced(client.clone(), PUBLIC)
        .get_opt(CLUSTER_INFO)
        .await
        .ok()??;
    let kubeconfig = cm.data?.remove("kubeconfig")?;
    let parsed: kube::config::Kubeconfig = serde_yaml::from_str(&kubeconfig).ok()?;
    parsed.clusters.into_iter().find_map(|c| c.cluster?.server)
}

/// Publish (or refresh) `cluster-info` in `kube-public`: a kubeconfig with
/// the server and the CA and no credentials; the bootstrap signer adds a
/// signature per token.
pub async fn publish_cluster_info(
    client: &kube::Client,
    server: &str,
    ca_pem: &str,
) -> anyhow::Result<()> {
    use base64::Engine;
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    let kubeconfig = format!(
        "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: {ca}\n    server: {server}\n  name: \"\"\ncontexts: null\ncurrent-context: \"\"\nkind: Config\npreferences: {{}}\nusers: null\n"
    );
    let cm = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": CLUSTER_INFO, "namespace": PUBLIC},
        "data": {"kubeconfig": kubeconfig},
    });
    Api::<ConfigMap>::namespaced(client.clone(), PUBLIC)
        .patch(
            CLUSTER_INFO,
            &PatchParams::apply("kedge-init").force(),
            &Patch::Apply(&cm),
        )
        .await
        .context("publishing cluster-info")?;
    Ok(())
}

fn random_chars(n: usize) -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..n)
        .map(|_| {
            let i = rng.random_range(0..36u8);
            (if i < 10 { b'0' + i } else { b'a' + i - 10 }) as char
        })
        .collect()
}

/// Make a bootstrap token valid for `ttl` (none: forever), for
/// authentication and signing, in the default node group; returns
/// `<id>.<secret>`.
pub async fn create_token(
    client: &kube::Client,
    ttl: Option<Duration>,
    description: &str,
) -> anyhow::Result<String> {
    let id = random_chars(6);
    let secret = random_chars(16);
    let mut data = json!({
        "token-id": id,
        "token-secret": secret,
        "usage-bootstrap-authentication": "true",
        "usage-bootstrap-signing": "true",
        "auth-extra-groups": DEFAULT_GROUP,
        "description": description,
    });
    if let Some(ttl) = ttl {
        let until = jiff::Timestamp::now() + jiff::SignedDuration::try_from(ttl)?;
        data["expiration"] = json!(until.strftime("%Y-%m-%dT%H:%M:%SZ").to_string());
    }
    let obj: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": format!("bootstrap-token-{id}"), "namespace": NAMESPACE},
        "type": TOKEN_TYPE,
        "stringData": data,
    }))?;
    Api::<Secret>::namespaced(client.clone(), NAMESPACE)
        .create(&PostParams::default(), &obj)
        .await
        .context("creating the bootstrap token")?;
    Ok(format!("{id}.{secret}"))
}

/// The join command for `token`.
pub fn join_command(server: &str, token: &str, ca_pem: &str) -> anyhow::Result<String> {
    let address = server.trim_start_matches("https://");
    Ok(format!(
        "kedge join {address} --token {token} --discovery-token-ca-cert-hash {}",
        certs::public_key_hash(ca_pem)?
    ))
}

fn secret_string(s: &Secret, key: &str) -> String {
    s.data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|v| String::from_utf8_lossy(&v.0).into_owned())
        .unwrap_or_default()
}

/// `kedge token list`: one line per token, as kubeadm prints them.
pub async fn list_tokens(client: &kube::Client) -> anyhow::Result<String> {
    let list = Api::<Secret>::namespaced(client.clone(), NAMESPACE)
        .list(&ListParams::default().fields(&format!("type={TOKEN_TYPE}")))
        .await?;
    let mut out = format!(
        "{:<24}{:<8}{:<22}{:<26}{:<30}{}\n",
        "TOKEN", "TTL", "EXPIRES", "USAGES", "DESCRIPTION", "EXTRA GROUPS"
    );
    let now = jiff::Timestamp::now();
    for s in list.items {
        let expires = secret_string(&s, "expiration");
        let ttl = expires
            .parse::<jiff::Timestamp>()
            .map(|t| {
                let secs = (t.as_second() - now.as_second()).max(0);
                if secs >= 3600 {
                    format!("{}h", secs / 3600)
                } else {
                    format!("{}m", secs / 60)
                }
            })
            .unwrap_or_else(|_| "<forever>".into());
        let usages: Vec<&str> = ["authentication", "signing"]
            .into_iter()
            .filter(|u| secret_string(&s, &format!("usage-bootstrap-{u}")) == "true")
            .collect();
        out += &format!(
            "{:<24}{:<8}{:<22}{:<26}{:<30}{}\n",
            format!(
                "{}.{}",
                secret_string(&s, "token-id"),
                secret_string(&s, "token-secret")
            ),
            ttl,
            if expires.is_empty() {
                "<never>".into()
            } else {
                expires
            },
            usages.join(","),
            secret_string(&s, "description"),
            secret_string(&s, "auth-extra-groups"),
        );
    }
    Ok(out)
}

/// `kedge token delete <id or token>`.
pub async fn delete_token(client: &kube::Client, token: &str) -> anyhow::Result<()> {
    let id = token.split('.').next().unwrap_or(token);
    Api::<Secret>::namespaced(client.clone(), NAMESPACE)
        .delete(&format!("bootstrap-token-{id}"), &DeleteParams::default())
        .await
        .with_context(|| format!("deleting bootstrap token {id}"))?;
    Ok(())
}

/// What `join` found and made: the node's kubeconfig.
pub struct Joined {
    /// `<data dir>/kubelet.conf`, the node's client certificate.
    pub kubeconfig: PathBuf,
    /// `<data dir>/proxy.conf`, the service proxy's (`system:kube-proxy`).
    pub proxy_kubeconfig: PathBuf,
    /// `<data dir>/dns.conf`, the cluster DNS's (`system:kedge-dns`).
    pub dns_kubeconfig: PathBuf,
}

/// Discover the cluster at `address` with `token`, check the CA against
/// `ca_hash`, and obtain the node `node_name`'s client certificate,
/// written with its key to `<data_dir>/kubelet.conf`. Nothing is written
/// unless every check passes.
pub async fn join(
    address: &str,
    token: &str,
    ca_hash: &str,
    node_name: &str,
    data_dir: &Path,
) -> anyhow::Result<Joined> {
    let found = discover(address, token, ca_hash).await?;
    tracing::info!(server = %found.server, "cluster CA verified; asking for the node's client certificate");

    // TLS bootstrap: keys made here, requests authenticated with the
    // token, approved and signed by the cluster: the kubelet's
    // (system:node:<name>), and the service proxy's and cluster DNS's
    // (kedge's node components, approved for bootstrappers too).
    let csrs: Api<CertificateSigningRequest> = Api::all(found.bootstrap_client(token)?);
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let node_user = format!("system:node:{node_name}");
    issue_credentials(
        &csrs,
        &node_user,
        data_dir,
        &found.server,
        &found.ca_pem,
        |_| true,
    )
    .await?;
    Ok(Joined {
        kubeconfig: data_dir.join("kubelet.conf"),
        proxy_kubeconfig: data_dir.join("proxy.conf"),
        dns_kubeconfig: data_dir.join("dns.conf"),
    })
}

/// A cluster found and trusted.
pub struct Discovered {
    /// The API server's URL.
    pub server: String,
    /// The cluster CA (PEM), checked against the hash given.
    pub ca_pem: String,
}

impl Discovered {
    /// A client authenticated with the bootstrap token, trusting the CA.
    pub fn bootstrap_client(&self, token: &str) -> anyhow::Result<kube::Client> {
        let mut bootstrap = kube::Config::new(self.server.parse()?);
        bootstrap.root_cert = Some(pem_to_der(&self.ca_pem)?);
        bootstrap.auth_info.token = Some(token.to_string().into());
        Ok(kube::Client::try_from(bootstrap)?)
    }
}

/// Read `cluster-info` from `address` without trusting it, and trust its
/// CA only if the token's signature over it and the CA's public key hash
/// both check (kubeadm's token discovery).
pub async fn discover(address: &str, token: &str, ca_hash: &str) -> anyhow::Result<Discovered> {
    let Some((id, secret)) = kedge_control::apiserver::authn::bootstrap_token_parts(token) else {
        bail!("the token {token:?} is not of the form [a-z0-9]{{6}}.[a-z0-9]{{16}}");
    };
    if !ca_hash.starts_with("sha256:") {
        bail!("--discovery-token-ca-cert-hash must be sha256:<hex>");
    }
    let server = format!("https://{}", address.trim_start_matches("https://"));
    // Discovery: read cluster-info without trusting the server yet.
    let mut insecure = kube::Config::new(server.parse().context("the server address")?);
    insecure.accept_invalid_certs = true;
    let public = Api::<ConfigMap>::namespaced(kube::Client::try_from(insecure)?, PUBLIC);
    // A token made a moment ago is signed within a second or two: wait a
    // little for its signature, as kubeadm's discovery does.
    let key = format!("{SIGNATURE_PREFIX}{id}");
    let mut attempts = 0;
    let data = loop {
        let info = public
            .get(CLUSTER_INFO)
            .await
            .with_context(|| format!("reading cluster-info from {server}"))?;
        let data = info.data.unwrap_or_default();
        attempts += 1;
        if data.contains_key(&key) || attempts >= DISCOVERY_ATTEMPTS {
            break data;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let content = data
        .get("kubeconfig")
        .context("cluster-info has no kubeconfig")?;
    let signature = data
        .get(&key)
        .with_context(|| format!("cluster-info has no signature for token {id:?}: the token does not exist, has expired, or does not sign"))?;
    if !verify_signature(content, signature, id, secret) {
        bail!("the signature of cluster-info does not verify with the token: refusing the cluster");
    }
    let kc: kube::config::Kubeconfig =
        serde_yaml::from_str(content).context("cluster-info's kubeconfig")?;
    let ca_pem = kc
        .clusters
        .first()
        .and_then(|c| c.cluster.as_ref())
        .and_then(|c| c.certificate_authority_data.as_ref())
        .map(|d| {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.decode(d.trim())
        })
        .transpose()?
        .map(String::from_utf8)
        .transpose()?
        .context("cluster-info names no CA")?;
    let found = certs::public_key_hash(&ca_pem)?;
    if found != ca_hash.to_ascii_lowercase() {
        bail!("the cluster CA's public key hash is {found}, not {ca_hash}: refusing the cluster");
    }
    Ok(Discovered { server, ca_pem })
}

/// Ask for the node's credentials through `csrs` — the kubelet's
/// (`system:node:<name>`), and its service proxy's and cluster DNS's
/// (kedge's node components) — those `wanted`, and write each as a
/// kubeconfig in `data_dir` once all are issued.
async fn issue_credentials(
    csrs: &Api<CertificateSigningRequest>,
    node_user: &str,
    data_dir: &Path,
    server: &str,
    ca_pem: &str,
    wanted: impl Fn(&str) -> bool,
) -> anyhow::Result<()> {
    let identities = [
        (
            "kubelet.conf",
            node_user,
            Some("system:nodes"),
            KUBELET_CLIENT,
        ),
        ("proxy.conf", PROXY_USER, None, CLIENT),
        ("dns.conf", DNS_USER, None, CLIENT),
    ];
    let mut issued = Vec::new();
    for (file, user, group, signer) in identities {
        if wanted(file) {
            let (cert, key) = request_certificate(csrs, user, group, signer).await?;
            issued.push((file, user, cert, key));
        }
    }
    for (file, user, cert, key) in &issued {
        write_private(
            &data_dir.join(file),
            &certs::kubeconfig(server, ca_pem, user, cert, key),
        )?;
    }
    Ok(())
}

/// Ask `signer` for a client certificate of `user` (in `group`) with a key
/// made here; the certificate and key (PEM) once issued.
async fn request_certificate(
    csrs: &Api<CertificateSigningRequest>,
    user: &str,
    group: Option<&str>,
    signer: &str,
) -> anyhow::Result<(String, String)> {
    let key = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::default();
    let mut dn = rcgen::DistinguishedName::new();
    if let Some(group) = group {
        dn.push(rcgen::DnType::OrganizationName, group);
    }
    dn.push(rcgen::DnType::CommonName, user);
    params.distinguished_name = dn;
    let request = params.serialize_request(&key)?.pem()?;
    let csr = CertificateSigningRequest {
        metadata: kube::api::ObjectMeta {
            generate_name: Some("node-csr-".into()),
            ..Default::default()
        },
        spec: CertificateSigningRequestSpec {
            request: ByteString(request.into_bytes()),
            signer_name: signer.into(),
            usages: Some(vec!["digital signature".into(), "client auth".into()]),
            ..Default::default()
        },
        status: None,
    };
    let created = csrs
        .create(&PostParams::default(), &csr)
        .await
        .with_context(|| format!("creating the certificate signing request of {user}"))?;
    let name = created.metadata.name.clone().unwrap_or_default();
    tracing::info!(csr = %name, %user, "waiting for the certificate to be approved and issued");
    let cert = wait_for_certificate(csrs, &name).await?;
    Ok((cert, key.serialize_pem()))
}

/// Renew the node's certificates before they expire, as the kubelet
/// does: at a random point between 70 % and 90 % of the kubelet
/// certificate's lifetime, new requests authenticated with the node's
/// current certificate (a node's own renewal is approved at once), the
/// files replaced. Returns once they are.
pub async fn renew_when_due(data_dir: &Path) -> anyhow::Result<()> {
    let kubelet_conf = data_dir.join("kubelet.conf");
    let kc = kube::config::Kubeconfig::read_from(&kubelet_conf)?;
    let user = kc
        .auth_infos
        .first()
        .and_then(|a| a.auth_info.as_ref())
        .context("kubelet.conf has no user")?;
    let cert_pem = {
        use base64::Engine;
        let data = user
            .client_certificate_data
            .as_ref()
            .context("kubelet.conf has no client certificate")?;
        String::from_utf8(base64::engine::general_purpose::STANDARD.decode(data.trim())?)?
    };
    let node_user = kc
        .auth_infos
        .first()
        .map(|a| a.name.clone())
        .context("kubelet.conf names no user")?;
    let cluster = kc
        .clusters
        .first()
        .and_then(|c| c.cluster.as_ref())
        .context("kubelet.conf names no cluster")?;
    let server = cluster
        .server
        .clone()
        .context("kubelet.conf names no server")?;
    let ca_pem = {
        use base64::Engine;
        let data = cluster
            .certificate_authority_data
            .as_ref()
            .context("kubelet.conf has no CA")?;
        String::from_utf8(base64::engine::general_purpose::STANDARD.decode(data.trim())?)?
    };
    let (from, until) = certs::validity(&cert_pem).context("reading the node's certificate")?;
    let fraction = {
        use rand::Rng;
        rand::rng().random_range(0.7..0.9)
    };
    let due = from + ((until - from) as f64 * fraction) as i64;
    let wait = (due - jiff::Timestamp::now().as_second()).max(0) as u64;
    tracing::info!(in_seconds = wait, "the node's certificates will be renewed");
    tokio::time::sleep(Duration::from_secs(wait)).await;

    let client = kedge_control::server::client_from_kubeconfig(&kubelet_conf).await?;
    let csrs: Api<CertificateSigningRequest> = Api::all(client);
    issue_credentials(&csrs, &node_user, data_dir, &server, &ca_pem, |file| {
        data_dir.join(file).exists()
    })
    .await?;
    tracing::info!("the node's certificates are renewed");
    Ok(())
}

async fn wait_for_certificate(
    csrs: &Api<CertificateSigningRequest>,
    name: &str,
) -> anyhow::Result<String> {
    // Bounded: a request nobody approves fails the join after a while.
    for _ in 0..600 {
        let csr = csrs.get(name).await?;
        let status = csr.status.unwrap_or_default();
        for c in status.conditions.iter().flatten() {
            if (c.type_ == "Denied" || c.type_ == "Failed") && c.status == "True" {
                bail!(
                    "certificate signing request {name} {}: {}",
                    c.type_.to_lowercase(),
                    c.message.clone().unwrap_or_default()
                );
            }
        }
        if let Some(cert) = status.certificate.filter(|c| !c.0.is_empty()) {
            return Ok(String::from_utf8(cert.0)?);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bail!("certificate signing request {name} was not issued in two minutes (kubectl certificate approve {name})")
}

fn pem_to_der(pem: &str) -> anyhow::Result<Vec<Vec<u8>>> {
    let certs: Vec<_> = rustls_pemfile::certs(&mut pem.as_bytes()).collect::<Result<_, _>>()?;
    Ok(certs.into_iter().map(|c| c.to_vec()).collect())
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
    }
    std::fs::rename(&tmp, path)?;
    Ok(())
}
