//! Observability: what a request was ([`Recorded`]), Prometheus metrics
//! named like kube-apiserver's (`/metrics`), and the audit log
//! (`--audit-log-path`, one JSON line per request).

pub mod store_metrics;

use std::borrow::Cow;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use serde_json::json;

use crate::identity::User;

/// What a request was, for metrics and the audit log (borrowed from the
/// request info, so that recording it copies only what a new series keeps).
#[derive(Clone, Debug, Default)]
pub struct Recorded<'a> {
    /// get, list, watch, create, update, patch, delete, deletecollection; the
    /// lower-cased method for other paths.
    pub verb: Cow<'a, str>,
    /// API group.
    pub group: &'a str,
    /// API version.
    pub version: &'a str,
    /// Resource (plural); empty for other paths.
    pub resource: &'a str,
    /// Namespace, if any.
    pub namespace: &'a str,
    /// Object name, if any.
    pub name: &'a str,
}

/// Labels of the request metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    verb: &'static str,
    group: String,
    version: String,
    resource: String,
    code: u16,
}

/// Labels of the latency histogram and the watch gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResourceLabels {
    verb: &'static str,
    group: String,
    version: String,
    resource: String,
}

/// The server's metrics.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    durations: Family<ResourceLabels, Histogram>,
    watches: Family<ResourceLabels, Gauge>,
    /// Storage call metrics (for [`crate::observe::store_metrics::InstrumentedStore`]).
    pub store: crate::observe::store_metrics::StoreMetrics,
}

/// kube-apiserver's latency buckets (seconds).
const BUCKETS: [f64; 23] = [
    0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 15.0, 20.0, 30.0,
    45.0, 60.0,
];

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let durations =
            Family::<ResourceLabels, Histogram>::new_with_constructor(|| Histogram::new(BUCKETS.iter().copied()));
        let watches = Family::<ResourceLabels, Gauge>::default();
        registry.register("apiserver_request", "Requests by verb, group, version, resource and code", requests.clone());
        registry.register(
            "apiserver_request_duration_seconds",
            "Response latency by verb, group, version and resource (watches: until the response began)",
            durations.clone(),
        );
        registry.register(
            "apiserver_longrunning_requests",
            "Open long-running requests (watches) by group, version and resource",
            watches.clone(),
        );
        let store = crate::observe::store_metrics::StoreMetrics::register(&mut registry);
        Metrics { registry, requests, durations, watches, store }
    }
}

/// The verbs a metric label may name, as kube-apiserver's (`validRequestMethods`);
/// anything else is counted as `other`, so that no client can add series.
const KNOWN_VERBS: &[&str] = &[
    "APPLY",
    "CONNECT",
    "CREATE",
    "DELETE",
    "DELETECOLLECTION",
    "GET",
    "HEAD",
    "LIST",
    "OPTIONS",
    "PATCH",
    "POST",
    "PROXY",
    "PUT",
    "UPDATE",
    "WATCH",
    "WATCHLIST",
];

/// A request's verb as a metric label: upper case, from [`KNOWN_VERBS`] or `other`.
fn verb_label(verb: &str) -> &'static str {
    KNOWN_VERBS.iter().find(|known| known.eq_ignore_ascii_case(verb)).copied().unwrap_or("other")
}

impl Metrics {
    /// Counts a finished request.
    pub fn observe(&self, info: &Recorded, code: u16, latency: Duration) {
        let resource = resource_labels(info);
        self.durations.get_or_create(&resource).observe(latency.as_secs_f64());
        let ResourceLabels { verb, group, version, resource } = resource;
        let labels = RequestLabels { verb, group, version, resource, code };
        self.requests.get_or_create(&labels).inc();
    }

    /// One more open watch of `info`'s resource; the guard counts it down.
    pub fn watch_opened(&self, info: &Recorded) -> WatchGauge {
        let gauge = self.watches.get_or_create(&resource_labels(info)).clone();
        gauge.inc();
        WatchGauge(gauge)
    }

    /// The Prometheus text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// OpenMetrics text as the Prometheus text format 0.0.4: no `# EOF` or
/// `# UNIT` lines, and counters' `HELP`/`TYPE` named like their `_total` samples.
pub fn prometheus_text(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    let counters: std::collections::HashSet<&str> =
        openmetrics.lines().filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter")).collect();
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
            (counters.contains(name) && !name.ends_with("_total")).then(|| format!("{prefix}{name}_total {tail}"))
        });
        out.push_str(renamed.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

fn resource_labels(info: &Recorded) -> ResourceLabels {
    ResourceLabels {
        verb: verb_label(&info.verb),
        group: info.group.to_string(),
        version: info.version.to_string(),
        resource: info.resource.to_string(),
    }
}

/// Counts an open watch down when dropped.
pub struct WatchGauge(Gauge);

impl Drop for WatchGauge {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The audit log: one JSON line per request, appended.
pub struct AuditLog {
    file: Mutex<std::io::BufWriter<std::fs::File>>,
}

impl AuditLog {
    /// Opens (appends to) `path`.
    pub fn open(path: &Path) -> std::io::Result<AuditLog> {
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        Ok(AuditLog { file: Mutex::new(std::io::BufWriter::new(file)) })
    }

    /// Writes one request's line.
    pub fn record(&self, id: &str, user: Option<&User>, info: &Recorded, uri: &str, code: u16, latency: Duration) {
        let line = json!({
            "time": humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            "auditID": id,
            "user": user.map(|u| u.name.as_str()).unwrap_or("system:anonymous"),
            "groups": user.map(|u| u.groups.clone()).unwrap_or_default(),
            "verb": &*info.verb,
            "group": info.group,
            "version": info.version,
            "resource": info.resource,
            "namespace": info.namespace,
            "name": info.name,
            "requestURI": uri,
            "code": code,
            "latencyMs": latency.as_secs_f64() * 1e3,
        });
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        if writeln!(file, "{line}").and_then(|_| file.flush()).is_err() {
            tracing::warn!("cannot write the audit log");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_in_text_format() {
        let m = Metrics::default();
        let info = Recorded {
            verb: "list".into(),
            group: "prsn.io",
            version: "v1",
            resource: "mysqldbs",
            ..Default::default()
        };
        m.observe(&info, 200, Duration::from_millis(3));
        let gauge = m.watch_opened(&Recorded { verb: "watch".into(), ..info.clone() });
        let text = m.encode();
        assert!(
            text.contains(
                r#"apiserver_request_total{verb="LIST",group="prsn.io",version="v1",resource="mysqldbs",code="200"} 1"#
            ),
            "{text}"
        );
        assert!(text.contains("apiserver_request_duration_seconds_bucket"), "{text}");
        assert!(
            text.contains(
                r#"apiserver_longrunning_requests{verb="WATCH",group="prsn.io",version="v1",resource="mysqldbs"} 1"#
            ),
            "{text}"
        );
        drop(gauge);
        assert!(m.encode().contains(r#"resource="mysqldbs"} 0"#));
    }

    #[test]
    fn labels_come_from_a_closed_set() {
        let m = Metrics::default();
        let before = m.encode().len();
        for i in 0..300 {
            let info = Recorded { verb: format!("junk{i}").into(), ..Default::default() };
            m.observe(&info, 401, Duration::from_millis(1));
        }
        let text = m.encode();
        assert!(text.contains(r#"verb="other""#), "{text}");
        assert!(text.len() < before + 4096, "300 junk verbs added {} bytes", text.len() - before);
    }
}
