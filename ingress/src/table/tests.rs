use super::*;
use serde_json::json;

fn ingress(ns: &str, name: &str, created: &str, v: serde_json::Value) -> Arc<Ingress> {
    let mut v = v;
    v["apiVersion"] = json!("networking.k8s.io/v1");
    v["kind"] = json!("Ingress");
    v["metadata"]["namespace"] = json!(ns);
    v["metadata"]["name"] = json!(name);
    v["metadata"]["creationTimestamp"] = json!(created);
    v["spec"]["ingressClassName"] = json!("kedge");
    Arc::new(serde_json::from_value(v).unwrap())
}

fn rule(host: Option<&str>, paths: &[(&str, &str, &str)]) -> serde_json::Value {
    let paths: Vec<_> = paths
        .iter()
        .map(|(path, ty, svc)| {
            json!({"path": path, "pathType": ty,
                   "backend": {"service": {"name": svc, "port": {"number": 80}}}})
        })
        .collect();
    let mut r = json!({"http": {"paths": paths}});
    if let Some(h) = host {
        r["host"] = json!(h);
    }
    r
}

fn class() -> Arc<IngressClass> {
    Arc::new(
        serde_json::from_value(json!({
            "metadata": {"name": "kedge"},
            "spec": {"controller": crate::CONTROLLER_NAME}
        }))
        .unwrap(),
    )
}

/// A Service `svc` on port 80 (named http) → 8080, with one ready
/// endpoint per address.
fn service(snap: &mut Snapshot, ns: &str, svc: &str, ready: &[&str]) {
    let s: Service = serde_json::from_value(json!({
        "metadata": {"namespace": ns, "name": svc},
        "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]}
    }))
    .unwrap();
    snap.services.insert(ObjectKey::new(ns, svc), Arc::new(s));
    let endpoints: Vec<_> = ready
        .iter()
        .map(|ip| json!({"addresses": [ip], "conditions": {"ready": true}}))
        .collect();
    let slice: EndpointSlice = serde_json::from_value(json!({
        "metadata": {"namespace": ns, "name": format!("{svc}-abc"),
                     "labels": {SERVICE_NAME_LABEL: svc}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": endpoints
    }))
    .unwrap();
    snap.add_slice(Arc::new(slice));
}

fn compile_snap(snap: &Snapshot) -> Compiled {
    compile(
        snap,
        &ClassConfig::default(),
        &EndpointRegistry::default(),
        Arc::new(TlsCert::fallback()),
    )
}

/// The backend name a request goes to, or "404".
fn route(t: &RouteTable, host: &str, path: &str) -> String {
    match &t.server(host).locate(path).target {
        Target::Backend(b) => b
            .name
            .split(':')
            .next()
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap()
            .into(),
        Target::NotFound => "404".into(),
    }
}

#[test]
fn exact_prefix_and_implementation_specific() {
    let mut snap = Snapshot {
        classes: vec![class()],
        ..Default::default()
    };
    snap.ingresses.push(ingress(
        "default",
        "a",
        "2026-01-01T00:00:00Z",
        json!({"spec": {"rules": [rule(Some("foo.com"), &[
            ("/foo", "Prefix", "prefix"),
            ("/foo/exact", "Exact", "exact"),
            ("/impl", "ImplementationSpecific", "impl"),
            ("/", "Prefix", "root"),
        ])]}}),
    ));
    let t = compile_snap(&snap).table;
    assert_eq!(route(&t, "foo.com", "/foo"), "prefix");
    assert_eq!(route(&t, "foo.com", "/foo/"), "prefix");
    assert_eq!(route(&t, "foo.com", "/foo/bar"), "prefix");
    // Element-wise: /foobar is not under /foo.
    assert_eq!(route(&t, "foo.com", "/foobar"), "root");
    assert_eq!(route(&t, "foo.com", "/foo/exact"), "exact");
    assert_eq!(route(&t, "foo.com", "/foo/exact/more"), "prefix");
    // ImplementationSpecific is nginx's plain prefix.
    assert_eq!(route(&t, "foo.com", "/implementation"), "impl");
    assert_eq!(route(&t, "FOO.com.", "/other"), "root");
}

#[test]
fn hosts_exact_wildcard_catch_all_and_default_404() {
    let mut snap = Snapshot {
        classes: vec![class()],
        ..Default::default()
    };
    snap.ingresses.push(ingress(
        "default",
        "a",
        "2026-01-01T00:00:00Z",
        json!({"spec": {"rules": [
            rule(Some("foo.com"), &[("/", "Prefix", "foo")]),
            rule(Some("*.foo.com"), &[("/", "Prefix", "wild")]),
            rule(None, &[("/any", "Prefix", "any")]),
        ]}}),
    ));
    let t = compile_snap(&snap).table;
    assert_eq!(route(&t, "foo.com", "/x"), "foo");
    assert_eq!(route(&t, "bar.foo.com", "/x"), "wild");
    // A wildcard covers one label only.
    assert_eq!(route(&t, "baz.bar.foo.com", "/any"), "any");
    assert_eq!(route(&t, "other.com", "/any/thing"), "any");
    assert_eq!(route(&t, "other.com", "/"), "404");
    assert_eq!(route(&t, "", "/nothing"), "404");
}

#[test]
fn regex_mode_covers_the_whole_host_longest_first() {
    let mut snap = Snapshot {
        classes: vec![class()],
        ..Default::default()
    };
    let mut a = json!({"spec": {"rules": [rule(Some("r.com"), &[
        ("/foo(/|$)(.*)", "ImplementationSpecific", "rewritten"),
    ])]}});
    a["metadata"]["annotations"] =
        json!({"nginx.ingress.kubernetes.io/rewrite-target": "/admin/$2"});
    snap.ingresses
        .push(ingress("default", "a", "2026-01-01T00:00:00Z", a));
    // Another Ingress on the same host without regex: its Prefix path is
    // still matched as a regex, because the host is in regex mode.
    snap.ingresses.push(ingress(
        "default",
        "b",
        "2026-01-02T00:00:00Z",
        json!({"spec": {"rules": [rule(Some("r.com"), &[
            ("/foo/special", "Prefix", "special"),
            ("/bar", "Exact", "bar"),
        ])]}}),
    ));
    let t = compile_snap(&snap).table;
    assert_eq!(route(&t, "r.com", "/foo/bar"), "rewritten");
    assert_eq!(route(&t, "r.com", "/FOO"), "rewritten");
    assert_eq!(route(&t, "r.com", "/foo/special/x"), "special");
    // Exact became the regex ^/bar, as in ingress-nginx.
    assert_eq!(route(&t, "r.com", "/barn"), "bar");
    assert_eq!(route(&t, "r.com", "/elsewhere"), "404");

    let server = t.server("r.com");
    let loc = server.locate("/foo/bar/baz");
    assert_eq!(
        loc.rewritten("/foo/bar/baz").as_deref(),
        Some("/admin/bar/baz")
    );
    assert_eq!(loc.rewritten("/foo").as_deref(), Some("/admin/"));
    // Paths of the Ingress without rewrite-target keep their path.
    assert_eq!(
        server.locate("/foo/special/x").rewritten("/foo/special/x"),
        None
    );
}

#[test]
fn older_ingress_wins_a_shared_path_and_default_backends() {
    let mut snap = Snapshot {
        classes: vec![class()],
        ..Default::default()
    };
    snap.ingresses.push(ingress(
        "default",
        "newer",
        "2026-02-01T00:00:00Z",
        json!({"spec": {"rules": [rule(Some("m.com"), &[("/app", "Prefix", "newer"), ("/new", "Prefix", "new")])]}}),
    ));
    snap.ingresses.push(ingress(
        "default",
        "older",
        "2026-01-01T00:00:00Z",
        json!({"spec": {
            "defaultBackend": {"service": {"name": "fallback", "port": {"number": 80}}},
            "rules": [rule(Some("m.com"), &[("/app", "Prefix", "older")])]}}),
    ));
    let c = compile_snap(&snap);
    assert_eq!(c.served.len(), 2);
    let t = c.table;
    assert_eq!(route(&t, "m.com", "/app/x"), "older");
    assert_eq!(route(&t, "m.com", "/new"), "new");
    assert_eq!(route(&t, "m.com", "/elsewhere"), "fallback");
    // The defaultBackend also answers hosts no rule names.
    assert_eq!(route(&t, "unknown.com", "/"), "fallback");
}

#[test]
fn classes_decide_what_is_served() {
    let mut other = ingress(
        "default",
        "other",
        "2026-01-01T00:00:00Z",
        json!({"spec": {"rules": [rule(Some("o.com"), &[("/", "Prefix", "o")])]}}),
    );
    Arc::make_mut(&mut other)
        .spec
        .as_mut()
        .unwrap()
        .ingress_class_name = Some("nginx".into());
    let mut none = ingress(
        "default",
        "none",
        "2026-01-01T00:00:00Z",
        json!({"spec": {"rules": [rule(Some("n.com"), &[("/", "Prefix", "n")])]}}),
    );
    Arc::make_mut(&mut none)
        .spec
        .as_mut()
        .unwrap()
        .ingress_class_name = None;
    let mut snap = Snapshot {
        classes: vec![class()],
        ingresses: vec![other.clone(), none.clone()],
        ..Default::default()
    };
    assert!(compile_snap(&snap).served.is_empty());

    // The class marked default takes Ingresses without a class.
    let mut default_class = (*class()).clone();
    default_class.metadata.annotations =
        Some([(DEFAULT_CLASS_ANNOTATION.to_string(), "true".to_string())].into());
    snap.classes = vec![Arc::new(default_class)];
    let served = compile_snap(&snap).served;
    assert_eq!(served, vec![ObjectKey::new("default", "none")]);

    // Configured to answer for nginx too.
    let cfg = ClassConfig {
        extra_classes: vec!["nginx".into()],
        ..Default::default()
    };
    let c = compile(
        &snap,
        &cfg,
        &EndpointRegistry::default(),
        Arc::new(TlsCert::fallback()),
    );
    assert_eq!(c.served.len(), 2);
}

#[test]
fn ready_endpoints_only_and_round_robin() {
    let mut snap = Snapshot {
        classes: vec![class()],
        ..Default::default()
    };
    service(&mut snap, "default", "web", &["10.0.0.2", "10.0.0.1"]);
    // An unready and a terminating endpoint in a second slice.
    let slice: EndpointSlice = serde_json::from_value(json!({
        "metadata": {"namespace": "default", "name": "web-def",
                     "labels": {SERVICE_NAME_LABEL: "web"}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": [
            {"addresses": ["10.0.0.3"], "conditions": {"ready": false}},
            {"addresses": ["10.0.0.4"], "conditions": {"ready": false, "serving": true, "terminating": true}}
        ]
    }))
    .unwrap();
    snap.add_slice(Arc::new(slice));
    let mut ing = json!({"spec": {"rules": [{"http": {"paths": [
        {"path": "/", "pathType": "Prefix",
         "backend": {"service": {"name": "web", "port": {"name": "http"}}}},
        {"path": "/missing", "pathType": "Prefix",
         "backend": {"service": {"name": "absent", "port": {"number": 80}}}},
        {"path": "/badport", "pathType": "Prefix",
         "backend": {"service": {"name": "web", "port": {"number": 81}}}}
    ]}}]}});
    ing["metadata"] = json!({});
    snap.ingresses
        .push(ingress("default", "a", "2026-01-01T00:00:00Z", ing));
    let c = compile_snap(&snap);
    assert_eq!(c.problems.len(), 1, "{:?}", c.problems);
    assert!(c.problems[0].message.contains("no port 81"));
    let Target::Backend(b) = &c.table.server("x").locate("/").target else {
        panic!("a backend")
    };
    let addrs: Vec<String> = b.endpoints.iter().map(|e| e.addr.to_string()).collect();
    assert_eq!(addrs, ["10.0.0.1:8080", "10.0.0.2:8080"]);
    let picks: Vec<_> = (0..4).map(|_| b.pick(&[]).unwrap().addr).collect();
    assert_eq!(picks[0], picks[2]);
    assert_ne!(picks[0], picks[1]);
    // A retry avoids the endpoint that failed.
    let first = b.pick(&[]).unwrap().addr;
    assert_ne!(b.pick(&[first]).unwrap().addr, first);
    // A Service that does not exist is a backend without endpoints (503).
    let Target::Backend(absent) = &c.table.server("x").locate("/missing").target else {
        panic!("a backend")
    };
    assert!(absent.pick(&[]).is_none());
}

#[test]
fn snippets_refuse_and_tls_hosts_are_marked() {
    let mut snap = Snapshot {
        classes: vec![class()],
        ..Default::default()
    };
    let mut bad = json!({"spec": {"rules": [rule(Some("s.com"), &[("/", "Prefix", "s")])]}});
    bad["metadata"]["annotations"] =
        json!({"nginx.ingress.kubernetes.io/server-snippet": "location /x { return 200; }"});
    snap.ingresses
        .push(ingress("default", "bad", "2026-01-01T00:00:00Z", bad));
    snap.ingresses.push(ingress(
        "default",
        "tls",
        "2026-01-01T00:00:00Z",
        json!({"spec": {
            "tls": [{"hosts": ["t.com"], "secretName": "missing"}],
            "rules": [rule(Some("t.com"), &[("/", "Prefix", "t")])]}}),
    ));
    let c = compile_snap(&snap);
    assert_eq!(c.served, vec![ObjectKey::new("default", "tls")]);
    let reasons: Vec<_> = c.problems.iter().map(|p| p.reason).collect();
    assert_eq!(reasons, ["Rejected", "InvalidTLS"]);
    assert_eq!(route(&c.table, "s.com", "/"), "404");
    assert!(c.table.server("t.com").tls);
    assert!(!c.table.server("s.com").tls);
}

#[test]
fn ewma_steers_away_from_a_slow_endpoint() {
    let registry = EndpointRegistry::default();
    let fast = registry.get("10.0.0.1:80".parse().unwrap());
    let slow = registry.get("10.0.0.2:80".parse().unwrap());
    let b = Backend {
        name: "default/web:80".into(),
        endpoints: vec![fast.clone(), slow.clone()],
        next: AtomicUsize::new(0),
        balance: LoadBalance::Ewma,
    };
    // Teach it: one answers in 1 ms, the other in 200 ms.
    for _ in 0..10 {
        fast.start();
        fast.finish(1_000.0);
        slow.start();
        slow.finish(200_000.0);
    }
    let to_fast = (0..100)
        .filter(|_| b.pick(&[]).unwrap().addr == fast.addr)
        .count();
    assert!(to_fast >= 90, "{to_fast} of 100 to the fast endpoint");
    // A retry still avoids the endpoint that failed, fast or not.
    assert_eq!(b.pick(&[fast.addr]).unwrap().addr, slow.addr);
}

#[test]
fn exact_beats_the_exact_half_of_a_prefix_on_the_same_path() {
    let mut snap = Snapshot {
        classes: vec![class()],
        ..Default::default()
    };
    // Prefix listed first: its own exact "/foo" must not shadow the Exact.
    snap.ingresses.push(ingress(
        "default",
        "mixed",
        "2026-01-01T00:00:00Z",
        json!({"spec": {"rules": [rule(Some("mixed.com"), &[
            ("/foo", "Prefix", "prefix"),
            ("/foo", "Exact", "exact"),
        ])]}}),
    ));
    // The same across two Ingresses, the Prefix one older.
    snap.ingresses.push(ingress(
        "default",
        "older-prefix",
        "2026-01-01T00:00:00Z",
        json!({"spec": {"rules": [rule(Some("split.com"), &[("/foo", "Prefix", "prefix")])]}}),
    ));
    snap.ingresses.push(ingress(
        "default",
        "newer-exact",
        "2026-02-01T00:00:00Z",
        json!({"spec": {"rules": [rule(Some("split.com"), &[("/foo", "Exact", "exact")])]}}),
    ));
    let t = compile_snap(&snap).table;
    for host in ["mixed.com", "split.com"] {
        assert_eq!(route(&t, host, "/foo"), "exact", "{host}");
        assert_eq!(route(&t, host, "/foo/"), "prefix", "{host}");
        assert_eq!(route(&t, host, "/foo/bar"), "prefix", "{host}");
        assert_eq!(route(&t, host, "/foobar"), "404", "{host}");
    }
}

#[test]
fn exact_wins_in_regex_mode_too() {
    let mut snap = Snapshot {
        classes: vec![class()],
        ..Default::default()
    };
    // Puts r.com in regex mode.
    let mut a = json!({"spec": {"rules": [rule(Some("r.com"), &[
        ("/api/v[0-9]+", "ImplementationSpecific", "api"),
    ])]}});
    a["metadata"]["annotations"] = json!({"nginx.ingress.kubernetes.io/use-regex": "true"});
    snap.ingresses
        .push(ingress("default", "a", "2026-01-01T00:00:00Z", a));
    snap.ingresses.push(ingress(
        "default",
        "b",
        "2026-01-02T00:00:00Z",
        json!({"spec": {"rules": [rule(Some("r.com"), &[
            ("/foo", "Prefix", "prefix"),
            ("/foo", "Exact", "exact"),
        ])]}}),
    ));
    // Both paths in an Ingress that is itself regex: the same regex twice,
    // the Exact one tried first.
    let mut c = json!({"spec": {"rules": [rule(Some("re.com"), &[
        ("/foo", "Prefix", "prefix"),
        ("/foo", "Exact", "exact"),
    ])]}});
    c["metadata"]["annotations"] = json!({"nginx.ingress.kubernetes.io/use-regex": "true"});
    snap.ingresses
        .push(ingress("default", "c", "2026-01-03T00:00:00Z", c));
    let t = compile_snap(&snap).table;
    assert_eq!(route(&t, "r.com", "/api/v2/x"), "api");
    assert_eq!(route(&t, "r.com", "/foo"), "exact");
    assert_eq!(route(&t, "r.com", "/foo/bar"), "prefix");
    assert_eq!(route(&t, "re.com", "/foo"), "exact");
}

#[test]
fn a_trailing_slash_in_a_prefix_is_ignored() {
    let mut snap = Snapshot {
        classes: vec![class()],
        ..Default::default()
    };
    snap.ingresses.push(ingress(
        "default",
        "a",
        "2026-01-01T00:00:00Z",
        json!({"spec": {"rules": [rule(Some("t.com"), &[
            ("/aaa/bbb/", "Prefix", "bbb"),
            ("/foo/", "Exact", "foo"),
            ("/x/", "Prefix", "x"),
            ("/x", "Exact", "x-exact"),
        ])]}}),
    ));
    let t = compile_snap(&snap).table;
    // The Ingress API's table: /aaa/bbb/ matches /aaa/bbb, /aaa/bbb/ and
    // /aaa/bbb/ccc, not /aaa/bbbxyz.
    assert_eq!(route(&t, "t.com", "/aaa/bbb"), "bbb");
    assert_eq!(route(&t, "t.com", "/aaa/bbb/"), "bbb");
    assert_eq!(route(&t, "t.com", "/aaa/bbb/ccc"), "bbb");
    assert_eq!(route(&t, "t.com", "/aaa/bbbxyz"), "404");
    // An Exact path keeps its slash.
    assert_eq!(route(&t, "t.com", "/foo/"), "foo");
    assert_eq!(route(&t, "t.com", "/foo"), "404");
    // A Prefix "/x/" and an Exact "/x": the Exact still wins "/x".
    assert_eq!(route(&t, "t.com", "/x"), "x-exact");
    assert_eq!(route(&t, "t.com", "/x/y"), "x");
}
