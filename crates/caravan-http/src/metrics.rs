//! `/v1/metrics`: the agent's metrics as Nomad's JSON (`Gauges`,
//! `Counters`, `Samples`), or Prometheus's text format with
//! `?format=prometheus` when `telemetry { prometheus_metrics = true }`
//! (else Nomad's 415). No ACL, as Nomad's (scrapers send no token).
//!
//! Gauges are read when asked rather than kept by a sink: the leader's
//! from its state (job summaries and statuses, the evaluation queues,
//! heartbeating nodes), a client's from its allocations and, with
//! `publish_node_metrics`, its host. Counters are the scheduler's since
//! the agent started. Names are Nomad's where Nomad has the figure, and
//! `caravan.*` where it has none.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use caravan_api_types::eval::{EVAL_STATUS_BLOCKED, EVAL_STATUS_PENDING};
use caravan_api_types::node::NODE_STATUS_DOWN;
use http::StatusCode;
use serde::Serialize;

use crate::error::ApiError;
use crate::reply::Reply;
use crate::route::{endpoint, Acl, Consistency, Request, Route, GET};

pub fn routes() -> Vec<Route> {
    vec![Route {
        path: "/v1/metrics",
        endpoints: vec![endpoint(GET, Acl::None, Consistency::Local, metrics)],
        wrong_method: StatusCode::METHOD_NOT_ALLOWED,
    }]
}

type Labels = BTreeMap<&'static str, String>;

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct Gauge {
    name: String,
    value: f64,
    labels: Labels,
}

/// A counter as go-metrics shows one (a single sample of its total).
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct Counter {
    name: String,
    count: u64,
    rate: f64,
    sum: f64,
    min: f64,
    max: f64,
    mean: f64,
    stddev: f64,
    labels: Labels,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct Summary {
    timestamp: String,
    gauges: Vec<Gauge>,
    counters: Vec<Counter>,
    samples: Vec<serde_json::Value>,
    points: Vec<serde_json::Value>,
}

#[derive(Default)]
struct Metrics {
    gauges: Vec<Gauge>,
    counters: Vec<Counter>,
}

impl Metrics {
    fn gauge(&mut self, name: impl Into<String>, value: f64, labels: Labels) {
        self.gauges.push(Gauge {
            name: name.into(),
            value,
            labels,
        });
    }

    fn counter(&mut self, name: impl Into<String>, total: u64) {
        let sum = total as f64;
        self.counters.push(Counter {
            name: name.into(),
            count: total,
            rate: 0.0,
            sum,
            min: sum,
            max: sum,
            mean: sum,
            stddev: 0.0,
            labels: Labels::new(),
        });
    }
}

async fn metrics(request: Request) -> Result<Reply, ApiError> {
    let prometheus = request.query_value("format") == Some("prometheus");
    if prometheus && !request.ctx.config.telemetry.prometheus_metrics {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Prometheus is not enabled",
        ));
    }
    let mut metrics = Metrics::default();
    server_metrics(&request, &mut metrics);
    client_metrics(&request, &mut metrics).await;
    if let Some(rss) = resident_bytes() {
        metrics.gauge("caravan.runtime.resident_bytes", rss as f64, Labels::new());
    }
    if prometheus {
        let content_type =
            http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8");
        return Ok(Reply::raw(prometheus_text(&metrics).into(), content_type));
    }
    let summary = Summary {
        timestamp: chrono::Utc::now()
            .format("%Y-%m-%d %H:%M:%S %z UTC")
            .to_string(),
        gauges: metrics.gauges,
        counters: metrics.counters,
        samples: Vec::new(),
        points: Vec::new(),
    };
    Reply::json(&summary)
}

/// The leader's view of the cluster, and this server's scheduler counters.
fn server_metrics(request: &Request, metrics: &mut Metrics) {
    let Some(server) = request.ctx.server.as_ref() else {
        return;
    };
    for (name, total) in server.scheduler_stats().figures() {
        metrics.counter(
            format!("caravan.scheduler.{name}"),
            total.parse().unwrap_or(0),
        );
    }
    // Only the leader reports the cluster (as Nomad's leader publishes its
    // job summaries), so summing across servers counts nothing twice.
    if !server.is_ready_leader() {
        return;
    }
    let state = server.store().snapshot();
    for job in state.jobs() {
        let Some(summary) = state.job_summary(&job.namespace, &job.id) else {
            continue;
        };
        for (group, counts) in &summary.summary {
            let labels = Labels::from([
                ("job", job.id.clone()),
                ("task_group", group.clone()),
                ("namespace", job.namespace.clone()),
            ]);
            for (figure, value) in [
                ("queued", counts.queued),
                ("complete", counts.complete),
                ("failed", counts.failed),
                ("running", counts.running),
                ("starting", counts.starting),
                ("lost", counts.lost),
                ("unknown", counts.unknown),
            ] {
                metrics.gauge(
                    format!("nomad.nomad.job_summary.{figure}"),
                    value as f64,
                    labels.clone(),
                );
            }
        }
    }
    let mut statuses: BTreeMap<&str, u64> =
        BTreeMap::from([("pending", 0), ("running", 0), ("dead", 0)]);
    for job in state.jobs() {
        if let Some(count) = statuses.get_mut(job.status.as_str()) {
            *count += 1;
        }
    }
    for (status, count) in statuses {
        metrics.gauge(
            format!("nomad.nomad.job_status.{status}"),
            count as f64,
            Labels::new(),
        );
    }
    let now = chrono::Utc::now();
    let (mut ready, mut waiting) = (0u64, 0u64);
    for eval in state.evals_with_status(EVAL_STATUS_PENDING) {
        match eval.wait_until {
            Some(until) if until > now => waiting += 1,
            _ => ready += 1,
        }
    }
    let blocked = state.evals_with_status(EVAL_STATUS_BLOCKED).count();
    metrics.gauge(
        "nomad.nomad.broker.total_ready",
        ready as f64,
        Labels::new(),
    );
    metrics.gauge(
        "nomad.nomad.broker.total_waiting",
        waiting as f64,
        Labels::new(),
    );
    metrics.gauge(
        "nomad.nomad.blocked_evals.total_blocked",
        blocked as f64,
        Labels::new(),
    );
    let heartbeating = state
        .nodes()
        .filter(|node| node.status != NODE_STATUS_DOWN)
        .count();
    metrics.gauge(
        "nomad.nomad.heartbeat.active",
        heartbeating as f64,
        Labels::new(),
    );
}

/// This node's allocations and, with `publish_node_metrics`, its host.
async fn client_metrics(request: &Request, metrics: &mut Metrics) {
    let Some(client) = request.ctx.client.as_ref() else {
        return;
    };
    let node = client.node();
    let labels = Labels::from([
        ("node_id", node.id.clone()),
        ("datacenter", node.datacenter.clone()),
    ]);
    let counts = client
        .allocations()
        .map(|manager| manager.client_statuses())
        .unwrap_or_default();
    let count = |statuses: &[&str]| {
        statuses
            .iter()
            .map(|status| counts.get(*status).copied().unwrap_or(0))
            .sum::<u64>() as f64
    };
    for (figure, value) in [
        ("running", count(&["running"])),
        ("pending", count(&["pending"])),
        // Nomad's count of finished ones: complete and failed.
        ("terminal", count(&["complete", "failed"])),
        // Caravan has no blocked or migrating allocation states on the
        // client (Nomad's wait for a previous allocation's data).
        ("blocked", 0.0),
        ("migrating", 0.0),
    ] {
        metrics.gauge(
            format!("nomad.client.allocations.{figure}"),
            value,
            labels.clone(),
        );
    }
    if !request.ctx.config.telemetry.publish_node_metrics {
        return;
    }
    let host = client.host_stats().await;
    for (figure, value) in [
        ("total", host.memory.total),
        ("available", host.memory.available),
        ("used", host.memory.used),
        ("free", host.memory.free),
    ] {
        metrics.gauge(
            format!("nomad.client.host.memory.{figure}"),
            value as f64,
            labels.clone(),
        );
    }
    for cpu in &host.cpu {
        let mut labels = labels.clone();
        labels.insert("cpu", cpu.cpu.clone());
        for (figure, value) in [
            ("total", cpu.total),
            ("user", cpu.user),
            ("system", cpu.system),
            ("idle", cpu.idle),
        ] {
            metrics.gauge(
                format!("nomad.client.host.cpu.{figure}"),
                value,
                labels.clone(),
            );
        }
    }
    metrics.gauge("nomad.client.uptime", host.uptime as f64, labels.clone());
}

/// This process's resident memory, from `/proc/self/status` (`VmRSS`).
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kilobytes: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kilobytes * 1024)
}

/// Prometheus's text format (version 0.0.4), names as go-metrics writes
/// them (`nomad.client.uptime` → `nomad_client_uptime`).
fn prometheus_text(metrics: &Metrics) -> String {
    let mut text = String::new();
    let mut by_name: BTreeMap<String, Vec<(&Labels, f64)>> = BTreeMap::new();
    for gauge in &metrics.gauges {
        by_name
            .entry(prometheus_name(&gauge.name))
            .or_default()
            .push((&gauge.labels, gauge.value));
    }
    for (name, series) in &by_name {
        let _ = writeln!(text, "# HELP {name} {name}\n# TYPE {name} gauge");
        for (labels, value) in series {
            let _ = writeln!(text, "{name}{} {value}", prometheus_labels(labels));
        }
    }
    for counter in &metrics.counters {
        let name = prometheus_name(&counter.name);
        let _ = writeln!(
            text,
            "# HELP {name} {name}\n# TYPE {name} counter\n{name}{} {}",
            prometheus_labels(&counter.labels),
            counter.count
        );
    }
    text
}

fn prometheus_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn prometheus_labels(labels: &Labels) -> String {
    if labels.is_empty() {
        return String::new();
    }
    let pairs: Vec<String> = labels
        .iter()
        .map(|(key, value)| {
            let escaped = value
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n");
            format!("{key}=\"{escaped}\"")
        })
        .collect();
    format!("{{{}}}", pairs.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_text_names_labels_and_escapes_as_prometheus_reads_them() {
        let mut metrics = Metrics::default();
        let labels = Labels::from([("job", "we\"b\\x\ny".to_string())]);
        metrics.gauge("nomad.nomad.job_summary.running", 2.0, labels);
        metrics.gauge("nomad.nomad.job_summary.running", 1.0, Labels::new());
        metrics.counter("caravan.scheduler.evals_processed", 7);
        let text = prometheus_text(&metrics);
        assert_eq!(
            text,
            "# HELP nomad_nomad_job_summary_running nomad_nomad_job_summary_running\n\
             # TYPE nomad_nomad_job_summary_running gauge\n\
             nomad_nomad_job_summary_running{job=\"we\\\"b\\\\x\\ny\"} 2\n\
             nomad_nomad_job_summary_running 1\n\
             # HELP caravan_scheduler_evals_processed caravan_scheduler_evals_processed\n\
             # TYPE caravan_scheduler_evals_processed counter\n\
             caravan_scheduler_evals_processed 7\n"
        );
    }
}
