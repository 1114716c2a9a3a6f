use super::*;

fn policy(name: &str, spec: serde_json::Value) -> AuthorizationPolicy {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "namespace": "shop"},
        "spec": spec,
    }))
    .unwrap()
}

fn labels(app: &str) -> BTreeMap<String, String> {
    [("app".to_string(), app.to_string())].into()
}

const CLIENT: Caller<'static> = Caller {
    spiffe_id: Some("spiffe://cluster.local/ns/shop/sa/client"),
};
const OTHER: Caller<'static> = Caller {
    spiffe_id: Some("spiffe://cluster.local/ns/batch/sa/worker"),
};
const PLAINTEXT: Caller<'static> = Caller { spiffe_id: None };

#[test]
fn without_policies_everything_is_allowed() {
    assert_eq!(
        Policies::default().check("shop", &labels("web"), CLIENT, 8080, Call::Connection),
        Ok(())
    );
    let elsewhere = policy(
        "deny-all",
        serde_json::json!({"action": "DENY", "rules": [{}]}),
    );
    assert_eq!(
        Policies::index([&elsewhere]).check(
            "other",
            &labels("web"),
            CLIENT,
            8080,
            Call::Connection
        ),
        Ok(()),
        "policies hold in their own namespace only"
    );
}

#[test]
fn a_matching_deny_wins_and_names_itself() {
    let deny = policy(
        "no-batch",
        serde_json::json!({"action": "DENY", "rules": [{"from": [{"source": {"namespaces": ["batch"]}}]}]}),
    );
    let allow_all = policy("all", serde_json::json!({"rules": [{}]}));
    let policies = Policies::index([&deny, &allow_all]);
    assert_eq!(
        policies.check("shop", &labels("web"), OTHER, 8080, Call::Connection),
        Err(Denial {
            policy: "shop/no-batch".into()
        })
    );
    assert_eq!(
        policies.check("shop", &labels("web"), CLIENT, 8080, Call::Connection),
        Ok(())
    );
    assert_eq!(
        policies.check("shop", &labels("web"), PLAINTEXT, 8080, Call::Connection),
        Ok(()),
        "a plaintext caller is in no namespace"
    );
}

#[test]
fn with_an_allow_policy_only_what_it_matches_gets_through() {
    let allow = policy(
        "clients",
        serde_json::json!({
            "selector": {"matchLabels": {"app": "web"}},
            "rules": [{
                "from": [{"source": {"principals": ["cluster.local/ns/shop/sa/*"]}}],
                "to": [{"operation": {"ports": ["8080"]}}]
            }]
        }),
    );
    let policies = Policies::index([&allow]);
    let web = labels("web");
    assert_eq!(
        policies.check("shop", &web, CLIENT, 8080, Call::Connection),
        Ok(())
    );
    assert!(
        policies
            .check("shop", &web, CLIENT, 9090, Call::Connection)
            .is_err(),
        "other port"
    );
    assert!(
        policies
            .check("shop", &web, OTHER, 8080, Call::Connection)
            .is_err(),
        "other caller"
    );
    assert!(
        policies
            .check("shop", &web, PLAINTEXT, 8080, Call::Connection)
            .is_err(),
        "no identity"
    );
    assert_eq!(
        policies.check("shop", &labels("db"), OTHER, 8080, Call::Connection),
        Ok(()),
        "a pod the policy does not select"
    );
    assert_eq!(
        policies.check("other", &web, OTHER, 8080, Call::Connection),
        Ok(()),
        "another namespace"
    );
}

#[test]
fn an_allow_policy_without_rules_denies_all_and_negations_match_plaintext() {
    let nothing = policy("nothing", serde_json::json!({}));
    assert!(Policies::index([&nothing])
        .check("shop", &labels("web"), CLIENT, 80, Call::Connection)
        .is_err());
    let deny_unless_client = policy(
        "only-client",
        serde_json::json!({"action": "DENY", "rules": [{"from": [{"source": {"notPrincipals": ["cluster.local/ns/shop/sa/client"]}}]}]}),
    );
    let policies = Policies::index([&deny_unless_client]);
    assert_eq!(
        policies.check("shop", &labels("web"), CLIENT, 80, Call::Connection),
        Ok(())
    );
    assert!(policies
        .check("shop", &labels("web"), OTHER, 80, Call::Connection)
        .is_err());
    assert!(policies
        .check("shop", &labels("web"), PLAINTEXT, 80, Call::Connection)
        .is_err());
}

#[test]
fn http_fields_refuse_in_a_deny_and_match_nothing_in_an_allow() {
    let deny_posts = policy(
        "no-posts",
        serde_json::json!({"action": "DENY", "rules": [{"to": [{"operation": {"methods": ["POST"]}}]}]}),
    );
    assert!(Policies::index([&deny_posts])
        .check("shop", &labels("web"), CLIENT, 80, Call::Connection)
        .is_err());
    let allow_gets = policy(
        "gets",
        serde_json::json!({"rules": [{"to": [{"operation": {"methods": ["GET"]}}]}]}),
    );
    assert!(Policies::index([&allow_gets])
        .check("shop", &labels("web"), CLIENT, 80, Call::Connection)
        .is_err());
}

#[test]
fn patterns_are_exact_prefix_suffix_or_any() {
    assert!(pattern_matches("*", "x"));
    assert!(pattern_matches("a/*", "a/b"));
    assert!(pattern_matches("*/sa/web", "td/ns/x/sa/web"));
    assert!(!pattern_matches("a", "ab"));
}

#[test]
fn requests_are_decided_by_method_and_path() {
    let read_only = policy(
        "read-only",
        serde_json::json!({"rules": [{"to": [{"operation": {"methods": ["GET", "HEAD"], "paths": ["/api/*"]}}]}]}),
    );
    let no_admin = policy(
        "no-admin",
        serde_json::json!({"action": "DENY", "rules": [{"to": [{"operation": {"paths": ["/admin*"]}}]}]}),
    );
    let policies = Policies::index([&read_only, &no_admin]);
    let web = labels("web");
    assert!(policies.reads_http("shop", &web));
    assert!(!policies.reads_http("other", &web));
    let request = |method, path| Call::Request { method, path };
    assert_eq!(
        policies.check("shop", &web, CLIENT, 80, request("GET", "/api/items")),
        Ok(())
    );
    assert!(policies
        .check("shop", &web, CLIENT, 80, request("POST", "/api/items"))
        .is_err());
    assert!(policies
        .check("shop", &web, CLIENT, 80, request("GET", "/other"))
        .is_err());
    assert_eq!(
        policies.check("shop", &web, CLIENT, 80, request("GET", "/admin/x")),
        Err(Denial {
            policy: "shop/no-admin".into()
        })
    );
    assert!(
        policies
            .check("shop", &web, CLIENT, 80, Call::Connection)
            .is_err(),
        "a connection that is not HTTP meets the safe side"
    );
}
