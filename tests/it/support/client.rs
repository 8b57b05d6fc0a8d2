//! gRPC clients for the tests: tonic channels as a given agency, and a raw
//! client that sends and receives message bytes exactly.

use bytes::{Buf, BufMut, Bytes};
use http::uri::PathAndQuery;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::metadata::MetadataMap;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Status};
use tonic_types::StatusExt as _;

/// A mutual-TLS channel to `addr` with `files`' certificate.
pub async fn channel(
    addr: &str,
    files: &jisr::tls::TlsFiles,
) -> Result<Channel, tonic::transport::Error> {
    let tls = jisr::tls::tonic_client_tls(files).expect("client TLS files");
    Endpoint::from_shared(format!("https://{addr}"))
        .unwrap()
        .tls_config(tls)?
        .connect()
        .await
}

/// A codec that passes message bytes through untouched.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;
    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }
    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Bytes;
    type Error = Status;
    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Bytes;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

/// One raw unary call.
pub struct RawCall<'a> {
    /// gRPC path.
    pub path: &'a str,
    /// Message bytes.
    pub body: Bytes,
    /// Metadata to send.
    pub metadata: Vec<(&'static str, String)>,
    /// Deadline.
    pub timeout: Option<std::time::Duration>,
}

impl<'a> RawCall<'a> {
    /// A call to `path` with `purpose` (if not empty).
    pub fn new(path: &'a str, body: impl Into<Bytes>, purpose: &str) -> Self {
        let mut metadata = Vec::new();
        if !purpose.is_empty() {
            metadata.push(("jisr-purpose", purpose.to_owned()));
        }
        Self {
            path,
            body: body.into(),
            metadata,
            timeout: None,
        }
    }

    /// Adds a metadata entry.
    pub fn with(mut self, key: &'static str, value: &str) -> Self {
        self.metadata.push((key, value.to_owned()));
        self
    }
}

/// Sends a raw unary call; returns the response bytes and metadata.
pub async fn call_raw(
    channel: &Channel,
    call: RawCall<'_>,
) -> Result<(Bytes, MetadataMap), Status> {
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready()
        .await
        .map_err(|e| Status::unavailable(e.to_string()))?;
    let mut request = Request::new(call.body);
    for (key, value) in call.metadata {
        request.metadata_mut().insert(key, value.parse().unwrap());
    }
    if let Some(t) = call.timeout {
        request.set_timeout(t);
    }
    let path = PathAndQuery::try_from(call.path.to_owned()).unwrap();
    let response = grpc.unary(request, path, RawCodec).await?;
    let metadata = response.metadata().clone();
    Ok((response.into_inner(), metadata))
}

/// The `ErrorInfo` reason of a status ("" when absent), checking the domain.
pub fn reason(status: &Status) -> String {
    match status.get_details_error_info() {
        Some(info) => {
            assert_eq!(info.domain, "jisr", "{status:?}");
            info.reason
        }
        None => String::new(),
    }
}

/// `code` and reason of a result that must be an error.
pub fn framed_status<T: std::fmt::Debug>(
    result: Result<T, Status>,
) -> (tonic::Code, String, String) {
    let status = result.expect_err("the call should have been refused");
    (status.code(), reason(&status), status.message().to_owned())
}

/// Sends an already framed body over a fresh mutual-TLS HTTP/2 connection,
/// with exactly the headers given (no client-side deadline handling), so the
/// gateway's own behaviour is what the test sees.
pub async fn raw_h2(
    addr: &str,
    files: &jisr::tls::TlsFiles,
    path: &str,
    framed: Vec<u8>,
    headers: &[(&str, &str)],
) -> Status {
    use http_body_util::{BodyExt as _, Full};
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use jisr::identity::{AgencyId, PeerIdentity, TrustDomain};
    let domain = TrustDomain::parse(super::DOMAIN).unwrap();
    let gateway = PeerIdentity::Gateway(AgencyId::parse("gw-1").unwrap());
    let config = jisr::tls::client_config(files, &domain, gateway).unwrap();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(connection);
    let mut request = http::Request::builder()
        .method("POST")
        .uri(format!("https://{addr}{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(Full::new(Bytes::from(framed)))
        .unwrap();
    for (name, value) in headers {
        request.headers_mut().insert(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    let response = sender.send_request(request).await.unwrap();
    if let Some(status) = Status::from_header_map(response.headers()) {
        return status; // trailers-only
    }
    let collected = response.into_body().collect().await.unwrap();
    collected
        .trailers()
        .and_then(Status::from_header_map)
        .expect("a gRPC status in the trailers")
}
