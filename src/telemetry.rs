//! Prometheus metrics, and the bounded labels that describe where a request came from: the
//! `X-Meta-Source-Client` header (`<cloud>/<service>/<optional>`) and the `User-Agent`. A label value is
//! always one of a fixed set: unknown or malformed input folds into `other`, never into a new series.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Log lines that could not be written (a full disk, a closed pipe) since the process started.
static LOG_WRITE_FAILURES: AtomicU64 = AtomicU64::new(0);

/// Where log lines go: standard output, where a failed write is counted and dropped. The log never takes
/// a request down (tracing's own writer would report the failure with `eprintln!`, which panics when
/// standard error fails too).
pub struct LogSink;

impl Write for LogSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if std::io::stdout().lock().write_all(buf).is_err() {
            LOG_WRITE_FAILURES.fetch_add(1, Ordering::Relaxed);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let _ = std::io::stdout().lock().flush();
        Ok(())
    }
}

/// The source clients the seed registry asks its partners to send; anything else is `other`.
const KNOWN_SOURCE_CLIENTS: [&str; 12] = [
    "azure/compute/azure-container-service",
    "azure/app-service/web-apps",
    "azure/app-service/logic-apps",
    "azure/compute/batch",
    "azure/cloud-console",
    "azure/compute/functions",
    "azure/iot/hub",
    "azure/data/hdinsight",
    "azure/jenkins",
    "azure/data/machine-learning",
    "azure/compute/service-fabric",
    "azure/vsts",
];

/// The metric label of an `X-Meta-Source-Client` value.
pub fn source_client_label(header: Option<&str>) -> &'static str {
    let Some(value) = header.map(str::trim).filter(|v| !v.is_empty()) else {
        return "none";
    };
    KNOWN_SOURCE_CLIENTS
        .iter()
        .find(|known| known.eq_ignore_ascii_case(value))
        .copied()
        .unwrap_or("other")
}

/// The metric label of a `User-Agent`: the client family, by the product token it starts with.
pub fn user_agent_label(header: Option<&str>) -> &'static str {
    let Some(agent) = header.map(str::trim).filter(|v| !v.is_empty()) else {
        return "none";
    };
    let product = agent.split(['/', ' ']).next().unwrap_or("").to_ascii_lowercase();
    match product.as_str() {
        "docker" => "docker",
        "containerd" => "containerd",
        "containers" | "skopeo" | "podman" | "buildah" => "containers",
        "oras" => "oras",
        "helm" => "helm",
        "go-containerregistry" | "crane" => "go-containerregistry",
        "kubelet" | "cri-o" => "kubernetes",
        "curl" => "curl",
        "go-http-client" => "go-http",
        "berth" => "berth",
        _ => "other",
    }
}

/// Every metric the server exports.
pub struct Metrics {
    registry: Registry,
    pub requests: IntCounterVec,
    pub latency: HistogramVec,
    pub bytes_received: IntCounterVec,
    pub bytes_sent: IntCounterVec,
    pub in_flight: IntGaugeVec,
    pub queued: IntGaugeVec,
    pub throttled: IntCounterVec,
    pub tokens_issued: IntCounterVec,
    pub clients: IntCounterVec,
    pub upload_sessions: IntGaugeVec,
    pub stored_bytes: IntGaugeVec,
    pub unreferenced_bytes: IntGaugeVec,
    pub gc_reclaimed_bytes: IntCounterVec,
    pub gc_queued_bytes: IntGaugeVec,
    log_write_failures: IntGauge,
}

impl Metrics {
    pub fn new() -> anyhow::Result<Metrics> {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| -> anyhow::Result<IntCounterVec> {
            let metric = IntCounterVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(metric.clone()))?;
            Ok(metric)
        };
        let gauge = |name: &str, help: &str, labels: &[&str]| -> anyhow::Result<IntGaugeVec> {
            let metric = IntGaugeVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(metric.clone()))?;
            Ok(metric)
        };
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "berth_http_request_duration_seconds",
                "Time to the last byte of the response.",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0,
            ]),
            &["registry", "operation", "status"],
        )?;
        registry.register(Box::new(latency.clone()))?;
        let log_write_failures = IntGauge::new(
            "berth_log_write_failures",
            "Log lines dropped because they could not be written, since the process started.",
        )?;
        registry.register(Box::new(log_write_failures.clone()))?;
        Ok(Metrics {
            requests: counter(
                "berth_http_requests_total",
                "Requests by registry, operation and status.",
                &["registry", "operation", "status"],
            )?,
            latency,
            bytes_received: counter(
                "berth_http_received_bytes_total",
                "Request body bytes received.",
                &["registry"],
            )?,
            bytes_sent: counter(
                "berth_http_sent_bytes_total",
                "Response body bytes sent.",
                &["registry"],
            )?,
            in_flight: gauge(
                "berth_limit_in_flight",
                "Requests holding a concurrency permit.",
                &["registry", "direction"],
            )?,
            queued: gauge(
                "berth_limit_queued",
                "Requests waiting for a concurrency permit.",
                &["registry", "direction"],
            )?,
            throttled: counter(
                "berth_limit_throttled_total",
                "Requests refused with 429 after waiting.",
                &["registry", "direction"],
            )?,
            tokens_issued: counter("berth_tokens_issued_total", "Access tokens issued.", &["registry"])?,
            clients: counter(
                "berth_client_requests_total",
                "Requests by source client and user agent family.",
                &["source_client", "user_agent"],
            )?,
            upload_sessions: gauge(
                "berth_upload_sessions_active",
                "Upload sessions in progress.",
                &["registry"],
            )?,
            stored_bytes: gauge(
                "berth_registry_stored_bytes",
                "Bytes of a registry's blobs, each counted once (from the database).",
                &["registry"],
            )?,
            unreferenced_bytes: gauge(
                "berth_registry_unreferenced_bytes",
                "Bytes of a registry's blobs that no manifest references: what the collector reclaims once \
                 they are untouched for the grace period.",
                &["registry"],
            )?,
            gc_reclaimed_bytes: counter(
                "berth_gc_reclaimed_bytes_total",
                "Bytes of collected blobs deleted from a registry's store by this process.",
                &["registry"],
            )?,
            gc_queued_bytes: gauge(
                "berth_gc_queued_bytes",
                "Bytes of collected blobs whose objects are queued for deletion (the collector's queue).",
                &["registry"],
            )?,
            log_write_failures,
            registry,
        })
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> anyhow::Result<String> {
        let dropped = LOG_WRITE_FAILURES.load(Ordering::Relaxed);
        self.log_write_failures.set(i64::try_from(dropped).unwrap_or(i64::MAX));
        let mut out = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut out)?;
        Ok(String::from_utf8(out)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_clients_fold_into_a_fixed_set() {
        assert_eq!(source_client_label(Some("azure/compute/batch")), "azure/compute/batch");
        assert_eq!(source_client_label(Some("Azure/Compute/Batch")), "azure/compute/batch");
        assert_eq!(source_client_label(None), "none");
        assert_eq!(source_client_label(Some("  ")), "none");
        for junk in [
            "azure/compute/batch/extra",
            "evil\"label",
            "x".repeat(5000).as_str(),
            "azure/unknown",
        ] {
            assert_eq!(source_client_label(Some(junk)), "other");
        }
    }

    #[test]
    fn user_agents_fold_into_client_families() {
        for (agent, family) in [
            (
                "docker/28.2.2 go/go1.24 git-commit/e6534b4 kernel/6.1 os/linux arch/amd64",
                "docker",
            ),
            ("containerd/v1.7.24", "containerd"),
            ("containers/5.24.1 (github.com/containers/image)", "containers"),
            ("oras/1.2.0", "oras"),
            ("Go-http-client/1.1", "go-http"),
            ("curl/7.88.1", "curl"),
            ("Mozilla/5.0", "other"),
        ] {
            assert_eq!(user_agent_label(Some(agent)), family, "{agent}");
        }
        assert_eq!(user_agent_label(None), "none");
    }

    #[test]
    fn metrics_render_in_the_text_format() {
        let metrics = Metrics::new().unwrap();
        metrics.requests.with_label_values(&["reg", "blob_get", "200"]).inc();
        let text = metrics.render().unwrap();
        assert!(
            text.contains(r#"berth_http_requests_total{operation="blob_get",registry="reg",status="200"} 1"#),
            "{text}"
        );
    }
}
