//! Reading a kubelet's `/metrics/resource`: the Prometheus text lines of
//! the four metrics metrics-server takes, each with its sample's own
//! timestamp. Anything else, and malformed lines, are skipped.

use std::collections::HashMap;

/// One node or container sample.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Sampled {
    /// When (Unix ms).
    pub at_ms: i64,
    /// Cumulative CPU, core-seconds.
    pub cpu_seconds: f64,
    /// Working set, bytes.
    pub memory_bytes: f64,
}

/// What one scrape held.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scraped {
    /// The node's sample, when it had both metrics.
    pub node: Option<Sampled>,
    /// Each container's, by (namespace, pod, container), when it had both.
    pub containers: HashMap<(String, String, String), Sampled>,
}

/// Parse a `/metrics/resource` text.
pub fn parse(text: &str) -> Scraped {
    let mut node_cpu = None;
    let mut node_memory = None;
    let mut cpu: HashMap<(String, String, String), (f64, i64)> = HashMap::new();
    let mut memory: HashMap<(String, String, String), (f64, i64)> = HashMap::new();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let Some((name, labels, value, at)) = sample_line(line) else {
            continue;
        };
        let container = || {
            let get = |k: &str| labels.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
            Some((get("namespace")?, get("pod")?, get("container")?))
        };
        match name {
            "node_cpu_usage_seconds_total" => node_cpu = Some((value, at)),
            "node_memory_working_set_bytes" => node_memory = Some((value, at)),
            "container_cpu_usage_seconds_total" => {
                if let Some(key) = container() {
                    cpu.insert(key, (value, at));
                }
            }
            "container_memory_working_set_bytes" => {
                if let Some(key) = container() {
                    memory.insert(key, (value, at));
                }
            }
            _ => {}
        }
    }
    let node = match (node_cpu, node_memory) {
        (Some((c, at)), Some((m, _))) => Some(Sampled {
            at_ms: at,
            cpu_seconds: c,
            memory_bytes: m,
        }),
        _ => None,
    };
    let containers = cpu
        .into_iter()
        .filter_map(|(key, (c, at))| {
            let (m, _) = memory.get(&key)?;
            Some((
                key,
                Sampled {
                    at_ms: at,
                    cpu_seconds: c,
                    memory_bytes: *m,
                },
            ))
        })
        .collect();
    Scraped { node, containers }
}

/// A sample line's name, labels, value and timestamp.
type SampleLine<'a> = (&'a str, Vec<(String, String)>, f64, i64);

/// `name{k="v",…} value timestamp`: the parts, when the sample has a
/// timestamp (the kubelet always writes one).
fn sample_line(line: &str) -> Option<SampleLine<'_>> {
    let (name, rest) = match line.find('{') {
        Some(open) => {
            let close = line[open..].rfind('}')? + open;
            (&line[..open], (&line[open + 1..close], &line[close + 1..]))
        }
        None => {
            let space = line.find(' ')?;
            (&line[..space], ("", &line[space..]))
        }
    };
    let (labels, tail) = rest;
    let mut fields = tail.split_whitespace();
    let value: f64 = fields.next()?.parse().ok()?;
    let at: i64 = fields.next()?.parse().ok()?;
    if !value.is_finite() {
        return None;
    }
    Some((name.trim(), parse_labels(labels)?, value, at))
}

/// `k="v",k2="v\"2"`: the pairs, unescaped.
fn parse_labels(text: &str) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Some(out);
        }
        let mut key = String::new();
        for c in chars.by_ref() {
            if c == '=' {
                break;
            }
            key.push(c);
        }
        if chars.next()? != '"' {
            return None;
        }
        let mut value = String::new();
        loop {
            match chars.next()? {
                '\\' => match chars.next()? {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                '"' => break,
                c => value.push(c),
            }
        }
        out.push((key.trim().to_string(), value));
    }
}
