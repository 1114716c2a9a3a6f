//! The cluster DNS of `kedge up`, queried from the host with `dig` at the
//! cluster DNS address: SRV for named ports, PTR for ClusterIPs and pod
//! IPs, headless Services and StatefulSet pod names, ExternalName, the SOA
//! of an NXDOMAIN, TCP for a large answer, a name forwarded to the
//! upstream (a stub on loopback, never the host's resolver), and malformed
//! packets that get FORMERR or nothing while the server keeps answering.

mod common;

use std::collections::BTreeSet;
use std::net::UdpSocket;
use std::process::Command;
use std::time::Duration;

use common::{dns_stub, eventually, images, Cluster};

const WAIT: Duration = Duration::from_secs(90);
const NS: &str = "dnstest";

/// `dig @server` with bounded waits; its whole output.
fn dig(server: &str, args: &[&str]) -> String {
    let out = Command::new("dig")
        .arg(format!("@{server}"))
        .args(["+time=2", "+tries=2"])
        .args(args)
        .output()
        .expect("dig (apt-get install bind9-dnsutils)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The answer's data, one per line, sorted.
fn short(server: &str, args: &[&str]) -> Vec<String> {
    let mut full = vec!["+short"];
    full.extend_from_slice(args);
    let mut lines: Vec<String> = dig(server, &full)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with(';'))
        .map(str::to_string)
        .collect();
    lines.sort();
    lines
}

/// Send one UDP packet to the DNS and return what comes back within a
/// second, if anything.
fn raw_udp(server: &str, packet: &[u8]) -> Option<Vec<u8>> {
    let socket = UdpSocket::bind("0.0.0.0:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    socket.send_to(packet, (server, 53)).unwrap();
    let mut buf = [0u8; 4096];
    let n = socket.recv(&mut buf).ok()?;
    Some(buf[..n].to_vec())
}

fn assert_formerr_or_dropped(what: &str, reply: Option<Vec<u8>>) {
    if let Some(reply) = reply {
        assert!(reply.len() >= 12, "{what}: a reply shorter than a header");
        assert!(reply[2] & 0x80 != 0, "{what}: the reply is a response");
        assert_eq!(reply[3] & 0x0f, 1, "{what}: FORMERR, got {reply:?}");
    }
}

#[test]
fn dig_at_the_cluster_dns() {
    let echo = images::echo();
    let stub = dns_stub();
    let upstream = format!("127.0.0.1:{stub}");
    let c = Cluster::up_with(&["--dns-upstream", &upstream]);
    let dns = c.node.as_ref().unwrap().dns_ip();
    let endpoints: Vec<String> = (1..=100)
        .map(|i| format!("{{addresses: [10.250.{}.{}]}}", i / 200, 1 + i % 200))
        .collect();
    c.apply(&format!(
        r#"
apiVersion: v1
kind: Namespace
metadata: {{name: {NS}}}
---
apiVersion: v1
kind: Service
metadata: {{name: web, namespace: {NS}}}
spec:
  clusterIP: None
  selector: {{app: web}}
  ports: [{{name: http, port: 80, targetPort: 8080}}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {{name: web, namespace: {NS}}}
spec:
  serviceName: web
  replicas: 2
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: echo
        image: {echo}
        readinessProbe:
          httpGet: {{path: /readyz, port: 8080}}
          periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata: {{name: api, namespace: {NS}}}
spec:
  selector: {{app: web}}
  ports: [{{name: http, port: 80, targetPort: 8080}}]
---
apiVersion: v1
kind: Service
metadata: {{name: ext, namespace: {NS}}}
spec:
  type: ExternalName
  externalName: db.example
---
apiVersion: v1
kind: Service
metadata: {{name: many, namespace: {NS}}}
spec:
  clusterIP: None
  ports: [{{port: 80}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: many-1
  namespace: {NS}
  labels: {{kubernetes.io/service-name: many, endpointslice.kubernetes.io/managed-by: tests}}
addressType: IPv4
ports: [{{port: 80}}]
endpoints: [{endpoints}]
"#,
        endpoints = endpoints.join(", ")
    ));
    c.kubectl(&[
        "-n",
        NS,
        "rollout",
        "status",
        "statefulset/web",
        "--timeout=120s",
    ]);
    c.wait_ready(&["-n", NS, "pod/web-0", "pod/web-1"], WAIT);
    let get = |what: &str, path: &str| {
        c.kubectl(&["-n", NS, "get", what, "-o", &format!("jsonpath={path}")])
    };
    let api_ip = get("svc/api", "{.spec.clusterIP}");
    let web0_ip = get("pod/web-0", "{.status.podIP}");
    let web1_ip = get("pod/web-1", "{.status.podIP}");
    let svc = |name: &str| format!("{name}.{NS}.svc.cluster.local.");

    // A ClusterIP Service, and SRV for its named port.
    assert!(
        eventually(WAIT, || short(&dns, &[&svc("api")]) == vec![api_ip.clone()]),
        "{}",
        dig(&dns, &[&svc("api")])
    );
    assert_eq!(
        short(&dns, &[&format!("_http._tcp.{}", svc("api")), "SRV"]),
        vec![format!("0 100 80 {}", svc("api"))]
    );
    // PTR for the ClusterIP.
    assert_eq!(short(&dns, &["-x", &api_ip]), vec![svc("api")]);

    // The headless Service answers its ready pods; StatefulSet pods have
    // their own names, and their IPs point back at them; SRV of a headless
    // Service names each pod with its endpoint port.
    let mut pods = vec![web0_ip.clone(), web1_ip.clone()];
    pods.sort();
    assert!(
        eventually(WAIT, || short(&dns, &[&svc("web")]) == pods),
        "{}",
        dig(&dns, &[&svc("web")])
    );
    let web0 = format!("web-0.{}", svc("web"));
    assert!(
        eventually(WAIT, || short(&dns, &[&web0]) == vec![web0_ip.clone()]),
        "{}",
        dig(&dns, &[&web0])
    );
    assert_eq!(
        short(&dns, &[&format!("web-1.{}", svc("web"))]),
        vec![web1_ip.clone()]
    );
    assert_eq!(short(&dns, &["-x", &web0_ip]), vec![web0.clone()]);
    let srv: BTreeSet<String> = short(&dns, &[&format!("_http._tcp.{}", svc("web")), "SRV"])
        .into_iter()
        .collect();
    assert_eq!(
        srv,
        BTreeSet::from([
            format!("0 50 8080 {web0}"),
            format!("0 50 8080 web-1.{}", svc("web")),
        ])
    );

    // ExternalName is a CNAME, its target resolved upstream (the stub).
    let out = dig(&dns, &["+noall", "+answer", &svc("ext")]);
    assert!(
        out.contains("CNAME\tdb.example.") && out.contains("192.0.2.7"),
        "{out}"
    );

    // An unknown name: NXDOMAIN with the zone's SOA in the authority
    // section.
    let out = dig(&dns, &[&svc("nosuch")]);
    assert!(out.contains("status: NXDOMAIN"), "{out}");
    let authority = out
        .split(";; AUTHORITY SECTION:")
        .nth(1)
        .unwrap_or_else(|| panic!("an authority section: {out}"));
    assert!(
        authority
            .lines()
            .nth(1)
            .is_some_and(|l| l.starts_with("cluster.local.") && l.contains("\tSOA\t")),
        "{out}"
    );

    // 100 endpoints do not fit in 512 bytes: truncated over UDP, whole
    // over TCP (dig retries over TCP on its own, as a stub resolver does).
    assert!(
        eventually(WAIT, || short(&dns, &["+tcp", &svc("many")]).len() == 100),
        "{}",
        dig(&dns, &["+tcp", &svc("many")])
    );
    let out = dig(&dns, &["+notcp", "+ignore", "+noedns", &svc("many")]);
    assert!(
        out.lines()
            .any(|l| l.starts_with(";; flags:") && l.contains(" tc")),
        "{out}"
    );
    assert_eq!(short(&dns, &["+noedns", &svc("many")]).len(), 100);

    // A name outside the cluster: forwarded to the stub.
    assert_eq!(short(&dns, &["outside.example."]), vec!["192.0.2.7"]);

    // Malformed packets get FORMERR or nothing, and the server keeps
    // answering.
    let mut good = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in ["api", NS, "svc", "cluster", "local"] {
        good.push(label.len() as u8);
        good.extend_from_slice(label.as_bytes());
    }
    good.extend_from_slice(&[0, 0, 1, 0, 1]);
    let reply = raw_udp(&dns, &good).expect("an answer to a well-formed query");
    assert_eq!(reply[3] & 0x0f, 0, "NOERROR: {reply:?}");
    assert_formerr_or_dropped("a truncated header", raw_udp(&dns, &good[..7]));
    let mut counts = good.clone();
    counts[5] = 5; // five questions announced, one sent
    assert_formerr_or_dropped("wrong counts", raw_udp(&dns, &counts));
    let mut looped = good[..12].to_vec();
    looped.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]); // a name pointing at itself
    assert_formerr_or_dropped("a compression loop", raw_udp(&dns, &looped));
    assert_formerr_or_dropped("a cut question", raw_udp(&dns, &good[..20]));
    assert_eq!(short(&dns, &[&svc("api")]), vec![api_ip.clone()]);
    assert_eq!(short(&dns, &["+tcp", &svc("api")]), vec![api_ip]);
}
