//! The secure cluster as a user meets it with the real kubectl: the admin
//! is a client certificate, anonymous requests see only public
//! information, ServiceAccounts get what RBAC binds to them and nothing
//! more (with Kubernetes' 403 messages), roles and bindings from plain YAML
//! take effect at once and cannot escalate, impersonation needs RBAC, a
//! node reads only what its pods use, and Secrets are not in the store
//! file in plain text.

mod common;

use std::path::PathBuf;
use std::process::Output;

use common::{kubectl_with, ok, Cluster};

/// A kubeconfig for the cluster that authenticates with `token`, or with
/// nothing (anonymous) when it is empty.
fn kubeconfig_with_token(c: &Cluster, name: &str, token: &str) -> PathBuf {
    if token.is_empty() {
        c.kubeconfig_for(name, "{}")
    } else {
        c.kubeconfig_for(name, &format!("\n    token: {token}"))
    }
}

fn refused(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "expected a refusal:\nstdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A ServiceAccount `robot` in `team` bound to `view` there, and its token.
fn robot(c: &Cluster) -> String {
    c.kubectl(&["create", "namespace", "team"]);
    c.kubectl(&["create", "serviceaccount", "robot", "-n", "team"]);
    c.kubectl(&[
        "create",
        "rolebinding",
        "robot-view",
        "--clusterrole=view",
        "--serviceaccount=team:robot",
        "-n",
        "team",
    ]);
    c.kubectl(&["create", "token", "robot", "-n", "team"])
        .trim()
        .to_string()
}

#[test]
fn the_admin_is_a_certificate_and_anonymous_sees_only_public_information() {
    let c = Cluster::start();
    let kubeconfig = std::fs::read_to_string(c.kubeconfig()).unwrap();
    assert!(
        kubeconfig.contains("client-certificate-data:"),
        "{kubeconfig}"
    );
    assert!(!kubeconfig.contains("token:"), "{kubeconfig}");

    let who = c.kubectl(&["auth", "whoami"]);
    assert!(who.contains("kubernetes-admin"), "{who}");
    assert!(who.contains("kubeadm:cluster-admins"), "{who}");
    let list = c.kubectl(&["auth", "can-i", "--list"]);
    assert!(list.lines().any(|l| l.starts_with("*.*")), "{list}");

    // Without credentials (kubectl would ask for a password; curl is
    // what people use here).
    let anonymous = |path: &str| {
        let out = std::process::Command::new("curl")
            .args(["-s", "-w", "\n%{http_code}", "--cacert"])
            .arg(c.data_dir.join("ca.crt"))
            .arg(format!("{}{path}", c.url))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let version = anonymous("/version");
    assert!(
        version.contains("gitVersion") && version.ends_with("200"),
        "{version}"
    );
    for path in ["/healthz", "/livez", "/readyz"] {
        assert!(anonymous(path).ends_with("200"), "{path}");
    }
    let err = anonymous("/api/v1/namespaces");
    assert!(
        err.contains(r#"namespaces is forbidden: User \"system:anonymous\" cannot list resource \"namespaces\" in API group \"\" at the cluster scope"#)
            && err.ends_with("403"),
        "{err}"
    );
    assert!(anonymous("/api").ends_with("403"));
    // A token that does not authenticate is refused, not made anonymous.
    let wrong = kubeconfig_with_token(&c, "wrong", "abcdef.0123456789abcdef");
    let err = refused(&kubectl_with(&c, &wrong, &["get", "--raw", "/version"]));
    assert!(err.contains("Unauthorized"), "{err}");
}

#[test]
fn a_service_account_gets_what_its_binding_gives_and_nothing_more() {
    let c = Cluster::start();
    let token = robot(&c);
    let robot = kubeconfig_with_token(&c, "robot", &token);
    c.kubectl(&[
        "create",
        "configmap",
        "settings",
        "-n",
        "team",
        "--from-literal=a=b",
    ]);

    let cms = ok(&kubectl_with(
        &c,
        &robot,
        &["get", "configmaps", "-n", "team"],
    ));
    assert!(cms.contains("settings"), "{cms}");
    ok(&kubectl_with(&c, &robot, &["get", "pods", "-n", "team"]));

    let err = refused(&kubectl_with(&c, &robot, &["get", "secrets", "-n", "team"]));
    assert!(
        err.contains(r#"Error from server (Forbidden): secrets is forbidden: User "system:serviceaccount:team:robot" cannot list resource "secrets" in API group "" in the namespace "team""#),
        "{err}"
    );
    let err = refused(&kubectl_with(&c, &robot, &["get", "pods", "-n", "default"]));
    assert!(err.contains(r#"in the namespace "default""#), "{err}");
    let err = refused(&kubectl_with(
        &c,
        &robot,
        &["create", "configmap", "more", "-n", "team"],
    ));
    assert!(
        err.contains(r#"configmaps is forbidden: User "system:serviceaccount:team:robot" cannot create resource "configmaps""#),
        "{err}"
    );
    let err = refused(&kubectl_with(
        &c,
        &robot,
        &["delete", "configmap", "settings", "-n", "team"],
    ));
    assert!(
        err.contains(r#"configmaps "settings" is forbidden"#),
        "{err}"
    );

    // kubectl auth can-i agrees, through impersonation by the admin.
    let as_robot = "--as=system:serviceaccount:team:robot";
    assert_eq!(
        c.kubectl(&["auth", "can-i", "list", "pods", "-n", "team", as_robot])
            .trim(),
        "yes"
    );
    for denied in [
        vec!["auth", "can-i", "list", "secrets", "-n", "team", as_robot],
        vec!["auth", "can-i", "list", "pods", "-n", "default", as_robot],
        vec!["auth", "can-i", "delete", "pods", "-n", "team", as_robot],
    ] {
        let out = c.kubectl_output(&denied);
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "no",
            "{denied:?}"
        );
    }

    // A namespace's default ServiceAccount (every pod's unless it names
    // another) can do nothing beyond discovery.
    let default_token = c.kubectl(&["create", "token", "default", "-n", "team"]);
    let default = kubeconfig_with_token(&c, "default", default_token.trim());
    ok(&kubectl_with(&c, &default, &["get", "--raw", "/api"]));
    ok(&kubectl_with(&c, &default, &["api-resources"]));
    refused(&kubectl_with(&c, &default, &["get", "pods", "-n", "team"]));
    refused(&kubectl_with(
        &c,
        &default,
        &["get", "configmaps", "-n", "team"],
    ));
}

#[test]
fn roles_from_yaml_take_effect_at_once_and_never_escalate() {
    let c = Cluster::start();
    let token = robot(&c);
    let robot = kubeconfig_with_token(&c, "robot", &token);
    let manifest = c.home.join("role.yaml");
    std::fs::write(
        &manifest,
        r#"apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: config-writer
  namespace: team
rules:
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get", "list", "create", "delete"]
- apiGroups: ["rbac.authorization.k8s.io"]
  resources: ["rolebindings"]
  verbs: ["create", "get", "list"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: robot-config-writer
  namespace: team
subjects:
- kind: ServiceAccount
  name: robot
  namespace: team
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: config-writer
"#,
    )
    .unwrap();
    c.kubectl(&["apply", "-f", manifest.to_str().unwrap()]);
    // At once: no wait between the binding and its use.
    ok(&kubectl_with(
        &c,
        &robot,
        &["create", "configmap", "made-by-robot", "-n", "team"],
    ));
    let bindings = c.kubectl(&["get", "rolebindings", "-n", "team"]);
    assert!(bindings.contains("robot-config-writer"), "{bindings}");
    assert!(bindings.contains("Role/config-writer"), "{bindings}");

    // It may bind what it holds, not what it does not.
    ok(&kubectl_with(
        &c,
        &robot,
        &[
            "create",
            "rolebinding",
            "again",
            "--role=config-writer",
            "--user=someone",
            "-n",
            "team",
        ],
    ));
    let err = refused(&kubectl_with(
        &c,
        &robot,
        &[
            "create",
            "rolebinding",
            "grab",
            "--clusterrole=edit",
            "--serviceaccount=team:robot",
            "-n",
            "team",
        ],
    ));
    assert!(
        err.contains(r#"rolebindings.rbac.authorization.k8s.io "grab" is forbidden: user "system:serviceaccount:team:robot""#)
            && err.contains("is attempting to grant RBAC permissions not currently held"),
        "{err}"
    );
    // The roleRef of a binding cannot change.
    let err = c.kubectl_fails(&[
        "patch", "rolebinding", "again", "-n", "team", "--type=merge",
        "-p", r#"{"roleRef":{"apiGroup":"rbac.authorization.k8s.io","kind":"ClusterRole","name":"view"}}"#,
    ]);
    assert!(err.contains("cannot change roleRef"), "{err}");
}

#[test]
fn impersonation_needs_rbac() {
    let c = Cluster::start();
    let token = robot(&c);
    let robot = kubeconfig_with_token(&c, "robot", &token);
    let who = c.kubectl(&["auth", "whoami", "--as=jane", "--as-group=developers"]);
    assert!(who.contains("jane") && who.contains("developers"), "{who}");
    // (--raw: kubectl's discovery would hide the message behind "unknown".)
    let err = refused(&kubectl_with(
        &c,
        &robot,
        &["get", "--raw", "/api/v1/namespaces/team/pods", "--as=jane"],
    ));
    assert!(
        err.contains(r#"users "jane" is forbidden: User "system:serviceaccount:team:robot" cannot impersonate resource "users" in API group "" at the cluster scope"#),
        "{err}"
    );
}

#[test]
fn a_node_reads_only_what_its_pods_use_and_writes_only_itself() {
    let c = Cluster::start();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kedge"))
        .args([
            "kubeconfig",
            "user",
            "--client-name",
            "system:node:n1",
            "--org",
            "system:nodes",
        ])
        .arg("--data-dir")
        .arg(&c.data_dir)
        .output()
        .unwrap();
    let node = c.home.join("n1.kubeconfig");
    std::fs::write(&node, ok(&out)).unwrap();
    let who = ok(&kubectl_with(&c, &node, &["auth", "whoami"]));
    assert!(who.contains("system:node:n1"), "{who}");

    let node_yaml = |name: &str| {
        let path = c.home.join(format!("{name}.yaml"));
        std::fs::write(
            &path,
            format!("apiVersion: v1\nkind: Node\nmetadata:\n  name: {name}\n"),
        )
        .unwrap();
        path
    };
    ok(&kubectl_with(
        &c,
        &node,
        &["create", "-f", node_yaml("n1").to_str().unwrap()],
    ));
    c.kubectl(&["create", "-f", node_yaml("n2").to_str().unwrap()]);
    ok(&kubectl_with(
        &c,
        &node,
        &["label", "node", "n1", "disk=ssd"],
    ));
    let err = refused(&kubectl_with(
        &c,
        &node,
        &["label", "node", "n2", "disk=ssd"],
    ));
    assert!(
        err.contains(r#"node "n1" is not allowed to modify node "n2""#),
        "{err}"
    );
    // Nor labels the control plane keeps for itself.
    let err = refused(&kubectl_with(
        &c,
        &node,
        &[
            "label",
            "node",
            "n1",
            "node-restriction.kubernetes.io/trusted=yes",
        ],
    ));
    assert!(
        err.contains(
            r#"node "n1" is not allowed to modify labels: node-restriction.kubernetes.io/trusted"#
        ),
        "{err}"
    );

    c.kubectl(&["create", "secret", "generic", "used", "--from-literal=k=v"]);
    c.kubectl(&[
        "create",
        "secret",
        "generic",
        "unused",
        "--from-literal=k=v",
    ]);
    let pod = c.home.join("pod.yaml");
    std::fs::write(
        &pod,
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  nodeName: n1\n  containers:\n  - name: c\n    image: busybox\n    env:\n    - name: K\n      valueFrom:\n        secretKeyRef: {name: used, key: k}\n",
    )
    .unwrap();
    c.kubectl(&["create", "-f", pod.to_str().unwrap()]);
    ok(&kubectl_with(&c, &node, &["get", "secret", "used"]));
    let err = refused(&kubectl_with(&c, &node, &["get", "secret", "unused"]));
    assert!(
        err.contains(
            r#"secrets "unused" is forbidden: User "system:node:n1" cannot get resource "secrets""#
        ) && err.contains("no relationship found between node 'n1' and this object"),
        "{err}"
    );
    refused(&kubectl_with(&c, &node, &["get", "secrets"]));
}

#[test]
fn secret_values_are_not_in_the_store_file() {
    let c = Cluster::start();
    let value = "correct-horse-battery-staple-7731";
    c.kubectl(&[
        "create",
        "secret",
        "generic",
        "db",
        &format!("--from-literal=password={value}"),
    ]);
    let read = c.kubectl(&["get", "secret", "db", "-o", "jsonpath={.data.password}"]);
    assert!(!read.is_empty());
    let store = std::fs::read(c.data_dir.join("state.redb")).unwrap();
    let contains = |needle: &[u8]| store.windows(needle.len()).any(|w| w == needle);
    assert!(
        !contains(value.as_bytes()),
        "the plain value is in the store file"
    );
    assert!(
        !contains(read.trim().as_bytes()),
        "the base64 value is in the store file"
    );
    assert!(
        contains(b"k8s:enc:secretbox:v1:key1:"),
        "Secrets are stored encrypted"
    );
}

#[test]
fn an_approved_certificate_request_makes_a_user_and_a_denied_one_does_not() {
    use base64::Engine;
    let c = Cluster::start();
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::default();
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::CommonName, "jane");
    dn.push(rcgen::DnType::OrganizationName, "developers");
    params.distinguished_name = dn;
    let request = params.serialize_request(&key).unwrap().pem().unwrap();
    for name in ["jane", "mallory"] {
        c.apply(&format!(
            "apiVersion: certificates.k8s.io/v1\nkind: CertificateSigningRequest\nmetadata: {{name: {name}}}\nspec:\n  request: {}\n  signerName: kubernetes.io/kube-apiserver-client\n  expirationSeconds: 86400\n  usages: [client auth]\n",
            b64(&request)
        ));
    }
    let pending = c.kubectl(&["get", "csr", "jane"]);
    assert!(
        pending.contains("Pending")
            && pending.contains("kubernetes-admin")
            && pending.contains("24h"),
        "{pending}"
    );
    c.kubectl(&["certificate", "approve", "jane"]);
    c.kubectl(&["certificate", "deny", "mallory"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let cert = loop {
        let cert = c.kubectl(&["get", "csr", "jane", "-o", "jsonpath={.status.certificate}"]);
        if !cert.is_empty() || std::time::Instant::now() > deadline {
            break cert;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let csrs = c.kubectl(&["get", "csr"]);
    assert!(
        csrs.lines()
            .any(|l| l.starts_with("jane") && l.contains("Approved,Issued")),
        "{csrs}"
    );
    assert!(
        csrs.lines()
            .any(|l| l.starts_with("mallory") && l.ends_with("Denied")),
        "{csrs}"
    );
    assert!(c
        .kubectl(&[
            "get",
            "csr",
            "mallory",
            "-o",
            "jsonpath={.status.certificate}"
        ])
        .is_empty());

    // The issued certificate is jane, in her group, and RBAC gives her
    // nothing yet.
    let admin = std::fs::read_to_string(c.kubeconfig()).unwrap();
    let field = |k: &str| {
        admin
            .lines()
            .find_map(|l| l.trim().strip_prefix(k))
            .unwrap()
            .to_string()
    };
    let kubeconfig = c.home.join("jane.kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {}\n    certificate-authority-data: {}\nusers:\n- name: jane\n  user:\n    client-certificate-data: {cert}\n    client-key-data: {}\ncontexts:\n- name: c\n  context: {{cluster: c, user: jane}}\ncurrent-context: c\n",
            field("server: "),
            field("certificate-authority-data: "),
            b64(&key.serialize_pem()),
        ),
    )
    .unwrap();
    let who = ok(&kubectl_with(&c, &kubeconfig, &["auth", "whoami"]));
    assert!(who.contains("jane") && who.contains("developers"), "{who}");
    refused(&kubectl_with(&c, &kubeconfig, &["get", "pods"]));
}
