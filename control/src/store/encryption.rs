//! Encryption of API objects at rest, as kube-apiserver's
//! `--encryption-provider-config`.
//!
//! An [`EncryptionConfig`] is read from Kubernetes' `EncryptionConfiguration`
//! YAML. For each configured resource, the first provider of its list
//! encrypts new writes and every provider is tried for reads, chosen by the
//! prefix of the stored value:
//!
//! - `secretbox`: `k8s:enc:secretbox:v1:<key name>:` + nonce (24 bytes) +
//!   NaCl secretbox (XSalsa20-Poly1305: tag, then ciphertext);
//! - `aescbc`: `k8s:enc:aescbc:v1:<key name>:` + IV (16 bytes) + AES-CBC
//!   ciphertext of the PKCS#7-padded document;
//! - `identity`: the document as is; it reads only values without the
//!   `k8s:enc:` prefix.
//!
//! The layouts are Kubernetes' own, so a value written by one can be read by
//! the other given the same keys. [`EncryptedStore`] applies a configuration
//! to any [`Store`]: it encrypts on `commit` and decrypts on `load`, so the
//! watch cache above it only ever sees plain documents, and
//! [`EncryptedStore::reencrypt_stale`] rewrites what an older key or
//! provider wrote (the step of a key rotation that Kubernetes leaves to
//! `kubectl replace`).
//!
//! Where kedge differs: only `secretbox`, `aescbc` and `identity` are
//! supported (`aesgcm` and `kms` are refused by name), unknown fields are
//! refused rather than ignored, and a read tries every key whose name
//! matches rather than only the first.

use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use aes::cipher::generic_array::GenericArray;
use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use crypto_secretbox::aead::AeadInPlace;
use crypto_secretbox::{KeyInit, XSalsa20Poly1305};
use serde_yaml::Value;

use super::{Op, Result, Snapshot, Store, StoreError};

/// The name of the configuration file [`ensure_config`] keeps in the data dir.
pub const ENCRYPTION_CONFIG_FILE: &str = "encryption-config.yaml";

const API_VERSION: &str = "apiserver.config.k8s.io/v1";
const KIND: &str = "EncryptionConfiguration";

/// Reserved by Kubernetes for encrypted values; `identity` refuses them.
const ENCRYPTED_PREFIX: &[u8] = b"k8s:enc:";
const SECRETBOX_PREFIX: &[u8] = b"k8s:enc:secretbox:v1:";
const AESCBC_PREFIX: &[u8] = b"k8s:enc:aescbc:v1:";

const SECRETBOX_NONCE_LEN: usize = 24;
const SECRETBOX_TAG_LEN: usize = 16;
const SECRETBOX_KEY_LEN: usize = 32;
const AES_BLOCK_LEN: usize = 16;
const AES_KEY_LENS: [usize; 3] = [16, 24, 32];

// === errors ===

/// Errors of an encryption provider configuration.
#[derive(Debug, thiserror::Error)]
pub enum EncryptionConfigError {
    /// Reading or writing the file failed.
    #[error("encryption provider config {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The document is not a valid `EncryptionConfiguration`.
    #[error("{}", invalid_message(file.as_deref(), field, message))]
    Invalid {
        /// The file, when the document came from one.
        file: Option<PathBuf>,
        /// The path of the offending field, as Kubernetes writes it
        /// (`resources[0].providers[1].secretbox.keys[0].secret`); empty for
        /// the document as a whole.
        field: String,
        /// What is wrong with it.
        message: String,
    },
}

fn invalid_message(file: Option<&Path>, field: &str, message: &str) -> String {
    let mut out = String::from("encryption provider config");
    if let Some(f) = file {
        out.push(' ');
        out.push_str(&f.display().to_string());
    }
    out.push_str(": ");
    if !field.is_empty() {
        out.push_str(field);
        out.push_str(": ");
    }
    out.push_str(message);
    out
}

impl EncryptionConfigError {
    fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        EncryptionConfigError::Invalid {
            file: None,
            field: field.into(),
            message: message.into(),
        }
    }

    fn in_file(self, path: &Path) -> Self {
        match self {
            EncryptionConfigError::Invalid { field, message, .. } => {
                EncryptionConfigError::Invalid {
                    file: Some(path.to_path_buf()),
                    field,
                    message,
                }
            }
            other => other,
        }
    }
}

type ConfigResult<T> = std::result::Result<T, EncryptionConfigError>;

// === providers ===

/// A named secretbox key.
struct SecretboxKey {
    name: String,
    cipher: XSalsa20Poly1305,
}

/// A named AES key of 16, 24 or 32 bytes (AES-128, -192 or -256).
struct AesKey {
    name: String,
    key: Vec<u8>,
}

/// One entry of a resource's provider list.
enum Provider {
    Identity,
    Secretbox(Vec<SecretboxKey>),
    AesCbc(Vec<AesKey>),
}

impl fmt::Debug for Provider {
    // Names only: key material never reaches a log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Provider::Identity => f.write_str("identity"),
            Provider::Secretbox(keys) => {
                let names: Vec<&str> = keys.iter().map(|k| k.name.as_str()).collect();
                write!(f, "secretbox{names:?}")
            }
            Provider::AesCbc(keys) => {
                let names: Vec<&str> = keys.iter().map(|k| k.name.as_str()).collect();
                write!(f, "aescbc{names:?}")
            }
        }
    }
}

impl Provider {
    /// The stored form of `plain`, encrypted with this provider's first key.
    /// Nonces and IVs come from `rand`'s thread generator, a CSPRNG seeded
    /// from the OS (Kubernetes reads `crypto/rand`).
    fn encrypt(&self, plain: &Arc<Vec<u8>>) -> std::result::Result<Arc<Vec<u8>>, String> {
        match self {
            Provider::Identity => Ok(plain.clone()),
            Provider::Secretbox(keys) => {
                let key = &keys[0];
                secretbox_seal(key, &rand::random(), plain).map(Arc::new)
            }
            Provider::AesCbc(keys) => {
                let key = &keys[0];
                aescbc_seal(key, &rand::random(), plain).map(Arc::new)
            }
        }
    }

    /// Whether `stored` is what this provider writes now: its prefix and
    /// first key.
    fn wrote(&self, stored: &[u8]) -> bool {
        match self {
            Provider::Identity => !stored.starts_with(ENCRYPTED_PREFIX),
            Provider::Secretbox(keys) => stored
                .strip_prefix(SECRETBOX_PREFIX)
                .and_then(|rest| strip_key_name(rest, &keys[0].name))
                .is_some(),
            Provider::AesCbc(keys) => stored
                .strip_prefix(AESCBC_PREFIX)
                .and_then(|rest| strip_key_name(rest, &keys[0].name))
                .is_some(),
        }
    }

    /// The document in `stored`: `None` when the value is not this
    /// provider's, otherwise the document or why it cannot be read.
    fn decrypt(&self, stored: &[u8]) -> Option<std::result::Result<Vec<u8>, String>> {
        match self {
            Provider::Identity => Some(if stored.starts_with(ENCRYPTED_PREFIX) {
                Err("identity: the value is encrypted".to_string())
            } else {
                Ok(stored.to_vec())
            }),
            Provider::Secretbox(keys) => {
                let rest = stored.strip_prefix(SECRETBOX_PREFIX)?;
                Some(try_keys(
                    "secretbox",
                    rest,
                    keys,
                    |k| &k.name,
                    secretbox_open,
                ))
            }
            Provider::AesCbc(keys) => {
                let rest = stored.strip_prefix(AESCBC_PREFIX)?;
                Some(try_keys("aescbc", rest, keys, |k| &k.name, aescbc_open))
            }
        }
    }
}

/// `rest` without a leading `<name>:`.
fn strip_key_name<'a>(rest: &'a [u8], name: &str) -> Option<&'a [u8]> {
    rest.strip_prefix(name.as_bytes())?.strip_prefix(b":")
}

/// Tries every key whose `<name>:` prefixes `rest`. Kubernetes stops at the
/// first key whose name matches; trying the others too reads everything it
/// reads, and also values whose key name is a prefix of another's.
fn try_keys<K>(
    kind: &str,
    rest: &[u8],
    keys: &[K],
    name: impl Fn(&K) -> &str,
    open: impl Fn(&K, &[u8]) -> std::result::Result<Vec<u8>, String>,
) -> std::result::Result<Vec<u8>, String> {
    let mut errors = Vec::new();
    for key in keys {
        if let Some(body) = strip_key_name(rest, name(key)) {
            match open(key, body) {
                Ok(plain) => return Ok(plain),
                Err(e) => errors.push(format!("{kind} key {:?}: {e}", name(key))),
            }
        }
    }
    if errors.is_empty() {
        let stored = rest.split(|b| *b == b':').next().unwrap_or_default();
        let stored = String::from_utf8_lossy(&stored[..stored.len().min(64)]);
        Err(format!(
            "written with {kind} key {stored:?}, which the encryption config does not list"
        ))
    } else {
        Err(errors.join("; "))
    }
}

fn secretbox_seal(
    key: &SecretboxKey,
    nonce: &[u8; SECRETBOX_NONCE_LEN],
    plain: &[u8],
) -> std::result::Result<Vec<u8>, String> {
    let head = SECRETBOX_PREFIX.len() + key.name.len() + 1;
    let mut out = Vec::with_capacity(head + SECRETBOX_NONCE_LEN + SECRETBOX_TAG_LEN + plain.len());
    out.extend_from_slice(SECRETBOX_PREFIX);
    out.extend_from_slice(key.name.as_bytes());
    out.push(b':');
    out.extend_from_slice(nonce);
    let tag_at = out.len();
    out.extend_from_slice(&[0; SECRETBOX_TAG_LEN]);
    let body_at = out.len();
    out.extend_from_slice(plain);
    // NaCl's layout, as Go's `secretbox.Seal`: the tag before the ciphertext.
    let tag = key
        .cipher
        .encrypt_in_place_detached(GenericArray::from_slice(nonce), b"", &mut out[body_at..])
        .map_err(|_| "secretbox encryption failed".to_string())?;
    out[tag_at..body_at].copy_from_slice(&tag);
    Ok(out)
}

/// Seal `plain` with a 32-byte key outside any configuration (the
/// control plane's uploaded certificates): `k8s:enc:secretbox:v1:key:`,
/// a random nonce, the tag and the ciphertext.
pub fn seal_with_key(key: &[u8; 32], plain: &[u8]) -> Vec<u8> {
    let key = SecretboxKey {
        name: "key".into(),
        cipher: XSalsa20Poly1305::new_from_slice(key).expect("a 32-byte key"),
    };
    secretbox_seal(&key, &rand::random(), plain).expect("sealing in memory")
}

/// Open what [`seal_with_key`] sealed; an error when the key is not the
/// one it was sealed with.
pub fn open_with_key(key: &[u8; 32], sealed: &[u8]) -> std::result::Result<Vec<u8>, String> {
    let key = SecretboxKey {
        name: "key".into(),
        cipher: XSalsa20Poly1305::new_from_slice(key).expect("a 32-byte key"),
    };
    let body = sealed
        .strip_prefix(SECRETBOX_PREFIX)
        .and_then(|rest| strip_key_name(rest, &key.name))
        .ok_or("not sealed with a certificate key")?;
    secretbox_open(&key, body)
}

fn secretbox_open(key: &SecretboxKey, body: &[u8]) -> std::result::Result<Vec<u8>, String> {
    if body.len() < SECRETBOX_NONCE_LEN + SECRETBOX_TAG_LEN {
        return Err("the stored data is shorter than a nonce and a tag".into());
    }
    let (nonce, rest) = body.split_at(SECRETBOX_NONCE_LEN);
    let (tag, ciphertext) = rest.split_at(SECRETBOX_TAG_LEN);
    let mut plain = ciphertext.to_vec();
    key.cipher
        .decrypt_in_place_detached(
            GenericArray::from_slice(nonce),
            b"",
            &mut plain,
            GenericArray::from_slice(tag),
        )
        .map_err(|_| "authentication failed (wrong key or corrupt data)".to_string())?;
    Ok(plain)
}

fn aescbc_seal(
    key: &AesKey,
    iv: &[u8; AES_BLOCK_LEN],
    plain: &[u8],
) -> std::result::Result<Vec<u8>, String> {
    // PKCS#7: 1 to 16 bytes, each the count; a whole block when aligned.
    let pad = AES_BLOCK_LEN - plain.len() % AES_BLOCK_LEN;
    let head = AESCBC_PREFIX.len() + key.name.len() + 1;
    let mut out = Vec::with_capacity(head + AES_BLOCK_LEN + plain.len() + pad);
    out.extend_from_slice(AESCBC_PREFIX);
    out.extend_from_slice(key.name.as_bytes());
    out.push(b':');
    out.extend_from_slice(iv);
    let body_at = out.len();
    out.extend_from_slice(plain);
    out.resize(out.len() + pad, pad as u8);
    let body = &mut out[body_at..];
    match key.key.len() {
        16 => cbc_encrypt::<cbc::Encryptor<aes::Aes128>>(&key.key, iv, body),
        24 => cbc_encrypt::<cbc::Encryptor<aes::Aes192>>(&key.key, iv, body),
        _ => cbc_encrypt::<cbc::Encryptor<aes::Aes256>>(&key.key, iv, body),
    }?;
    Ok(out)
}

fn cbc_encrypt<E: KeyIvInit + BlockEncryptMut>(
    key: &[u8],
    iv: &[u8],
    blocks: &mut [u8],
) -> std::result::Result<(), String> {
    let mut enc = E::new_from_slices(key, iv).map_err(|e| format!("aescbc key: {e}"))?;
    for block in blocks.chunks_exact_mut(AES_BLOCK_LEN) {
        enc.encrypt_block_mut(GenericArray::from_mut_slice(block));
    }
    Ok(())
}

fn cbc_decrypt<D: KeyIvInit + BlockDecryptMut>(
    key: &[u8],
    iv: &[u8],
    blocks: &mut [u8],
) -> std::result::Result<(), String> {
    let mut dec = D::new_from_slices(key, iv).map_err(|e| format!("aescbc key: {e}"))?;
    for block in blocks.chunks_exact_mut(AES_BLOCK_LEN) {
        dec.decrypt_block_mut(GenericArray::from_mut_slice(block));
    }
    Ok(())
}

fn aescbc_open(key: &AesKey, body: &[u8]) -> std::result::Result<Vec<u8>, String> {
    if body.len() < AES_BLOCK_LEN {
        return Err("the stored data is shorter than an IV".into());
    }
    let (iv, ciphertext) = body.split_at(AES_BLOCK_LEN);
    if ciphertext.is_empty() || ciphertext.len() % AES_BLOCK_LEN != 0 {
        return Err("the stored data is not a whole number of blocks".into());
    }
    let mut plain = ciphertext.to_vec();
    match key.key.len() {
        16 => cbc_decrypt::<cbc::Decryptor<aes::Aes128>>(&key.key, iv, &mut plain),
        24 => cbc_decrypt::<cbc::Decryptor<aes::Aes192>>(&key.key, iv, &mut plain),
        _ => cbc_decrypt::<cbc::Decryptor<aes::Aes256>>(&key.key, iv, &mut plain),
    }?;
    // CBC has no authentication: a wrong key shows only as bad padding
    // (or, rarely, as a document that does not parse).
    let pad = usize::from(plain[plain.len() - 1]);
    let len = plain.len();
    if pad == 0 || pad > AES_BLOCK_LEN || plain[len - pad..].iter().any(|b| usize::from(*b) != pad)
    {
        return Err("invalid PKCS#7 padding (wrong key or corrupt data)".into());
    }
    plain.truncate(len - pad);
    Ok(plain)
}

// === configuration ===

/// A parsed encryption provider configuration: for each encrypted resource,
/// its providers in order.
pub struct EncryptionConfig {
    /// By `(group as in storage keys, resource)`; `("*", "*")` is every
    /// resource and `(group, "*")` every resource of a group.
    rules: HashMap<(String, String), Vec<Arc<Provider>>>,
}

impl fmt::Debug for EncryptionConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rules: Vec<_> = self.rules.iter().collect();
        rules.sort_by(|a, b| a.0.cmp(b.0));
        let mut m = f.debug_map();
        for ((group, resource), providers) in rules {
            m.entry(&format!("/{group}/{resource}/"), providers);
        }
        m.finish()
    }
}

/// A resource as Kubernetes' `schema.ParseGroupResource` splits it: the
/// resource before the first dot, the group after it (empty: the core group).
fn parse_group_resource(s: &str) -> (&str, &str) {
    match s.split_once('.') {
        Some((resource, group)) => (group, resource),
        None => ("", s),
    }
}

/// The group as storage keys spell it.
fn storage_group(group: &str) -> &str {
    if group.is_empty() {
        "core"
    } else {
        group
    }
}

/// A field that is a list, as `(path, items)`.
fn seq<'a>(v: Option<&'a Value>, path: &str) -> ConfigResult<&'a [Value]> {
    match v {
        None | Some(Value::Null) => Err(EncryptionConfigError::invalid(path, "required")),
        Some(Value::Sequence(items)) if items.is_empty() => Err(EncryptionConfigError::invalid(
            path,
            "at least one item is required",
        )),
        Some(Value::Sequence(items)) => Ok(items),
        Some(_) => Err(EncryptionConfigError::invalid(path, "must be a list")),
    }
}

fn map<'a>(v: &'a Value, path: &str) -> ConfigResult<&'a serde_yaml::Mapping> {
    v.as_mapping()
        .ok_or_else(|| EncryptionConfigError::invalid(path, "must be a mapping"))
}

fn string<'a>(v: Option<&'a Value>, path: &str) -> ConfigResult<&'a str> {
    match v {
        None | Some(Value::Null) => Err(EncryptionConfigError::invalid(path, "required")),
        Some(Value::String(s)) if s.is_empty() => {
            Err(EncryptionConfigError::invalid(path, "required"))
        }
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(EncryptionConfigError::invalid(path, "must be a string")),
    }
}

/// Refuses any field of `m` not in `known`: a misspelt field would
/// otherwise leave data unencrypted without a word.
fn only_fields(m: &serde_yaml::Mapping, known: &[&str], path: &str) -> ConfigResult<()> {
    for k in m.keys() {
        let name = k.as_str().unwrap_or_default();
        if !known.contains(&name) {
            let shown = match k.as_str() {
                Some(s) => s.to_string(),
                None => format!("{k:?}"),
            };
            let at = if path.is_empty() {
                shown
            } else {
                format!("{path}.{shown}")
            };
            return Err(EncryptionConfigError::invalid(
                at,
                format!("unknown field (expected one of: {})", known.join(", ")),
            ));
        }
    }
    Ok(())
}

/// The `keys` of a secretbox or aescbc provider, base64-decoded and checked
/// for one of `lens`.
fn parse_keys(
    v: Option<&Value>,
    path: &str,
    lens: &[usize],
) -> ConfigResult<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    for (i, key) in seq(v, path)?.iter().enumerate() {
        let at = format!("{path}[{i}]");
        let m = map(key, &at)?;
        only_fields(m, &["name", "secret"], &at)?;
        let name = string(m.get("name"), &format!("{at}.name"))?;
        let secret_at = format!("{at}.secret");
        let secret = string(m.get("secret"), &secret_at)?;
        // The secret is never echoed into the message.
        let bytes = BASE64.decode(secret.trim()).map_err(|_| {
            EncryptionConfigError::invalid(&secret_at, "secrets must be base64 encoded")
        })?;
        if !lens.contains(&bytes.len()) {
            return Err(EncryptionConfigError::invalid(
                &secret_at,
                format!(
                    "secret is not of the expected length, got {} bytes, expected one of {lens:?}",
                    bytes.len()
                ),
            ));
        }
        if out.iter().any(|(n, _)| n == name) {
            return Err(EncryptionConfigError::invalid(
                format!("{at}.name"),
                format!("duplicate key name {name:?}"),
            ));
        }
        out.push((name.to_string(), bytes));
    }
    Ok(out)
}

fn parse_provider(v: &Value, path: &str) -> ConfigResult<Provider> {
    const SUPPORTED: &str = "secretbox, aescbc, identity";
    let m = map(v, path)?;
    let mut kinds = m.keys().filter_map(Value::as_str);
    let (Some(kind), None) = (kinds.next(), kinds.next()) else {
        return Err(EncryptionConfigError::invalid(
            path,
            if m.len() > 1 {
                "more than one provider specified in a single element, should split into different list elements".to_string()
            } else {
                format!("the provider must be one of: {SUPPORTED}")
            },
        ));
    };
    let at = format!("{path}.{kind}");
    let body = m.get(kind).unwrap_or(&Value::Null);
    match kind {
        "identity" => {
            if !matches!(body, Value::Null) {
                only_fields(map(body, &at)?, &[], &at)?;
            }
            Ok(Provider::Identity)
        }
        "secretbox" => {
            let b = map(body, &at)?;
            only_fields(b, &["keys"], &at)?;
            let keys = parse_keys(b.get("keys"), &format!("{at}.keys"), &[SECRETBOX_KEY_LEN])?;
            let keys = keys
                .into_iter()
                .map(|(name, key)| {
                    let cipher = XSalsa20Poly1305::new_from_slice(&key).map_err(|_| {
                        EncryptionConfigError::invalid(
                            format!("{at}.keys"),
                            "invalid secretbox key",
                        )
                    })?;
                    Ok(SecretboxKey { name, cipher })
                })
                .collect::<ConfigResult<_>>()?;
            Ok(Provider::Secretbox(keys))
        }
        "aescbc" => {
            let b = map(body, &at)?;
            only_fields(b, &["keys"], &at)?;
            let keys = parse_keys(b.get("keys"), &format!("{at}.keys"), &AES_KEY_LENS)?;
            Ok(Provider::AesCbc(
                keys.into_iter()
                    .map(|(name, key)| AesKey { name, key })
                    .collect(),
            ))
        }
        "aesgcm" | "kms" => Err(EncryptionConfigError::invalid(
            at,
            format!("the {kind} provider is not supported by kedge (supported: {SUPPORTED})"),
        )),
        _ => Err(EncryptionConfigError::invalid(
            at,
            format!("unknown provider (supported: {SUPPORTED})"),
        )),
    }
}

/// Checks one entry of a `resources[i].resources` list as Kubernetes does.
fn check_resource_name(res: &str, path: &str) -> ConfigResult<()> {
    let bad = |m: &str| {
        Err(EncryptionConfigError::invalid(
            path,
            format!("{res:?}: {m}"),
        ))
    };
    if res.to_lowercase() != res {
        return bad("resource name should not contain capital letters");
    }
    if res == "*" {
        return bad("use '*.' to encrypt all the resources from core API group or *.* to encrypt all resources");
    }
    let (group, resource) = parse_group_resource(res);
    if resource.is_empty() {
        return bad("the resource name is empty");
    }
    if group == "events.k8s.io" {
        return bad("'*.events.k8s.io' objects are stored using the 'events' API group. Use 'events' instead in the config file");
    }
    if group == "extensions" {
        return bad("'extensions' group has been removed and cannot be used for encryption");
    }
    if group == "*" && resource != "*" {
        return bad("encrypting the same resource across groups is not supported");
    }
    Ok(())
}

impl EncryptionConfig {
    /// Parses and checks an `EncryptionConfiguration` document. Only the
    /// `secretbox`, `aescbc` and `identity` providers are supported.
    pub fn from_yaml(text: &str) -> ConfigResult<Self> {
        if text.trim().is_empty() {
            return Err(EncryptionConfigError::invalid(
                "",
                "the configuration is empty",
            ));
        }
        let doc: Value = serde_yaml::from_str(text)
            .map_err(|e| EncryptionConfigError::invalid("", format!("not valid YAML: {e}")))?;
        let top = map(&doc, "").map_err(|_| {
            EncryptionConfigError::invalid("", "must be an EncryptionConfiguration mapping")
        })?;
        only_fields(top, &["apiVersion", "kind", "resources"], "")?;
        let kind = string(top.get("kind"), "kind")?;
        if kind != KIND {
            return Err(EncryptionConfigError::invalid(
                "kind",
                format!("must be {KIND}, not {kind:?}"),
            ));
        }
        let api_version = string(top.get("apiVersion"), "apiVersion")?;
        if api_version != API_VERSION {
            return Err(EncryptionConfigError::invalid(
                "apiVersion",
                format!("must be {API_VERSION}, not {api_version:?}"),
            ));
        }

        let mut rules: HashMap<(String, String), Vec<Arc<Provider>>> = HashMap::new();
        for (i, entry) in seq(top.get("resources"), "resources")?.iter().enumerate() {
            let at = format!("resources[{i}]");
            let m = map(entry, &at)?;
            only_fields(m, &["resources", "providers"], &at)?;

            let res_at = format!("{at}.resources");
            let mut names: Vec<(String, String)> = Vec::new();
            for (j, r) in seq(m.get("resources"), &res_at)?.iter().enumerate() {
                let r_at = format!("{res_at}[{j}]");
                let res = string(Some(r), &r_at)?;
                check_resource_name(res, &r_at)?;
                let (group, resource) = parse_group_resource(res);
                let key = (storage_group(group).to_string(), resource.to_string());
                if names.contains(&key) {
                    return Err(EncryptionConfigError::invalid(
                        &r_at,
                        format!("{res:?}: the same resource cannot be specified multiple times"),
                    ));
                }
                names.push(key);
            }
            // Within one list, a wildcard and a resource it covers.
            for (g, r) in &names {
                // A wildcard covers every other name: `*.*` all of them,
                // `*.<group>` those of its group.
                let covered = names.iter().any(|other| {
                    let (g2, r2) = other;
                    other != &(g.clone(), r.clone()) && r2 == "*" && (g2 == "*" || g2 == g)
                });
                if covered {
                    return Err(EncryptionConfigError::invalid(
                        &res_at,
                        "using overlapping resources such as 'secrets' and '*.' in the same resource list is not allowed as they will be masked",
                    ));
                }
            }

            let prov_at = format!("{at}.providers");
            let providers = seq(m.get("providers"), &prov_at)?
                .iter()
                .enumerate()
                .map(|(j, p)| parse_provider(p, &format!("{prov_at}[{j}]")).map(Arc::new))
                .collect::<ConfigResult<Vec<_>>>()?;

            for (j, (group, resource)) in names.into_iter().enumerate() {
                // An earlier wildcard already decides for this resource: a
                // later rule for it would never apply.
                let masked_by = [(group.clone(), "*".to_string()), ("*".into(), "*".into())]
                    .into_iter()
                    .find(|w| *w != (group.clone(), resource.clone()) && rules.contains_key(w));
                if let Some((g, r)) = masked_by {
                    return Err(EncryptionConfigError::invalid(
                        format!("{res_at}[{j}]"),
                        format!("resource is masked by the earlier rule for /{g}/{r}/"),
                    ));
                }
                rules
                    .entry((group, resource))
                    .or_default()
                    .extend(providers.iter().cloned());
            }
        }
        Ok(Self { rules })
    }

    /// The providers for the object at storage key `key`
    /// (`/<group>/<resource>/<namespace>/<name>`), if its resource is
    /// configured: its own rule, else its group's `*.<group>`, else `*.*`.
    fn providers_for(&self, key: &str) -> Option<&[Arc<Provider>]> {
        let mut parts = key.strip_prefix('/')?.splitn(3, '/');
        let (group, resource, _rest) = (parts.next()?, parts.next()?, parts.next()?);
        [(group, resource), (group, "*"), ("*", "*")]
            .into_iter()
            .find_map(|(g, r)| self.rules.get(&(g.to_string(), r.to_string())))
            .map(Vec::as_slice)
    }

    /// Whether new writes at storage key `key` are encrypted (its resource
    /// is configured and its first provider is not `identity`).
    pub fn encrypts(&self, key: &str) -> bool {
        self.providers_for(key)
            .is_some_and(|p| !matches!(*p[0], Provider::Identity))
    }

    /// The stored form of the document `plain` at `key`.
    pub(crate) fn seal(&self, key: &str, plain: &Arc<Vec<u8>>) -> Result<Arc<Vec<u8>>> {
        match self.providers_for(key) {
            None => Ok(plain.clone()),
            Some(providers) => providers[0]
                .encrypt(plain)
                .map_err(|e| StoreError::Backend(format!("encrypting {key}: {e}"))),
        }
    }

    /// The document stored as `stored` at `key`: the first provider that
    /// reads it wins.
    pub(crate) fn open(&self, key: &str, stored: Vec<u8>) -> Result<Vec<u8>> {
        let Some(providers) = self.providers_for(key) else {
            return Ok(stored);
        };
        // The common case: plain data under identity, no copy.
        if !stored.starts_with(ENCRYPTED_PREFIX)
            && providers.iter().any(|p| matches!(**p, Provider::Identity))
        {
            return Ok(stored);
        }
        let mut errors = Vec::new();
        for p in providers {
            match p.decrypt(&stored) {
                Some(Ok(plain)) => return Ok(plain),
                Some(Err(e)) => errors.push(e),
                None => {}
            }
        }
        let why = if !errors.is_empty() {
            errors.join("; ")
        } else if !stored.starts_with(ENCRYPTED_PREFIX) {
            "it is stored unencrypted and `identity` is not among the providers".to_string()
        } else {
            let end = stored[ENCRYPTED_PREFIX.len()..]
                .iter()
                .position(|b| *b == b':')
                .map_or(stored.len(), |p| ENCRYPTED_PREFIX.len() + p);
            format!(
                "it is encrypted with the {:?} provider, which the encryption config does not list for it",
                String::from_utf8_lossy(&stored[ENCRYPTED_PREFIX.len()..end.min(64)])
            )
        };
        Err(StoreError::Backend(format!(
            "cannot decrypt {key}: {why} (check the encryption provider config)"
        )))
    }

    /// Whether `stored` at `key` is not in the form a write makes now (an
    /// older key, another provider, or plain).
    fn stale(&self, key: &str, stored: &[u8]) -> bool {
        self.providers_for(key).is_some_and(|p| !p[0].wrote(stored))
    }
}

/// Reads and checks the configuration at `path` (the
/// `--encryption-provider-config` flag).
pub fn load_config(path: &Path) -> ConfigResult<EncryptionConfig> {
    let text = fs::read_to_string(path).map_err(|source| EncryptionConfigError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    EncryptionConfig::from_yaml(&text).map_err(|e| e.in_file(path))
}

/// The configuration kept in the data dir: `<data_dir>/encryption-config.yaml`,
/// made on first use with a fresh random secretbox key `key1` for Secrets,
/// and `identity` after it so that Secrets written before encryption was on
/// still read.
pub fn ensure_config(data_dir: &Path) -> ConfigResult<EncryptionConfig> {
    let path = data_dir.join(ENCRYPTION_CONFIG_FILE);
    let exists = path
        .try_exists()
        .map_err(|source| EncryptionConfigError::Io {
            path: path.clone(),
            source,
        })?;
    if !exists {
        write_private(&path, &default_config_yaml())?;
        tracing::info!(path = %path.display(), "made a new key for encrypting Secrets at rest");
    } else {
        warn_if_readable_by_others(&path);
    }
    load_config(&path)
}

fn default_config_yaml() -> String {
    let key: [u8; SECRETBOX_KEY_LEN] = rand::random();
    format!(
        "\
# Encryption of API objects at rest (kube-apiserver's --encryption-provider-config).
# Made by kedge on first start. The first provider encrypts new writes; every
# provider is tried for reads. Keep this file private and back it up with the
# data dir: without its keys the stored Secrets cannot be read.
# Rotating keys: see docs/encryption-at-rest.md.
apiVersion: {API_VERSION}
kind: {KIND}
resources:
  - resources:
      - secrets
    providers:
      - secretbox:
          keys:
            - name: key1
              secret: {}
      - identity: {{}}
",
        BASE64.encode(key)
    )
}

/// Writes `contents` to `path` readable by the owner only, through a
/// temporary file renamed into place, so a crash never leaves half a key.
fn write_private(path: &Path, contents: &str) -> ConfigResult<()> {
    let tmp = path.with_extension("yaml.tmp");
    let io_err = |p: &Path| {
        let p = p.to_path_buf();
        move |source| EncryptionConfigError::Io { path: p, source }
    };
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp).map_err(io_err(&tmp))?;
    #[cfg(unix)]
    {
        // `mode` applies only to a file it creates: a leftover temp file
        // keeps its own.
        use std::os::unix::fs::PermissionsExt as _;
        f.set_permissions(fs::Permissions::from_mode(0o600))
            .map_err(io_err(&tmp))?;
    }
    f.write_all(contents.as_bytes()).map_err(io_err(&tmp))?;
    f.sync_all().map_err(io_err(&tmp))?;
    drop(f);
    fs::rename(&tmp, path).map_err(io_err(path))?;
    // The rename itself survives a crash once the directory is synced; not
    // every platform can open a directory for that, so it is best effort.
    if let Some(dir) = path.parent() {
        if let Ok(d) = fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        if let Ok(meta) = fs::metadata(path) {
            let mode = meta.permissions().mode();
            if mode & 0o077 != 0 {
                tracing::warn!(
                    path = %path.display(),
                    mode = format!("{:o}", mode & 0o777),
                    "the encryption keys are readable by other users; chmod 600 it"
                );
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

// === the store ===

/// A [`Store`] whose documents of the configured resources are encrypted in
/// the backend `S`: `commit` encrypts with each resource's first provider,
/// `load` decrypts with whichever provider wrote the value. A value no
/// provider can read fails `load` with an error naming its key.
pub struct EncryptedStore<S> {
    inner: S,
    config: EncryptionConfig,
}

impl<S: Store> EncryptedStore<S> {
    /// `inner` with `config` applied.
    pub fn new(inner: S, config: EncryptionConfig) -> Self {
        Self { inner, config }
    }

    /// The configuration in use.
    pub fn config(&self) -> &EncryptionConfig {
        &self.config
    }

    /// The backend, holding the stored (encrypted) form.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Rewrites every stored value of a configured resource that is not in
    /// the form a write makes now: written with an older key or another
    /// provider, or stored plain. Returns how many were rewritten.
    ///
    /// Kubernetes does this through an update of each object
    /// (`kubectl replace`); kedge skips updates that change nothing, so it
    /// is done here instead. Call it once at start, before the watch cache
    /// opens the store: it commits at the current revision, and the
    /// documents stay the same, so no reader can tell. A value that cannot
    /// be read fails it as it fails [`Store::load`].
    pub fn reencrypt_stale(&self) -> Result<usize> {
        let (revision, docs) = self.inner.load()?;
        let mut ops = Vec::new();
        for (key, stored) in docs {
            if self.config.stale(&key, &stored) {
                let plain = Arc::new(self.config.open(&key, stored)?);
                ops.push(Op::Put(key.clone(), self.config.seal(&key, &plain)?));
            }
        }
        if !ops.is_empty() {
            self.inner.commit(revision, &ops)?;
        }
        Ok(ops.len())
    }
}

impl<S: Store> Store for EncryptedStore<S> {
    fn load(&self) -> Result<Snapshot> {
        let (revision, docs) = self.inner.load()?;
        let docs = docs
            .into_iter()
            .map(|(key, stored)| {
                let plain = self.config.open(&key, stored)?;
                Ok((key, plain))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok((revision, docs))
    }

    fn commit(&self, revision: u64, ops: &[Op]) -> Result<()> {
        let touches = ops.iter().any(|op| match op {
            Op::Put(k, _) => self.config.providers_for(k).is_some(),
            Op::Delete(_) => false,
        });
        if !touches {
            return self.inner.commit(revision, ops);
        }
        let sealed = ops
            .iter()
            .map(|op| match op {
                Op::Put(k, v) => Ok(Op::Put(k.clone(), self.config.seal(k, v)?)),
                Op::Delete(_) => Ok(op.clone()),
            })
            .collect::<Result<Vec<_>>>()?;
        self.inner.commit(revision, &sealed)
    }
}

#[cfg(test)]
mod tests;
