use super::*;
use k8s_openapi::api::core::v1::{Pod, Secret, Service};
use k8s_openapi::api::networking::v1::Ingress;
use serde_json::json;

fn msgs(errs: &[FieldError]) -> Vec<String> {
    errs.iter().map(ToString::to_string).collect()
}

#[test]
fn messages_and_reasons() {
    let e = FieldError::required("spec.containers", "");
    assert_eq!(e.message(), "Required value");
    assert_eq!(e.reason(), "FieldValueRequired");
    assert_eq!(
        FieldError::required("x", "must x").message(),
        "Required value: must x"
    );
    let e = FieldError::invalid_str("metadata.name", "abc", "bad");
    assert_eq!(e.to_string(), "metadata.name: Invalid value: \"abc\": bad");
    assert_eq!(e.reason(), "FieldValueInvalid");
    assert_eq!(
        FieldError::invalid_int("spec.replicas", -1, "neg").message(),
        "Invalid value: -1: neg"
    );
    assert_eq!(
        FieldError::duplicate("a", go_quote("x")).message(),
        "Duplicate value: \"x\""
    );
    let e = FieldError::not_supported("spec.type", "Foo", &["A", "B"]);
    assert_eq!(
        e.message(),
        "Unsupported value: \"Foo\": supported values: \"A\", \"B\""
    );
    assert_eq!(e.reason(), "FieldValueNotSupported");
    assert_eq!(FieldError::forbidden("f", "no").message(), "Forbidden: no");
    assert_eq!(
        FieldError::too_long("metadata.annotations", 262144).message(),
        "Too long: may not be more than 262144 bytes"
    );
    assert_eq!(
        FieldError::too_many("endpoints", 1001, 1000).message(),
        "Too many: 1001: must have at most 1000 items"
    );
    assert_eq!(
        FieldError::not_found("v", "data").message(),
        "Not found: \"data\""
    );
    assert_eq!(go_quote("a\"b\\c\n"), "\"a\\\"b\\\\c\\n\"");
}

#[test]
fn string_rules() {
    assert_eq!(
        is_dns1123_subdomain("Example.com"),
        vec!["a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')".to_string()]
    );
    assert!(is_dns1123_subdomain("a.b-c.d").is_empty());
    assert!(!is_dns1123_subdomain("a..b").is_empty());
    assert_eq!(
        is_dns1123_label("a.b"),
        vec!["must not contain dots".to_string()]
    );
    assert!(is_dns1123_label(&"a".repeat(64))
        .contains(&"must be no more than 63 characters".to_string()));
    assert!(is_dns1035_label("abc-1").is_empty());
    assert!(!is_dns1035_label("1abc").is_empty());
    assert!(is_qualified_name("app.kubernetes.io/name").is_empty());
    assert!(is_qualified_name("MyName").is_empty());
    assert_eq!(
        is_qualified_name("/x"),
        vec!["prefix part must be non-empty".to_string()]
    );
    assert!(!is_qualified_name("a/b/c").is_empty());
    assert!(!is_qualified_name("-x").is_empty());
    assert!(is_valid_label_value("").is_empty());
    assert!(is_valid_label_value("v1.2_x").is_empty());
    assert!(!is_valid_label_value("bad value").is_empty());
    assert!(is_env_var_name("MY-VAR.1").is_empty());
    assert!(!is_env_var_name("A=B").is_empty());
    assert!(!is_env_var_name("").is_empty());
    assert!(is_c_identifier("_a1").is_empty());
    assert!(!is_c_identifier("1a").is_empty());
    assert!(is_valid_port_name("http").is_empty());
    assert_eq!(
        is_valid_port_name("80"),
        vec!["must contain at least one letter (a-z)".to_string()]
    );
    assert!(!is_valid_port_name("a--b").is_empty());
    assert!(!is_valid_port_name("averyverylongportname").is_empty());
    assert_eq!(
        is_valid_port_num(0),
        vec!["must be between 1 and 65535, inclusive".to_string()]
    );
    assert!(is_config_map_key("key.name_1-x").is_empty());
    assert!(is_config_map_key("..a").contains(&"must not start with '..'".to_string()));
    assert!(is_wildcard_dns1123_subdomain("*.example.com").is_empty());
    assert!(!is_wildcard_dns1123_subdomain("*example.com").is_empty());
    assert!(is_valid_percent("25%").is_empty());
    assert!(!is_valid_percent("x%").is_empty());
}

fn pod(spec: serde_json::Value) -> Pod {
    let mut p: Pod =
        serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": spec})).unwrap();
    crate::defaults::default_pod(&mut p);
    p
}

#[test]
fn pod_spec_rules() {
    let p = pod(json!({
        "containers": [
            {"name": "a", "image": "x", "ports": [{"containerPort": 70000, "name": "http"}, {"containerPort": 80, "name": "http", "protocol": "ICMP"}],
             "volumeMounts": [{"name": "missing", "mountPath": "/m"}],
             "env": [{"name": "A=B"}],
             "livenessProbe": {"exec": {"command": ["true"]}, "tcpSocket": {"port": 80}},
             "readinessProbe": {},
             "resources": {"limits": {"cpu": "500m"}, "requests": {"cpu": "1"}}},
            {"name": "a"}
        ],
        "initContainers": [{"name": "a", "image": "x"}],
        "volumes": [{"name": "v", "emptyDir": {}, "hostPath": {"path": "/"}}, {"name": "v", "emptyDir": {}}],
        "restartPolicy": "Sometimes",
        "dnsPolicy": "Bogus",
        "terminationGracePeriodSeconds": -1
    }));
    let m = msgs(&validate_pod(&p));
    let expect = [
        "spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
        "spec.containers[0].ports[1].name: Duplicate value: \"http\"",
        "spec.containers[0].ports[1].protocol: Unsupported value: \"ICMP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
        "spec.containers[0].volumeMounts[0].name: Not found: \"missing\"",
        "spec.containers[0].env[0].name: Invalid value: \"A=B\": a valid environment variable name must consist only of printable ASCII characters other than '='",
        "spec.containers[0].livenessProbe.tcpSocket: Forbidden: may not specify more than 1 handler type",
        "spec.containers[0].readinessProbe: Required value: must specify a handler type",
        "spec.containers[0].resources.requests[cpu]: Invalid value: \"1\": must be less than or equal to cpu limit of 500m",
        "spec.containers[0].name: Duplicate value: \"a\"",
        "spec.containers[1].name: Duplicate value: \"a\"",
        "spec.containers[1].image: Required value",
        "spec.volumes[0].hostPath: Forbidden: may not specify more than 1 volume type",
        "spec.volumes[1].name: Duplicate value: \"v\"",
        "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\"",
        "spec.dnsPolicy: Unsupported value: \"Bogus\": supported values: \"ClusterFirstWithHostNet\", \"ClusterFirst\", \"Default\", \"None\"",
        "spec.terminationGracePeriodSeconds: Invalid value: -1: must be greater than or equal to 0",
    ];
    for e in expect {
        assert!(m.contains(&e.to_string()), "missing {e}\n got {m:#?}");
    }
    let ok = pod(
        json!({"containers": [{"name": "a", "image": "nginx", "ports": [{"containerPort": 80, "name": "http"}],
        "volumeMounts": [{"name": "d", "mountPath": "/d"}]}], "volumes": [{"name": "d", "configMap": {"name": "cm"}}]}),
    );
    assert!(
        validate_pod(&ok).is_empty(),
        "{:#?}",
        msgs(&validate_pod(&ok))
    );
    let empty = pod(json!({}));
    assert_eq!(
        msgs(&validate_pod(&empty)),
        vec!["spec.containers: Required value".to_string()]
    );
    let mut unnamed = empty.clone();
    unnamed.metadata.name = None;
    assert!(msgs(&validate_pod(&unnamed))
        .contains(&"metadata.name: Required value: name or generateName is required".to_string()));
    unnamed.metadata.generate_name = Some("web-".into());
    assert!(!msgs(&validate_pod(&unnamed))
        .iter()
        .any(|m| m.starts_with("metadata")));
}

#[test]
fn metadata_labels_and_annotations() {
    let p: Pod = serde_json::from_value(
        json!({"metadata": {"name": "p", "labels": {"bad key!": "v", "k": "bad value"},
        "annotations": {"a": "x".repeat(300 * 1024)}},
        "spec": {"containers": [{"name": "a", "image": "x"}]}}),
    )
    .unwrap();
    let m = msgs(&validate_pod(&p));
    assert!(
        m.iter().any(|s| s.starts_with(
            "metadata.labels: Invalid value: \"bad key!\": name part must consist of"
        )),
        "{m:#?}"
    );
    assert!(
        m.iter().any(|s| s.starts_with(
            "metadata.labels: Invalid value: \"bad value\": a valid label must be an empty string"
        )),
        "{m:#?}"
    );
    assert!(
        m.contains(
            &"metadata.annotations: Too long: may not be more than 262144 bytes".to_string()
        ),
        "{m:#?}"
    );
}

fn service(v: serde_json::Value) -> Service {
    let mut s: Service = serde_json::from_value(v).unwrap();
    crate::defaults::default_service(&mut s);
    s
}

#[test]
fn service_rules() {
    let s = service(
        json!({"metadata": {"name": "1svc"}, "spec": {"type": "Fancy", "clusterIP": "abc",
        "ports": [{"port": 80}, {"port": 0, "name": "b"}, {"port": 80, "name": "b"}], "selector": {"app": "bad value"}}}),
    );
    let m = msgs(&validate_service(&s));
    for e in [
        "spec.ports[0].name: Required value",
        "spec.ports[1].port: Invalid value: 0: must be between 1 and 65535, inclusive",
        "spec.ports[2].name: Duplicate value: \"b\"",
        "spec.type: Unsupported value: \"Fancy\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\"",
        "spec.clusterIPs[0]: Invalid value: \"abc\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
    ] {
        assert!(m.contains(&e.to_string()), "missing {e}\n got {m:#?}");
    }
    assert!(
        m.iter()
            .any(|s| s.starts_with("metadata.name: Invalid value: \"1svc\": a DNS-1035 label")),
        "{m:#?}"
    );
    assert!(
        m.iter()
            .any(|s| s.starts_with("spec.ports[2]: Duplicate value: core.ServicePort{")),
        "{m:#?}"
    );
    let no_ports = service(json!({"metadata": {"name": "s"}, "spec": {}}));
    assert_eq!(
        msgs(&validate_service(&no_ports)),
        vec!["spec.ports: Required value".to_string()]
    );
    let headless = service(json!({"metadata": {"name": "s"}, "spec": {"clusterIP": "None"}}));
    assert!(
        validate_service(&headless).is_empty(),
        "{:?}",
        msgs(&validate_service(&headless))
    );
    let ext = service(json!({"metadata": {"name": "s"}, "spec": {"type": "ExternalName"}}));
    assert_eq!(
        msgs(&validate_service(&ext)),
        vec!["spec.externalName: Required value".to_string()]
    );
    let ext_ok = service(
        json!({"metadata": {"name": "s"}, "spec": {"type": "ExternalName", "externalName": "example.com."}}),
    );
    assert!(
        validate_service(&ext_ok).is_empty(),
        "{:?}",
        msgs(&validate_service(&ext_ok))
    );
    let np = service(
        json!({"metadata": {"name": "s"}, "spec": {"ports": [{"port": 80, "nodePort": 30080}]}}),
    );
    assert_eq!(
        msgs(&validate_service(&np)),
        vec![
            "spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"
                .to_string()
        ]
    );
}

#[test]
fn secret_types() {
    let s = |v: serde_json::Value| -> Vec<String> {
        let mut s: Secret = serde_json::from_value(v).unwrap();
        crate::defaults::default_secret(&mut s);
        msgs(&validate_secret(&s))
    };
    assert_eq!(
        s(json!({"metadata": {"name": "t"}, "type": "kubernetes.io/tls", "data": {"tls.crt": ""}})),
        vec!["data[tls.key]: Required value".to_string()]
    );
    assert_eq!(
        s(json!({"metadata": {"name": "t"}, "type": "kubernetes.io/dockerconfigjson"})),
        vec!["data[.dockerconfigjson]: Required value".to_string()]
    );
    assert_eq!(
        s(json!({"metadata": {"name": "t"}, "type": "kubernetes.io/basic-auth"})).len(),
        2
    );
    assert_eq!(
        s(json!({"metadata": {"name": "t"}, "type": "kubernetes.io/ssh-auth"})),
        vec!["data[ssh-privatekey]: Required value".to_string()]
    );
    assert_eq!(
        s(json!({"metadata": {"name": "t"}, "type": "kubernetes.io/service-account-token"})),
        vec![
            "metadata.annotations[kubernetes.io/service-account.name]: Required value".to_string()
        ]
    );
    assert!(s(json!({"metadata": {"name": "t"}, "type": "kubernetes.io/dockerconfigjson", "stringData": {".dockerconfigjson": "{}"}})).is_empty());
    let bad_key = s(json!({"metadata": {"name": "t"}, "stringData": {"a b": "x"}}));
    assert!(
        bad_key[0].starts_with("data[a b]: Invalid value: \"a b\": a valid config key"),
        "{bad_key:?}"
    );
}

#[test]
fn ingress_rules() {
    let ing: Ingress = serde_json::from_value(json!({"metadata": {"name": "i"}, "spec": {
        "rules": [{"host": "*.example.com", "http": {"paths": [
            {"path": "/a", "backend": {"service": {"name": "s", "port": {"number": 80}}}},
            {"path": "a", "pathType": "Prefix", "backend": {"service": {"name": "s", "port": {"number": 80}}}},
            {"path": "/", "pathType": "Regex", "backend": {"service": {"name": "s", "port": {"name": "http"}}}},
            {"path": "/", "pathType": "Exact", "backend": {"service": {"name": "s"}}},
            {"path": "/", "pathType": "Exact", "backend": {}}
        ]}}, {"host": "1.2.3.4"}],
        "tls": [{"hosts": ["Bad_Host"]}]
    }})).unwrap();
    let m = msgs(&validate_ingress(&ing));
    for e in [
        "spec.rules[0].http.paths[0].pathType: Required value: pathType must be specified",
        "spec.rules[0].http.paths[1].path: Invalid value: \"a\": must be an absolute path",
        "spec.rules[0].http.paths[2].pathType: Unsupported value: \"Regex\": supported values: \"Exact\", \"ImplementationSpecific\", \"Prefix\"",
        "spec.rules[0].http.paths[3].backend: Required value: port name or number is required",
        "spec.rules[0].http.paths[4].backend: Invalid value: \"\": resource or service backend is required",
        "spec.rules[1].host: Invalid value: \"1.2.3.4\": must be a DNS name, not an IP address",
    ] {
        assert!(m.contains(&e.to_string()), "missing {e}\n got {m:#?}");
    }
    assert!(
        m.iter()
            .any(|s| s.starts_with("spec.tls[0].hosts[0]: Invalid value: \"Bad_Host\"")),
        "{m:#?}"
    );
    let empty: Ingress =
        serde_json::from_value(json!({"metadata": {"name": "i"}, "spec": {}})).unwrap();
    assert_eq!(msgs(&validate_ingress(&empty)), vec!["spec: Invalid value: []networking.IngressRule(nil): either `defaultBackend` or `rules` must be specified".to_string()]);
}

#[test]
fn workloads() {
    use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
    let mut d: Deployment = serde_json::from_value(json!({"metadata": {"name": "d"}, "spec": {
        "template": {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}},
        "strategy": {"rollingUpdate": {"maxSurge": 0, "maxUnavailable": "0%"}},
        "revisionHistoryLimit": -1, "minReadySeconds": 700}})).unwrap();
    crate::defaults::default_deployment(&mut d);
    let m = msgs(&validate_deployment(&d));
    for e in [
        "spec.selector: Required value",
        "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"x\"}: `selector` does not match template `labels`",
        "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:\"0%\"}: may not be 0 when `maxSurge` is 0",
        "spec.revisionHistoryLimit: Invalid value: -1: must be greater than or equal to 0",
        "spec.progressDeadlineSeconds: Invalid value: 600: must be greater than minReadySeconds",
    ] {
        assert!(m.contains(&e.to_string()), "missing {e}\n got {m:#?}");
    }
    let mut ds: DaemonSet = serde_json::from_value(json!({"metadata": {"name": "d"}, "spec": {
        "selector": {"matchLabels": {"app": "x"}},
        "template": {"metadata": {"labels": {"app": "x"}}, "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "i"}]}}}})).unwrap();
    crate::defaults::default_daemon_set(&mut ds);
    assert_eq!(msgs(&validate_daemon_set(&ds)), vec!["spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\"".to_string()]);
}
