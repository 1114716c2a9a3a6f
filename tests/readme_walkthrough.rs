//! The README's walkthrough exactly as a user runs it: `kedge up` with no
//! flag at all (HOME is the test's own, so the data dir is `~/.kedge`),
//! `export KUBECONFIG=~/.kedge/kubeconfig`, then the kubectl commands of
//! the README against the demo images `up` imports. The ingress controller
//! binds the node's real ports 80 and 443 beside the service proxy, which
//! serves the `kubernetes` Service on 10.96.0.1:443 and the walkthrough's
//! Service on port 80. Once in the default proxy mode, once with
//! `--proxy-mode nftables`.
//!
//! The test takes what a real installation takes (ports 6443, 10250, 80,
//! 443, the node named after the machine, 10.244.0.0/24, `kedge0`), so it
//! is the only test of its binary; it panics at once if one is taken.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use common::web::{echoed, header, http, https, pki, tls_secret};
use common::{eventually, images, Cluster};

const WAIT: Duration = Duration::from_secs(180);

/// The node's address: the gateway of its pod network.
const NODE: [u8; 4] = [10, 244, 0, 1];

#[test]
fn the_readme_walkthrough_with_default_flags_in_both_proxy_modes() {
    walkthrough(&[]);
    walkthrough(&["--proxy-mode", "nftables"]);
}

fn walkthrough(flags: &[&str]) {
    let mut c = Cluster::up_as_a_user(flags);
    let node = c.node.clone().unwrap();
    let address = IpAddr::from(NODE);
    let tmp = tempfile::tempdir().unwrap();

    c.kubectl(&["create", "namespace", "luffy"]);
    c.create_readme_config_and_secret();
    let blog = pki("blog.luffy.com");
    tls_secret(&c, tmp.path(), "tls-myblog", &blog);
    c.kubectl(&["apply", "-f", &Cluster::fixture("myblog.yaml")]);
    c.kubectl(&["label", "node", &node.name, "ingress=true"]);

    // The demo images come from `up` itself; the probes wait 10 s.
    rollout_status(&c);
    let ready = c.kubectl(&[
        "-n",
        "luffy",
        "get",
        "deploy",
        "myblog",
        "-o",
        "jsonpath={.status.readyReplicas}",
    ]);
    assert_eq!(ready, "2");

    // The ingress controller runs on the labelled node, on ports 80 and
    // 443 of the host, and stays up (it crash-looped on `address already
    // in use` while the proxy bound 10.96.0.1:443 and 10.x:80).
    assert!(
        eventually(WAIT, || c
            .kubectl_output(&[
                "-n",
                "kedge-ingress",
                "rollout",
                "status",
                "daemonset/kedge-ingress",
                "--timeout=5s",
            ])
            .status
            .success()),
        "{}",
        c.kubectl(&["-n", "kedge-ingress", "get", "pods", "-o", "wide"])
    );
    let web = SocketAddr::new(address, 80);
    let secure = SocketAddr::new(address, 443);

    // curl -H 'Host: myblog.luffy.com' http://10.244.0.1/
    let answer = eventually_answer(|| {
        http(web, "myblog.luffy.com", "/blog/index/").filter(|(s, _, _)| *s == 200)
    });
    let (_, head, body) = answer;
    let json = echoed(&body);
    assert_eq!(json["path"], "/blog/index/", "{body}");
    assert_eq!(json["version"], "v1", "{body}");
    assert_eq!(header(&head, "server"), Some("kedge"), "{head}");
    // Both replicas answer through the ingress.
    let mut pods = std::collections::BTreeSet::new();
    assert!(
        eventually(WAIT, || {
            if let Some((200, _, body)) = http(web, "myblog.luffy.com", "/") {
                pods.insert(echoed(&body)["hostname"].to_string());
            }
            pods.len() == 2
        }),
        "{pods:?}"
    );
    // Another host: no rule, the ingress's own 404.
    let (status, _, _) = http(web, "nothing.luffy.com", "/").unwrap();
    assert_eq!(status, 404);
    // The TLS host over plain HTTP: 308 to HTTPS.
    let (status, head, _) = eventually_answer(|| {
        http(web, "blog.luffy.com", "/api/posts").filter(|(s, _, _)| *s == 308)
    });
    assert_eq!(status, 308);
    assert_eq!(
        header(&head, "location"),
        Some("https://blog.luffy.com/api/posts"),
        "{head}"
    );
    // HTTPS by SNI with the Secret's certificate; /api/x arrives as /x.
    let (status, body, cert) = eventually_answer(|| {
        https(secure, "blog.luffy.com", &blog.ca_pem, "/api/posts").filter(|(s, _, _)| *s == 200)
    });
    assert_eq!(status, 200);
    assert_eq!(cert, blog.cert_der);
    assert_eq!(echoed(&body)["path"], "/posts", "{body}");
    let status = c.kubectl(&[
        "-n",
        "luffy",
        "get",
        "ingress",
        "myblog",
        "-o",
        "jsonpath={.status.loadBalancer.ingress[0].ip}",
    ]);
    assert_eq!(status, address.to_string());

    // The NodePort from outside the pod network.
    let (status, _, body) = eventually_answer(|| {
        http(SocketAddr::new(address, 30080), "x", "/np").filter(|(s, _, _)| *s == 200)
    });
    assert_eq!(status, 200);
    assert_eq!(echoed(&body)["path"], "/np");

    // The Service by name from a pod, through the cluster DNS and the
    // ClusterIP on port 80.
    c.kubectl(&[
        "-n",
        "luffy",
        "run",
        "client",
        &format!("--image={}", images::busybox()),
        "--",
        "sleep",
        "3600",
    ]);
    c.wait_ready(&["-n", "luffy", "pod/client"], WAIT);
    let mut last = String::new();
    assert!(
        eventually(WAIT, || {
            let out = c.kubectl_output(&[
                "-n",
                "luffy",
                "exec",
                "client",
                "--",
                "timeout",
                "5",
                "wget",
                "-qO-",
                "http://myblog/by-name",
            ]);
            last = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            echoed(&String::from_utf8_lossy(&out.stdout))["path"] == "/by-name"
        }),
        "{last}"
    );
    // And the API server through the `kubernetes` Service (10.96.0.1:443),
    // which shares port 443 with the ingress controller on the host.
    let out = c.kubectl(&[
        "-n",
        "luffy",
        "exec",
        "client",
        "--",
        "sh",
        "-c",
        "timeout 5 nc -w 3 10.96.0.1 443 </dev/null; echo exit=$?",
    ]);
    assert!(out.trim_end().ends_with("exit=0"), "{out}");

    // Nothing kedge runs binds a Service's port on its address (the DNS
    // listens on a port the kernel picked and gets port 53 by DNAT):
    // every port of the wildcard address stays free for host processes.
    let sockets = std::process::Command::new("ss")
        .args(["-Hlntu"])
        .output()
        .unwrap();
    let sockets = String::from_utf8_lossy(&sockets.stdout);
    let service_ports = ["10.96.0.1:443", "10.96.0.10:53"];
    assert!(
        !sockets.lines().any(|l| {
            let local = l.split_whitespace().nth(4).unwrap_or_default();
            service_ports.contains(&local)
                || (local.starts_with("10.96.") && local.ends_with(":80"))
        }),
        "a Service port is bound:\n{sockets}"
    );

    // A new version rolls out; the ingress sends traffic to it.
    c.kubectl(&[
        "-n",
        "luffy",
        "set",
        "image",
        "deployment/myblog",
        "myblog=kedge/echo:v2",
    ]);
    rollout_status(&c);
    assert!(eventually(WAIT, || {
        http(web, "myblog.luffy.com", "/")
            .is_some_and(|(_, _, body)| echoed(&body)["version"] == "v2")
    }));

    c.kubectl(&["delete", "namespace", "luffy", "--wait=false"]);
    // A graceful stop removes the proxy's holder and nftables table.
    assert!(
        c.terminate(Duration::from_secs(30)),
        "kedge up did not stop"
    );
    let tables = std::process::Command::new("nft")
        .args(["list", "tables", "ip"])
        .output()
        .unwrap();
    let tables = String::from_utf8_lossy(&tables.stdout);
    assert!(
        !tables.lines().any(|l| l.trim() == "table ip kedge"),
        "{tables}"
    );
}

/// Poll `f` until it gives an answer.
fn eventually_answer<T>(mut f: impl FnMut() -> Option<T>) -> T {
    let mut found = None;
    assert!(
        eventually(WAIT, || {
            found = f();
            found.is_some()
        }),
        "no answer in {WAIT:?}"
    );
    found.unwrap()
}

/// `kubectl rollout status` of the walkthrough's Deployment.
fn rollout_status(c: &Cluster) {
    c.kubectl(&[
        "-n",
        "luffy",
        "rollout",
        "status",
        "deployment/myblog",
        "--timeout=240s",
    ]);
}
