//! `kubectl explain` and client-side `kubectl apply` against the OpenAPI v3
//! component schemas the server publishes.

mod common;

use common::Cluster;

#[test]
fn explain_prints_field_docs() {
    let c = Cluster::start();

    let out = c.kubectl(&["explain", "deployment.spec.strategy"]);
    assert!(out.contains("GROUP:      apps"), "{out}");
    assert!(out.contains("KIND:       Deployment"), "{out}");
    assert!(
        out.contains("FIELD: strategy <DeploymentStrategy>"),
        "{out}"
    );
    assert!(
        out.contains("DeploymentStrategy describes how to replace existing pods"),
        "{out}"
    );
    assert!(
        out.contains("rollingUpdate\t<RollingUpdateDeployment>"),
        "{out}"
    );
    assert!(out.contains("type\t<string>"), "{out}");

    let out = c.kubectl(&["explain", "pods"]);
    assert!(out.contains("KIND:       Pod"), "{out}");
    assert!(out.contains("Pod is a collection of containers"), "{out}");
    assert!(out.contains("spec\t<PodSpec>"), "{out}");
    // Kubernetes does not mark metadata as required.
    assert!(out.contains("metadata\t<ObjectMeta>\n"), "{out}");

    let out = c.kubectl(&["explain", "ingress.spec.rules.http.paths", "--recursive"]);
    assert!(out.contains("FIELD: paths <[]HTTPIngressPath>"), "{out}");
    assert!(
        out.contains("backend\t<IngressBackend> -required-"),
        "{out}"
    );
    assert!(out.contains("      number\t<integer>"), "{out}");
    assert!(out.contains("pathType\t<string> -required-"), "{out}");

    // Scalar types keep Kubernetes' names.
    let out = c.kubectl(&["explain", "service.spec.ports.targetPort"]);
    assert!(out.contains("FIELD: targetPort <IntOrString>"), "{out}");
    let out = c.kubectl(&["explain", "pod.spec.containers.resources.limits"]);
    assert!(out.contains("<map[string]Quantity>"), "{out}");

    for kind in [
        "cronjob.spec.jobTemplate",
        "lease.spec",
        "endpointslice.endpoints",
    ] {
        c.kubectl(&["explain", kind]);
    }
    let err = c.kubectl_fails(&["explain", "deployment.spec.nosuchfield"]);
    assert!(err.contains("nosuchfield"), "{err}");
}

#[test]
fn apply_merges_lists_by_key() {
    let c = Cluster::start();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("d.yaml");
    let deployment = |containers: &str, strategy: &str| {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web}}\nspec:\n  \
             selector: {{matchLabels: {{app: web}}}}\n  strategy: {strategy}\n  template:\n    \
             metadata: {{labels: {{app: web}}}}\n    spec:\n      containers: {containers}\n"
        )
    };
    std::fs::write(
        &file,
        deployment(
            "[{name: a, image: nginx:1, env: [{name: FOO, value: '1'}, {name: BAR, value: '2'}]}, \
             {name: b, image: busybox}]",
            "{type: RollingUpdate, rollingUpdate: {maxSurge: 1}}",
        ),
    )
    .unwrap();
    c.kubectl(&["apply", "-f", file.to_str().unwrap()]);
    std::fs::write(
        &file,
        deployment(
            "[{name: a, image: nginx:2, env: [{name: BAR, value: '3'}]}]",
            "{type: Recreate}",
        ),
    )
    .unwrap();
    let out = c.kubectl_output(&["apply", "-f", file.to_str().unwrap()]);
    assert!(out.status.success());
    // A patch computed from a bad schema is reported on stderr.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("warning"), "{stderr}");

    let spec = c.kubectl(&[
        "get",
        "deployment",
        "web",
        "-o",
        "jsonpath={.spec.strategy} {.spec.template.spec.containers[*].name} \
         {.spec.template.spec.containers[0].env}",
    ]);
    assert_eq!(
        spec,
        r#"{"type":"Recreate"} a [{"name":"BAR","value":"3"}]"#
    );
}
