//! A second machine joins the way kubeadm's tutorials show: `kedge token
//! create --print-join-command` on the control plane, then `kedge join`
//! with that command on the node (here: on this machine, with its own data
//! dir, node name and pod CIDR). The node's certificate request is
//! approved and issued, the node goes Ready and runs pods, and its
//! credentials reach only what a node may; a wrong CA hash, a wrong token
//! and an expired token are refused, and nothing is written.

mod common;

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{images, Cluster, RealNode};

const WAIT: Duration = Duration::from_secs(120);

fn kedge(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kedge"))
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// `kedge token create --print-join-command`, split into its words.
fn join_command(c: &Cluster, extra: &[&str]) -> Vec<String> {
    let kubeconfig = c.kubeconfig().display().to_string();
    let mut args = vec![
        "token",
        "create",
        "--print-join-command",
        "--kubeconfig",
        &kubeconfig,
    ];
    args.extend_from_slice(extra);
    let out = kedge(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = String::from_utf8(out.stdout).unwrap();
    let words: Vec<String> = line.split_whitespace().map(str::to_string).collect();
    assert_eq!(words[0..2], ["kedge", "join"], "{line}");
    assert!(
        words.contains(&"--discovery-token-ca-cert-hash".to_string()),
        "{line}"
    );
    words
}

fn flag<'a>(words: &'a [String], name: &str) -> &'a str {
    let i = words.iter().position(|w| w == name).unwrap();
    &words[i + 1]
}

/// Run a join that must fail; its stderr.
fn join_fails(words: &[String], data_dir: &Path) -> String {
    let mut args: Vec<&str> = words[1..].iter().map(String::as_str).collect();
    let dir = data_dir.display().to_string();
    args.extend([
        "--data-dir",
        &dir,
        "--node-name",
        "never",
        "--no-service-network",
    ]);
    let out = kedge(&args);
    assert!(!out.status.success(), "the join should have been refused");
    assert!(
        !data_dir.join("kubelet.conf").exists(),
        "a refused join wrote credentials"
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    panic!("timed out waiting for {what}");
}

/// Wait until `when`, then for the node's Lease to be renewed once more.
fn heartbeats_after(c: &Cluster, node: &str, when: Instant) {
    if let Some(left) = when.checked_duration_since(Instant::now()) {
        std::thread::sleep(left);
    }
    let renew_time = || {
        c.kubectl(&[
            "get",
            "lease",
            node,
            "-n",
            "kube-node-lease",
            "-o",
            "jsonpath={.spec.renewTime}",
        ])
    };
    let before = renew_time();
    eventually("a heartbeat with the renewed certificate", || {
        renew_time() != before
    });
}

/// The joined node's process, stopped by PID, its containers removed.
struct Joined {
    child: Child,
    node: RealNode,
}

impl Joined {
    /// Run the printed join command on this machine as a new node with
    /// its own data dir, name and pod CIDR.
    fn start(c: &Cluster, dir: &Path, data_dir: &Path) -> Joined {
        let words = join_command(c, &[]);
        let node = RealNode::new(dir);
        let mut args: Vec<String> = words[1..].to_vec();
        args.extend([
            "--data-dir".into(),
            data_dir.display().to_string(),
            "--no-service-network".into(),
        ]);
        args.extend(node.args());
        let child = Command::new(env!("CARGO_BIN_EXE_kedge"))
            .args(&args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        Joined { child, node }
    }
}

impl Drop for Joined {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.node.remove_from_docker();
    }
}

#[test]
fn wrong_ca_hashes_and_tokens_are_refused_and_nothing_is_written() {
    let c = Cluster::start();
    let words = join_command(&c, &[]);
    let dir = tempfile::tempdir().unwrap();

    let mut wrong_hash = words.clone();
    let i = wrong_hash
        .iter()
        .position(|w| w == "--discovery-token-ca-cert-hash")
        .unwrap();
    wrong_hash[i + 1] = format!("sha256:{}", "0".repeat(64));
    let err = join_fails(&wrong_hash, &dir.path().join("a"));
    assert!(
        err.contains("refusing the cluster") && err.contains("public key hash"),
        "{err}"
    );

    let mut wrong_token = words.clone();
    let i = wrong_token.iter().position(|w| w == "--token").unwrap();
    let id = wrong_token[i + 1].split('.').next().unwrap().to_string();
    wrong_token[i + 1] = format!("{id}.0000000000000000");
    let err = join_fails(&wrong_token, &dir.path().join("b"));
    assert!(err.contains("does not verify with the token"), "{err}");

    let mut unknown = words.clone();
    unknown[i + 1] = "zzzzzz.0000000000000000".into();
    let err = join_fails(&unknown, &dir.path().join("c"));
    assert!(err.contains("no signature for token"), "{err}");

    // An expired token loses its signature and its Secret (the token
    // cleaner), and is refused.
    let short = join_command(&c, &["--ttl", "2s"]);
    let token = flag(&short, "--token").to_string();
    let id = token.split('.').next().unwrap().to_string();
    eventually("the expired token to be cleaned up", || {
        let list = kedge(&[
            "token",
            "list",
            "--kubeconfig",
            &c.kubeconfig().display().to_string(),
        ]);
        !String::from_utf8_lossy(&list.stdout).contains(&id)
    });
    let err = join_fails(&short, &dir.path().join("d"));
    assert!(err.contains("no signature for token"), "{err}");
}

#[test]
fn a_joined_node_gets_its_certificate_runs_pods_and_nothing_else() {
    let c = Cluster::start();
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("node");
    let joined = Joined::start(&c, dir.path(), &data_dir);
    let name = joined.node.name.clone();

    eventually("the node's certificate to be issued", || {
        let csr = c.kubectl(&["get", "csr"]);
        csr.contains("Approved,Issued")
            && csr.contains("kubernetes.io/kube-apiserver-client-kubelet")
    });
    eventually("the node to be Ready", || {
        c.kubectl_output(&[
            "get",
            "node",
            &name,
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
        ])
        .stdout
            == b"True"
    });
    // The node's service proxy and cluster DNS got identities of their own.
    for file in ["proxy.conf", "dns.conf"] {
        assert!(data_dir.join(file).exists(), "{file}");
    }
    let csrs = c.kubectl(&["get", "csr"]);
    assert_eq!(csrs.matches("Approved,Issued").count(), 3, "{csrs}");
    let kubelet_conf = data_dir.join("kubelet.conf");
    let mode = std::fs::metadata(&kubelet_conf).unwrap().permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o077,
        0,
        "kubelet.conf is private"
    );

    // It runs pods.
    c.apply(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: on-joined}}\nspec:\n  nodeName: {name}\n  terminationGracePeriodSeconds: 1\n  containers:\n  - {{name: c, image: {}, command: [sleep, '3600']}}\n",
        images::busybox()
    ));
    c.wait_ready(&["pod/on-joined"], WAIT);

    // Its credentials: its own Node yes, another's no; a Secret no pod of
    // its uses, no.
    let as_node = |args: &[&str]| {
        c.kubectl_cmd(args)
            .env("KUBECONFIG", &kubelet_conf)
            .output()
            .unwrap()
    };
    let who = as_node(&["auth", "whoami"]);
    assert!(String::from_utf8_lossy(&who.stdout).contains(&format!("system:node:{name}")));
    c.apply("apiVersion: v1\nkind: Node\nmetadata: {name: someone-else}\n");
    let out = as_node(&["label", "node", "someone-else", "x=y"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not allowed to modify node"));
    c.kubectl(&[
        "create",
        "secret",
        "generic",
        "not-for-nodes",
        "--from-literal=k=v",
    ]);
    let out = as_node(&["get", "secret", "not-for-nodes"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("(Forbidden)") && err.contains("no relationship found"),
        "{err}"
    );
    c.kubectl(&["delete", "pod", "on-joined", "--grace-period=0", "--force"]);
    drop(joined);
}

#[test]
fn a_joined_node_renews_its_certificates_before_they_expire() {
    // Certificates of 40 s (kube-controller-manager's flag), so renewal
    // comes within the test.
    let c = Cluster::start_with(&["--cluster-signing-duration", "40s"]);
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("node");
    let joined = Joined::start(&c, dir.path(), &data_dir);
    let name = joined.node.name.clone();
    let kubelet_conf = data_dir.join("kubelet.conf");
    eventually("the node's first certificates", || kubelet_conf.exists());
    let first = std::fs::read_to_string(&kubelet_conf).unwrap();
    let started = Instant::now();

    // Renewed: three more requests, made by the node itself.
    eventually("the node's certificates to be renewed", || {
        let csrs = c.kubectl(&["get", "csr"]);
        csrs.matches("Approved,Issued").count() == 6
            && csrs.contains(&format!("system:node:{name}"))
            && std::fs::read_to_string(&kubelet_conf).unwrap() != first
    });
    // Past the first certificate's end, the node still heartbeats.
    heartbeats_after(&c, &name, started + Duration::from_secs(45));
    let who = c
        .kubectl_cmd(&["auth", "whoami"])
        .env("KUBECONFIG", &kubelet_conf)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&who.stdout).contains(&format!("system:node:{name}")));
    drop(joined);
}

#[test]
fn the_node_of_up_renews_its_certificates_too() {
    let c = Cluster::up_with(&["--cluster-signing-duration", "40s"]);
    let name = c.node.as_ref().unwrap().name.clone();
    let kubelet_conf = c.data_dir.join("kubelet.conf");
    eventually("the node to register", || {
        c.kubectl_output(&["get", "node", &name]).status.success()
    });
    let first = std::fs::read_to_string(&kubelet_conf).unwrap();
    let started = Instant::now();
    // The kubelet's, the service proxy's and the cluster DNS's, asked for
    // by the node itself.
    eventually("the node's certificates to be renewed", || {
        let csrs = c.kubectl(&["get", "csr"]);
        csrs.matches(&format!("system:node:{name}")).count() == 3
            && csrs.matches("Approved,Issued").count() == 3
            && std::fs::read_to_string(&kubelet_conf).unwrap() != first
    });
    heartbeats_after(&c, &name, started + Duration::from_secs(45));
}
