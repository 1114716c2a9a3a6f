use super::*;

const SCRAPE_1: &str = r#"# HELP container_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the container in core-seconds
# TYPE container_cpu_usage_seconds_total counter
container_cpu_usage_seconds_total{container="burn",namespace="default",pod="web-1"} 10 1000000
container_cpu_usage_seconds_total{container="side\"car",namespace="default",pod="web-1"} 1 1000000
# TYPE container_memory_working_set_bytes gauge
container_memory_working_set_bytes{container="burn",namespace="default",pod="web-1"} 2097152 1000000
container_memory_working_set_bytes{container="side\"car",namespace="default",pod="web-1"} 1000 1000000
node_cpu_usage_seconds_total 100 1000000
node_memory_working_set_bytes 1.073741824e+09 1000000
malformed line
container_cpu_usage_seconds_total{container="x"} 1
"#;

fn second_scrape() -> String {
    // Fifteen seconds on: the burner used 15 core-seconds (one core), the
    // sidecar 0.15 (10m), the node 30 (two cores).
    SCRAPE_1
        .replace("} 10 1000000", "} 25 1015000")
        .replace("} 1 1000000", "} 1.15 1015000")
        .replace(" 1000000\n", " 1015000\n")
        .replace(
            "node_cpu_usage_seconds_total 100 1015000",
            "node_cpu_usage_seconds_total 130 1015000",
        )
}

#[test]
fn a_scrape_keeps_the_four_metrics_with_their_timestamps() {
    let scraped = parse(SCRAPE_1);
    let node = scraped.node.unwrap();
    assert_eq!(node.at_ms, 1_000_000);
    assert_eq!(node.cpu_seconds, 100.0);
    assert_eq!(node.memory_bytes, 1_073_741_824.0);
    assert_eq!(scraped.containers.len(), 2);
    let key = (
        "default".to_string(),
        "web-1".to_string(),
        "side\"car".to_string(),
    );
    assert_eq!(scraped.containers[&key].memory_bytes, 1000.0);
}

#[test]
fn usage_is_the_rate_between_the_last_two_scrapes() {
    let metrics = ResourceMetrics::default();
    metrics.record("n1", &parse(SCRAPE_1));
    assert!(metrics.node("n1").is_none(), "one sample has no rate");
    assert!(metrics.pod("default", "web-1").is_empty());
    metrics.record("n1", &parse(&second_scrape()));
    let node = metrics.node("n1").unwrap();
    assert!((node.cores - 2.0).abs() < 1e-9, "{node:?}");
    assert_eq!(node.window_ms, 15_000);
    let pod = metrics.pod("default", "web-1");
    assert!((pod["burn"].cores - 1.0).abs() < 1e-9);
    assert!((pod["side\"car"].cores - 0.01).abs() < 1e-9);
    assert_eq!(pod["burn"].memory_bytes, 2_097_152.0);

    // The same scrape again keeps the window; a scrape without the
    // sidecar forgets it; a counter that went back starts over.
    metrics.record("n1", &parse(&second_scrape()));
    assert_eq!(metrics.node("n1").unwrap().window_ms, 15_000);
    let restarted = "container_cpu_usage_seconds_total{container=\"burn\",namespace=\"default\",pod=\"web-1\"} 1 1030000\ncontainer_memory_working_set_bytes{container=\"burn\",namespace=\"default\",pod=\"web-1\"} 1 1030000\n";
    metrics.record("n1", &parse(restarted));
    assert!(metrics.pod("default", "web-1").is_empty());
    // The node's series is kept when a scrape lacks it.
    assert!(metrics.node("n1").is_some());
    metrics.retain_nodes(&[]);
    assert!(metrics.node("n1").is_none());
}

#[test]
fn quantities_and_windows_are_written_as_metrics_server_writes_them() {
    assert_eq!(cpu_quantity(1.0), "1000000000n");
    assert_eq!(cpu_quantity(0.0123), "12300000n");
    assert_eq!(cpu_quantity(-1.0), "0n");
    assert_eq!(memory_quantity(2_097_152.0), "2Mi");
    assert_eq!(memory_quantity(3_072.0), "3Ki");
    assert_eq!(memory_quantity(1000.0), "1000");
    assert_eq!(memory_quantity(0.0), "0");
    assert_eq!(go_duration(15_000), "15s");
    assert_eq!(go_duration(15_004), "15.004s");
    assert_eq!(go_duration(60_500), "1m0.5s");
    assert_eq!(rfc3339(1_000_000), "1970-01-01T00:16:40Z");
}
