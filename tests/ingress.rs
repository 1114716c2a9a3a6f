//! The ingress controller end to end on `kedge up`: deployed as a
//! DaemonSet that runs only on nodes labelled `ingress=true`, with the
//! host's network; Ingress YAML with ingress-nginx annotations routed to
//! the echo pods; TLS from a Secret made with `kubectl create secret tls`;
//! no failed request while the backend rolls, Ingresses change and the
//! Secret rotates.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::web::{echoed, header, http, https, pki, tls_secret};
use common::{eventually, free_fixed_port, images, Cluster};

const WAIT: Duration = Duration::from_secs(120);

#[test]
fn ingress_on_a_labelled_node_routes_rewrites_and_serves_tls() {
    let echo = images::echo();
    let (http_port, https_port) = (free_fixed_port(), free_fixed_port());
    let c = Cluster::up_with(&[
        "--ingress-http-port",
        &http_port.to_string(),
        "--ingress-https-port",
        &https_port.to_string(),
        "--ingress-metrics-port",
        &free_fixed_port().to_string(),
    ]);
    let node = c.node.clone().unwrap();
    let address: std::net::IpAddr = node.address().parse().unwrap();
    let web = SocketAddr::new(address, http_port);
    let secure = SocketAddr::new(address, https_port);

    // The DaemonSet exists but runs nowhere until a node carries the label.
    assert!(eventually(WAIT, || {
        c.kubectl_output(&["-n", "kedge-ingress", "get", "daemonset", "kedge-ingress"])
            .status
            .success()
    }));
    let pods = c.kubectl(&["-n", "kedge-ingress", "get", "pods", "-o", "name"]);
    assert!(pods.trim().is_empty(), "{pods}");
    c.kubectl(&["label", "node", &node.name, "ingress=true"]);
    // Until the DaemonSet's status counts the labelled node, rollout status
    // has nothing to wait for: wait for the pod on the node first.
    let pod = || {
        c.kubectl(&[
            "-n",
            "kedge-ingress",
            "get",
            "pods",
            "-o",
            "jsonpath={.items[0].spec.hostNetwork} {.items[0].spec.nodeName} {.items[0].status.podIP}",
        ])
    };
    let want = format!("true {} {address}", node.name);
    assert!(eventually(WAIT, || pod().trim() == want), "{}", pod());
    c.kubectl(&[
        "-n",
        "kedge-ingress",
        "rollout",
        "status",
        "daemonset/kedge-ingress",
        "--timeout=180s",
    ]);

    c.apply(&format!(
        r#"
apiVersion: v1
kind: Namespace
metadata: {{name: luffy}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: myblog, namespace: luffy}}
spec:
  replicas: 2
  strategy: {{rollingUpdate: {{maxSurge: 1, maxUnavailable: 0}}}}
  selector: {{matchLabels: {{app: myblog}}}}
  template:
    metadata: {{labels: {{app: myblog}}}}
    spec:
      terminationGracePeriodSeconds: 5
      containers:
      - name: echo
        image: {echo}
        env: [{{name: POD_NAME, valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}}}]
        readinessProbe:
          httpGet: {{path: /readyz, port: 8080}}
          periodSeconds: 1
        lifecycle:
          preStop: {{sleep: {{seconds: 2}}}}
---
apiVersion: v1
kind: Service
metadata: {{name: myblog, namespace: luffy}}
spec:
  selector: {{app: myblog}}
  ports: [{{name: http, port: 80, targetPort: 8080}}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: myblog, namespace: luffy}}
spec:
  rules:
  - host: myblog.luffy.com
    http:
      paths:
      - {{path: /api, pathType: Prefix, backend: {{service: {{name: myblog, port: {{number: 80}}}}}}}}
      - {{path: /, pathType: Prefix, backend: {{service: {{name: myblog, port: {{name: http}}}}}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: rewrite
  namespace: luffy
  annotations:
    nginx.ingress.kubernetes.io/rewrite-target: /admin/$2
spec:
  ingressClassName: kedge
  rules:
  - host: rewrite.luffy.com
    http:
      paths:
      - {{path: /foo(/|$)(.*), pathType: ImplementationSpecific, backend: {{service: {{name: myblog, port: {{number: 80}}}}}}}}
"#
    ));
    c.kubectl(&[
        "-n",
        "luffy",
        "rollout",
        "status",
        "deployment/myblog",
        "--timeout=120s",
    ]);

    // The walkthrough: the host answers from the pods, both of them.
    assert!(
        eventually(WAIT, || http(web, "myblog.luffy.com", "/")
            .is_some_and(|r| r.0 == 200)),
        "the Ingress never answered: {:?}",
        http(web, "myblog.luffy.com", "/")
    );
    // The second endpoint may reach the ingress's table after the first.
    let mut pods = std::collections::BTreeSet::new();
    assert!(
        eventually(WAIT, || {
            let (status, _, body) = http(web, "myblog.luffy.com", "/api/items?x=1").unwrap();
            assert_eq!(status, 200);
            let v = echoed(&body);
            // Without rewrite-target the path arrives as sent.
            assert_eq!(v["path"], "/api/items?x=1", "{body}");
            assert_eq!(
                v["headers"]["x-forwarded-host"], "myblog.luffy.com",
                "{body}"
            );
            pods.insert(v["pod"].as_str().expect("the answering pod").to_string());
            pods.len() == 2
        }),
        "{pods:?}"
    );
    // rewrite-target with capture groups.
    let (status, _, body) = http(web, "rewrite.luffy.com", "/foo/bar").unwrap();
    assert_eq!(status, 200);
    assert_eq!(echoed(&body)["path"], "/admin/bar", "{body}");
    // Host mismatch: the default backend.
    assert_eq!(http(web, "nobody.luffy.com", "/").unwrap().0, 404);
    // The Ingress's status names the node.
    assert!(eventually(WAIT, || {
        c.kubectl(&[
            "-n",
            "luffy",
            "get",
            "ingress",
            "myblog",
            "-o",
            "jsonpath={.status.loadBalancer.ingress[0].ip}",
        ])
        .trim()
            == address.to_string()
    }));

    // TLS from a Secret made with kubectl.
    let dir = tempfile::tempdir().unwrap();
    let first = pki("myblog.luffy.com");
    tls_secret(&c, dir.path(), "myblog-tls", &first);
    c.kubectl(&[
        "-n",
        "luffy",
        "patch",
        "ingress",
        "myblog",
        "--type=merge",
        "-p",
        r#"{"spec":{"tls":[{"hosts":["myblog.luffy.com"],"secretName":"myblog-tls"}]}}"#,
    ]);
    assert!(eventually(WAIT, || {
        https(secure, "myblog.luffy.com", &first.ca_pem, "/")
            .is_some_and(|(s, _, cert)| s == 200 && cert == first.cert_der)
    }));
    let (_, head, _) = http(web, "myblog.luffy.com", "/x?y=1").unwrap();
    assert!(head.contains(" 308 "), "{head}");
    assert_eq!(
        header(&head, "location"),
        Some(format!("https://myblog.luffy.com:{https_port}/x?y=1").as_str())
    );

    // Constant load through the ingress while the backend rolls, the
    // Ingress is edited 50 times and the Secret rotates: no request fails.
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let load = {
        let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
        std::thread::spawn(move || {
            // Bounded in time whatever happens to the rest of the test.
            let deadline = Instant::now() + Duration::from_secs(240);
            while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
                match http(web, "rewrite.luffy.com", "/foo/load") {
                    Some((200, _, _)) => {
                        ok.fetch_add(1, Ordering::SeqCst);
                    }
                    other => failed.lock().push(format!("{other:?}")),
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    c.kubectl(&[
        "-n",
        "luffy",
        "set",
        "env",
        "deployment/myblog",
        "ROLLOUT=2",
    ]);
    for i in 0..50 {
        c.kubectl(&[
            "-n",
            "luffy",
            "annotate",
            "--overwrite",
            "ingress",
            "rewrite",
            &format!("kedge.io/edit={i}"),
        ]);
    }
    let second = pki("myblog.luffy.com");
    tls_secret(&c, dir.path(), "myblog-tls", &second);
    c.kubectl(&[
        "-n",
        "luffy",
        "rollout",
        "status",
        "deployment/myblog",
        "--timeout=180s",
    ]);
    // The rotated certificate is served, verified against its own CA.
    assert!(eventually(WAIT, || {
        https(secure, "myblog.luffy.com", &second.ca_pem, "/")
            .is_some_and(|(s, _, cert)| s == 200 && cert == second.cert_der)
    }));
    stop.store(true, Ordering::SeqCst);
    load.join().unwrap();
    let failed = failed.lock();
    assert!(ok.load(Ordering::SeqCst) > 50, "too few requests made");
    assert!(
        failed.is_empty(),
        "{} failed: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );

    // Unlabelled, the node runs no ingress controller.
    c.kubectl(&["label", "node", &node.name, "ingress-"]);
    assert!(eventually(WAIT, || {
        c.kubectl(&["-n", "kedge-ingress", "get", "pods", "-o", "name"])
            .trim()
            .is_empty()
    }));
}
