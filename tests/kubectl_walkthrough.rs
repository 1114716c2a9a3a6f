//! The seed walkthrough with the real kubectl: namespaces, ConfigMaps and
//! Secrets from the command line, a multi-document manifest applied,
//! listed, patched in every way kubectl patches, and deleted.

mod common;

use std::time::Duration;

use common::{eventually, Cluster};

fn write_tls_files(dir: &std::path::Path) -> (String, String) {
    let cert = rcgen::generate_simple_self_signed(vec!["blog.luffy.com".to_string()]).unwrap();
    let crt = dir.join("tls.crt");
    let key = dir.join("tls.key");
    std::fs::write(&crt, cert.cert.pem()).unwrap();
    std::fs::write(&key, cert.signing_key.serialize_pem()).unwrap();
    (crt.display().to_string(), key.display().to_string())
}

#[test]
fn walkthrough_with_kubectl() {
    let c = Cluster::start();

    // Discovery: what api-resources prints.
    let out = c.kubectl(&["api-resources"]);
    for needle in [
        "deployments",
        "deploy",
        "apps/v1",
        "ingresses",
        "endpointslices",
        "leases",
    ] {
        assert!(out.contains(needle), "api-resources lacks {needle}:\n{out}");
    }

    // The namespaces a cluster starts with, and one of ours.
    c.kubectl(&["create", "namespace", "luffy"]);
    let out = c.kubectl(&["get", "ns"]);
    for ns in [
        "default",
        "kube-system",
        "kube-public",
        "kube-node-lease",
        "luffy",
    ] {
        assert!(out.contains(ns), "{ns} missing:\n{out}");
    }
    assert!(out.starts_with("NAME"), "table header expected:\n{out}");
    assert!(out.contains("Active"));

    // kubectl create sends protobuf bodies for these.
    c.create_readme_config_and_secret();
    let (crt, key) = write_tls_files(&c.home);
    c.kubectl(&[
        "-n",
        "luffy",
        "create",
        "secret",
        "tls",
        "tls-myblog",
        &format!("--cert={crt}"),
        &format!("--key={key}"),
    ]);
    assert_eq!(
        c.kubectl(&[
            "-n",
            "luffy",
            "get",
            "cm",
            "myblog",
            "-o",
            "jsonpath={.data.MYSQL_PORT}"
        ]),
        "3306"
    );
    let out = c.kubectl(&["-n", "luffy", "get", "secrets"]);
    assert!(out.contains("kubernetes.io/tls"), "{out}");
    assert!(out.contains("Opaque"), "{out}");

    // A whole application in one file.
    let manifest = Cluster::fixture("myblog.yaml");
    let out = c.kubectl(&["apply", "-f", &manifest]);
    assert!(out.contains("deployment.apps/myblog created"), "{out}");
    assert!(
        out.contains("ingress.networking.k8s.io/myblog created"),
        "{out}"
    );

    let all = c.kubectl(&["get", "all", "-n", "luffy"]);
    assert!(all.contains("service/myblog-np"), "{all}");
    assert!(all.contains("NodePort"), "{all}");
    assert!(all.contains("80:30080/TCP"), "{all}");
    assert!(all.contains("deployment.apps/myblog"), "{all}");
    assert!(all.contains("READY"), "{all}");
    let ing = c.kubectl(&["get", "ingress", "-n", "luffy"]);
    assert!(
        ing.contains("blog.luffy.com") && ing.contains("80, 443"),
        "{ing}"
    );

    // Defaults as Kubernetes sets them.
    let strategy = c.kubectl(&[
        "-n", "luffy", "get", "deploy", "myblog",
        "-o", "jsonpath={.spec.strategy.rollingUpdate.maxSurge} {.spec.revisionHistoryLimit} {.spec.progressDeadlineSeconds} {.spec.template.spec.restartPolicy}",
    ]);
    assert_eq!(strategy, "25% 10 600 Always");

    // Applying the same file again changes nothing (a Secret written with
    // stringData always reports "configured", as on Kubernetes).
    // Not the resourceVersion: the controllers' status writes move it.
    let written = |c: &Cluster| {
        c.kubectl(&[
            "-n",
            "luffy",
            "get",
            "deploy",
            "myblog",
            "-o",
            "jsonpath={.metadata.generation} {.metadata.annotations} {.metadata.labels} {.spec}",
        ])
    };
    let before = written(&c);
    let out = c.kubectl(&["apply", "-f", &manifest]);
    assert!(out.contains("deployment.apps/myblog unchanged"), "{out}");
    assert!(out.contains("service/myblog-np unchanged"), "{out}");
    assert!(
        out.contains("ingress.networking.k8s.io/myblog unchanged"),
        "{out}"
    );
    assert_eq!(before, written(&c));

    // -o yaml round trip: what get prints, replace accepts, and the spec
    // comes back the same (the generation does not move).
    let gen_of = |c: &Cluster| {
        c.kubectl(&[
            "-n",
            "luffy",
            "get",
            "deploy",
            "myblog",
            "-o",
            "jsonpath={.metadata.generation}",
        ])
    };
    let g0 = gen_of(&c);
    let rt = c.home.join("roundtrip.yaml");
    // A status write between get and replace makes the saved
    // resourceVersion stale (409): get again and retry, as a client would.
    let mut last = String::new();
    assert!(
        eventually(Duration::from_secs(30), || {
            let yaml = c.kubectl(&["-n", "luffy", "get", "deploy", "myblog", "-o", "yaml"]);
            std::fs::write(&rt, &yaml).unwrap();
            let out = c.kubectl_output(&["replace", "-f", rt.to_str().unwrap()]);
            last = String::from_utf8_lossy(&out.stderr).into_owned();
            assert!(
                out.status.success() || last.contains("the object has been modified"),
                "{last}"
            );
            out.status.success()
        }),
        "{last}"
    );
    assert_eq!(g0, gen_of(&c));

    // Editing the image and re-applying patches it; the generation goes up.
    let gen = |c: &Cluster| -> i64 {
        c.kubectl(&[
            "-n",
            "luffy",
            "get",
            "deploy",
            "myblog",
            "-o",
            "jsonpath={.metadata.generation}",
        ])
        .parse()
        .unwrap()
    };
    let g1 = gen(&c);
    let edited = std::fs::read_to_string(&manifest)
        .unwrap()
        .replace("kedge/echo:v1", "kedge/echo:v2");
    let edited_path = c.home.join("myblog-v2.yaml");
    std::fs::write(&edited_path, edited).unwrap();
    let out = c.kubectl(&["apply", "-f", edited_path.to_str().unwrap()]);
    assert!(out.contains("deployment.apps/myblog configured"), "{out}");
    assert!(gen(&c) > g1);
    let image = c.kubectl(&[
        "-n",
        "luffy",
        "get",
        "deploy",
        "myblog",
        "-o",
        "jsonpath={.spec.template.spec.containers[0].image}",
    ]);
    assert_eq!(image, "kedge/echo:v2");

    // label, annotate, scale, set image.
    c.kubectl(&["-n", "luffy", "label", "deploy", "myblog", "tier=web"]);
    c.kubectl(&["-n", "luffy", "annotate", "deploy", "myblog", "owner=luffy"]);
    c.kubectl(&[
        "-n",
        "luffy",
        "scale",
        "deployment",
        "myblog",
        "--replicas=3",
    ]);
    c.kubectl(&[
        "-n",
        "luffy",
        "set",
        "image",
        "deployment/myblog",
        "myblog=kedge/echo:v3",
    ]);
    let out = c.kubectl(&[
        "-n", "luffy", "get", "deploy", "myblog", "-o",
        "jsonpath={.metadata.labels.tier} {.metadata.annotations.owner} {.spec.replicas} {.spec.template.spec.containers[0].image}",
    ]);
    assert_eq!(out, "web luffy 3 kedge/echo:v3");
    let out = c.kubectl(&[
        "-n", "luffy", "get", "deploy", "-l", "tier=web", "-o", "name",
    ]);
    assert_eq!(out.trim(), "deployment.apps/myblog");
    c.kubectl(&["-n", "luffy", "label", "deploy", "myblog", "tier-"]);
    let out = c.kubectl(&[
        "-n", "luffy", "get", "deploy", "-l", "tier=web", "-o", "name",
    ]);
    assert_eq!(out.trim(), "");

    // Server-side apply of the same file.
    let out = c.kubectl(&[
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        &manifest,
    ]);
    assert!(out.contains("serverside-applied"), "{out}");

    // delete -f removes what the file made.
    let out = c.kubectl(&["delete", "-f", &manifest]);
    assert!(out.contains("deployment.apps \"myblog\" deleted"), "{out}");
    let out = c.kubectl_output(&["-n", "luffy", "get", "svc", "myblog"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("not found"));

    // Deleting the namespace removes its contents, then the namespace.
    c.kubectl(&["delete", "ns", "luffy", "--wait=false"]);
    assert!(eventually(Duration::from_secs(20), || {
        !c.kubectl_output(&["get", "ns", "luffy"]).status.success()
    }));
    let out = c.kubectl(&["get", "cm", "-A"]);
    assert!(!out.contains("luffy"), "{out}");
}

#[test]
fn service_addresses_are_allocated_and_released() {
    let c = Cluster::start();
    let ip = c.kubectl(&[
        "get",
        "svc",
        "kubernetes",
        "-o",
        "jsonpath={.spec.clusterIP}",
    ]);
    assert_eq!(ip, "10.96.0.1");
    c.kubectl(&[
        "create",
        "service",
        "nodeport",
        "web",
        "--tcp=80:8080",
        "--node-port=30080",
    ]);
    let out = c.kubectl(&[
        "get",
        "svc",
        "web",
        "-o",
        "jsonpath={.spec.clusterIP} {.spec.ports[0].nodePort}",
    ]);
    let (ip, port) = out.split_once(' ').unwrap();
    let ip: std::net::Ipv4Addr = ip.parse().unwrap();
    // Inside the service CIDR 10.96.0.0/12.
    assert!(
        ip.octets()[0] == 10 && (96..112).contains(&ip.octets()[1]),
        "{ip}"
    );
    assert_eq!(port, "30080");
    // The same NodePort again is a conflict with a clear message.
    let err = c.kubectl_fails(&[
        "create",
        "service",
        "nodeport",
        "web2",
        "--tcp=80:8080",
        "--node-port=30080",
    ]);
    assert!(err.contains("provided port is already allocated"), "{err}");
    // Out of range.
    let err = c.kubectl_fails(&[
        "create",
        "service",
        "nodeport",
        "web3",
        "--tcp=80:8080",
        "--node-port=80",
    ]);
    assert!(
        err.contains("provided port is not in the valid range"),
        "{err}"
    );
    // Released on delete.
    c.kubectl(&["delete", "svc", "web"]);
    c.kubectl(&[
        "create",
        "service",
        "nodeport",
        "web2",
        "--tcp=80:8080",
        "--node-port=30080",
    ]);
}

#[test]
fn kubectl_create_forms_paging_and_pods() {
    let c = Cluster::start();
    // Protobuf bodies of every `kubectl create` form the tutorials use.
    c.kubectl(&[
        "create",
        "deployment",
        "web",
        "--image=nginx:1.25",
        "--replicas=2",
        "--port=80",
    ]);
    c.kubectl(&["create", "service", "clusterip", "web", "--tcp=80:80"]);
    c.kubectl(&[
        "create",
        "ingress",
        "web",
        "--class=kedge",
        "--rule=web.example.com/api*=web:80",
    ]);
    c.kubectl(&[
        "create",
        "job",
        "once",
        "--image=busybox",
        "--",
        "echo",
        "hi",
    ]);
    c.kubectl(&[
        "create",
        "cronjob",
        "tick",
        "--image=busybox",
        "--schedule=*/5 * * * *",
        "--",
        "date",
    ]);
    c.kubectl(&["create", "serviceaccount", "robot"]);
    let out = c.kubectl(&[
        "get",
        "deploy",
        "web",
        "-o",
        "jsonpath={.spec.replicas} {.spec.template.spec.containers[0].ports[0].containerPort}",
    ]);
    assert_eq!(out, "2 80");
    let out = c.kubectl(&[
        "get",
        "ingress",
        "web",
        "-o",
        "jsonpath={.spec.rules[0].http.paths[0].pathType}",
    ]);
    assert_eq!(out, "Prefix");
    let out = c.kubectl(&[
        "get",
        "job",
        "once",
        "-o",
        "jsonpath={.spec.backoffLimit} {.spec.template.spec.restartPolicy}",
    ]);
    assert_eq!(out, "6 Never");

    // A pod waits for a node; admission adds the default tolerations.
    c.kubectl(&["run", "solo", "--image=busybox", "--labels=app=solo"]);
    let out = c.kubectl(&["get", "pods", "-o", "wide", "--show-labels"]);
    assert!(out.contains("Pending") && out.contains("app=solo"), "{out}");
    let out = c.kubectl(&[
        "get",
        "pod",
        "solo",
        "-o",
        "jsonpath={.spec.tolerations[*].key} {.status.qosClass}",
    ]);
    assert_eq!(
        out,
        "node.kubernetes.io/not-ready node.kubernetes.io/unreachable BestEffort"
    );

    // Paging: kubectl follows continue tokens.
    for i in 0..7 {
        c.kubectl(&[
            "create",
            "configmap",
            &format!("page-{i}"),
            "--from-literal=k=v",
        ]);
    }
    let out = c.kubectl(&["get", "cm", "--chunk-size=2", "-o", "name"]);
    let pages = out
        .lines()
        .filter(|l| l.starts_with("configmap/page-"))
        .count();
    assert_eq!(pages, 7, "{out}");
    let out = c.kubectl(&[
        "get",
        "cm",
        "--field-selector=metadata.name=page-3",
        "-o",
        "name",
    ]);
    assert_eq!(out.trim(), "configmap/page-3");
    let err = c.kubectl_fails(&["get", "cm", "--field-selector=data.k=v"]);
    assert!(err.contains("field label not supported"), "{err}");
}

#[test]
fn server_side_apply_tracks_field_owners() {
    let c = Cluster::start();
    let dir = &c.home;
    let deploy = |replicas: u32, image: &str| {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: {replicas}\n  selector:\n    matchLabels: {{app: web}}\n  template:\n    metadata:\n      labels: {{app: web}}\n    spec:\n      containers:\n      - name: web\n        image: {image}\n"
        )
    };
    let file = dir.join("web.yaml");
    std::fs::write(&file, deploy(2, "nginx:1.25")).unwrap();
    let f = file.to_str().unwrap();
    let out = c.kubectl(&["apply", "--server-side", "-f", f]);
    assert!(out.contains("serverside-applied"), "{out}");
    let fields = c.kubectl(&[
        "get",
        "deploy",
        "web",
        "--show-managed-fields",
        "-o",
        "jsonpath={.metadata.managedFields[0].manager} {.metadata.managedFields[0].operation}",
    ]);
    assert_eq!(fields, "kubectl Apply");
    let fields_v1 = c.kubectl(&[
        "get",
        "deploy",
        "web",
        "--show-managed-fields",
        "-o",
        "jsonpath={.metadata.managedFields[0].fieldsV1}",
    ]);
    assert!(
        fields_v1.contains("f:replicas") && fields_v1.contains("k:{\\\"name\\\":\\\"web\\\"}"),
        "{fields_v1}"
    );

    // Another manager takes spec.replicas: applying a different value now
    // conflicts, unless forced.
    c.kubectl(&["scale", "deploy", "web", "--replicas=4"]);
    std::fs::write(&file, deploy(3, "nginx:1.25")).unwrap();
    let err = c.kubectl_fails(&["apply", "--server-side", "-f", f]);
    assert!(
        err.contains("conflict") && err.contains(".spec.replicas"),
        "{err}"
    );
    c.kubectl(&["apply", "--server-side", "--force-conflicts", "-f", f]);
    assert_eq!(
        c.kubectl(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"]),
        "3"
    );

    // A field left out of the applied configuration is removed.
    std::fs::write(
        &file,
        deploy(3, "nginx:1.26").replace("  replicas: 3\n", ""),
    )
    .unwrap();
    c.kubectl(&["apply", "--server-side", "-f", f]);
    let out = c.kubectl(&[
        "get",
        "deploy",
        "web",
        "-o",
        "jsonpath={.spec.template.spec.containers[0].image}",
    ]);
    assert_eq!(out, "nginx:1.26");
}
