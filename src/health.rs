//! `group-service health`: one `grpc.health.v1.Health/Check` against a running server, for
//! container health checks and scripts. SERVING is success; NOT_SERVING, an unknown service,
//! a refused connection or no answer within the timeout is a failure with one line saying
//! which.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// The address to dial for a listen address: a wildcard (`0.0.0.0`, `[::]`) is this machine,
/// dialed on the loopback of its family; a host name is dialed as it is.
pub fn dial_address(listen: &str) -> String {
    match listen.parse::<SocketAddr>() {
        Ok(mut addr) if addr.ip().is_unspecified() => {
            addr.set_ip(match addr.ip() {
                IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
            });
            addr.to_string()
        }
        _ => listen.to_owned(),
    }
}

/// The TLS the health command's flags ask for: with `--ca`, TLS trusting it (and with `--cert`
/// and `--key`, that client certificate); without, plaintext.
pub fn client_tls(args: &crate::config::HealthArgs) -> anyhow::Result<Option<ClientTlsConfig>> {
    let read = |path: &std::path::Path| {
        std::fs::read(path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))
    };
    let Some(ca) = &args.ca else {
        return Ok(None);
    };
    let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read(ca)?));
    if let Some(name) = &args.server_name {
        tls = tls.domain_name(name);
    }
    if let (Some(cert), Some(key)) = (&args.cert, &args.key) {
        tls = tls.identity(Identity::from_pem(read(cert)?, read(key)?));
    }
    Ok(Some(tls))
}

/// Asks the server at `addr` (over `tls` when given) for the health of `service` (`""`: the
/// server as a whole) and answers `Ok` only for SERVING; every other outcome is an error that
/// says why in one line.
pub async fn check(
    addr: &str,
    service: &str,
    timeout: Duration,
    tls: Option<ClientTlsConfig>,
) -> anyhow::Result<()> {
    let what = if service.is_empty() {
        addr.to_owned()
    } else {
        format!("{addr} ({service})")
    };
    let status = tokio::time::timeout(timeout, ask(addr, service, timeout, tls))
        .await
        .map_err(|_| anyhow::anyhow!("{what}: no answer within {timeout:?}"))?
        .map_err(|e| anyhow::anyhow!("{what}: {e}"))?;
    match status {
        ServingStatus::Serving => Ok(()),
        other => anyhow::bail!("{what}: {}", other.as_str_name()),
    }
}

async fn ask(
    addr: &str,
    service: &str,
    timeout: Duration,
    tls: Option<ClientTlsConfig>,
) -> Result<ServingStatus, String> {
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut endpoint = Endpoint::from_shared(format!("{scheme}://{addr}"))
        .map_err(|e| format!("not an address: {e}"))?;
    if let Some(tls) = tls {
        endpoint = endpoint
            .tls_config(tls)
            .map_err(|e| format!("TLS: {}", causes(&e)))?;
    }
    let channel = endpoint
        .connect_timeout(timeout)
        .timeout(timeout)
        .connect()
        .await
        .map_err(|e| format!("unreachable: {}", causes(&e)))?;
    let answer = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: service.to_owned(),
        })
        .await
        .map_err(|s| match s.code() {
            tonic::Code::NotFound => "unknown service".to_owned(),
            code => format!("{code:?}: {}", s.message()),
        })?;
    Ok(ServingStatus::try_from(answer.into_inner().status).unwrap_or(ServingStatus::Unknown))
}

/// An error with its causes, `a: b: c`, on one line (a cause that repeats the one before,
/// as hyper's wrappers do, once).
fn causes(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if parts.last() != Some(&part) {
            parts.push(part);
        }
        source = s.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::dial_address;

    #[test]
    fn wildcard_listen_addresses_are_dialed_on_the_loopback() {
        assert_eq!(dial_address("0.0.0.0:50051"), "127.0.0.1:50051");
        assert_eq!(dial_address("[::]:50051"), "[::1]:50051");
        assert_eq!(dial_address("10.0.0.5:50051"), "10.0.0.5:50051");
        assert_eq!(
            dial_address("groups.internal:50051"),
            "groups.internal:50051"
        );
    }
}
