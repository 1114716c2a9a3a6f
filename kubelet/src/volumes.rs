//! A pod's volumes on the node and its containers' mounts of them.
//!
//! Volumes live where the kubelet keeps them:
//! `<root>/pods/<uid>/volumes/kubernetes.io~<plugin>/<name>`. emptyDir is a
//! directory there; configMap, secret, downwardAPI and projected volumes
//! are written with the [`atomic_writer`] so a container never sees half an
//! update; hostPath volumes are the node's path itself, checked against
//! their `type`.
//!
//! [`setup_pod_volumes`] is idempotent: run on each sync, it refreshes
//! configMap, secret and downwardAPI contents when their sources change,
//! and leaves emptyDirs alone. [`make_mounts`] turns a container's
//! `volumeMounts` into runtime mounts. [`remove_pod_dir`] cleans up after a
//! pod is gone.

pub mod atomic_writer;

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, DownwardAPIVolumeFile, HostPathVolumeSource, KeyToPath, Pod, Secret,
    ServiceAccountTokenProjection, Volume,
};

use crate::downward::{self, DownwardError, DownwardInputs};
use crate::env::expand;
use crate::objects::{ObjectError, ObjectSource};
use crate::runtime::Mount;
use atomic_writer::{FileProjection, Payload};

/// The directory of emptyDir volumes under a pod's volumes.
pub const EMPTY_DIR: &str = "kubernetes.io~empty-dir";
/// The directory of configMap volumes.
pub const CONFIG_MAP: &str = "kubernetes.io~configmap";
/// The directory of secret volumes.
pub const SECRET: &str = "kubernetes.io~secret";
/// The directory of downwardAPI volumes.
pub const DOWNWARD_API: &str = "kubernetes.io~downward-api";
/// The directory of projected volumes.
pub const PROJECTED: &str = "kubernetes.io~projected";

/// The mode of projected files when the volume sets none.
const DEFAULT_MODE: i32 = 0o644;
/// emptyDirs (and the directories holding projected files) are writable by
/// every user in the pod, whatever user its containers run as.
const EMPTY_DIR_MODE: u32 = 0o777;

/// Why a pod's volumes cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// One volume failed; the message is the kubelet's `FailedMount` event.
    #[error("MountVolume.SetUp failed for volume {volume:?} : {source}")]
    SetUp {
        /// The volume's name in the pod.
        volume: String,
        /// Why.
        #[source]
        source: SetUpError,
    },
    /// The pod's UID cannot name a directory.
    #[error("invalid pod UID {0:?}")]
    Uid(String),
    /// The pod's own directories could not be made.
    #[error("making the pod's volume directory: {0}")]
    PodDir(#[source] io::Error),
}

/// Why one volume cannot be set up (the volume plugins' wording).
#[derive(Debug, thiserror::Error)]
pub enum SetUpError {
    /// The ConfigMap of a volume that is not optional does not exist.
    #[error("configmap {0:?} not found")]
    ConfigMapNotFound(String),
    /// The Secret of a volume that is not optional does not exist.
    #[error("secret {0:?} not found")]
    SecretNotFound(String),
    /// An `items` key is not in the ConfigMap.
    #[error("configmap references non-existent config key: {0}")]
    ConfigMapKey(String),
    /// An `items` key is not in the Secret.
    #[error("references non-existent secret key: {0}")]
    SecretKey(String),
    /// A downwardAPI item has no value.
    #[error(transparent)]
    Downward(#[from] DownwardError),
    /// A ConfigMap or Secret could not be read.
    #[error(transparent)]
    Object(#[from] ObjectError),
    /// A hostPath is not of its declared `type`.
    #[error("hostPath type check failed: {path} is not a {expected}")]
    HostPathType {
        /// The node path.
        path: String,
        /// What it should have been: "directory", "file", "socket file",
        /// "character device", "block device".
        expected: &'static str,
    },
    /// A hostPath `type` Kubernetes does not know.
    #[error("{0} is an invalid volume type")]
    InvalidHostPathType(String),
    /// A hostPath that is not absolute.
    #[error("hostPath {0:?} must be an absolute path")]
    RelativeHostPath(String),
    /// The ServiceAccount token could not be had.
    #[error("failed to fetch token: {0}")]
    Token(String),
    /// A claim is missing or not bound yet (retried until it is).
    #[error("{0}")]
    Claim(String),
    /// This kubelet has no plugin for the volume's source.
    #[error("volume source {0} is not supported by this kubelet")]
    Unsupported(&'static str),
    /// A name that cannot be a directory.
    #[error("invalid volume name {0:?}")]
    Name(String),
    /// The files could not be written.
    #[error("{0}")]
    Io(#[source] io::Error),
}

/// Why a container's mounts cannot be made (the kubelet's wording; the
/// container waits with `CreateContainerConfigError`).
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    /// A `volumeMount` names no volume of the pod.
    #[error("cannot find volume {volume:?} to mount into container {container:?}")]
    NoVolume {
        /// The mount's volume name.
        volume: String,
        /// The container.
        container: String,
    },
    /// `subPath` is absolute.
    #[error("error SubPath `{0}` must not be an absolute path")]
    AbsoluteSubPath(String),
    /// `subPath` steps out with `..`.
    #[error("unable to provision SubPath `{0}`: must not contain '..'")]
    SubPathBacksteps(String),
    /// `subPathExpr` refers to variables the container does not have.
    #[error("missing value for {0}")]
    SubPathExpr(String),
    /// The `subPath` directory could not be made.
    #[error(
        "failed to create subPath directory for volumeMount {mount:?} of container {container:?}"
    )]
    SubPathCreate {
        /// The mount's volume name.
        mount: String,
        /// The container.
        container: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// `subPath` leads out of the volume through a symlink.
    #[error("subpath {sub_path:?} not within volume path {volume:?}")]
    SubPathEscapes {
        /// The subPath.
        sub_path: String,
        /// The volume's directory.
        volume: PathBuf,
    },
}

/// A volume set up on the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountedVolume {
    /// Its directory (or file, for a hostPath file) on the node.
    pub path: PathBuf,
    /// The plugin only allows read-only mounts (configMap, secret,
    /// downwardAPI, projected).
    pub read_only: bool,
}

/// A pod's volumes by name.
pub type PodVolumes = BTreeMap<String, MountedVolume>;

/// `<root>/pods/<uid>`.
pub fn pod_dir(root: &Path, uid: &str) -> PathBuf {
    root.join("pods").join(uid)
}

/// `<root>/pods/<uid>/volumes`.
pub fn pod_volumes_dir(root: &Path, uid: &str) -> PathBuf {
    pod_dir(root, uid).join("volumes")
}

/// Set up (or refresh) every volume of `pod` under `root`, returning where
/// each one is. ConfigMaps and Secrets are read from `objects`;
/// downwardAPI files take the pod's IPs and the node's allocatable from
/// `inputs`.
pub async fn setup_pod_volumes(
    root: &Path,
    pod: &Pod,
    inputs: &DownwardInputs,
    objects: &dyn ObjectSource,
) -> Result<PodVolumes, VolumeError> {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    if !is_single_component(&uid) {
        return Err(VolumeError::Uid(uid));
    }
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let volumes_dir = pod_volumes_dir(root, &uid);
    let mut plans = Vec::new();
    for volume in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
        let plan = plan(volume, pod, namespace, inputs, objects)
            .await
            .map_err(|source| VolumeError::SetUp {
                volume: volume.name.clone(),
                source,
            })?;
        plans.push((volume.name.clone(), plan));
    }
    let pod_dir = pod_dir(root, &uid);
    let applied = tokio::task::spawn_blocking(move || -> Result<PodVolumes, VolumeError> {
        make_dir_with_mode(&pod_dir, 0o750).map_err(VolumeError::PodDir)?;
        make_dir_with_mode(&volumes_dir, 0o750).map_err(VolumeError::PodDir)?;
        let mut out = PodVolumes::new();
        for (name, plan) in plans {
            let mounted =
                apply(&volumes_dir, &name, plan).map_err(|source| VolumeError::SetUp {
                    volume: name.clone(),
                    source,
                })?;
            out.insert(name, mounted);
        }
        Ok(out)
    })
    .await;
    match applied {
        Ok(r) => r,
        Err(e) => Err(VolumeError::PodDir(io::Error::other(e))),
    }
}

/// What to do on disk for one volume, decided after reading its sources.
#[derive(Debug)]
enum Plan {
    EmptyDir,
    HostPath(HostPathVolumeSource),
    Files {
        plugin: &'static str,
        payload: Payload,
    },
}

async fn plan(
    volume: &Volume,
    pod: &Pod,
    namespace: &str,
    inputs: &DownwardInputs,
    objects: &dyn ObjectSource,
) -> Result<Plan, SetUpError> {
    if !is_single_component(&volume.name) {
        return Err(SetUpError::Name(volume.name.clone()));
    }
    if let Some(ed) = &volume.empty_dir {
        // Medium "Memory" would be a tmpfs, which needs a mount the node
        // agent may not be allowed to make; the directory is on disk.
        if ed.medium.as_deref() == Some("Memory") {
            tracing::debug!(volume = %volume.name, "emptyDir medium Memory is backed by disk");
        }
        return Ok(Plan::EmptyDir);
    }
    if let Some(hp) = &volume.host_path {
        return Ok(Plan::HostPath(hp.clone()));
    }
    if let Some(src) = &volume.persistent_volume_claim {
        return claim_plan(objects, namespace, &src.claim_name).await;
    }
    if let Some(src) = &volume.config_map {
        let optional = src.optional.unwrap_or(false);
        let cm = get_config_map(objects, namespace, &src.name, optional).await?;
        let mode = src.default_mode.unwrap_or(DEFAULT_MODE);
        let payload = config_map_payload(src.items.as_deref(), &cm, mode, optional)?;
        return Ok(Plan::Files {
            plugin: CONFIG_MAP,
            payload,
        });
    }
    if let Some(src) = &volume.secret {
        let optional = src.optional.unwrap_or(false);
        let name = src.secret_name.as_deref().unwrap_or_default();
        let secret = get_secret(objects, namespace, name, optional).await?;
        let mode = src.default_mode.unwrap_or(DEFAULT_MODE);
        let payload = secret_payload(src.items.as_deref(), &secret, mode, optional)?;
        return Ok(Plan::Files {
            plugin: SECRET,
            payload,
        });
    }
    if let Some(src) = &volume.downward_api {
        let mode = src.default_mode.unwrap_or(DEFAULT_MODE);
        let payload = downward_payload(src.items.iter().flatten(), pod, inputs, mode)?;
        return Ok(Plan::Files {
            plugin: DOWNWARD_API,
            payload,
        });
    }
    if let Some(src) = &volume.projected {
        let mode = src.default_mode.unwrap_or(DEFAULT_MODE);
        let mut payload = Payload::new();
        for source in src.sources.iter().flatten() {
            if let Some(p) = &source.config_map {
                let optional = p.optional.unwrap_or(false);
                let cm = get_config_map(objects, namespace, &p.name, optional).await?;
                payload.extend(config_map_payload(p.items.as_deref(), &cm, mode, optional)?);
            } else if let Some(p) = &source.secret {
                let optional = p.optional.unwrap_or(false);
                let secret = get_secret(objects, namespace, &p.name, optional).await?;
                payload.extend(secret_payload(p.items.as_deref(), &secret, mode, optional)?);
            } else if let Some(p) = &source.downward_api {
                payload.extend(downward_payload(
                    p.items.iter().flatten(),
                    pod,
                    inputs,
                    mode,
                )?);
            } else if let Some(p) = &source.service_account_token {
                let token = service_account_token(objects, pod, namespace, p).await?;
                payload.insert(p.path.clone(), file(token.into_bytes(), mode));
            } else if source.cluster_trust_bundle.is_some() {
                return Err(SetUpError::Unsupported("clusterTrustBundle"));
            }
        }
        return Ok(Plan::Files {
            plugin: PROJECTED,
            payload,
        });
    }
    Err(SetUpError::Unsupported(source_kind(volume)))
}

/// A claim's volume: the directory of the PersistentVolume it is bound
/// to (hostPath, or a `local` volume's path, which must exist).
async fn claim_plan(
    objects: &dyn ObjectSource,
    namespace: &str,
    claim: &str,
) -> Result<Plan, SetUpError> {
    let pvc = objects
        .persistent_volume_claim(namespace, claim)
        .await
        .map_err(SetUpError::Object)?
        .ok_or_else(|| SetUpError::Claim(format!("persistentvolumeclaim \"{claim}\" not found")))?;
    let volume = pvc
        .spec
        .as_ref()
        .and_then(|s| s.volume_name.as_deref())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            SetUpError::Claim(format!(
                "persistentvolumeclaim \"{claim}\" is not bound to a volume yet"
            ))
        })?;
    let pv = objects
        .persistent_volume(volume)
        .await
        .map_err(SetUpError::Object)?
        .ok_or_else(|| SetUpError::Claim(format!("persistentvolume \"{volume}\" not found")))?;
    let spec = pv.spec.clone().unwrap_or_default();
    if let Some(hp) = spec.host_path {
        return Ok(Plan::HostPath(hp));
    }
    if let Some(local) = spec.local {
        return Ok(Plan::HostPath(HostPathVolumeSource {
            path: local.path,
            type_: Some("Directory".into()),
        }));
    }
    Err(SetUpError::Unsupported(
        "persistentVolume source other than hostPath or local",
    ))
}

fn source_kind(v: &Volume) -> &'static str {
    let kinds: [(&'static str, bool); 15] = [
        ("persistentVolumeClaim", v.persistent_volume_claim.is_some()),
        ("ephemeral", v.ephemeral.is_some()),
        ("csi", v.csi.is_some()),
        ("nfs", v.nfs.is_some()),
        ("image", v.image.is_some()),
        ("iscsi", v.iscsi.is_some()),
        ("gitRepo", v.git_repo.is_some()),
        ("rbd", v.rbd.is_some()),
        ("cephfs", v.cephfs.is_some()),
        ("fc", v.fc.is_some()),
        ("glusterfs", v.glusterfs.is_some()),
        ("awsElasticBlockStore", v.aws_elastic_block_store.is_some()),
        ("gcePersistentDisk", v.gce_persistent_disk.is_some()),
        ("azureDisk", v.azure_disk.is_some()),
        ("azureFile", v.azure_file.is_some()),
    ];
    kinds
        .iter()
        .find(|(_, set)| *set)
        .map(|(k, _)| *k)
        .unwrap_or("of this kind")
}

/// A token of the pod's ServiceAccount bound to the pod, through the
/// TokenRequest API (cached and refreshed by the node's token manager).
async fn service_account_token(
    objects: &dyn ObjectSource,
    pod: &Pod,
    namespace: &str,
    projection: &ServiceAccountTokenProjection,
) -> Result<String, SetUpError> {
    let account = pod
        .spec
        .as_ref()
        .and_then(|s| s.service_account_name.as_deref())
        .filter(|n| !n.is_empty())
        .ok_or_else(|| SetUpError::Token("the pod has no serviceAccountName".into()))?;
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: projection
                .audience
                .iter()
                .filter(|a| !a.is_empty())
                .cloned()
                .collect(),
            expiration_seconds: Some(projection.expiration_seconds.unwrap_or(3600)),
            bound_object_ref: Some(BoundObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: pod.metadata.name.clone(),
                uid: pod.metadata.uid.clone(),
            }),
        },
        ..Default::default()
    };
    let answer = objects
        .service_account_token(namespace, account, &request)
        .await
        .map_err(|e| SetUpError::Token(e.to_string()))?;
    answer
        .status
        .map(|s| s.token)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| SetUpError::Token("the TokenRequest was answered without a token".into()))
}

async fn get_config_map(
    objects: &dyn ObjectSource,
    namespace: &str,
    name: &str,
    optional: bool,
) -> Result<ConfigMap, SetUpError> {
    match objects.config_map(namespace, name).await? {
        Some(cm) => Ok((*cm).clone()),
        // An optional volume whose ConfigMap is missing is empty.
        None if optional => Ok(ConfigMap::default()),
        None => Err(SetUpError::ConfigMapNotFound(name.to_string())),
    }
}

async fn get_secret(
    objects: &dyn ObjectSource,
    namespace: &str,
    name: &str,
    optional: bool,
) -> Result<Secret, SetUpError> {
    match objects.secret(namespace, name).await? {
        Some(s) => Ok((*s).clone()),
        None if optional => Ok(Secret::default()),
        None => Err(SetUpError::SecretNotFound(name.to_string())),
    }
}

fn file(data: Vec<u8>, mode: i32) -> FileProjection {
    FileProjection {
        data,
        mode: (mode as u32) & 0o7777,
    }
}

/// The files of a configMap volume or projection: every key (`data` and
/// `binaryData`), or just `items` at their paths.
fn config_map_payload(
    items: Option<&[KeyToPath]>,
    cm: &ConfigMap,
    default_mode: i32,
    optional: bool,
) -> Result<Payload, SetUpError> {
    let lookup = |key: &str| -> Option<Vec<u8>> {
        cm.data
            .as_ref()
            .and_then(|d| d.get(key))
            .map(|s| s.as_bytes().to_vec())
            .or_else(|| {
                cm.binary_data
                    .as_ref()
                    .and_then(|d| d.get(key))
                    .map(|b| b.0.clone())
            })
    };
    let mut payload = Payload::new();
    match items.filter(|i| !i.is_empty()) {
        None => {
            for (k, v) in cm.data.iter().flatten() {
                payload.insert(k.clone(), file(v.as_bytes().to_vec(), default_mode));
            }
            for (k, v) in cm.binary_data.iter().flatten() {
                payload.insert(k.clone(), file(v.0.clone(), default_mode));
            }
        }
        Some(items) => {
            for item in items {
                let Some(data) = lookup(&item.key) else {
                    if optional {
                        continue;
                    }
                    return Err(SetUpError::ConfigMapKey(item.key.clone()));
                };
                payload.insert(
                    item.path.clone(),
                    file(data, item.mode.unwrap_or(default_mode)),
                );
            }
        }
    }
    Ok(payload)
}

/// The files of a secret volume or projection.
fn secret_payload(
    items: Option<&[KeyToPath]>,
    secret: &Secret,
    default_mode: i32,
    optional: bool,
) -> Result<Payload, SetUpError> {
    let mut payload = Payload::new();
    match items.filter(|i| !i.is_empty()) {
        None => {
            for (k, v) in secret.data.iter().flatten() {
                payload.insert(k.clone(), file(v.0.clone(), default_mode));
            }
        }
        Some(items) => {
            for item in items {
                let Some(data) = secret.data.as_ref().and_then(|d| d.get(&item.key)) else {
                    if optional {
                        continue;
                    }
                    return Err(SetUpError::SecretKey(item.key.clone()));
                };
                payload.insert(
                    item.path.clone(),
                    file(data.0.clone(), item.mode.unwrap_or(default_mode)),
                );
            }
        }
    }
    Ok(payload)
}

/// The files of a downwardAPI volume or projection.
fn downward_payload<'a>(
    items: impl Iterator<Item = &'a DownwardAPIVolumeFile>,
    pod: &Pod,
    inputs: &DownwardInputs,
    default_mode: i32,
) -> Result<Payload, SetUpError> {
    let mut payload = Payload::new();
    for item in items {
        let value = if let Some(sel) = &item.field_ref {
            downward::pod_field_value(pod, sel, inputs)?
        } else if let Some(sel) = &item.resource_field_ref {
            downward::container_resource_value(sel, pod, None, &inputs.allocatable)?
        } else {
            String::new()
        };
        payload.insert(
            item.path.clone(),
            file(value.into_bytes(), item.mode.unwrap_or(default_mode)),
        );
    }
    Ok(payload)
}

fn apply(volumes_dir: &Path, name: &str, plan: Plan) -> Result<MountedVolume, SetUpError> {
    match plan {
        Plan::EmptyDir => {
            let dir = volumes_dir.join(EMPTY_DIR).join(name);
            make_dir_with_mode(&dir, EMPTY_DIR_MODE).map_err(SetUpError::Io)?;
            Ok(MountedVolume {
                path: dir,
                read_only: false,
            })
        }
        Plan::HostPath(src) => {
            check_host_path(&src)?;
            Ok(MountedVolume {
                path: PathBuf::from(src.path),
                read_only: false,
            })
        }
        Plan::Files { plugin, payload } => {
            let dir = volumes_dir.join(plugin).join(name);
            make_dir_with_mode(&dir, EMPTY_DIR_MODE).map_err(SetUpError::Io)?;
            let written = atomic_writer::write(&dir, &payload).map_err(SetUpError::Io)?;
            if written {
                tracing::debug!(volume = %name, plugin, "volume contents written");
            }
            Ok(MountedVolume {
                path: dir,
                read_only: true,
            })
        }
    }
}

/// Create `dir` (and its parents) if missing, giving `dir` itself `mode`
/// regardless of the umask. An existing directory keeps its mode: a
/// container may have changed it.
fn make_dir_with_mode(dir: &Path, mode: u32) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        fs::create_dir_all(parent)?;
    }
    match fs::DirBuilder::new().mode(mode).create(dir) {
        Ok(()) => fs::set_permissions(dir, fs::Permissions::from_mode(mode)),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        Err(e) => Err(e),
    }
}

/// The hostPath `type` checks, following symlinks as Kubernetes does.
fn check_host_path(src: &HostPathVolumeSource) -> Result<(), SetUpError> {
    let path = Path::new(&src.path);
    if !path.is_absolute() {
        return Err(SetUpError::RelativeHostPath(src.path.clone()));
    }
    let not_a = |expected| SetUpError::HostPathType {
        path: src.path.clone(),
        expected,
    };
    let file_type = || fs::metadata(path).map(|m| m.file_type()).ok();
    match src.type_.as_deref().unwrap_or_default() {
        "" => Ok(()),
        "DirectoryOrCreate" => {
            if file_type().is_none() {
                fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o755)
                    .create(path)
                    .and_then(|()| fs::set_permissions(path, fs::Permissions::from_mode(0o755)))
                    .map_err(SetUpError::Io)?;
            }
            match file_type() {
                Some(t) if t.is_dir() => Ok(()),
                _ => Err(not_a("directory")),
            }
        }
        "Directory" => match file_type() {
            Some(t) if t.is_dir() => Ok(()),
            _ => Err(not_a("directory")),
        },
        "FileOrCreate" => {
            if file_type().is_none() {
                // The parent must exist, as in Kubernetes.
                let created = fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .mode(0o644)
                    .open(path);
                if let Err(e) = created {
                    if e.kind() != io::ErrorKind::AlreadyExists {
                        return Err(SetUpError::Io(io::Error::new(
                            e.kind(),
                            format!("open {}: {e}", src.path),
                        )));
                    }
                }
            }
            match file_type() {
                Some(t) if t.is_file() => Ok(()),
                _ => Err(not_a("file")),
            }
        }
        "File" => match file_type() {
            Some(t) if t.is_file() => Ok(()),
            _ => Err(not_a("file")),
        },
        "Socket" => match file_type() {
            Some(t) if t.is_socket() => Ok(()),
            _ => Err(not_a("socket file")),
        },
        "CharDevice" => match file_type() {
            Some(t) if t.is_char_device() => Ok(()),
            _ => Err(not_a("character device")),
        },
        "BlockDevice" => match file_type() {
            Some(t) if t.is_block_device() => Ok(()),
            _ => Err(not_a("block device")),
        },
        other => Err(SetUpError::InvalidHostPathType(other.to_string())),
    }
}

/// The runtime mounts of `container`'s `volumeMounts`, from the pod's set
/// up `volumes`. `env` is the container's resolved environment, for
/// `subPathExpr`. A `subPath` that does not exist is created as a
/// directory (with the volume's mode); the mount is then of its real path.
pub fn make_mounts(
    container: &Container,
    volumes: &PodVolumes,
    env: &[(String, String)],
) -> Result<Vec<Mount>, MountError> {
    let mut mounts = Vec::new();
    for m in container.volume_mounts.iter().flatten() {
        let volume = volumes.get(&m.name).ok_or_else(|| MountError::NoVolume {
            volume: m.name.clone(),
            container: container.name.clone(),
        })?;
        let mut sub_path = m.sub_path.clone().unwrap_or_default();
        if let Some(expr) = m.sub_path_expr.as_deref().filter(|e| !e.is_empty()) {
            sub_path = expand_sub_path_expr(expr, env)?;
        }
        let host_path = if sub_path.is_empty() {
            volume.path.clone()
        } else {
            sub_path_host_path(&volume.path, &sub_path, &m.name, &container.name)?
        };
        mounts.push(Mount {
            host_path,
            container_path: m.mount_path.clone(),
            read_only: m.read_only.unwrap_or(false) || volume.read_only,
        });
    }
    Ok(mounts)
}

/// `$(VAR)` in a `subPathExpr` from the container's environment; a
/// variable that is missing or empty is an error.
fn expand_sub_path_expr(expr: &str, env: &[(String, String)]) -> Result<String, MountError> {
    let mut missing = std::cell::RefCell::new(Vec::<String>::new());
    let expanded = expand(expr, |name| {
        match env.iter().rev().find(|(k, _)| k == name) {
            Some((_, v)) if !v.is_empty() => Some(v.clone()),
            _ => {
                missing.borrow_mut().push(name.to_string());
                Some(String::new())
            }
        }
    });
    let missing = missing.get_mut();
    if !missing.is_empty() {
        missing.sort();
        missing.dedup();
        return Err(MountError::SubPathExpr(missing.join(", ")));
    }
    Ok(expanded)
}

fn sub_path_host_path(
    volume: &Path,
    sub_path: &str,
    mount: &str,
    container: &str,
) -> Result<PathBuf, MountError> {
    if Path::new(sub_path).is_absolute() {
        return Err(MountError::AbsoluteSubPath(sub_path.to_string()));
    }
    if sub_path.split('/').any(|c| c == "..") {
        return Err(MountError::SubPathBacksteps(sub_path.to_string()));
    }
    let create_err = |source| MountError::SubPathCreate {
        mount: mount.to_string(),
        container: container.to_string(),
        source,
    };
    let escapes = || MountError::SubPathEscapes {
        sub_path: sub_path.to_string(),
        volume: volume.to_path_buf(),
    };
    let base = volume.canonicalize().map_err(create_err)?;
    let full = volume.join(sub_path);
    if !full.exists() {
        let perm = fs::metadata(&base)
            .map_err(create_err)?
            .permissions()
            .mode()
            & 0o7777;
        make_sub_dirs(&base, sub_path, perm).map_err(|e| match e {
            SubDirError::Escapes => escapes(),
            SubDirError::Io(e) => create_err(e),
        })?;
    }
    let real = full.canonicalize().map_err(create_err)?;
    if !real.starts_with(&base) {
        return Err(escapes());
    }
    Ok(real)
}

enum SubDirError {
    Escapes,
    Io(io::Error),
}

/// Create the missing directories of `sub_path` under `base` one by one,
/// never through a symlink that leads out of the volume.
fn make_sub_dirs(base: &Path, sub_path: &str, perm: u32) -> Result<(), SubDirError> {
    let mut current = base.to_path_buf();
    for c in Path::new(sub_path).components() {
        let Component::Normal(part) = c else {
            continue;
        };
        let next = current.join(part);
        match fs::symlink_metadata(&next) {
            Ok(m) if m.file_type().is_symlink() => {
                let real = next.canonicalize().map_err(SubDirError::Io)?;
                if !real.starts_with(base) {
                    return Err(SubDirError::Escapes);
                }
                current = real;
            }
            Ok(_) => current = next,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::DirBuilder::new()
                    .mode(perm)
                    .create(&next)
                    .map_err(SubDirError::Io)?;
                fs::set_permissions(&next, fs::Permissions::from_mode(perm))
                    .map_err(SubDirError::Io)?;
                current = next;
            }
            Err(e) => return Err(SubDirError::Io(e)),
        }
    }
    Ok(())
}

/// Remove `<root>/pods/<uid>` and everything in it once the pod is gone.
/// Symlinks are removed, never followed, and hostPath volumes are not
/// under it, so nothing outside the pod's directory is touched.
pub async fn remove_pod_dir(root: &Path, uid: &str) -> io::Result<()> {
    if !is_single_component(uid) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid pod UID {uid:?}"),
        ));
    }
    let dir = pod_dir(root, uid);
    tokio::task::spawn_blocking(move || match fs::remove_dir_all(&dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        r => r,
    })
    .await
    .map_err(io::Error::other)?
}

/// Remove the directories of pods not in `keep` (left by pods deleted while
/// the kubelet was down); returns the UIDs removed.
pub async fn remove_orphaned_pod_dirs(
    root: &Path,
    keep: &HashSet<String>,
) -> io::Result<Vec<String>> {
    let pods = root.join("pods");
    let mut entries = match tokio::fs::read_dir(&pods).await {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut removed = Vec::new();
    while let Some(entry) = entries.next_entry().await? {
        let Some(uid) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if keep.contains(&uid) || !entry.file_type().await?.is_dir() {
            continue;
        }
        remove_pod_dir(root, &uid).await?;
        removed.push(uid);
    }
    removed.sort();
    Ok(removed)
}

/// A name usable as one path component.
fn is_single_component(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\0'])
}

#[cfg(test)]
mod tests;
