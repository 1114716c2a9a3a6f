//! `kedge mesh top`: the mesh's golden metrics per workload pair, read from
//! node proxies' `/metrics` (Linkerd's `viz stat`, without a Prometheus):
//! HTTP requests, success rate and latency per source workload and
//! Service, and TCP connections and bytes per workload pair. With
//! `--interval`, two readings that far apart give rates and the window's
//! latencies; without, the totals since the proxies started.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::Context;
use clap::Args;

#[derive(Args, Clone)]
pub struct MeshTopArgs {
    /// The node proxies' metrics endpoints (`kedge up`/`join` serve theirs
    /// on 127.0.0.1:10249); repeat for several nodes.
    #[arg(long = "metrics-addr", default_value = "127.0.0.1:10249")]
    metrics_addrs: Vec<SocketAddr>,
    /// Seconds between two readings, for rates; 0 shows totals.
    #[arg(long, default_value_t = 0)]
    interval: u64,
}

/// One sample: labels and value.
type Samples = Vec<(String, BTreeMap<String, String>, f64)>;

pub fn run(args: MeshTopArgs) -> anyhow::Result<()> {
    let first = scrape_all(&args.metrics_addrs)?;
    let (samples, seconds) = if args.interval == 0 {
        (first, None)
    } else {
        std::thread::sleep(Duration::from_secs(args.interval));
        let second = scrape_all(&args.metrics_addrs)?;
        (difference(&second, &first), Some(args.interval as f64))
    };
    print!("{}", render(&samples, seconds));
    Ok(())
}

fn scrape_all(addrs: &[SocketAddr]) -> anyhow::Result<Samples> {
    let mut out = Samples::new();
    for addr in addrs {
        let text = scrape(*addr).with_context(|| format!("reading the metrics of {addr}"))?;
        out.extend(parse(&text));
    }
    Ok(out)
}

fn scrape(addr: SocketAddr) -> anyhow::Result<String> {
    let mut conn = TcpStream::connect_timeout(&addr, Duration::from_secs(3))?;
    // A node busy with its pods may take a while to render its metrics.
    conn.set_read_timeout(Some(Duration::from_secs(15)))?;
    write!(
        conn,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut text = String::new();
    conn.read_to_string(&mut text)?;
    let (head, body) = text.split_once("\r\n\r\n").context("not an HTTP answer")?;
    anyhow::ensure!(
        head.starts_with("HTTP/1.1 200"),
        "answered {}",
        head.lines().next().unwrap_or_default()
    );
    Ok(body.to_string())
}

/// The samples of the text exposition format: `name{k="v",…} value`.
fn parse(text: &str) -> Samples {
    let mut out = Samples::new();
    for line in text.lines().filter(|l| l.starts_with("kedge_mesh_")) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => (name, labels(rest.trim_end_matches('}'))),
            None => (series, BTreeMap::new()),
        };
        out.push((name.to_string(), labels, value));
    }
    out
}

/// `k="v",k2="v2"` (label values here hold no quotes or commas).
fn labels(text: &str) -> BTreeMap<String, String> {
    text.split("\",")
        .filter_map(|pair| {
            let (key, value) = pair.split_once("=\"")?;
            Some((key.to_string(), value.trim_end_matches('"').to_string()))
        })
        .collect()
}

/// `later - earlier`, series by series (counters and histogram buckets).
fn difference(later: &Samples, earlier: &Samples) -> Samples {
    later
        .iter()
        .map(|(name, labels, value)| {
            let before = earlier
                .iter()
                .filter(|(n, l, _)| n == name && l == labels)
                .map(|(_, _, v)| *v)
                .sum::<f64>();
            (name.clone(), labels.clone(), (value - before).max(0.0))
        })
        .collect()
}

fn label<'a>(labels: &'a BTreeMap<String, String>, key: &str) -> &'a str {
    labels.get(key).map_or("", String::as_str)
}

#[derive(Default)]
struct HttpRow {
    requests: f64,
    successes: f64,
    /// Upper bound (as bits: positive floats sort by them) → cumulative
    /// count.
    buckets: BTreeMap<u64, f64>,
}

impl HttpRow {
    /// The `q` quantile's bucket bound, in milliseconds.
    fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.buckets.values().copied().fold(0.0, f64::max);
        if total <= 0.0 {
            return None;
        }
        self.buckets
            .iter()
            .find(|(_, count)| **count >= q * total)
            .map(|(bound, _)| f64::from_bits(*bound) * 1000.0)
    }
}

#[derive(Default)]
struct TcpRow {
    connections: f64,
    sent: f64,
    received: f64,
}

/// The two tables, as `kubectl top` prints: column names, values aligned.
fn render(samples: &Samples, seconds: Option<f64>) -> String {
    let mut http: BTreeMap<(String, String), HttpRow> = BTreeMap::new();
    let mut tcp: BTreeMap<(String, String), TcpRow> = BTreeMap::new();
    for (name, labels, value) in samples {
        let source = label(labels, "source_workload").to_string();
        match name.as_str() {
            "kedge_mesh_requests_total" => {
                let row = http
                    .entry((source, label(labels, "destination_service").to_string()))
                    .or_default();
                row.requests += value;
                if !label(labels, "response_code").starts_with('5') {
                    row.successes += value;
                }
            }
            "kedge_mesh_request_duration_seconds_bucket" => {
                let bound = match label(labels, "le") {
                    "+Inf" => f64::INFINITY,
                    le => le.parse().unwrap_or(f64::INFINITY),
                };
                let row = http
                    .entry((source, label(labels, "destination_service").to_string()))
                    .or_default();
                *row.buckets.entry(bound.to_bits()).or_default() += value;
            }
            "kedge_mesh_tcp_connections_opened_total"
            | "kedge_mesh_tcp_sent_bytes_total"
            | "kedge_mesh_tcp_received_bytes_total"
                if label(labels, "reporter") == "source" =>
            {
                let row = tcp
                    .entry((source, label(labels, "destination_workload").to_string()))
                    .or_default();
                match name.as_str() {
                    "kedge_mesh_tcp_connections_opened_total" => row.connections += value,
                    "kedge_mesh_tcp_sent_bytes_total" => row.sent += value,
                    _ => row.received += value,
                }
            }
            _ => {}
        }
    }
    let per = |v: f64| seconds.map_or(format!("{v:.0}"), |s| format!("{:.1}/s", v / s));
    let ms = |v: Option<f64>| {
        v.filter(|v| v.is_finite())
            .map_or("-".to_string(), |v| format!("{v:.1}ms"))
    };
    let mut rows = vec![[
        "SOURCE", "SERVICE", "REQUESTS", "SUCCESS", "P50", "P95", "P99",
    ]
    .map(String::from)
    .to_vec()];
    for ((source, service), row) in http.iter().filter(|(_, r)| r.requests > 0.0) {
        rows.push(vec![
            source.clone(),
            service.clone(),
            per(row.requests),
            format!("{:.2}%", 100.0 * row.successes / row.requests),
            ms(row.quantile(0.5)),
            ms(row.quantile(0.95)),
            ms(row.quantile(0.99)),
        ]);
    }
    let mut out = String::new();
    if rows.len() > 1 {
        out.push_str(&table(&rows));
        out.push('\n');
    }
    let mut rows = vec![["SOURCE", "DESTINATION", "CONNECTIONS", "SENT", "RECEIVED"]
        .map(String::from)
        .to_vec()];
    for ((source, destination), row) in tcp.iter().filter(|(_, r)| r.connections > 0.0) {
        rows.push(vec![
            source.clone(),
            destination.clone(),
            per(row.connections),
            bytes(row.sent, seconds),
            bytes(row.received, seconds),
        ]);
    }
    if rows.len() > 1 {
        out.push_str(&table(&rows));
    }
    if out.is_empty() {
        out.push_str("No mesh traffic seen.\n");
    }
    out
}

fn bytes(v: f64, seconds: Option<f64>) -> String {
    let (v, suffix) = match seconds {
        Some(s) => (v / s, "/s"),
        None => (v, ""),
    };
    let text = if v >= 1024.0 * 1024.0 {
        format!("{:.1}MiB", v / 1024.0 / 1024.0)
    } else if v >= 1024.0 {
        format!("{:.1}KiB", v / 1024.0)
    } else {
        format!("{v:.0}B")
    };
    text + suffix
}

/// Columns padded to their widest cell, three spaces apart.
fn table(rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        out.push_str(cells.join("   ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP kedge_mesh_requests HTTP requests
kedge_mesh_requests_total{reporter="source",source_workload="shop/web",destination_service="shop/api",destination_workload="shop/api",response_code="200"} 98
kedge_mesh_requests_total{reporter="source",source_workload="shop/web",destination_service="shop/api",destination_workload="shop/api",response_code="503"} 2
kedge_mesh_request_duration_seconds_bucket{source_workload="shop/web",destination_service="shop/api",le="0.001"} 50
kedge_mesh_request_duration_seconds_bucket{source_workload="shop/web",destination_service="shop/api",le="0.004"} 96
kedge_mesh_request_duration_seconds_bucket{source_workload="shop/web",destination_service="shop/api",le="+Inf"} 100
kedge_mesh_tcp_connections_opened_total{reporter="source",source_workload="shop/web",destination_workload="shop/db",connection_security_policy="mutual_tls"} 3
kedge_mesh_tcp_sent_bytes_total{reporter="source",source_workload="shop/web",destination_workload="shop/db",connection_security_policy="mutual_tls"} 2048
kedge_mesh_tcp_connections_opened_total{reporter="destination",source_workload="shop/web",destination_workload="shop/db",connection_security_policy="mutual_tls"} 3
"#;

    #[test]
    fn totals_per_workload_pair_with_success_rate_and_latency() {
        let out = render(&parse(TEXT), None);
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[0].starts_with("SOURCE"), "{out}");
        assert_eq!(
            lines[1].split_whitespace().collect::<Vec<_>>(),
            ["shop/web", "shop/api", "100", "98.00%", "1.0ms", "4.0ms", "-"],
            "{out}"
        );
        assert!(
            out.lines().any(|l| l.split_whitespace().collect::<Vec<_>>()
                == ["shop/web", "shop/db", "3", "2.0KiB", "0B"]),
            "the destination's own count is not added: {out}"
        );
    }

    #[test]
    fn two_readings_give_rates() {
        let earlier = parse(TEXT);
        let later: Samples = earlier
            .iter()
            .map(|(n, l, v)| (n.clone(), l.clone(), v * 2.0))
            .collect();
        let out = render(&difference(&later, &earlier), Some(10.0));
        assert!(out.contains("10.0/s"), "{out}");
        assert!(out.contains("0.3/s"), "{out}");
    }

    #[test]
    fn nothing_seen_says_so() {
        assert_eq!(render(&parse(""), None), "No mesh traffic seen.\n");
    }
}
