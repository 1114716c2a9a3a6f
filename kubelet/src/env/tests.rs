//! Unit tests of environment resolution.

use super::*;
use crate::downward::NodeAllocatable;
use crate::objects::MemoryObjects;
use k8s_openapi::api::core::v1::{
    ConfigMapEnvSource, ConfigMapKeySelector, EnvFromSource, EnvVar, EnvVarSource,
    ObjectFieldSelector, PodSpec, ResourceFieldSelector, ResourceRequirements, SecretEnvSource,
    SecretKeySelector,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::ByteString;

fn meta(name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: Some("ns".into()),
        ..Default::default()
    }
}

fn objects() -> MemoryObjects {
    let objects = MemoryObjects::new();
    objects.put_config_map(ConfigMap {
        metadata: meta("cfg"),
        data: Some(
            [
                ("HOST", "db.local"),
                ("PORT", "5432"),
                ("bad=key", "x"),
                ("MODE", "from-configmap"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ),
        ..Default::default()
    });
    objects.put_secret(Secret {
        metadata: meta("creds"),
        data: Some(
            [
                ("USER".to_string(), ByteString(b"admin".to_vec())),
                ("PASSWORD".to_string(), ByteString(b"s3cret".to_vec())),
            ]
            .into(),
        ),
        ..Default::default()
    });
    objects
}

fn pod(container: Container) -> Pod {
    Pod {
        metadata: ObjectMeta {
            uid: Some("uid-1".into()),
            labels: Some([("app".to_string(), "web".to_string())].into()),
            ..meta("web")
        },
        spec: Some(PodSpec {
            node_name: Some("node-a".into()),
            containers: vec![container],
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn value(name: &str, v: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(v.into()),
        value_from: None,
    }
}

fn from(name: &str, source: EnvVarSource) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: None,
        value_from: Some(source),
    }
}

fn cm_key(name: &str, key: &str, optional: Option<bool>) -> EnvVarSource {
    EnvVarSource {
        config_map_key_ref: Some(ConfigMapKeySelector {
            name: name.into(),
            key: key.into(),
            optional,
        }),
        ..Default::default()
    }
}

fn secret_key(name: &str, key: &str, optional: Option<bool>) -> EnvVarSource {
    EnvVarSource {
        secret_key_ref: Some(SecretKeySelector {
            name: name.into(),
            key: key.into(),
            optional,
        }),
        ..Default::default()
    }
}

fn inputs() -> DownwardInputs {
    DownwardInputs {
        host_ips: vec!["192.168.1.10".into()],
        pod_ips: vec!["10.244.0.7".into()],
        allocatable: NodeAllocatable {
            cpu_millis: 4000,
            memory_bytes: 8 << 30,
            ephemeral_storage_bytes: 0,
        },
    }
}

async fn resolve(c: Container) -> Result<Vec<(String, String)>> {
    let p = pod(c);
    let c = &p.spec.as_ref().unwrap().containers[0];
    make_environment_variables(&p, c, &inputs(), &objects()).await
}

async fn resolve_ok(c: Container) -> Vec<(String, String)> {
    resolve(c).await.unwrap()
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn expansion() {
    let vars: HashMap<&str, &str> = [("A", "a"), ("EMPTY", "")].into();
    let e = |s: &str| expand(s, |n| vars.get(n).map(|v| v.to_string()));
    assert_eq!(e("$(A)-$(A)"), "a-a");
    assert_eq!(e("x$(EMPTY)y"), "xy");
    assert_eq!(e("$(MISSING)"), "$(MISSING)");
    assert_eq!(e("$$(A)"), "$(A)");
    assert_eq!(e("$$$(A)"), "$a");
    assert_eq!(e("cost: $5"), "cost: $5");
    assert_eq!(e("end$"), "end$");
    assert_eq!(e("$(A"), "$(A");
    assert_eq!(e("$(A $(A)"), "$(A $(A)");
    assert_eq!(e("$()"), "$()");
    assert_eq!(e("é$é$(A)"), "é$éa");
    assert_eq!(e(""), "");
}

#[tokio::test]
async fn values_expand_earlier_variables() {
    let env = resolve_ok(Container {
        name: "app".into(),
        env: Some(vec![
            value("LATER", "$(FIRST)"),
            value("FIRST", "one"),
            value("SECOND", "$(FIRST)-two"),
            value("ESCAPED", "$$(FIRST)"),
            value("EMPTY", ""),
            value("SELF", "$(SELF)x"),
        ]),
        ..Default::default()
    })
    .await;
    assert_eq!(
        env,
        pairs(&[
            ("LATER", "$(FIRST)"),
            ("FIRST", "one"),
            ("SECOND", "one-two"),
            ("ESCAPED", "$(FIRST)"),
            ("EMPTY", ""),
            ("SELF", "$(SELF)x"),
        ])
    );
}

#[tokio::test]
async fn env_from_then_env_overrides() {
    let env = resolve_ok(Container {
        name: "app".into(),
        env_from: Some(vec![
            EnvFromSource {
                config_map_ref: Some(ConfigMapEnvSource {
                    name: "cfg".into(),
                    optional: None,
                }),
                ..Default::default()
            },
            EnvFromSource {
                prefix: Some("DB_".into()),
                secret_ref: Some(SecretEnvSource {
                    name: "creds".into(),
                    optional: None,
                }),
                ..Default::default()
            },
            EnvFromSource {
                config_map_ref: Some(ConfigMapEnvSource {
                    name: "absent".into(),
                    optional: Some(true),
                }),
                ..Default::default()
            },
        ]),
        env: Some(vec![
            value("MODE", "from-env"),
            value("URL", "postgres://$(DB_USER)@$(HOST):$(PORT)"),
        ]),
        ..Default::default()
    })
    .await;
    // ConfigMap keys in key order; the invalid `bad=key` is skipped; MODE
    // keeps its place but takes env's value.
    assert_eq!(
        env,
        pairs(&[
            ("HOST", "db.local"),
            ("MODE", "from-env"),
            ("PORT", "5432"),
            ("DB_PASSWORD", "s3cret"),
            ("DB_USER", "admin"),
            ("URL", "postgres://admin@db.local:5432"),
        ])
    );
}

#[tokio::test]
async fn key_refs() {
    let env = resolve_ok(Container {
        name: "app".into(),
        env: Some(vec![
            from("HOST", cm_key("cfg", "HOST", None)),
            from("PASS", secret_key("creds", "PASSWORD", None)),
            from("OPT_KEY", cm_key("cfg", "nope", Some(true))),
            from("OPT_CM", cm_key("absent", "k", Some(true))),
            from("OPT_SECRET", secret_key("absent", "k", Some(true))),
        ]),
        ..Default::default()
    })
    .await;
    // Optional references that resolve to nothing define no variable.
    assert_eq!(env, pairs(&[("HOST", "db.local"), ("PASS", "s3cret")]));
}

#[tokio::test]
async fn optional_missing_key_keeps_env_from_value() {
    let env = resolve_ok(Container {
        name: "app".into(),
        env_from: Some(vec![EnvFromSource {
            config_map_ref: Some(ConfigMapEnvSource {
                name: "cfg".into(),
                optional: None,
            }),
            ..Default::default()
        }]),
        env: Some(vec![from("PORT", cm_key("cfg", "missing", Some(true)))]),
        ..Default::default()
    })
    .await;
    assert!(env.contains(&("PORT".to_string(), "5432".to_string())));
}

#[tokio::test]
async fn errors_are_worded_like_the_kubelet() {
    let err = |env: Vec<EnvVar>, env_from: Vec<EnvFromSource>| async move {
        resolve(Container {
            name: "app".into(),
            env: Some(env),
            env_from: Some(env_from),
            ..Default::default()
        })
        .await
        .unwrap_err()
        .to_string()
    };
    assert_eq!(
        err(vec![from("X", cm_key("absent", "k", None))], vec![]).await,
        "configmap \"absent\" not found"
    );
    assert_eq!(
        err(vec![from("X", cm_key("cfg", "k", Some(false)))], vec![]).await,
        "couldn't find key k in ConfigMap ns/cfg"
    );
    assert_eq!(
        err(vec![from("X", secret_key("absent", "k", None))], vec![]).await,
        "secret \"absent\" not found"
    );
    assert_eq!(
        err(vec![from("X", secret_key("creds", "k", None))], vec![]).await,
        "couldn't find key k in Secret ns/creds"
    );
    let missing_from = EnvFromSource {
        secret_ref: Some(SecretEnvSource {
            name: "gone".into(),
            optional: None,
        }),
        ..Default::default()
    };
    assert_eq!(
        err(vec![], vec![missing_from]).await,
        "secret \"gone\" not found"
    );
    let bad_field = EnvVarSource {
        field_ref: Some(ObjectFieldSelector {
            api_version: None,
            field_path: "spec.nope".into(),
        }),
        ..Default::default()
    };
    assert_eq!(
        err(vec![from("X", bad_field)], vec![]).await,
        "field label not supported: spec.nope"
    );
}

#[tokio::test]
async fn downward_values() {
    let field = |path: &str| EnvVarSource {
        field_ref: Some(ObjectFieldSelector {
            api_version: Some("v1".into()),
            field_path: path.into(),
        }),
        ..Default::default()
    };
    let res = |r: &str, divisor: Option<&str>| EnvVarSource {
        resource_field_ref: Some(ResourceFieldSelector {
            container_name: None,
            divisor: divisor.map(|d| Quantity(d.into())),
            resource: r.into(),
        }),
        ..Default::default()
    };
    let env = resolve_ok(Container {
        name: "app".into(),
        resources: Some(ResourceRequirements {
            requests: Some([("cpu".to_string(), Quantity("100m".into()))].into()),
            limits: Some([("memory".to_string(), Quantity("128Mi".into()))].into()),
            ..Default::default()
        }),
        env: Some(vec![
            from("POD_NAME", field("metadata.name")),
            from("POD_NAMESPACE", field("metadata.namespace")),
            from("POD_UID", field("metadata.uid")),
            from("APP", field("metadata.labels['app']")),
            from("NODE", field("spec.nodeName")),
            from("HOST_IP", field("status.hostIP")),
            from("POD_IP", field("status.podIP")),
            from("CPU_REQ", res("requests.cpu", None)),
            from("CPU_REQ_M", res("requests.cpu", Some("1m"))),
            from("CPU_LIMIT", res("limits.cpu", None)),
            from("MEM_LIMIT", res("limits.memory", Some("1Mi"))),
            from("MEM_REQ", res("requests.memory", Some("1Mi"))),
            value("WHERE", "$(POD_NAME)@$(NODE)"),
        ]),
        ..Default::default()
    })
    .await;
    assert_eq!(
        env,
        pairs(&[
            ("POD_NAME", "web"),
            ("POD_NAMESPACE", "ns"),
            ("POD_UID", "uid-1"),
            ("APP", "web"),
            ("NODE", "node-a"),
            ("HOST_IP", "192.168.1.10"),
            ("POD_IP", "10.244.0.7"),
            ("CPU_REQ", "1"),
            ("CPU_REQ_M", "100"),
            // No CPU limit: the node's allocatable.
            ("CPU_LIMIT", "4"),
            ("MEM_LIMIT", "128"),
            ("MEM_REQ", "128"),
            ("WHERE", "web@node-a"),
        ])
    );
}

#[test]
fn command_and_args_expand_from_env() {
    let c = Container {
        name: "app".into(),
        command: Some(vec!["/bin/$(BIN)".into()]),
        args: Some(vec![
            "--port=$(PORT)".into(),
            "$$(PORT)".into(),
            "$(NONE)".into(),
        ]),
        ..Default::default()
    };
    let env = pairs(&[("BIN", "server"), ("PORT", "80")]);
    let (command, args) = expand_command_and_args(&c, &env);
    assert_eq!(command, vec!["/bin/server"]);
    assert_eq!(args, vec!["--port=80", "$(PORT)", "$(NONE)"]);
}
