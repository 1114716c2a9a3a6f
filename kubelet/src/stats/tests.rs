use super::*;

const STAT: &str = "cpu  1000 50 450 9000 100 20 30 0 0 0\ncpu0 500 25 225 4500 50 10 15 0 0 0\nbtime 1796601600\n";
const MEMINFO: &str = "MemTotal:        1000 kB\nMemFree:          400 kB\nMemAvailable:     700 kB\nInactive(file):   100 kB\n";

fn container(id: &str, pod: &str, cpu: f64, at: Timestamp) -> ContainerStats {
    ContainerStats {
        id: id.into(),
        name: format!("c-{id}"),
        pod_uid: format!("uid-{pod}"),
        pod_name: pod.into(),
        pod_namespace: "default".into(),
        started_at: Some(Timestamp::from_second(1_796_601_700).unwrap()),
        timestamp: at,
        cpu_seconds: cpu,
        memory_usage_bytes: 3 << 20,
        memory_working_set_bytes: 2 << 20,
        memory_rss_bytes: Some(1 << 20),
    }
}

#[test]
fn the_node_is_read_from_proc() {
    let at = Timestamp::from_second(1_796_602_000).unwrap();
    let node = NodeStats::parse(STAT, MEMINFO, at).unwrap();
    // user + nice + system + irq + softirq + steal, in hundredths.
    assert_eq!(node.cpu_seconds, 15.5);
    assert_eq!(node.memory_total_bytes, 1000 * 1024);
    assert_eq!(node.memory_usage_bytes, 600 * 1024);
    assert_eq!(node.memory_working_set_bytes, 500 * 1024);
    assert_eq!(node.start_time.unwrap().as_second(), 1_796_601_600);
    assert!(NodeStats::parse("", MEMINFO, at).is_none());
}

#[test]
fn resource_metrics_name_every_container_pod_and_the_node() {
    let at = Timestamp::from_second(1_796_602_000).unwrap();
    let sample = Sample {
        node: NodeStats::parse(STAT, MEMINFO, at),
        containers: vec![
            container("a", "web", 1.5, at),
            container("b", "web", 0.5, at),
            container("c", "db\"x", 2.0, at),
        ],
    };
    let text = sample.resource_metrics();
    let ms = at.as_millisecond();
    for line in [
        format!("container_cpu_usage_seconds_total{{container=\"c-a\",namespace=\"default\",pod=\"web\"}} 1.5 {ms}"),
        format!("container_memory_working_set_bytes{{container=\"c-b\",namespace=\"default\",pod=\"web\"}} 2097152 {ms}"),
        format!("container_start_time_seconds{{container=\"c-a\",namespace=\"default\",pod=\"web\"}} 1796601700 {ms}"),
        format!("pod_cpu_usage_seconds_total{{namespace=\"default\",pod=\"web\"}} 2 {ms}"),
        format!("pod_memory_working_set_bytes{{namespace=\"default\",pod=\"web\"}} 4194304 {ms}"),
        format!("pod_cpu_usage_seconds_total{{namespace=\"default\",pod=\"db\\\"x\"}} 2 {ms}"),
        format!("node_cpu_usage_seconds_total 15.5 {ms}"),
        format!("node_memory_working_set_bytes 512000 {ms}"),
        "# TYPE container_cpu_usage_seconds_total counter".to_string(),
    ] {
        assert!(text.lines().any(|l| l == line), "no line {line:?} in:\n{text}");
    }
}

#[test]
fn the_summary_carries_rates_from_the_previous_sample() {
    let summaries = Summaries::default();
    let t0 = Timestamp::from_second(1_796_602_000).unwrap();
    let t1 = Timestamp::from_second(1_796_602_010).unwrap();
    let first = Sample {
        node: None,
        containers: vec![container("a", "web", 1.0, t0)],
    };
    let doc = summaries.summary("n1", &first);
    let cpu = &doc["pods"][0]["containers"][0]["cpu"];
    assert_eq!(cpu["usageCoreNanoSeconds"], 1_000_000_000u64);
    assert!(
        cpu.get("usageNanoCores").is_none(),
        "no rate from one sample"
    );

    // Five more core-seconds in ten seconds: half a core.
    let second = Sample {
        node: None,
        containers: vec![container("a", "web", 6.0, t1)],
    };
    let doc = summaries.summary("n1", &second);
    let pod = &doc["pods"][0];
    assert_eq!(pod["podRef"]["name"], "web");
    assert_eq!(pod["podRef"]["uid"], "uid-web");
    assert_eq!(
        pod["containers"][0]["cpu"]["usageNanoCores"],
        500_000_000u64
    );
    assert_eq!(pod["cpu"]["usageNanoCores"], 500_000_000u64);
    assert_eq!(pod["memory"]["workingSetBytes"], 2u64 << 20);
    assert_eq!(pod["containers"][0]["memory"]["rssBytes"], 1u64 << 20);
}
