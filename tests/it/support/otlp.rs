//! An OTLP collector run in the test: the OpenTelemetry collector's gRPC
//! trace and metrics services (from `opentelemetry-proto`), keeping what
//! they receive; in plaintext, over TLS, or requiring a client certificate.

use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::metrics::v1::{metric, Metric};
use opentelemetry_proto::tonic::trace::v1::Span;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_stream::StreamExt as _;
use tonic::{Request, Response, Status};

#[derive(Clone, Default)]
struct Sink {
    spans: Arc<Mutex<Vec<Span>>>,
    metrics: Arc<Mutex<Vec<Metric>>>,
}

#[tonic::async_trait]
impl TraceService for Sink {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let mut spans = self.spans.lock().unwrap();
        for rs in request.into_inner().resource_spans {
            for ss in rs.scope_spans {
                spans.extend(ss.spans);
            }
        }
        Ok(Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl MetricsService for Sink {
    async fn export(
        &self,
        request: Request<ExportMetricsServiceRequest>,
    ) -> Result<Response<ExportMetricsServiceResponse>, Status> {
        let mut metrics = self.metrics.lock().unwrap();
        for rm in request.into_inner().resource_metrics {
            for sm in rm.scope_metrics {
                metrics.extend(sm.metrics);
            }
        }
        Ok(Response::new(ExportMetricsServiceResponse::default()))
    }
}

/// A running collector; stops when dropped.
pub struct Collector {
    /// Its address.
    pub addr: SocketAddr,
    sink: Sink,
    /// TCP connections accepted: each is an exporter's try, even one whose
    /// TLS handshake then fails.
    connections: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Collector {
    /// Starts a plaintext collector on a loopback port picked by the system.
    pub async fn start() -> Self {
        Self::start_with(None).await
    }

    /// Starts a collector serving TLS with `server`'s certificate and key;
    /// with `clients_from`, it requires a client certificate issued by that
    /// CA bundle.
    pub async fn start_tls(
        server: &jisr::tls::TlsFiles,
        clients_from: Option<&std::path::Path>,
    ) -> Self {
        use tonic::transport::{Certificate, Identity, ServerTlsConfig};
        let identity = Identity::from_pem(
            std::fs::read(&server.cert).unwrap(),
            std::fs::read(&server.key).unwrap(),
        );
        let mut tls = ServerTlsConfig::new().identity(identity);
        if let Some(ca) = clients_from {
            tls = tls.client_ca_root(Certificate::from_pem(std::fs::read(ca).unwrap()));
        }
        Self::start_with(Some(tls)).await
    }

    async fn start_with(tls: Option<tonic::transport::ServerTlsConfig>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let sink = Sink::default();
        let mut builder = tonic::transport::Server::builder();
        if let Some(tls) = tls {
            builder = builder.tls_config(tls).unwrap();
        }
        let server = builder
            .add_service(TraceServiceServer::new(sink.clone()))
            .add_service(MetricsServiceServer::new(sink.clone()));
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&connections);
        let task = tokio::spawn(async move {
            let incoming =
                tokio_stream::wrappers::TcpListenerStream::new(listener).map(move |accepted| {
                    counted.fetch_add(1, Ordering::SeqCst);
                    accepted
                });
            let _ = server.serve_with_incoming(incoming).await;
        });
        Self {
            addr,
            sink,
            connections,
            task,
        }
    }

    /// How many TCP connections it accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Waits (up to 20 s) until it accepted `n` connections in all.
    pub async fn wait_connections(&self, n: usize) {
        let start = Instant::now();
        while self.connections() < n {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "{} connections to the collector, not {n}",
                self.connections()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// How many spans arrived so far.
    pub fn spans(&self) -> usize {
        self.sink.spans.lock().unwrap().len()
    }

    /// Waits (up to 15 s) for a span that `matches`.
    pub async fn wait_span(&self, what: &str, matches: impl Fn(&Span) -> bool) -> Span {
        let start = Instant::now();
        loop {
            if let Some(span) = self.sink.spans.lock().unwrap().iter().find(|s| matches(s)) {
                return span.clone();
            }
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "no span {what} reached the collector; got: {:#?}",
                self.sink.spans.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits (up to 15 s) for a sum data point of metric `name` whose
    /// attributes include all of `attributes`; returns its latest value.
    pub async fn wait_sum(&self, name: &str, attributes: &[(&str, &str)]) -> u64 {
        let start = Instant::now();
        loop {
            let found = self
                .sink
                .metrics
                .lock()
                .unwrap()
                .iter()
                .rev()
                .find_map(|m| {
                    if m.name != name {
                        return None;
                    }
                    let Some(metric::Data::Sum(sum)) = &m.data else {
                        return None;
                    };
                    sum.data_points.iter().find_map(|p| {
                        use opentelemetry_proto::tonic::metrics::v1::number_data_point::Value;
                        let wanted = attributes
                            .iter()
                            .all(|(k, v)| attribute(&p.attributes, k).as_deref() == Some(*v));
                        let value = match p.value {
                            Some(Value::AsInt(n)) => n as u64,
                            Some(Value::AsDouble(d)) => d as u64,
                            None => 0,
                        };
                        wanted.then_some(value)
                    })
                });
            if let Some(value) = found {
                return value;
            }
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "no `{name}` point with {attributes:?} reached the collector; got: {:#?}",
                self.sink
                    .metrics
                    .lock()
                    .unwrap()
                    .iter()
                    .map(|m| &m.name)
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A string attribute's value.
pub fn attribute(
    attributes: &[opentelemetry_proto::tonic::common::v1::KeyValue],
    key: &str,
) -> Option<String> {
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    let kv = attributes.iter().find(|kv| kv.key == key)?;
    match kv.value.as_ref()?.value.as_ref()? {
        Value::StringValue(s) => Some(s.clone()),
        Value::IntValue(n) => Some(n.to_string()),
        Value::BoolValue(b) => Some(b.to_string()),
        Value::DoubleValue(d) => Some(d.to_string()),
        _ => None,
    }
}

/// Lowercase hex of id bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
