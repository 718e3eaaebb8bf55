//! TLS to PostgreSQL on rustls, with libpq's `sslmode` and `sslrootcert` URL parameters. Every
//! connection to PostgreSQL (the pool's, migrations included, and the listening one) is made
//! by `PgTarget::connect`.
//!
//! `sslmode`, as libpq (default `prefer`):
//! - `disable`: no TLS.
//! - `prefer`: TLS when the server offers it, without checking its certificate; plain when it
//!   does not, or when the handshake fails.
//! - `require`: TLS, without checking the certificate; with `sslrootcert`, as `verify-ca`.
//! - `verify-ca`: TLS, the certificate chain must lead to a root of `sslrootcert`.
//! - `verify-full`: `verify-ca`, and the certificate must name the host of the URL.
//!
//! `sslrootcert`: a PEM file of CA certificates, or `system` for the system's roots (also
//! what `verify-ca` and `verify-full` trust without it).

use std::io;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::future::BoxFuture;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::config::SslMode as WireMode;
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};

use crate::tls::provider;

/// libpq's `sslmode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl FromStr for SslMode {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<SslMode> {
        Ok(match s {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => anyhow::bail!(
                "sslmode={other} is not one of disable, prefer, require, verify-ca, verify-full"
            ),
        })
    }
}

/// A PostgreSQL URL made ready to connect: its settings and its TLS.
#[derive(Clone)]
pub(crate) struct PgTarget {
    config: tokio_postgres::Config,
    mode: SslMode,
    tls: PgTls,
}

/// A connection with its driver.
pub(crate) type PgLink = (
    tokio_postgres::Client,
    tokio_postgres::Connection<tokio_postgres::Socket, PgTlsStream<tokio_postgres::Socket>>,
);

impl PgTarget {
    /// Reads `url` (`postgres://...`) with its `sslmode` and `sslrootcert`; the root file is
    /// read here, once.
    pub(crate) fn parse(url: &str) -> anyhow::Result<PgTarget> {
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut mode = SslMode::Prefer;
        let mut root = None;
        let mut rest = Vec::new();
        for part in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = part.split_once('=').unwrap_or((part, ""));
            match key {
                "sslmode" => mode = value.parse()?,
                "sslrootcert" => root = Some(percent_decode(value)?),
                _ => rest.push(part),
            }
        }
        let rest = if rest.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", rest.join("&"))
        };
        let mut config = tokio_postgres::Config::from_str(&rest)
            .map_err(|e| anyhow::anyhow!("not a PostgreSQL URL: {e:#}"))?;
        bound_round_trips(&mut config, &rest);
        config.ssl_mode(match mode {
            SslMode::Disable => WireMode::Disable,
            SslMode::Prefer => WireMode::Prefer,
            _ => WireMode::Require,
        });
        let verifier: Option<Arc<dyn ServerCertVerifier>> = match (mode, root.as_deref()) {
            (SslMode::Disable, _) => None,
            (SslMode::Prefer, _) | (SslMode::Require, None) => Some(Arc::new(Lenient {
                chain: None,
                provider: provider(),
            })),
            (SslMode::Require | SslMode::VerifyCa, root) => Some(Arc::new(Lenient {
                chain: Some(webpki(root)?),
                provider: provider(),
            })),
            (SslMode::VerifyFull, root) => Some(webpki(root)?),
        };
        let tls = match verifier {
            None => PgTls(None),
            Some(verifier) => PgTls(Some(Arc::new(
                rustls::ClientConfig::builder_with_provider(provider())
                    .with_safe_default_protocol_versions()?
                    .dangerous()
                    .with_custom_certificate_verifier(verifier)
                    .with_no_client_auth(),
            ))),
        };
        Ok(PgTarget { config, mode, tls })
    }

    /// One connection. With `prefer`, a failed handshake is tried again without TLS.
    pub(crate) async fn connect(&self) -> Result<PgLink, tokio_postgres::Error> {
        match self.config.connect(self.tls.clone()).await {
            Err(e)
                if self.mode == SslMode::Prefer
                    && e.to_string() == "error performing TLS handshake" =>
            {
                let mut plain = self.config.clone();
                plain.ssl_mode(WireMode::Disable);
                plain.connect(self.tls.clone()).await
            }
            connected => connected,
        }
    }
}

/// How long a connection may go unanswered before the kernel gives it up: TCP keepalive from
/// 5 s idle, every 2 s, 3 probes; unacknowledged data for at most 10 s (`TCP_USER_TIMEOUT`).
/// A peer that vanished (a host down, a network cut) ends the connection in about 10 s
/// instead of the kernel's two hours; a frozen peer that still acknowledges is the store's
/// to notice (`changes`).
const KEEPALIVE_IDLE: std::time::Duration = std::time::Duration::from_secs(5);
const KEEPALIVE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);
const KEEPALIVE_RETRIES: u32 = 3;
const TCP_USER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// The longest one statement may run on the server (`statement_timeout`, milliseconds).
const STATEMENT_TIMEOUT_MS: u64 = 30_000;

/// The bounds on every round trip, where the URL (`url`, without the TLS parameters) does not
/// set its own: keepalive, `TCP_USER_TIMEOUT`, and `statement_timeout` through `options`.
fn bound_round_trips(config: &mut tokio_postgres::Config, url: &str) {
    let query = url.split_once('?').map_or("", |(_, q)| q);
    let given = |key: &str| {
        query
            .split('&')
            .any(|part| part.split_once('=').map_or(part, |(k, _)| k) == key)
    };
    if !given("keepalives_idle") {
        config.keepalives_idle(KEEPALIVE_IDLE);
    }
    if !given("keepalives_interval") {
        config.keepalives_interval(KEEPALIVE_INTERVAL);
    }
    if !given("keepalives_retries") {
        config.keepalives_retries(KEEPALIVE_RETRIES);
    }
    if !given("tcp_user_timeout") {
        config.tcp_user_timeout(TCP_USER_TIMEOUT);
    }
    if !given("options") {
        config.options(format!("-c statement_timeout={STATEMENT_TIMEOUT_MS}"));
    }
}

/// `%XX` escapes of a URL parameter decoded.
fn percent_decode(value: &str) -> anyhow::Result<String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = value
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| anyhow::anyhow!("sslrootcert: a bad %-escape in {value}"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| anyhow::anyhow!("sslrootcert is not UTF-8"))
}

/// The standard verifier (chain and host name) over the roots of `root`: a PEM file, or the
/// system's (`system`, or none).
fn webpki(root: Option<&str>) -> anyhow::Result<Arc<WebPkiServerVerifier>> {
    let roots = match root {
        Some(path) if path != "system" => crate::tls::roots(std::path::Path::new(path))
            .map_err(|e| anyhow::anyhow!("sslrootcert: {e:#}"))?,
        _ => {
            let mut roots = rustls::RootCertStore::empty();
            roots.add_parsable_certificates(rustls_native_certs::load_native_certs()?);
            anyhow::ensure!(
                !roots.is_empty(),
                "no sslrootcert given and no trusted root certificates found on this system"
            );
            roots
        }
    };
    Ok(WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider()).build()?)
}

/// The certificate check of `prefer`, `require` and `verify-ca`: with `chain`, webpki's
/// verifier with only its name mismatch forgiven (webpki checks the chain before the name, so
/// that error means the chain is good); without, any certificate (encrypted, to a server not
/// authenticated). The handshake's signatures are checked either way.
#[derive(Debug)]
struct Lenient {
    chain: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Lenient {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            verified => verified,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// tokio-postgres's TLS on rustls; `None` with `sslmode=disable`, when it is never asked.
#[derive(Clone)]
pub(crate) struct PgTls(Option<Arc<rustls::ClientConfig>>);

impl<S> MakeTlsConnect<S> for PgTls
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = PgTlsStream<S>;
    type TlsConnect = PgTlsConnect;
    type Error = std::convert::Infallible;

    fn make_tls_connect(&mut self, domain: &str) -> Result<PgTlsConnect, Self::Error> {
        Ok(PgTlsConnect {
            config: self.0.clone(),
            name: ServerName::try_from(domain).ok().map(|n| n.to_owned()),
        })
    }
}

pub(crate) struct PgTlsConnect {
    config: Option<Arc<rustls::ClientConfig>>,
    /// The host the certificate is checked against; `None` for a Unix socket (no TLS there).
    name: Option<ServerName<'static>>,
}

impl<S> TlsConnect<S> for PgTlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = PgTlsStream<S>;
    type Error = io::Error;
    type Future = BoxFuture<'static, io::Result<PgTlsStream<S>>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let config = self
                .config
                .ok_or_else(|| io::Error::other("TLS is off (sslmode=disable)"))?;
            let name = self
                .name
                .ok_or_else(|| io::Error::other("no host name to check the certificate of"))?;
            let stream = tokio_rustls::TlsConnector::from(config)
                .connect(name, stream)
                .await?;
            Ok(PgTlsStream(stream))
        })
    }
}

/// A TLS session to PostgreSQL.
pub struct PgTlsStream<S>(tokio_rustls::client::TlsStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for PgTlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for PgTlsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream for PgTlsStream<S> {
    /// No SCRAM channel binding: authentication does not depend on the TLS session.
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

#[cfg(test)]
mod tests {
    use super::{PgTarget, SslMode, percent_decode};

    #[test]
    fn sslmode_and_sslrootcert_are_read_from_the_url() {
        let target = PgTarget::parse("postgres://u@db/groups?sslmode=require&connect_timeout=3")
            .expect("parses");
        assert_eq!(target.mode, SslMode::Require);
        assert_eq!(
            PgTarget::parse("postgres://u@db/groups")
                .expect("parses")
                .mode,
            SslMode::Prefer
        );
        let bad = PgTarget::parse("postgres://u@db/groups?sslmode=allow")
            .err()
            .expect("refused");
        assert!(bad.to_string().contains("sslmode=allow"), "{bad}");
        let missing = PgTarget::parse("postgres://db/g?sslmode=verify-ca&sslrootcert=/nowhere.pem")
            .err()
            .expect("refused");
        assert!(
            format!("{missing:#}").contains("/nowhere.pem"),
            "{missing:#}"
        );
        assert_eq!(percent_decode("/a%20b.pem").expect("decodes"), "/a b.pem");
    }

    #[test]
    fn round_trips_are_bounded_unless_the_url_says_otherwise() {
        use std::time::Duration;
        let bounded = PgTarget::parse("postgres://u@db/groups")
            .expect("parses")
            .config;
        assert_eq!(bounded.get_keepalives_idle(), Duration::from_secs(5));
        assert_eq!(
            bounded.get_tcp_user_timeout(),
            Some(&Duration::from_secs(10))
        );
        assert_eq!(bounded.get_options(), Some("-c statement_timeout=30000"));
        let own = PgTarget::parse(
            "postgres://u@db/groups?keepalives_idle=60&tcp_user_timeout=3&options=-c%20search_path%3Dx&sslmode=disable",
        )
        .expect("parses")
        .config;
        assert_eq!(own.get_keepalives_idle(), Duration::from_secs(60));
        assert_eq!(own.get_tcp_user_timeout(), Some(&Duration::from_secs(3)));
        assert_eq!(own.get_options(), Some("-c search_path=x"));
    }
}
