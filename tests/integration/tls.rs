//! TLS both ways: the gRPC port over TLS and mutual TLS (`--tls-cert`, `--tls-key`,
//! `--tls-client-ca`), and PostgreSQL over TLS with libpq's `sslmode`, against a cluster with
//! `ssl=on` that the test starts, with certificates it makes.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use prost::Message;
use tonic::Code;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::fixtures::*;
use crate::harness::*;
use group_service::grpc::pb;
use group_service::store::Store;
use group_service::tls::server_config;

/// A client's TLS trusting `ca`, checking the server's certificate for `localhost`.
fn client_tls(ca: &Path) -> ClientTlsConfig {
    ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(std::fs::read(ca).unwrap()))
        .domain_name("localhost")
}

/// `tls` presenting the client certificate `(cert, key)`.
fn with_identity(tls: ClientTlsConfig, (cert, key): &(PathBuf, PathBuf)) -> ClientTlsConfig {
    tls.identity(Identity::from_pem(
        std::fs::read(cert).unwrap(),
        std::fs::read(key).unwrap(),
    ))
}

/// A tenant, a user, and a group that user creates and reads back, through `srv`'s clients.
async fn create_and_read(srv: &TestServer) {
    srv.tenant(1, pb::Plan::Free, pb::GroupCreation::AllMembers)
        .await;
    srv.user(1, 1, false).await;
    let mut user = srv.groups(1, 1, false);
    let g = user
        .create_group(create_req(1, "Over TLS", &[1]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        user.get_group(get_req(&g.name)).await.unwrap().into_inner(),
        g
    );
}

/// A health check on a connection of its own: `https` with `tls`, else `http`.
async fn health_call(
    addr: std::net::SocketAddr,
    tls: Option<ClientTlsConfig>,
) -> Result<(), tonic::Status> {
    let channel = match tls {
        Some(tls) => Channel::from_shared(format!("https://{addr}"))
            .unwrap()
            .tls_config(tls)
            .unwrap(),
        None => Channel::from_shared(format!("http://{addr}")).unwrap(),
    }
    .connect_timeout(Duration::from_secs(5))
    .timeout(Duration::from_secs(5))
    .connect_lazy();
    HealthClient::new(channel)
        .check(HealthCheckRequest::default())
        .await
        .map(|_| ())
}

/// A call refused below gRPC: no answer from the server, only the transport's error (a
/// `source`): UNAVAILABLE when the client's handshake fails, UNKNOWN or CANCELLED when the
/// server cuts the connection after it (under TLS 1.3 the client's side of the handshake ends
/// before the server has checked the client's certificate), INTERNAL when a plaintext client
/// reads the server's TLS alert as an HTTP/2 frame (its own protocol error, GOAWAY
/// FRAME_SIZE_ERROR) before it sees the connection close.
#[track_caller]
fn assert_refused(status: &tonic::Status) {
    use std::error::Error;
    assert!(
        matches!(
            status.code(),
            Code::Unavailable | Code::Unknown | Code::Cancelled | Code::Internal
        ) && status.source().is_some()
            && !status.metadata().contains_key("grpc-status-details-bin"),
        "{status:?}"
    );
}

/// A gRPC-Web health check over HTTP/1.1 inside TLS, as a client that offers only
/// `http/1.1` in ALPN: the answer's HTTP status and content type.
async fn web_health_over_http1(addr: std::net::SocketAddr, ca: &Path) -> (u16, String) {
    let roots = group_service::tls::roots(ca).unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(group_service::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let message = HealthCheckRequest::default().encode_to_vec();
    let mut frame = vec![0u8];
    frame.extend_from_slice(&(message.len() as u32).to_be_bytes());
    frame.extend_from_slice(&message);
    let req = hyper::Request::post("/grpc.health.v1.Health/Check")
        .header("host", "localhost")
        .header("content-type", "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .body(Full::new(Bytes::from(frame)))
        .unwrap();
    let res = sender.send_request(req).await.unwrap();
    let status = res.status().as_u16();
    let content_type = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let _ = res.into_body().collect().await.unwrap();
    (status, content_type)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_over_tls_and_mtls() {
    let pki = Pki::new("grpc-ca");
    let (cert, key) = pki.issue("server", &["localhost", "127.0.0.1"]);
    let callers = Pki::new("callers-ca");
    let caller = callers.issue("caller", &["caller.example"]);
    let strangers = Pki::new("strangers-ca");
    let stranger = strangers.issue("stranger", &["stranger.example"]);

    // TLS: calls, health (the `group-service health` command's check too) and gRPC-Web over
    // HTTP/1.1 are served over TLS; plaintext and untrusting clients get nothing.
    let Some(srv) = TestServer::start_setup(|s| {
        s.options.tls = Some(server_config(&cert, &key, None).unwrap());
        s.client_tls = Some(client_tls(&pki.ca));
    })
    .await
    else {
        return;
    };
    create_and_read(&srv).await;
    health_call(srv.addr, Some(client_tls(&pki.ca)))
        .await
        .unwrap();
    group_service::health::check(
        &srv.addr.to_string(),
        "",
        Duration::from_secs(5),
        Some(client_tls(&pki.ca)),
    )
    .await
    .unwrap();
    assert_eq!(
        web_health_over_http1(srv.addr, &pki.ca).await,
        (200, "application/grpc-web+proto".to_owned())
    );
    let plain = health_call(srv.addr, None).await.unwrap_err();
    assert_refused(&plain);
    let untrusting = health_call(srv.addr, Some(client_tls(&strangers.ca)))
        .await
        .unwrap_err();
    assert_refused(&untrusting);
    let refused =
        group_service::health::check(&srv.addr.to_string(), "", Duration::from_secs(5), None)
            .await
            .unwrap_err();
    // The health command's one line: the transport's failure (its wording is the client
    // library's), never a status.
    let line = refused.to_string();
    assert!(
        line.starts_with(&format!("{}: ", srv.addr)) && !line.contains("SERVING"),
        "{line}"
    );
    drop(srv);

    // Mutual TLS: only a client certificate of the configured CA is served.
    let mtls = TestServer::start_setup(|s| {
        s.options.tls = Some(server_config(&cert, &key, Some(&callers.ca)).unwrap());
        s.client_tls = Some(with_identity(client_tls(&pki.ca), &caller));
    })
    .await
    .expect("a server like the one before");
    create_and_read(&mtls).await;
    let anonymous = health_call(mtls.addr, Some(client_tls(&pki.ca)))
        .await
        .unwrap_err();
    assert_refused(&anonymous);
    let foreign = health_call(
        mtls.addr,
        Some(with_identity(client_tls(&pki.ca), &stranger)),
    )
    .await
    .unwrap_err();
    assert_refused(&foreign);
    health_call(mtls.addr, Some(with_identity(client_tls(&pki.ca), &caller)))
        .await
        .unwrap();
}

/// A PostgreSQL cluster of the test's own on 127.0.0.1, TLS only: `ssl=on` with a certificate
/// for `localhost` issued by the test's CA, and `pg_hba.conf` trusting `hostssl` and
/// rejecting `hostnossl`. Stopped and removed when dropped.
struct SslCluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
}

/// `program` run as the `postgres` user in `dir`; panics with its output when it fails.
fn as_postgres(dir: &Path, program: &Path, args: &[&str]) {
    let out = Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{} {args:?}: {}{}",
        program.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl SslCluster {
    /// The newest installed PostgreSQL's binaries; `None` (said on stderr) outside CI when
    /// there are none.
    fn binaries() -> Option<PathBuf> {
        let newest = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path().join("bin"))
            .filter(|bin| bin.join("initdb").exists())
            .max_by_key(|bin| {
                bin.parent()
                    .and_then(|v| v.file_name()?.to_str()?.parse::<u32>().ok())
                    .unwrap_or(0)
            });
        if newest.is_none() {
            let why = "no PostgreSQL binaries under /usr/lib/postgresql/*/bin";
            assert!(!is_ci(), "{why}");
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "postgres_tls_sslmodes: skipped ({why})");
        }
        newest
    }

    fn start(bin: PathBuf, pki: &Pki) -> SslCluster {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path();
        let status = Command::new("chown")
            .arg("postgres:postgres")
            .arg(path)
            .status()
            .unwrap();
        assert!(status.success(), "chown the cluster's directory");
        let data = path.join("data");
        let data_arg = data.to_str().unwrap();
        as_postgres(
            path,
            &bin.join("initdb"),
            &[
                "-D",
                data_arg,
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
        );
        let (cert, key) = pki.issue("postgres-server", &["localhost"]);
        std::fs::copy(&cert, data.join("server.crt")).unwrap();
        std::fs::copy(&key, data.join("server.key")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            data.join("server.key"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        let status = Command::new("chown")
            .arg("postgres:postgres")
            .arg(data.join("server.crt"))
            .arg(data.join("server.key"))
            .status()
            .unwrap();
        assert!(status.success(), "chown the server's certificate");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut conf = std::fs::read_to_string(data.join("postgresql.conf")).unwrap();
        conf.push_str(&format!(
            "\nlisten_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{}'\n\
             ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n\
             fsync = off\n",
            path.display()
        ));
        std::fs::write(data.join("postgresql.conf"), conf).unwrap();
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\n\
             hostnossl all all 127.0.0.1/32 reject\n\
             hostssl all all 127.0.0.1/32 trust\n",
        )
        .unwrap();
        let log = path.join("postgres.log");
        as_postgres(
            path,
            &bin.join("pg_ctl"),
            &[
                "-D",
                data_arg,
                "-l",
                log.to_str().unwrap(),
                "-w",
                "-t",
                "30",
                "start",
            ],
        );
        SslCluster { dir, bin, port }
    }

    /// The URL of the cluster's `postgres` database at `host`, with `params`.
    fn url(&self, host: &str, params: &str) -> String {
        format!("postgres://postgres@{host}:{}/postgres?{params}", self.port)
    }
}

impl Drop for SslCluster {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args([
                "-D",
                data.to_str().unwrap(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ])
            .current_dir(self.dir.path())
            .output();
    }
}

/// `Store::connect`'s error for `url`, with its causes; panics if it connects.
async fn refusal(url: &str) -> String {
    match Store::connect(url, 1).await {
        Ok(_) => panic!("connected to {url}"),
        Err(e) => format!("{e:#}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_tls_sslmodes() {
    let Some(bin) = SslCluster::binaries() else {
        return;
    };
    let pki = Pki::new("postgres-ca");
    let other = Pki::new("other-ca");
    let cluster = SslCluster::start(bin, &pki);
    let root = pki.ca.to_str().unwrap();
    let wrong_root = other.ca.to_str().unwrap();
    let ip = "127.0.0.1";

    // No TLS: the server refuses the session.
    let plain = refusal(&cluster.url(ip, "sslmode=disable")).await;
    assert!(
        plain.contains("pg_hba.conf rejects connection") && plain.contains("no encryption"),
        "{plain}"
    );

    // Encrypted without checking the certificate: prefer (the default) and require.
    for params in ["", "sslmode=prefer", "sslmode=require"] {
        let store = Store::connect(&cluster.url(ip, params), 2).await;
        assert!(store.is_ok(), "{params}: {:#}", store.err().unwrap());
    }

    // verify-ca: the chain, not the host name (the certificate names only localhost).
    Store::connect(
        &cluster.url(ip, &format!("sslmode=verify-ca&sslrootcert={root}")),
        2,
    )
    .await
    .unwrap();
    // require with a root checks the chain as verify-ca does (libpq).
    Store::connect(
        &cluster.url(ip, &format!("sslmode=require&sslrootcert={root}")),
        2,
    )
    .await
    .unwrap();
    for mode in ["verify-ca", "verify-full", "require"] {
        let untrusted = refusal(&cluster.url(
            "localhost",
            &format!("sslmode={mode}&sslrootcert={wrong_root}&hostaddr=127.0.0.1"),
        ))
        .await;
        assert!(
            untrusted.contains("error performing TLS handshake")
                && untrusted.contains("invalid peer certificate: UnknownIssuer"),
            "{mode}: {untrusted}"
        );
    }

    // verify-full: the host name too.
    let mismatch =
        refusal(&cluster.url(ip, &format!("sslmode=verify-full&sslrootcert={root}"))).await;
    assert!(
        mismatch.contains("error performing TLS handshake")
            && mismatch.contains("certificate not valid for name \"127.0.0.1\""),
        "{mismatch}"
    );
    let unreadable =
        refusal(&cluster.url(ip, "sslmode=verify-full&sslrootcert=/nonexistent/root.pem")).await;
    assert!(
        unreadable.contains("sslrootcert") && unreadable.contains("/nonexistent/root.pem"),
        "{unreadable}"
    );

    // The whole way: gRPC over mutual TLS to a server whose every connection to PostgreSQL,
    // the pool's, migrations' and the listening one, is verify-full.
    let grpc = Pki::new("grpc-ca");
    let (cert, key) = grpc.issue("server", &["localhost"]);
    let caller = grpc.issue("caller", &["caller.example"]);
    let url = cluster.url(
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={root}&hostaddr=127.0.0.1"),
    );
    let mut setup = Setup {
        client_tls: Some(with_identity(client_tls(&grpc.ca), &caller)),
        ..Setup::default()
    };
    setup.options.tls = Some(server_config(&cert, &key, Some(&grpc.ca)).unwrap());
    let srv = TestServer::start_on(&url, setup).await;
    create_and_read(&srv).await;
    // Health follows the listening connection: SERVING means it is up, over TLS.
    let mut health = HealthClient::new(srv.channel.clone());
    until_status(&mut health, ServingStatus::Serving).await;

    // The database goes away under the TLS connections: health turns NOT_SERVING, and the
    // connections end (a closed TLS session answers every poll with an error at once: a
    // driver that kept polling it would spin and fill memory).
    drop(cluster);
    until_status(&mut health, ServingStatus::NotServing).await;
    let before = resident_bytes();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let grown = resident_bytes().saturating_sub(before);
    assert!(
        grown < 64 << 20,
        "resident memory grew {} MiB in a second with the database gone",
        grown >> 20
    );
    drop(srv);
}

/// Polls health every 100 ms, for at most 5 s, until it answers `want`.
async fn until_status(health: &mut HealthClient<Channel>, want: ServingStatus) {
    let mut status = None;
    for _ in 0..50 {
        status = health
            .check(HealthCheckRequest::default())
            .await
            .ok()
            .map(|a| a.into_inner().status);
        if status == Some(want as i32) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("health answered {status:?}, never {want:?}");
}

/// This process's resident memory, in bytes (`/proc/self/statm`, 4 KiB pages).
fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}
