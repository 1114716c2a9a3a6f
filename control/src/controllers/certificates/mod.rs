//! The certificate controllers (kube-controller-manager's
//! `csrapproving` and `csrsigning`): kubelets' client certificate requests
//! are approved when the requester may ask for them (a bootstrapper for a
//! new node, the node itself for a renewal, decided by a
//! SubjectAccessReview as Kubernetes does), and approved requests to the
//! built-in signers are signed by the cluster CA.
//!
//! Workload certificates of the mesh (`kedge.io/mesh-workload`) are
//! approved for a node that runs a pod of the ServiceAccount the request
//! names (as istiod checks a ztunnel's impersonation), denied otherwise,
//! and signed by the mesh CA, never the cluster CA.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use kube::api::{Api, PostParams};
use kube::runtime::{watcher, WatchStreamExt};
use serde_json::json;

use super::Context;
use crate::apiserver::certs::{ClusterCa, CsrInfo};

/// The signer of kubelets' client certificates.
pub const KUBELET_CLIENT: &str = "kubernetes.io/kube-apiserver-client-kubelet";
/// The signer of other client certificates (approved by an admin).
pub const CLIENT: &str = "kubernetes.io/kube-apiserver-client";
/// The signer of kubelets' serving certificates.
pub const KUBELET_SERVING: &str = "kubernetes.io/kubelet-serving";

/// The signer of the mesh's workload certificates.
pub const MESH_WORKLOAD: &str = "kedge.io/mesh-workload";
/// The longest workload certificate issued (the usual mesh lifetime; a
/// request may ask for less, down to the API's minimum of ten minutes).
pub const MESH_WORKLOAD_MAX_SECONDS: i64 = 24 * 3600;
/// The trust domain of workload identities unless configured.
pub const DEFAULT_TRUST_DOMAIN: &str = "cluster.local";

/// A workload's SPIFFE ID: `spiffe://<trust domain>/ns/<namespace>/sa/<account>`.
pub fn spiffe_id(trust_domain: &str, namespace: &str, service_account: &str) -> String {
    format!("spiffe://{trust_domain}/ns/{namespace}/sa/{service_account}")
}

/// The namespace and ServiceAccount of a SPIFFE ID of `trust_domain`.
pub fn parse_spiffe_id<'a>(id: &'a str, trust_domain: &str) -> Option<(&'a str, &'a str)> {
    let path = id.strip_prefix("spiffe://")?.strip_prefix(trust_domain)?;
    let mut parts = path.split('/');
    match (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) {
        (Some(""), Some("ns"), Some(ns), Some("sa"), Some(sa), None)
            if !ns.is_empty() && !sa.is_empty() =>
        {
            Some((ns, sa))
        }
        _ => None,
    }
}

/// The service proxy's user on every node.
pub const PROXY_USER: &str = "system:kube-proxy";
/// The cluster DNS's user on every node.
pub const DNS_USER: &str = "system:kedge-dns";

/// The longest certificate the signers issue unless told otherwise
/// (kube-controller-manager's `--cluster-signing-duration` default).
pub const DEFAULT_SIGNING_SECONDS: i64 = 365 * 24 * 3600;

/// Run the approver and, with the CA, the signer, until dropped.
pub async fn run(ctx: Arc<Context>) {
    let watch: Api<CertificateSigningRequest> = Api::all(ctx.watch_client.clone());
    let api: Api<CertificateSigningRequest> = Api::all(ctx.client.clone());
    let mut events = watcher(watch, watcher::Config::default())
        .default_backoff()
        .boxed();
    while let Some(event) = events.next().await {
        let objects = match event {
            Ok(watcher::Event::Apply(csr) | watcher::Event::InitApply(csr)) => vec![csr],
            Ok(_) => continue,
            Err(e) => {
                tracing::debug!(error = %e, "certificatesigningrequest watch");
                continue;
            }
        };
        for csr in objects {
            if let Err(e) = sync(&ctx, &api, &csr).await {
                tracing::warn!(csr = ?csr.metadata.name, error = %e, "certificate request");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

fn has_condition(csr: &CertificateSigningRequest, kind: &str) -> bool {
    csr.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == kind && c.status == "True"))
}

async fn sync(
    ctx: &Context,
    api: &Api<CertificateSigningRequest>,
    csr: &CertificateSigningRequest,
) -> Result<(), kube::Error> {
    if has_condition(csr, "Denied") || has_condition(csr, "Failed") {
        return Ok(());
    }
    if !has_condition(csr, "Approved") {
        if csr.spec.signer_name == MESH_WORKLOAD {
            return approve_workload(ctx, api, csr).await;
        }
        return approve(ctx, api, csr).await;
    }
    let issued = csr
        .status
        .as_ref()
        .and_then(|s| s.certificate.as_ref())
        .is_some_and(|c| !c.0.is_empty());
    if issued {
        return Ok(());
    }
    if csr.spec.signer_name == MESH_WORKLOAD {
        return match &ctx.mesh_ca {
            Some(ca) => sign_workload(ca, &ctx.mesh_trust_domain, api, csr).await,
            None => Ok(()),
        };
    }
    match &ctx.signing_ca {
        Some(ca) => sign(ca, ctx.signing_seconds, api, csr).await,
        None => Ok(()),
    }
}

/// What a workload certificate request must be: one URI, the SPIFFE ID of
/// a ServiceAccount in this trust domain, no other name or subject, usages
/// of both ends of mutual TLS. The namespace and ServiceAccount.
pub fn check_workload_request(
    info: &CsrInfo,
    usages: &[String],
    trust_domain: &str,
) -> Result<(String, String), String> {
    let allowed = [
        "digital signature",
        "key encipherment",
        "client auth",
        "server auth",
    ];
    if !usages.iter().any(|u| u == "client auth")
        || !usages.iter().any(|u| u == "server auth")
        || usages.iter().any(|u| !allowed.contains(&u.as_str()))
    {
        return Err(format!(
            "usages {usages:?} are not a workload certificate's (client auth and server auth)"
        ));
    }
    if !info.common_name.is_empty() || !info.organizations.is_empty() {
        return Err("a workload certificate has no subject; its identity is its URI".into());
    }
    if !info.dns_names.is_empty() || !info.ip_addresses.is_empty() {
        return Err("only a SPIFFE ID URI is allowed as an alternative name".into());
    }
    match info.uris.as_slice() {
        [uri] if info.other_names == 1 => parse_spiffe_id(uri, trust_domain)
            .map(|(ns, sa)| (ns.to_string(), sa.to_string()))
            .ok_or_else(|| {
                format!("{uri:?} is not spiffe://{trust_domain}/ns/<namespace>/sa/<serviceaccount>")
            }),
        _ => Err("exactly one SPIFFE ID URI is required".into()),
    }
}

/// Who asks for a workload certificate.
enum Requester<'a> {
    /// A node, for the pods it runs.
    Node(&'a str),
    /// A ServiceAccount (a process that is its own workload, such as the
    /// ingress controller), for itself.
    ServiceAccount(&'a str, &'a str),
}

/// Approve a workload certificate for a node that runs a pod of the
/// ServiceAccount asked for, or for a ServiceAccount asking for its own
/// identity; deny it, saying why, otherwise. Requests from anyone else are
/// left to an administrator.
async fn approve_workload(
    ctx: &Context,
    api: &Api<CertificateSigningRequest>,
    csr: &CertificateSigningRequest,
) -> Result<(), kube::Error> {
    let spec = &csr.spec;
    let username = spec.username.clone().unwrap_or_default();
    let in_group = |group: &str| {
        spec.groups
            .as_ref()
            .is_some_and(|g| g.iter().any(|g| g == group))
    };
    let requester = if let Some(node) = username
        .strip_prefix("system:node:")
        .filter(|_| in_group("system:nodes"))
    {
        Requester::Node(node)
    } else if let Some((namespace, account)) = username
        .strip_prefix("system:serviceaccount:")
        .and_then(|rest| rest.split_once(':'))
        .filter(|_| in_group("system:serviceaccounts"))
    {
        Requester::ServiceAccount(namespace, account)
    } else {
        return Ok(());
    };
    let usages = spec.usages.clone().unwrap_or_default();
    let checked = CsrInfo::parse(&spec.request.0)
        .and_then(|info| check_workload_request(&info, &usages, &ctx.mesh_trust_domain));
    let (kind, reason, message) = match (checked, requester) {
        (Err(why), _) => ("Denied", "InvalidWorkloadRequest", why),
        (Ok((namespace, account)), Requester::ServiceAccount(own_namespace, own_account)) => {
            if (namespace.as_str(), account.as_str()) == (own_namespace, own_account) {
                (
                    "Approved",
                    "AutoApproved",
                    format!("Auto approving a mesh workload certificate: ServiceAccount {namespace}/{account} asks for its own identity."),
                )
            } else {
                (
                    "Denied",
                    "NotOwnIdentity",
                    format!("ServiceAccount {own_namespace}/{own_account} may ask for its own identity only, not {namespace}/{account}'s"),
                )
            }
        }
        (Ok((namespace, account)), Requester::Node(node)) => {
            if runs_workload(ctx, node, &namespace, &account).await? {
                (
                    "Approved",
                    "AutoApproved",
                    format!(
                        "Auto approving a mesh workload certificate: node {node} runs a pod of ServiceAccount {namespace}/{account}."
                    ),
                )
            } else {
                (
                    "Denied",
                    "NoWorkloadOnNode",
                    format!(
                        "node {node} runs no pod of ServiceAccount {namespace}/{account}; a node gets the identities of its own pods only"
                    ),
                )
            }
        }
    };
    let name = csr.metadata.name.clone().unwrap_or_default();
    let mut next = serde_json::to_value(csr).unwrap_or_default();
    next["status"]["conditions"] = with_condition(csr, kind, reason, &message);
    api.replace_subresource("approval", &name, &PostParams::default(), &next)
        .await?;
    tracing::info!(csr = %name, requester = %username, decision = kind, "mesh workload certificate request");
    Ok(())
}

/// Whether `node` runs a pod (not finished) of `namespace`/`account`: the
/// shared cache first, then the API (a pod bound a moment ago may not be
/// in the cache yet, and a node asks as soon as it sees its pod).
async fn runs_workload(
    ctx: &Context,
    node: &str,
    namespace: &str,
    account: &str,
) -> Result<bool, kube::Error> {
    use k8s_openapi::api::core::v1::Pod;
    let matches = |pod: &Pod| {
        let spec = pod.spec.as_ref();
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        pod.metadata.namespace.as_deref() == Some(namespace)
            && spec.and_then(|s| s.node_name.as_deref()) == Some(node)
            && spec
                .and_then(|s| s.service_account_name.as_deref())
                .unwrap_or("default")
                == account
            && !matches!(phase, Some("Succeeded" | "Failed"))
    };
    let cached = ctx.informers.get::<Pod>().store();
    if cached.state().iter().any(|pod| matches(pod)) {
        return Ok(true);
    }
    let listed = Api::<Pod>::namespaced(ctx.watch_client.clone(), namespace)
        .list(&kube::api::ListParams::default().fields(&format!("spec.nodeName={node}")))
        .await?;
    Ok(listed.items.iter().any(matches))
}

async fn sign_workload(
    ca: &crate::apiserver::certs::MeshCa,
    trust_domain: &str,
    api: &Api<CertificateSigningRequest>,
    csr: &CertificateSigningRequest,
) -> Result<(), kube::Error> {
    let spec = &csr.spec;
    let name = csr.metadata.name.clone().unwrap_or_default();
    let usages = spec.usages.clone().unwrap_or_default();
    let checked = CsrInfo::parse(&spec.request.0)
        .and_then(|info| check_workload_request(&info, &usages, trust_domain));
    let status = match checked {
        Ok((namespace, account)) => {
            let seconds = spec
                .expiration_seconds
                .map(i64::from)
                .unwrap_or(MESH_WORKLOAD_MAX_SECONDS)
                .clamp(600, MESH_WORKLOAD_MAX_SECONDS);
            let pem = String::from_utf8_lossy(&spec.request.0).into_owned();
            let id = spiffe_id(trust_domain, &namespace, &account);
            match ca.sign_workload(&pem, &id, seconds) {
                Ok(cert) => {
                    use base64::Engine;
                    json!({"certificate": base64::engine::general_purpose::STANDARD.encode(cert)})
                }
                Err(e) => failed(csr, &e.to_string()),
            }
        }
        Err(why) => failed(csr, &why),
    };
    write_status(api, csr, status).await?;
    tracing::info!(csr = %name, signer = MESH_WORKLOAD, "workload certificate issued");
    Ok(())
}

/// Whether a request is for a kubelet's client certificate: CN
/// `system:node:<name>`, O `system:nodes` alone, no alternative names,
/// client auth among usages a client certificate may have.
pub fn is_node_client(info: &CsrInfo, usages: &[String]) -> Result<(), String> {
    if !info.common_name.starts_with("system:node:") || info.common_name.len() <= 12 {
        return Err("subject common name does not begin with system:node:".into());
    }
    if info.organizations != ["system:nodes"] {
        return Err("subject organization is not system:nodes".into());
    }
    if !info.dns_names.is_empty() || !info.ip_addresses.is_empty() || info.other_names > 0 {
        return Err("subject alternative names are not allowed".into());
    }
    let allowed = ["digital signature", "key encipherment", "client auth"];
    if !usages.iter().any(|u| u == "client auth")
        || usages.iter().any(|u| !allowed.contains(&u.as_str()))
    {
        return Err(format!("usages {usages:?} are not a client certificate's"));
    }
    Ok(())
}

async fn approve(
    ctx: &Context,
    api: &Api<CertificateSigningRequest>,
    csr: &CertificateSigningRequest,
) -> Result<(), kube::Error> {
    let spec = &csr.spec;
    let usages = spec.usages.clone().unwrap_or_default();
    let Ok(info) = CsrInfo::parse(&spec.request.0) else {
        return Ok(());
    };
    let username = spec.username.clone().unwrap_or_default();
    let node_client = spec.signer_name == KUBELET_CLIENT && is_node_client(&info, &usages).is_ok();
    // kedge's node components (the service proxy and cluster DNS each
    // node runs) are approved for whoever may ask for a node's client
    // certificate, as their kubeadm DaemonSets would get their accounts.
    let node_component = spec.signer_name == CLIENT
        && [PROXY_USER, DNS_USER].contains(&info.common_name.as_str())
        && info.organizations.is_empty()
        && check_signer(CLIENT, &info, &usages).is_ok();
    if !node_client && !node_component {
        return Ok(());
    }
    // A node renewing its own certificate, or a new one asked by whoever
    // may ask for node client certificates.
    let requester_is_node = spec
        .groups
        .as_ref()
        .is_some_and(|g| g.iter().any(|g| g == "system:nodes"));
    let (subresource, message) = if node_component && requester_is_node {
        // A node renewing its components' certificates.
        (
            "selfnodeclient",
            "Auto approving a node component's client certificate after SubjectAccessReview.",
        )
    } else if node_component {
        (
            "nodeclient",
            "Auto approving a node component's client certificate after SubjectAccessReview.",
        )
    } else if info.common_name == username {
        (
            "selfnodeclient",
            "Auto approving self kubelet client certificate after SubjectAccessReview.",
        )
    } else {
        (
            "nodeclient",
            "Auto approving kubelet client certificate after SubjectAccessReview.",
        )
    };
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(username),
            uid: spec.uid.clone(),
            groups: spec.groups.clone(),
            extra: spec.extra.clone(),
            resource_attributes: Some(ResourceAttributes {
                group: Some("certificates.k8s.io".into()),
                resource: Some("certificatesigningrequests".into()),
                subresource: Some(subresource.into()),
                verb: Some("create".into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let answer = Api::<SubjectAccessReview>::all(ctx.client.clone())
        .create(&PostParams::default(), &review)
        .await?;
    if !answer.status.is_some_and(|s| s.allowed) {
        return Ok(());
    }
    let name = csr.metadata.name.clone().unwrap_or_default();
    let conditions = with_condition(csr, "Approved", "AutoApproved", message);
    // PUT, as the controller's role allows (`update` on the subresource).
    let mut next = serde_json::to_value(csr).unwrap_or_default();
    next["status"]["conditions"] = conditions;
    api.replace_subresource("approval", &name, &PostParams::default(), &next)
        .await?;
    tracing::info!(csr = %name, "kubelet client certificate approved");
    Ok(())
}

/// Check a request against its signer's rules; the usages the certificate
/// gets.
fn check_signer(signer: &str, info: &CsrInfo, usages: &[String]) -> Result<(), String> {
    match signer {
        KUBELET_CLIENT => is_node_client(info, usages),
        CLIENT => {
            let allowed = ["digital signature", "key encipherment", "client auth"];
            if !usages.iter().any(|u| u == "client auth")
                || usages.iter().any(|u| !allowed.contains(&u.as_str()))
            {
                return Err(format!("usages {usages:?} are not a client certificate's"));
            }
            if info.other_names > 0 || !info.dns_names.is_empty() || !info.ip_addresses.is_empty() {
                return Err("subject alternative names are not allowed".into());
            }
            Ok(())
        }
        KUBELET_SERVING => {
            if !info.common_name.starts_with("system:node:")
                || info.organizations != ["system:nodes"]
            {
                return Err("subject is not a node's".into());
            }
            let allowed = ["digital signature", "key encipherment", "server auth"];
            if !usages.iter().any(|u| u == "server auth")
                || usages.iter().any(|u| !allowed.contains(&u.as_str()))
            {
                return Err(format!("usages {usages:?} are not a serving certificate's"));
            }
            if info.other_names > 0 {
                return Err("only DNS and IP alternative names are allowed".into());
            }
            Ok(())
        }
        _ => Err(format!("signer {signer:?} is not one of the cluster's")),
    }
}

async fn sign(
    ca: &ClusterCa,
    max_seconds: i64,
    api: &Api<CertificateSigningRequest>,
    csr: &CertificateSigningRequest,
) -> Result<(), kube::Error> {
    let spec = &csr.spec;
    if ![KUBELET_CLIENT, CLIENT, KUBELET_SERVING].contains(&spec.signer_name.as_str()) {
        return Ok(());
    }
    let name = csr.metadata.name.clone().unwrap_or_default();
    let usages = spec.usages.clone().unwrap_or_default();
    let checked = CsrInfo::parse(&spec.request.0)
        .and_then(|info| check_signer(&spec.signer_name, &info, &usages));
    let status = match checked {
        Ok(()) => {
            let seconds = spec
                .expiration_seconds
                .map(i64::from)
                .unwrap_or(max_seconds)
                .min(max_seconds);
            let usages: Vec<&str> = usages.iter().map(String::as_str).collect();
            let pem = String::from_utf8_lossy(&spec.request.0).into_owned();
            match ca.sign_request(&pem, &usages, seconds) {
                Ok(cert) => {
                    use base64::Engine;
                    json!({"certificate": base64::engine::general_purpose::STANDARD.encode(cert)})
                }
                Err(e) => failed(csr, &e.to_string()),
            }
        }
        Err(why) => failed(csr, &why),
    };
    write_status(api, csr, status).await?;
    tracing::info!(csr = %name, signer = %spec.signer_name, "certificate request signed");
    Ok(())
}

/// Merge `status` (a certificate, or a Failed condition) into the
/// request's status, through the status subresource.
async fn write_status(
    api: &Api<CertificateSigningRequest>,
    csr: &CertificateSigningRequest,
    status: serde_json::Value,
) -> Result<(), kube::Error> {
    let name = csr.metadata.name.clone().unwrap_or_default();
    let mut next = serde_json::to_value(csr).unwrap_or_default();
    if let (Some(have), Some(add)) = (next.as_object_mut(), status.as_object()) {
        let target = have.entry("status").or_insert_with(|| json!({}));
        for (k, v) in add {
            target[k] = v.clone();
        }
    }
    api.replace_subresource("status", &name, &PostParams::default(), &next)
        .await?;
    Ok(())
}

/// The status of a request the signer refuses.
fn failed(csr: &CertificateSigningRequest, why: &str) -> serde_json::Value {
    json!({"conditions": with_condition(csr, "Failed", "SignerValidationFailure", why)})
}

/// A request's conditions with one more, true now.
fn with_condition(
    csr: &CertificateSigningRequest,
    kind: &str,
    reason: &str,
    message: &str,
) -> serde_json::Value {
    let mut conditions = csr
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .map(|c| serde_json::to_value(c).unwrap_or_default())
        .unwrap_or(json!([]));
    if let Some(list) = conditions.as_array_mut() {
        list.push(json!({
            "type": kind, "status": "True", "reason": reason,
            "message": message, "lastUpdateTime": jiff::Timestamp::now().to_string(),
        }));
    }
    conditions
}
