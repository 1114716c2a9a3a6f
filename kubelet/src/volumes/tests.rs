//! Unit tests of volume set-up, container mounts and clean-up.

use super::*;
use crate::downward::NodeAllocatable;
use crate::objects::MemoryObjects;
use k8s_openapi::api::core::v1::{
    ConfigMapProjection, ConfigMapVolumeSource, DownwardAPIProjection, DownwardAPIVolumeSource,
    EmptyDirVolumeSource, ObjectFieldSelector, PodSpec, ProjectedVolumeSource,
    ResourceFieldSelector, ResourceRequirements, SecretProjection, SecretVolumeSource,
    ServiceAccountTokenProjection, VolumeMount, VolumeProjection,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::ByteString;

const UID: &str = "6f1c-uid";

fn meta(name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: Some("ns".into()),
        ..Default::default()
    }
}

fn config_map(name: &str, data: &[(&str, &str)]) -> ConfigMap {
    ConfigMap {
        metadata: meta(name),
        data: Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
        ..Default::default()
    }
}

fn secret(name: &str, data: &[(&str, &str)]) -> Secret {
    Secret {
        metadata: meta(name),
        data: Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                .collect(),
        ),
        ..Default::default()
    }
}

fn objects() -> MemoryObjects {
    let o = MemoryObjects::new();
    o.put_config_map(config_map(
        "app-config",
        &[("app.properties", "color=blue"), ("level", "debug")],
    ));
    o.put_secret(secret(
        "creds",
        &[("user", "admin"), ("password", "s3cret")],
    ));
    o
}

fn volume(name: &str) -> Volume {
    Volume {
        name: name.into(),
        ..Default::default()
    }
}

fn pod(volumes: Vec<Volume>) -> Pod {
    Pod {
        metadata: ObjectMeta {
            uid: Some(UID.into()),
            labels: Some(
                [
                    ("app".to_string(), "web".to_string()),
                    ("tier".to_string(), "front".to_string()),
                ]
                .into(),
            ),
            ..meta("web-0")
        },
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "app".into(),
                resources: Some(ResourceRequirements {
                    limits: Some([("memory".to_string(), Quantity("64Mi".into()))].into()),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            volumes: Some(volumes),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn inputs() -> DownwardInputs {
    DownwardInputs {
        host_ips: vec!["10.0.0.1".into()],
        pod_ips: vec!["10.1.0.2".into()],
        allocatable: NodeAllocatable {
            cpu_millis: 2000,
            memory_bytes: 4 << 30,
            ephemeral_storage_bytes: 0,
        },
    }
}

async fn setup(root: &Path, p: &Pod, o: &MemoryObjects) -> Result<PodVolumes, VolumeError> {
    setup_pod_volumes(root, p, &inputs(), o).await
}

fn mode(p: &Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

fn read(p: &Path) -> String {
    fs::read_to_string(p).unwrap()
}

fn data_link(dir: &Path) -> String {
    fs::read_link(dir.join("..data"))
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

fn visible(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with(".."))
        .collect();
    v.sort();
    v
}

fn cm_volume(name: &str, source: ConfigMapVolumeSource) -> Volume {
    Volume {
        config_map: Some(source),
        ..volume(name)
    }
}

#[tokio::test]
async fn empty_dir() {
    let root = tempfile::tempdir().unwrap();
    let p = pod(vec![Volume {
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..volume("scratch")
    }]);
    let vols = setup(root.path(), &p, &objects()).await.unwrap();
    let dir = root
        .path()
        .join("pods")
        .join(UID)
        .join("volumes/kubernetes.io~empty-dir/scratch");
    assert_eq!(
        vols["scratch"],
        MountedVolume {
            path: dir.clone(),
            read_only: false,
        }
    );
    assert_eq!(mode(&dir), 0o777);
    assert_eq!(mode(&root.path().join("pods").join(UID)), 0o750);
    // A second sync keeps what the containers wrote.
    fs::write(dir.join("kept"), "x").unwrap();
    setup(root.path(), &p, &objects()).await.unwrap();
    assert_eq!(read(&dir.join("kept")), "x");
}

#[tokio::test]
async fn config_map_layout_and_modes() {
    let root = tempfile::tempdir().unwrap();
    let p = pod(vec![
        cm_volume(
            "all",
            ConfigMapVolumeSource {
                name: "app-config".into(),
                ..Default::default()
            },
        ),
        cm_volume(
            "some",
            ConfigMapVolumeSource {
                name: "app-config".into(),
                default_mode: Some(0o600),
                items: Some(vec![
                    KeyToPath {
                        key: "level".into(),
                        path: "conf/log-level".into(),
                        mode: Some(0o400),
                    },
                    KeyToPath {
                        key: "app.properties".into(),
                        path: "app.properties".into(),
                        mode: None,
                    },
                ]),
                ..Default::default()
            },
        ),
    ]);
    let vols = setup(root.path(), &p, &objects()).await.unwrap();
    let all = &vols["all"];
    assert!(all.read_only);
    assert!(all.path.ends_with("volumes/kubernetes.io~configmap/all"));
    assert_eq!(mode(&all.path), 0o777);
    assert_eq!(visible(&all.path), ["app.properties", "level"]);
    let ts = data_link(&all.path);
    assert!(ts.starts_with("..") && ts != "..data", "{ts}");
    assert_eq!(
        fs::read_link(all.path.join("level")).unwrap(),
        Path::new("..data/level")
    );
    assert_eq!(read(&all.path.join("app.properties")), "color=blue");
    assert_eq!(mode(&all.path.join(&ts).join("level")), 0o644);

    let some = &vols["some"].path;
    assert_eq!(visible(some), ["app.properties", "conf"]);
    assert_eq!(read(&some.join("conf/log-level")), "debug");
    let ts = data_link(some);
    assert_eq!(mode(&some.join(&ts).join("conf/log-level")), 0o400);
    assert_eq!(mode(&some.join(&ts).join("app.properties")), 0o600);
}

#[tokio::test]
async fn config_map_updates_only_on_change() {
    let root = tempfile::tempdir().unwrap();
    let o = objects();
    let p = pod(vec![cm_volume(
        "cfg",
        ConfigMapVolumeSource {
            name: "app-config".into(),
            ..Default::default()
        },
    )]);
    let dir = setup(root.path(), &p, &o).await.unwrap()["cfg"]
        .path
        .clone();
    let first = data_link(&dir);
    setup(root.path(), &p, &o).await.unwrap();
    assert_eq!(data_link(&dir), first, "same payload, same data dir");

    o.put_config_map(config_map(
        "app-config",
        &[("level", "info"), ("new-key", "1")],
    ));
    setup(root.path(), &p, &o).await.unwrap();
    let second = data_link(&dir);
    assert_ne!(second, first);
    assert!(!dir.join(&first).exists());
    assert_eq!(read(&dir.join("level")), "info");
    assert_eq!(read(&dir.join("new-key")), "1");
    assert_eq!(visible(&dir), ["level", "new-key"]);
}

#[tokio::test]
async fn config_map_errors_and_optional() {
    let root = tempfile::tempdir().unwrap();
    let missing = pod(vec![cm_volume(
        "cfg",
        ConfigMapVolumeSource {
            name: "absent".into(),
            ..Default::default()
        },
    )]);
    assert_eq!(
        setup(root.path(), &missing, &objects())
            .await
            .unwrap_err()
            .to_string(),
        "MountVolume.SetUp failed for volume \"cfg\" : configmap \"absent\" not found"
    );

    let item = |optional| {
        pod(vec![cm_volume(
            "cfg",
            ConfigMapVolumeSource {
                name: "app-config".into(),
                optional,
                items: Some(vec![KeyToPath {
                    key: "nope".into(),
                    path: "nope".into(),
                    mode: None,
                }]),
                ..Default::default()
            },
        )])
    };
    assert_eq!(
        setup(root.path(), &item(None), &objects())
            .await
            .unwrap_err()
            .to_string(),
        "MountVolume.SetUp failed for volume \"cfg\" : configmap references non-existent config key: nope"
    );
    let vols = setup(root.path(), &item(Some(true)), &objects())
        .await
        .unwrap();
    assert!(visible(&vols["cfg"].path).is_empty());

    let optional = pod(vec![cm_volume(
        "opt",
        ConfigMapVolumeSource {
            name: "absent".into(),
            optional: Some(true),
            ..Default::default()
        },
    )]);
    let vols = setup(root.path(), &optional, &objects()).await.unwrap();
    let dir = &vols["opt"].path;
    assert!(dir.join("..data").is_dir());
    assert!(visible(dir).is_empty());
}

#[tokio::test]
async fn secret_volume() {
    let root = tempfile::tempdir().unwrap();
    let o = objects();
    let p = pod(vec![Volume {
        secret: Some(SecretVolumeSource {
            secret_name: Some("creds".into()),
            default_mode: Some(0o400),
            ..Default::default()
        }),
        ..volume("creds")
    }]);
    let vols = setup(root.path(), &p, &o).await.unwrap();
    let v = &vols["creds"];
    assert!(v.read_only);
    assert!(v.path.ends_with("kubernetes.io~secret/creds"));
    assert_eq!(read(&v.path.join("password")), "s3cret");
    let ts = data_link(&v.path);
    assert_eq!(mode(&v.path.join(&ts).join("password")), 0o400);

    o.put_secret(secret("creds", &[("user", "root")]));
    setup(root.path(), &p, &o).await.unwrap();
    assert_eq!(visible(&v.path), ["user"]);
    assert_eq!(read(&v.path.join("user")), "root");

    o.remove_secret("ns", "creds");
    assert_eq!(
        setup(root.path(), &p, &o).await.unwrap_err().to_string(),
        "MountVolume.SetUp failed for volume \"creds\" : secret \"creds\" not found"
    );
    let key = pod(vec![Volume {
        secret: Some(SecretVolumeSource {
            secret_name: Some("creds".into()),
            items: Some(vec![KeyToPath {
                key: "token".into(),
                path: "t".into(),
                mode: None,
            }]),
            ..Default::default()
        }),
        ..volume("creds")
    }]);
    o.put_secret(secret("creds", &[("user", "root")]));
    assert_eq!(
        setup(root.path(), &key, &o).await.unwrap_err().to_string(),
        "MountVolume.SetUp failed for volume \"creds\" : references non-existent secret key: token"
    );
}

fn field_item(path: &str, field: &str) -> DownwardAPIVolumeFile {
    DownwardAPIVolumeFile {
        path: path.into(),
        field_ref: Some(ObjectFieldSelector {
            api_version: Some("v1".into()),
            field_path: field.into(),
        }),
        ..Default::default()
    }
}

#[tokio::test]
async fn downward_api_volume() {
    let root = tempfile::tempdir().unwrap();
    let mut p = pod(vec![Volume {
        downward_api: Some(DownwardAPIVolumeSource {
            default_mode: None,
            items: Some(vec![
                field_item("labels", "metadata.labels"),
                field_item("name", "metadata.name"),
                DownwardAPIVolumeFile {
                    path: "mem_limit".into(),
                    resource_field_ref: Some(ResourceFieldSelector {
                        container_name: Some("app".into()),
                        divisor: Some(Quantity("1Mi".into())),
                        resource: "limits.memory".into(),
                    }),
                    mode: Some(0o444),
                    ..Default::default()
                },
                DownwardAPIVolumeFile {
                    path: "cpu_limit".into(),
                    resource_field_ref: Some(ResourceFieldSelector {
                        container_name: Some("app".into()),
                        divisor: None,
                        resource: "limits.cpu".into(),
                    }),
                    ..Default::default()
                },
            ]),
        }),
        ..volume("podinfo")
    }]);
    let o = objects();
    let vols = setup(root.path(), &p, &o).await.unwrap();
    let dir = &vols["podinfo"].path;
    assert!(dir.ends_with("kubernetes.io~downward-api/podinfo"));
    assert_eq!(read(&dir.join("labels")), "app=\"web\"\ntier=\"front\"");
    assert_eq!(read(&dir.join("name")), "web-0");
    assert_eq!(read(&dir.join("mem_limit")), "64");
    assert_eq!(read(&dir.join("cpu_limit")), "2");
    let ts = data_link(dir);
    assert_eq!(mode(&dir.join(&ts).join("mem_limit")), 0o444);
    assert_eq!(mode(&dir.join(&ts).join("name")), 0o644);

    // A label change reaches the file on the next sync.
    p.metadata
        .labels
        .as_mut()
        .unwrap()
        .insert("app".into(), "api".into());
    setup(root.path(), &p, &o).await.unwrap();
    assert_eq!(read(&dir.join("labels")), "app=\"api\"\ntier=\"front\"");
    assert_ne!(data_link(dir), ts);
}

#[tokio::test]
async fn projected_volume() {
    let root = tempfile::tempdir().unwrap();
    let projected = |extra: Option<VolumeProjection>| {
        let mut sources = vec![
            VolumeProjection {
                config_map: Some(ConfigMapProjection {
                    name: "app-config".into(),
                    items: Some(vec![KeyToPath {
                        key: "level".into(),
                        path: "config/level".into(),
                        mode: None,
                    }]),
                    optional: None,
                }),
                ..Default::default()
            },
            VolumeProjection {
                secret: Some(SecretProjection {
                    name: "creds".into(),
                    items: None,
                    optional: None,
                }),
                ..Default::default()
            },
            VolumeProjection {
                downward_api: Some(DownwardAPIProjection {
                    items: Some(vec![field_item("namespace", "metadata.namespace")]),
                }),
                ..Default::default()
            },
        ];
        sources.extend(extra);
        pod(vec![Volume {
            projected: Some(ProjectedVolumeSource {
                default_mode: Some(0o440),
                sources: Some(sources),
            }),
            ..volume("all-in-one")
        }])
    };
    let vols = setup(root.path(), &projected(None), &objects())
        .await
        .unwrap();
    let v = &vols["all-in-one"];
    assert!(v.read_only);
    assert!(v.path.ends_with("kubernetes.io~projected/all-in-one"));
    assert_eq!(
        visible(&v.path),
        ["config", "namespace", "password", "user"]
    );
    assert_eq!(read(&v.path.join("config/level")), "debug");
    assert_eq!(read(&v.path.join("user")), "admin");
    assert_eq!(read(&v.path.join("namespace")), "ns");
    let ts = data_link(&v.path);
    assert_eq!(mode(&v.path.join(&ts).join("user")), 0o440);

    // A token of the pod's ServiceAccount, bound to the pod.
    let token = VolumeProjection {
        service_account_token: Some(ServiceAccountTokenProjection {
            path: "token".into(),
            expiration_seconds: Some(3607),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut with_token = projected(Some(token));
    with_token.spec.as_mut().unwrap().service_account_name = Some("default".into());
    let objs = objects();
    assert_eq!(
        setup(root.path(), &with_token, &objs)
            .await
            .unwrap_err()
            .to_string(),
        "MountVolume.SetUp failed for volume \"all-in-one\" : failed to fetch token: no token source: serviceaccounts \"default\" not found"
    );
    objs.put_service_account("ns", "default");
    let vols = setup(root.path(), &with_token, &objs).await.unwrap();
    let v = &vols["all-in-one"];
    assert_eq!(read(&v.path.join("token")), "memory-token-1");
    assert_eq!(
        visible(&v.path),
        ["config", "namespace", "password", "token", "user"]
    );
}

fn host_path_pod(path: &Path, type_: Option<&str>) -> Pod {
    pod(vec![Volume {
        host_path: Some(HostPathVolumeSource {
            path: path.to_string_lossy().into_owned(),
            type_: type_.map(Into::into),
        }),
        ..volume("host")
    }])
}

async fn host_path(root: &Path, path: &Path, type_: Option<&str>) -> Result<PodVolumes, String> {
    setup(root, &host_path_pod(path, type_), &objects())
        .await
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn host_path_types() {
    let root = tempfile::tempdir().unwrap();
    let node = tempfile::tempdir().unwrap();
    let n = node.path();
    let fail = |p: &Path, what: &str| {
        format!(
            "MountVolume.SetUp failed for volume \"host\" : hostPath type check failed: {} is not a {what}",
            p.display()
        )
    };

    // No type: no check, the path as is.
    let vols = host_path(root.path(), &n.join("anything"), None)
        .await
        .unwrap();
    assert_eq!(
        vols["host"],
        MountedVolume {
            path: n.join("anything"),
            read_only: false,
        }
    );

    let created = n.join("a/b/c");
    host_path(root.path(), &created, Some("DirectoryOrCreate"))
        .await
        .unwrap();
    assert!(created.is_dir());
    assert_eq!(mode(&created), 0o755);
    host_path(root.path(), &created, Some("Directory"))
        .await
        .unwrap();
    assert_eq!(
        host_path(root.path(), &n.join("missing"), Some("Directory"))
            .await
            .unwrap_err(),
        fail(&n.join("missing"), "directory")
    );

    let file = n.join("a/file");
    host_path(root.path(), &file, Some("FileOrCreate"))
        .await
        .unwrap();
    assert!(file.is_file());
    assert_eq!(mode(&file) & 0o644, 0o644);
    host_path(root.path(), &file, Some("File")).await.unwrap();
    assert_eq!(
        host_path(root.path(), &created, Some("File"))
            .await
            .unwrap_err(),
        fail(&created, "file")
    );
    assert_eq!(
        host_path(root.path(), &file, Some("DirectoryOrCreate"))
            .await
            .unwrap_err(),
        fail(&file, "directory")
    );
    // FileOrCreate needs the parent directory.
    assert!(
        host_path(root.path(), &n.join("no/parent"), Some("FileOrCreate"))
            .await
            .is_err()
    );

    let sock = n.join("app.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    host_path(root.path(), &sock, Some("Socket")).await.unwrap();
    assert_eq!(
        host_path(root.path(), &file, Some("Socket"))
            .await
            .unwrap_err(),
        fail(&file, "socket file")
    );
    host_path(root.path(), Path::new("/dev/null"), Some("CharDevice"))
        .await
        .unwrap();
    assert_eq!(
        host_path(root.path(), &file, Some("BlockDevice"))
            .await
            .unwrap_err(),
        fail(&file, "block device")
    );
    assert_eq!(
        host_path(root.path(), &file, Some("Weird"))
            .await
            .unwrap_err(),
        "MountVolume.SetUp failed for volume \"host\" : Weird is an invalid volume type"
    );
}

fn mount(name: &str, path: &str) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        ..Default::default()
    }
}

fn container(mounts: Vec<VolumeMount>) -> Container {
    Container {
        name: "app".into(),
        volume_mounts: Some(mounts),
        ..Default::default()
    }
}

async fn mount_setup(root: &Path) -> PodVolumes {
    let p = pod(vec![
        Volume {
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..volume("data")
        },
        cm_volume(
            "cfg",
            ConfigMapVolumeSource {
                name: "app-config".into(),
                ..Default::default()
            },
        ),
    ]);
    setup(root, &p, &objects()).await.unwrap()
}

#[tokio::test]
async fn mounts() {
    let root = tempfile::tempdir().unwrap();
    let vols = mount_setup(root.path()).await;
    let c = container(vec![
        mount("data", "/data"),
        VolumeMount {
            read_only: Some(true),
            ..mount("data", "/ro")
        },
        mount("cfg", "/etc/app"),
    ]);
    let mounts = make_mounts(&c, &vols, &[]).unwrap();
    assert_eq!(
        mounts,
        vec![
            Mount {
                host_path: vols["data"].path.clone(),
                container_path: "/data".into(),
                read_only: false,
            },
            Mount {
                host_path: vols["data"].path.clone(),
                container_path: "/ro".into(),
                read_only: true,
            },
            // ConfigMaps are always read-only.
            Mount {
                host_path: vols["cfg"].path.clone(),
                container_path: "/etc/app".into(),
                read_only: true,
            },
        ]
    );
    assert_eq!(
        make_mounts(&container(vec![mount("nope", "/x")]), &vols, &[])
            .unwrap_err()
            .to_string(),
        "cannot find volume \"nope\" to mount into container \"app\""
    );
}

#[tokio::test]
async fn sub_paths() {
    let root = tempfile::tempdir().unwrap();
    let vols = mount_setup(root.path()).await;
    let data = vols["data"].path.canonicalize().unwrap();
    let sub = |name: &str, sub: &str| VolumeMount {
        sub_path: Some(sub.into()),
        ..mount(name, "/m")
    };

    // A missing subPath becomes a directory with the volume's mode.
    let m = make_mounts(&container(vec![sub("data", "logs/app")]), &vols, &[]).unwrap();
    assert_eq!(m[0].host_path, data.join("logs/app"));
    assert!(data.join("logs/app").is_dir());
    assert_eq!(mode(&data.join("logs")), 0o777);

    // A configMap key: the file itself, read-only.
    let m = make_mounts(&container(vec![sub("cfg", "level")]), &vols, &[]).unwrap();
    assert!(m[0].read_only);
    assert!(m[0].host_path.is_file());
    assert_eq!(read(&m[0].host_path), "debug");

    let err = |sub_path: &str| {
        make_mounts(&container(vec![sub("data", sub_path)]), &vols, &[])
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        err("/etc"),
        "error SubPath `/etc` must not be an absolute path"
    );
    assert_eq!(
        err("a/../../x"),
        "unable to provision SubPath `a/../../x`: must not contain '..'"
    );

    // A symlink leading out of the volume is refused.
    let outside = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(outside.path(), data.join("escape")).unwrap();
    assert!(err("escape").starts_with("subpath \"escape\" not within volume path"));
    assert!(err("escape/new").starts_with("subpath \"escape/new\" not within volume path"));
    assert!(!outside.path().join("new").exists());
}

#[tokio::test]
async fn sub_path_expr() {
    let root = tempfile::tempdir().unwrap();
    let vols = mount_setup(root.path()).await;
    let c = container(vec![VolumeMount {
        sub_path_expr: Some("pods/$(POD_NAME)".into()),
        ..mount("data", "/out")
    }]);
    let env = vec![("POD_NAME".to_string(), "web-0".to_string())];
    let m = make_mounts(&c, &vols, &env).unwrap();
    let data = vols["data"].path.canonicalize().unwrap();
    assert_eq!(m[0].host_path, data.join("pods/web-0"));
    assert!(data.join("pods/web-0").is_dir());

    let c = container(vec![VolumeMount {
        sub_path_expr: Some("$(B)/$(A)/$(B)".into()),
        ..mount("data", "/out")
    }]);
    let env = vec![("A".to_string(), String::new())];
    assert_eq!(
        make_mounts(&c, &vols, &env).unwrap_err().to_string(),
        "missing value for A, B"
    );
}

#[tokio::test]
async fn remove_pod_dirs() {
    let root = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    fs::write(outside.path().join("precious"), "keep").unwrap();
    let vols = mount_setup(root.path()).await;
    // A link inside a volume to elsewhere on the node (a container could
    // make one) is removed, not followed.
    std::os::unix::fs::symlink(outside.path(), vols["data"].path.join("link")).unwrap();
    fs::create_dir_all(root.path().join("pods/other-uid/volumes")).unwrap();

    remove_pod_dir(root.path(), UID).await.unwrap();
    assert!(!root.path().join("pods").join(UID).exists());
    assert_eq!(read(&outside.path().join("precious")), "keep");
    // Removing again is fine.
    remove_pod_dir(root.path(), UID).await.unwrap();
    assert!(remove_pod_dir(root.path(), "..").await.is_err());

    fs::create_dir_all(root.path().join("pods/keep-uid")).unwrap();
    let keep: HashSet<String> = ["keep-uid".to_string()].into();
    let removed = remove_orphaned_pod_dirs(root.path(), &keep).await.unwrap();
    assert_eq!(removed, ["other-uid"]);
    assert!(root.path().join("pods/keep-uid").is_dir());
}

#[tokio::test]
async fn bad_names_are_refused() {
    let root = tempfile::tempdir().unwrap();
    let mut p = pod(vec![]);
    p.metadata.uid = Some("../x".into());
    assert_eq!(
        setup(root.path(), &p, &objects())
            .await
            .unwrap_err()
            .to_string(),
        "invalid pod UID \"../x\""
    );
    let p = pod(vec![Volume {
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..volume("a/b")
    }]);
    assert!(setup(root.path(), &p, &objects()).await.is_err());
    let p = pod(vec![volume("nothing")]);
    assert_eq!(
        setup(root.path(), &p, &objects())
            .await
            .unwrap_err()
            .to_string(),
        "MountVolume.SetUp failed for volume \"nothing\" : volume source of this kind is not supported by this kubelet"
    );
}
