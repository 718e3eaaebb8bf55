//! One HTTP(S) GET for a JWKS: a fresh HTTP/1.1 connection per reload (minutes apart), on the
//! hyper and rustls already in the tree for tonic and NATS. TLS trusts the system's roots, or the
//! certificates of `SSL_CERT_FILE` / `SSL_CERT_DIR` when set (rustls-native-certs reads them).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper::{Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// A key set is a few KiB; anything much larger is not one.
const MAX_BODY: usize = 1 << 20;

/// The body of a 200 answer to `GET url`, within `timeout`.
pub(crate) async fn get(url: &str, timeout: Duration) -> anyhow::Result<Vec<u8>> {
    tokio::time::timeout(timeout, get_inner(url))
        .await
        .map_err(|_| anyhow::anyhow!("GET {url}: no answer within {timeout:?}"))?
}

async fn get_inner(url: &str) -> anyhow::Result<Vec<u8>> {
    let uri: Uri = url.parse()?;
    let host = uri
        .host()
        .ok_or_else(|| anyhow::anyhow!("{url} names no host"))?
        .to_owned();
    let tls = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => anyhow::bail!("{url} is neither http nor https"),
    };
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let tcp = TcpStream::connect((host.trim_matches(['[', ']']), port)).await?;
    let authority = uri
        .authority()
        .map(|a| a.as_str().to_owned())
        .unwrap_or_else(|| host.clone());
    let path = uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/")
        .to_owned();
    if tls {
        let name =
            rustls::pki_types::ServerName::try_from(host.trim_matches(['[', ']']))?.to_owned();
        let stream = tokio_rustls::TlsConnector::from(tls_config()?)
            .connect(name, tcp)
            .await?;
        exchange(stream, &authority, &path).await
    } else {
        exchange(tcp, &authority, &path).await
    }
}

async fn exchange<S>(stream: S, authority: &str, path: &str) -> anyhow::Result<Vec<u8>>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    let conn = tokio::spawn(conn);
    let request = Request::get(path)
        .header(hyper::header::HOST, authority)
        .header(hyper::header::ACCEPT, "application/json")
        .body(Empty::<Bytes>::new())?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    anyhow::ensure!(status == StatusCode::OK, "GET {path}: HTTP {status}");
    let body = Limited::new(response.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| anyhow::anyhow!("reading the body: {e}"))?
        .to_bytes();
    conn.abort();
    Ok(body.to_vec())
}

fn tls_config() -> anyhow::Result<Arc<rustls::ClientConfig>> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    if let Some(config) = CONFIG.get() {
        return Ok(config.clone());
    }
    let mut roots = rustls::RootCertStore::empty();
    let (added, _ignored) =
        roots.add_parsable_certificates(rustls_native_certs::load_native_certs()?);
    anyhow::ensure!(
        added > 0,
        "no trusted root certificates found on this system"
    );
    let config = Arc::new(
        rustls::ClientConfig::builder_with_provider(crate::tls::provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );
    Ok(CONFIG.get_or_init(|| config).clone())
}
