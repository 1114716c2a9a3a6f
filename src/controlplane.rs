//! More control-plane machines, kubeadm's way: `kedge init --upload-certs`
//! puts the files every control plane must share (the cluster CA, the
//! ServiceAccount signing key, the Secrets' encryption configuration) into
//! the Secret `kubeadm-certs` in `kube-system`, sealed with a key only the
//! printed join command carries, and readable by bootstrap tokens for two
//! hours; `kedge join --control-plane --certificate-key <key>` reads them
//! back after token discovery and starts another control plane with them.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use kedge_control::controllers::bootstraptokens::NAMESPACE;

/// The Secret holding the shared files.
pub const SECRET: &str = "kubeadm-certs";
/// The files every control plane of a cluster shares.
pub const SHARED_FILES: [&str; 6] = [
    "ca.crt",
    "ca.key",
    "sa.key",
    "encryption-config.yaml",
    "mesh-ca.crt",
    "mesh-ca.key",
];
/// How long the uploaded files can be read (kubeadm's default).
const TTL: Duration = Duration::from_secs(2 * 3600);

fn key_from_hex(hex: &str) -> anyhow::Result<[u8; 32]> {
    let hex = hex.trim();
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("--certificate-key must be 64 hexadecimal digits (32 bytes)");
    }
    let mut key = [0u8; 32];
    for (i, byte) in key.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)?;
    }
    Ok(key)
}

/// Upload the shared files of `data_dir`, sealed with a new key, and let
/// bootstrap tokens read them for two hours; the key, in hex.
pub async fn upload(client: &kube::Client, data_dir: &Path) -> anyhow::Result<String> {
    let key: [u8; 32] = rand::random();
    let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    let mut data = BTreeMap::new();
    for file in SHARED_FILES {
        let path = data_dir.join(file);
        let plain = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        data.insert(
            file.to_string(),
            ByteString(kedge_control::store::seal_with_key(&key, &plain)),
        );
    }
    // A token of its own whose expiry takes the Secret with it (the
    // garbage collector follows the owner reference once the token
    // cleaner deletes it), as kubeadm does.
    let token = crate::join::create_token(
        client,
        Some(TTL),
        "Proxy for managing TTL for the kubeadm-certs secret",
    )
    .await?;
    let id = token.split('.').next().unwrap_or_default();
    let owner = Api::<Secret>::namespaced(client.clone(), NAMESPACE)
        .get(&format!("bootstrap-token-{id}"))
        .await?;
    let secret = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {
            "name": SECRET, "namespace": NAMESPACE,
            "ownerReferences": [{
                "apiVersion": "v1", "kind": "Secret",
                "name": owner.metadata.name, "uid": owner.metadata.uid,
            }],
        },
        "type": "Opaque",
        "data": data,
    });
    let apply = PatchParams::apply("kedge-init").force();
    Api::<Secret>::namespaced(client.clone(), NAMESPACE)
        .patch(SECRET, &apply, &Patch::Apply(&secret))
        .await
        .context("uploading the control plane's certificates")?;
    // Joining control planes read it with their bootstrap token.
    let role = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "kubeadm:kubeadm-certs", "namespace": NAMESPACE},
        "rules": [{"apiGroups": [""], "resources": ["secrets"], "resourceNames": [SECRET], "verbs": ["get"]}],
    });
    let binding = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "kubeadm:kubeadm-certs", "namespace": NAMESPACE},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "kubeadm:kubeadm-certs"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:bootstrappers:kubeadm:default-node-token"}],
    });
    let roles: Api<k8s_openapi::api::rbac::v1::Role> = Api::namespaced(client.clone(), NAMESPACE);
    roles
        .patch("kubeadm:kubeadm-certs", &apply, &Patch::Apply(&role))
        .await?;
    let bindings: Api<k8s_openapi::api::rbac::v1::RoleBinding> =
        Api::namespaced(client.clone(), NAMESPACE);
    bindings
        .patch("kubeadm:kubeadm-certs", &apply, &Patch::Apply(&binding))
        .await?;
    Ok(hex)
}

/// Read the shared files with `client` (the bootstrap token's), open them
/// with the key and write them into `data_dir` (private files). Nothing is
/// written unless every file opens.
pub async fn download(client: kube::Client, data_dir: &Path, key_hex: &str) -> anyhow::Result<()> {
    let key = key_from_hex(key_hex)?;
    let secret = Api::<Secret>::namespaced(client, NAMESPACE)
        .get(SECRET)
        .await
        .context("reading the uploaded certificates (kedge init --upload-certs makes them, valid two hours)")?;
    let data = secret.data.unwrap_or_default();
    let mut files = Vec::new();
    for file in SHARED_FILES {
        let sealed = data
            .get(file)
            .with_context(|| format!("the uploaded certificates lack {file}"))?;
        let plain = kedge_control::store::open_with_key(&key, &sealed.0).map_err(|e| {
            anyhow::anyhow!("{file}: {e}: is --certificate-key the one init printed?")
        })?;
        files.push((file, plain));
    }
    std::fs::create_dir_all(data_dir)?;
    for (file, plain) in files {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let path = data_dir.join(file);
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("writing {}", path.display()))?;
        f.write_all(&plain)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_64_hex_digits() {
        let key = key_from_hex(&"ab".repeat(32)).unwrap();
        assert_eq!(key, [0xab; 32]);
        assert!(key_from_hex("abc").is_err());
        assert!(key_from_hex(&"zz".repeat(32)).is_err());
    }

    #[test]
    fn sealed_files_open_only_with_their_key() {
        let key = [7u8; 32];
        let sealed = kedge_control::store::seal_with_key(&key, b"-----BEGIN PRIVATE KEY-----");
        assert!(!String::from_utf8_lossy(&sealed).contains("PRIVATE"));
        assert_eq!(
            kedge_control::store::open_with_key(&key, &sealed).unwrap(),
            b"-----BEGIN PRIVATE KEY-----"
        );
        assert!(kedge_control::store::open_with_key(&[8u8; 32], &sealed).is_err());
    }
}
