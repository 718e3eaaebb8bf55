//! Identity providers and token properties (R24): issuer and audience, `nbf`, strict claims,
//! JWKS files and URLs with `kid` selection, rotation and reloads, and the ErrorInfo reason of
//! every refusal.
//!
//! A token that passes authentication meets the directory next: tenant 1 has no users here,
//! so an accepted token answers PERMISSION_DENIED `CALLER_NOT_IN_DIRECTORY`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use group_service::auth::{EARLY_RELOAD_GAP, JwksSource, Verifier};
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use proptest::prelude::*;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::{Code, Status};

use crate::fixtures::{claims_object, missing_group};
use crate::harness::*;

const RSA_PRIVATE: &[u8] = include_bytes!("../fixtures/rsa-private.pem");
const RSA_PUBLIC: &[u8] = include_bytes!("../fixtures/rsa-public.pem");
const EC_PRIVATE: &[u8] = include_bytes!("../fixtures/es256-private-pkcs8.pem");
const TLS_CERT: &[u8] = include_bytes!("../fixtures/tls/localhost.pem");
const TLS_KEY: &[u8] = include_bytes!("../fixtures/tls/localhost-key.pem");

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Claims of user 1 of tenant 1, valid for ten minutes, with `extra` merged in.
fn claims(extra: Value) -> Value {
    let mut c = json!({"sub": "1", "tenant": 1, "admin": false, "exp": now() + 600});
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

fn hs256(c: &Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        c,
        &EncodingKey::from_secret(SECRET),
    )
    .unwrap()
}

fn rsa() -> EncodingKey {
    EncodingKey::from_rsa_pem(RSA_PRIVATE).unwrap()
}

fn ec() -> EncodingKey {
    EncodingKey::from_ec_pem(EC_PRIVATE).unwrap()
}

fn signed(alg: Algorithm, key: &EncodingKey, kid: Option<&str>, c: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, c, key).unwrap()
}

/// A JWKS document of the fixtures' public halves under the given key ids.
fn jwks(keys: &[(&str, Algorithm)]) -> String {
    let keys = keys
        .iter()
        .map(|&(kid, alg)| {
            let private = if alg == Algorithm::ES256 { ec() } else { rsa() };
            let mut jwk = Jwk::from_encoding_key(&private, alg).unwrap();
            jwk.common.key_id = Some(kid.to_owned());
            jwk
        })
        .collect();
    serde_json::to_string(&JwkSet { keys }).unwrap()
}

/// What a call with `token` answers: Ok when the token authenticated (the directory then
/// refuses the unknown user), else the UNAUTHENTICATED status.
async fn authenticate(srv: &TestServer, token: &str) -> Result<(), Status> {
    let err = srv
        .groups_as(Some(token.to_owned()))
        .get_group(get_req(&missing_group(1)))
        .await
        .unwrap_err();
    if err.code() == Code::Unauthenticated {
        return Err(err);
    }
    assert_reason(&err, Code::PermissionDenied, "CALLER_NOT_IN_DIRECTORY");
    Ok(())
}

#[track_caller]
fn assert_refused(answer: Result<(), Status>, reason: &str) {
    match answer {
        Ok(()) => panic!("accepted; expected {reason}"),
        Err(status) => assert_reason(&status, Code::Unauthenticated, reason),
    }
}

async fn start_with(verifier: Verifier) -> Option<TestServer> {
    TestServer::start_setup(move |s| s.verifier = verifier).await
}

/// A server whose keys are the JWKS at `source`, reloaded every `refresh`.
async fn start_jwks(source: JwksSource, refresh: Duration) -> Option<TestServer> {
    start_with(Verifier::jwks(source, refresh).await.unwrap()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r24_issuer_and_audience_are_checked_when_configured() {
    let issuers = ["https://idp.example".to_owned()];
    let audiences = ["groups".to_owned()];
    let verifier = Verifier::hs256(SECRET)
        .with_issuers(&issuers)
        .with_audiences(&audiences);
    let Some(srv) = start_with(verifier).await else {
        return;
    };
    let iss = "https://idp.example";
    authenticate(&srv, &hs256(&claims(json!({"iss": iss, "aud": "groups"}))))
        .await
        .unwrap();
    authenticate(
        &srv,
        &hs256(&claims(json!({"iss": iss, "aud": ["mail", "groups"]}))),
    )
    .await
    .unwrap();
    for (extra, reason) in [
        (
            json!({"iss": "https://evil.example", "aud": "groups"}),
            "WRONG_ISSUER",
        ),
        (json!({"aud": "groups"}), "WRONG_ISSUER"),
        (json!({"iss": iss, "aud": "mail"}), "WRONG_AUDIENCE"),
        (
            json!({"iss": iss, "aud": ["mail", "chat"]}),
            "WRONG_AUDIENCE",
        ),
        (json!({"iss": iss}), "WRONG_AUDIENCE"),
    ] {
        let answer = authenticate(&srv, &hs256(&claims(extra.clone()))).await;
        assert_refused(answer, reason);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r24_aud_and_iss_are_not_checked_when_not_configured() {
    let Some(srv) = server().await else { return };
    let token = hs256(&claims(
        json!({"iss": "https://idp.example", "aud": "groups"}),
    ));
    authenticate(&srv, &token).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r24_nbf_exp_and_signature_have_their_reasons() {
    let Some(srv) = server().await else { return };
    let t = now();
    // Within the 30 s leeway either way, a token is still (or already) good.
    for extra in [
        json!({"nbf": t - 10}),
        json!({"nbf": t + 10}),
        json!({"exp": t - 10}),
    ] {
        authenticate(&srv, &hs256(&claims(extra))).await.unwrap();
    }
    let answer = authenticate(&srv, &hs256(&claims(json!({"nbf": t + 600})))).await;
    assert_refused(answer, "TOKEN_NOT_YET_VALID");
    let answer = authenticate(&srv, &hs256(&claims(json!({"exp": t - 120})))).await;
    assert_refused(answer, "TOKEN_EXPIRED");
    let forged = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims(json!({})),
        &EncodingKey::from_secret(b"another-secret-0123456789abcdef"),
    )
    .unwrap();
    assert_refused(authenticate(&srv, &forged).await, "BAD_SIGNATURE");
    let answer = authenticate(&srv, &hs256(&claims(json!({"nbf": "tomorrow"})))).await;
    assert_refused(answer, "BAD_CLAIMS");
    assert_refused(authenticate(&srv, "not-a-jwt").await, "TOKEN_MALFORMED");
    let missing = srv
        .groups_as(None)
        .get_group(get_req(&missing_group(1)))
        .await
        .unwrap_err();
    assert_reason(&missing, Code::Unauthenticated, "TOKEN_MISSING");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r24_subject_must_be_a_canonical_user_id() {
    let Some(srv) = server().await else { return };
    authenticate(&srv, &hs256(&claims(json!({"sub": "7"}))))
        .await
        .unwrap();
    for sub in [
        "007",
        "+7",
        " 7",
        "7 ",
        "7.0",
        "0",
        "-7",
        "",
        "٧",
        "99999999999999999999",
    ] {
        let answer = authenticate(&srv, &hs256(&claims(json!({"sub": sub})))).await;
        assert_refused(answer, "BAD_CLAIMS");
    }
    for extra in [
        json!({"sub": 7}),
        json!({"tenant": "1"}),
        json!({"tenant": 1.5}),
        json!({"tenant": 0}),
        json!({"admin": "yes"}),
        json!({"svc": true, "sub": ""}),
        json!({"svc": true, "sub": "dir\nectory"}),
    ] {
        let answer = authenticate(&srv, &hs256(&claims(extra.clone()))).await;
        assert_refused(answer, "BAD_CLAIMS");
    }
}

/// A JWKS file in a temporary directory, rewritten by the test.
struct JwksFile {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
}

impl JwksFile {
    fn new(content: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwks.json");
        std::fs::write(&path, content).unwrap();
        JwksFile { _dir: dir, path }
    }

    /// Replaces the file whole (rename), as a deployment would, so no reload reads half.
    fn rewrite(&self, content: &str) {
        let tmp = self.path.with_extension("tmp");
        std::fs::write(&tmp, content).unwrap();
        std::fs::rename(&tmp, &self.path).unwrap();
    }

    fn source(&self) -> JwksSource {
        JwksSource::parse(self.path.to_str().unwrap())
    }
}

/// The flags as the binary parses them reach the verifier: `--jwt-jwks` (a file, a kid),
/// `--jwt-issuer` (two, comma-separated), `--jwt-audience` and `--jwt-leeway-secs`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_flags_configure_the_verifier() {
    use clap::Parser;
    use group_service::auth::Rejection;
    let file = JwksFile::new(&jwks(&[("k1", Algorithm::RS256)]));
    let cli = group_service::config::Cli::try_parse_from([
        "group-service",
        "--jwt-jwks",
        file.path.to_str().unwrap(),
        "--jwt-issuer",
        "https://idp.test,https://other.test",
        "--jwt-audience",
        "group-service",
        "--jwt-leeway-secs",
        "0",
    ])
    .unwrap();
    let verifier = cli.config.verifier().await.unwrap();
    let token = |extra: Value| signed(Algorithm::RS256, &rsa(), Some("k1"), &claims(extra));
    let good = json!({"iss": "https://other.test", "aud": "group-service"});
    assert!(verifier.verify(&token(good)).is_ok());
    let verdict = |extra: Value| verifier.verify(&token(extra)).err();
    assert_eq!(
        verdict(json!({"iss": "https://other.test", "aud": "mail"})),
        Some(Rejection::WrongAudience)
    );
    assert_eq!(
        verdict(json!({"iss": "https://evil.test", "aud": "group-service"})),
        Some(Rejection::WrongIssuer)
    );
    // No leeway: a token that expired 5 s ago is refused.
    assert_eq!(
        verdict(json!({"iss": "https://idp.test", "aud": "group-service", "exp": now() - 5})),
        Some(Rejection::Expired)
    );
    let hs = hs256(&claims(
        json!({"iss": "https://idp.test", "aud": "group-service"}),
    ));
    assert_eq!(verifier.verify(&hs).err(), Some(Rejection::WrongAlgorithm));
}

/// Calls until `token` authenticates, for at most 5 s.
async fn until_accepted(srv: &TestServer, token: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match authenticate(srv, token).await {
            Ok(()) => return,
            Err(e) if tokio::time::Instant::now() > deadline => panic!("never accepted: {e:?}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_kid_selects_among_two_keys() {
    let file = JwksFile::new(&jwks(&[
        ("rsa-1", Algorithm::RS256),
        ("ec-1", Algorithm::ES256),
    ]));
    let Some(srv) = start_jwks(file.source(), Duration::from_secs(3600)).await else {
        return;
    };
    let c = claims(json!({}));
    let by_rsa = signed(Algorithm::RS256, &rsa(), Some("rsa-1"), &c);
    let by_ec = signed(Algorithm::ES256, &ec(), Some("ec-1"), &c);
    authenticate(&srv, &by_rsa).await.unwrap();
    authenticate(&srv, &by_ec).await.unwrap();
    // Without a kid, the only key of the token's algorithm.
    authenticate(&srv, &signed(Algorithm::RS256, &rsa(), None, &c))
        .await
        .unwrap();
    // The RSA signature under the EC key's id; the EC signature under the RSA key's id.
    let answer = authenticate(&srv, &signed(Algorithm::RS256, &rsa(), Some("ec-1"), &c)).await;
    assert_refused(answer, "WRONG_ALGORITHM");
    let answer = authenticate(&srv, &signed(Algorithm::ES256, &ec(), Some("rsa-1"), &c)).await;
    assert_refused(answer, "WRONG_ALGORITHM");
    let answer = authenticate(&srv, &signed(Algorithm::RS256, &rsa(), Some("rsa-9"), &c)).await;
    assert_refused(answer, "UNKNOWN_KEY");
    // The development secret means nothing to a JWKS server.
    assert_refused(authenticate(&srv, &hs256(&c)).await, "WRONG_ALGORITHM");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r24_alg_confusion_and_alg_none_are_refused() {
    let file = JwksFile::new(&jwks(&[("rsa-1", Algorithm::RS256)]));
    let by_jwks = Verifier::jwks(file.source(), Duration::from_secs(3600))
        .await
        .unwrap();
    let by_pem = Verifier::from_public_key_pem(RSA_PUBLIC).unwrap();
    let c = claims(json!({"admin": true}));
    // An HS256 token "signed" with the public key's bytes: the classic confusion.
    let confused = signed(
        Algorithm::HS256,
        &EncodingKey::from_secret(RSA_PUBLIC),
        Some("rsa-1"),
        &c,
    );
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT","kid":"rsa-1"}"#);
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&c).unwrap());
    let unsigned = format!("{header}.{payload}.");
    for verifier in [by_jwks, by_pem] {
        let Some(srv) = start_with(verifier).await else {
            return;
        };
        authenticate(&srv, &signed(Algorithm::RS256, &rsa(), Some("rsa-1"), &c))
            .await
            .unwrap();
        assert_refused(authenticate(&srv, &confused).await, "WRONG_ALGORITHM");
        assert_refused(authenticate(&srv, &unsigned).await, "TOKEN_MALFORMED");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_file_rotation_is_picked_up() {
    let file = JwksFile::new(&jwks(&[("old", Algorithm::RS256)]));
    let Some(srv) = start_jwks(file.source(), Duration::from_millis(100)).await else {
        return;
    };
    let c = claims(json!({}));
    let old = signed(Algorithm::RS256, &rsa(), Some("old"), &c);
    let new = signed(Algorithm::ES256, &ec(), Some("new"), &c);
    authenticate(&srv, &old).await.unwrap();
    file.rewrite(&jwks(&[("new", Algorithm::ES256)]));
    until_accepted(&srv, &new).await;
    assert_refused(authenticate(&srv, &old).await, "UNKNOWN_KEY");
}

/// A JWKS over HTTP: answers every GET with the current document and counts the GETs.
struct JwksServer {
    url: String,
    body: Arc<Mutex<String>>,
    gets: Arc<AtomicUsize>,
}

impl JwksServer {
    async fn start(body: &str) -> Self {
        Self::start_with(body, None).await
    }

    /// Over HTTPS, as `localhost`, with the certificate `tests/fixtures/tls/localhost.pem`
    /// (issued by `ca.pem` there).
    async fn start_tls(body: &str) -> Self {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let chain = CertificateDer::pem_slice_iter(TLS_CERT)
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_slice(TLS_KEY).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
        Self::start_with(
            body,
            Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))),
        )
        .await
    }

    async fn start_with(body: &str, tls: Option<tokio_rustls::TlsAcceptor>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let url = match tls {
            Some(_) => format!("https://localhost:{port}/.well-known/jwks.json"),
            None => format!("http://127.0.0.1:{port}/.well-known/jwks.json"),
        };
        let body = Arc::new(Mutex::new(body.to_owned()));
        let gets = Arc::new(AtomicUsize::new(0));
        let (b, g) = (body.clone(), gets.clone());
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                let (b, g) = (b.clone(), g.clone());
                match &tls {
                    // A handshake the client refuses ends that connection only.
                    Some(tls) => {
                        if let Ok(conn) = tls.accept(conn).await {
                            answer(conn, &b, &g).await;
                        }
                    }
                    None => answer(conn, &b, &g).await,
                }
            }
        });
        JwksServer { url, body, gets }
    }

    fn serve(&self, body: &str) {
        *self.body.lock().unwrap() = body.to_owned();
    }

    fn gets(&self) -> usize {
        self.gets.load(Ordering::SeqCst)
    }
}

/// Reads one request and answers it with the current body.
async fn answer<S>(mut conn: S, body: &Mutex<String>, gets: &AtomicUsize)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match conn.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    gets.fetch_add(1, Ordering::SeqCst);
    let body = body.lock().unwrap().clone();
    let answer = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = conn.write_all(answer.as_bytes()).await;
    let _ = conn.shutdown().await;
}

/// The server binary with `--jwt-jwks url`, trusting the certificates of `roots` only
/// (`SSL_CERT_FILE`).
fn with_jwks(url: &str, roots: &str) -> ServerProcess {
    ServerProcess::start(|command| {
        command
            .args(["--jwt-jwks", url])
            .env("SSL_CERT_FILE", roots)
            .env_remove("SSL_CERT_DIR");
    })
}

/// A JWKS URL over HTTPS, from an identity provider whose certificate a private CA issued:
/// the server trusts the roots `SSL_CERT_FILE` names (instead of the system's), so with that
/// CA it loads the keys and accepts their tokens; with another CA it refuses to start, saying
/// why, rather than serve with no keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_url_over_https_is_checked_against_the_trusted_roots() {
    let idp = JwksServer::start_tls(&jwks(&[("k1", Algorithm::RS256)])).await;
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tls");

    let mut trusted = with_jwks(&idp.url, &format!("{fixtures}/ca.pem"));
    if let Err((status, stderr)) = trusted.serving().await {
        panic!("the server exited ({status}): {stderr}");
    }
    assert_eq!(idp.gets(), 1, "the keys are loaded once at start");
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", trusted.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client =
        group_service::grpc::pb::group_service_client::GroupServiceClient::with_interceptor(
            channel,
            Bearer::new(&signed(
                Algorithm::RS256,
                &rsa(),
                Some("k1"),
                &claims(json!({})),
            )),
        );
    let err = client
        .get_group(get_req(&missing_group(1)))
        .await
        .unwrap_err();
    // Authenticated: the directory, not the token check, refuses the unknown user.
    assert_reason(&err, Code::PermissionDenied, "CALLER_NOT_IN_DIRECTORY");

    let mut untrusted = with_jwks(&idp.url, &format!("{fixtures}/other-ca.pem"));
    let (status, stderr) = untrusted
        .serving()
        .await
        .expect_err("a JWKS behind an untrusted certificate must not be used");
    assert!(!status.success());
    assert!(
        stderr.contains(&idp.url) && stderr.to_lowercase().contains("certificate"),
        "the error names the URL and the certificate: {stderr}"
    );
}

/// Waits until the provider has answered `n` GETs, for at most `within`.
async fn until_fetched(idp: &JwksServer, n: usize, within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    while idp.gets() < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} fetches, expected {n}",
            idp.gets()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A stray token of an unknown key id reloads the set early; when the provider then rotates,
/// a token of the new key is accepted within `EARLY_RELOAD_GAP` of the stray's reload, not a
/// refresh interval later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_reload_on_unknown_kid_is_rate_bounded_not_per_interval() {
    let idp = JwksServer::start(&jwks(&[("k1", Algorithm::RS256)])).await;
    let Some(srv) = start_jwks(JwksSource::parse(&idp.url), Duration::from_secs(3600)).await else {
        return;
    };
    assert_eq!(idp.gets(), 1);
    let c = claims(json!({}));
    authenticate(&srv, &signed(Algorithm::RS256, &rsa(), Some("k1"), &c))
        .await
        .unwrap();
    assert_eq!(idp.gets(), 1, "a known kid fetches nothing");
    // The stray token: refused at once, and it brings a reload (within the gap after the
    // load at start).
    let stray = signed(Algorithm::RS256, &rsa(), Some("stray"), &c);
    assert_refused(authenticate(&srv, &stray).await, "UNKNOWN_KEY");
    until_fetched(&idp, 2, EARLY_RELOAD_GAP + Duration::from_secs(2)).await;
    // The provider rotates right after that reload.
    idp.serve(&jwks(&[("k1", Algorithm::RS256), ("k2", Algorithm::ES256)]));
    let rotated = tokio::time::Instant::now();
    let new = signed(Algorithm::ES256, &ec(), Some("k2"), &c);
    let deadline = rotated + EARLY_RELOAD_GAP + Duration::from_secs(2);
    while let Err(e) = authenticate(&srv, &new).await {
        assert_reason(&e, Code::Unauthenticated, "UNKNOWN_KEY");
        assert!(
            tokio::time::Instant::now() < deadline,
            "the rotated key is still refused {:?} after the rotation",
            rotated.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        idp.gets(),
        3,
        "one reload for the stray token, one for the new key"
    );
}

/// A flood of tokens with made-up key ids, from several callers at once, costs the provider
/// at most one fetch per `EARLY_RELOAD_GAP`, and still reloads early.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_unknown_kid_flood_shares_reloads_at_a_bounded_rate() {
    let idp = JwksServer::start(&jwks(&[("k1", Algorithm::RS256)])).await;
    let started = tokio::time::Instant::now();
    let Some(srv) = start_jwks(JwksSource::parse(&idp.url), Duration::from_secs(3600)).await else {
        return;
    };
    let srv = Arc::new(srv);
    let flood_for = EARLY_RELOAD_GAP + Duration::from_secs(1);
    let calls = Arc::new(AtomicUsize::new(0));
    let mut callers = Vec::new();
    for caller in 0..8 {
        let (srv, calls) = (srv.clone(), calls.clone());
        callers.push(tokio::spawn(async move {
            let kid = format!("made-up-{caller}");
            let token = signed(Algorithm::RS256, &rsa(), Some(&kid), &claims(json!({})));
            while started.elapsed() < flood_for {
                assert_refused(authenticate(&srv, &token).await, "UNKNOWN_KEY");
                calls.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }
    for caller in callers {
        caller.await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let elapsed = started.elapsed();
    let calls = calls.load(Ordering::SeqCst);
    // The load at start, then at most one per gap since.
    let bound = 1 + (elapsed.as_millis() / EARLY_RELOAD_GAP.as_millis()) as usize;
    assert!(calls > 100, "the flood was {calls} calls");
    assert!(
        idp.gets() <= bound,
        "{} fetches for {calls} unknown-kid calls in {elapsed:?}; at most {bound}",
        idp.gets()
    );
    assert!(idp.gets() >= 2, "unknown kids never reloaded the set");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_failed_reload_keeps_the_last_good_set() {
    let idp = JwksServer::start(&jwks(&[("k1", Algorithm::RS256)])).await;
    let Some(srv) = start_jwks(JwksSource::parse(&idp.url), Duration::from_millis(50)).await else {
        return;
    };
    let token = signed(Algorithm::RS256, &rsa(), Some("k1"), &claims(json!({})));
    for broken in ["<html>maintenance</html>", r#"{"keys": []}"#] {
        idp.serve(broken);
        let seen = idp.gets();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while idp.gets() < seen + 2 {
            assert!(tokio::time::Instant::now() < deadline, "no reload");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        authenticate(&srv, &token).await.unwrap();
    }
    // A file that cannot be read at start stops the start instead.
    let gone = JwksSource::parse("/nonexistent/jwks.json");
    assert!(Verifier::jwks(gone, Duration::from_secs(60)).await.is_err());
}

/// Whatever the bearer holds, the interceptor answers UNAUTHENTICATED (or lets a
/// genuinely valid token through) and never panics.
fn interceptor_answer(token: &str) -> Option<Code> {
    let verifier = Verifier::hs256(SECRET);
    let check = verifier.interceptor();
    let mut req = tonic::Request::new(());
    let value = format!("Bearer {token}").parse().ok()?;
    req.metadata_mut().insert("authorization", value);
    Some(match check(req) {
        Ok(_) => Code::Ok,
        Err(status) => status.code(),
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn r24_arbitrary_bearer_text_is_unauthenticated(token in "[!-~]{0,200}") {
        if let Some(code) = interceptor_answer(&token) {
            prop_assert_eq!(code, Code::Unauthenticated);
        }
    }

    #[test]
    fn r24_damaged_tokens_are_unauthenticated(
        at in 0usize..400,
        byte in b'!'..=b'~',
        cut in 0usize..400,
    ) {
        let good = hs256(&claims(json!({"aud": "x", "nbf": now()})));
        prop_assert_eq!(interceptor_answer(&good), Some(Code::Ok));
        let mut damaged = good.clone().into_bytes();
        let at = at % damaged.len();
        damaged[at] = byte;
        let damaged = String::from_utf8(damaged).unwrap();
        if damaged != good {
            // A base64 character's low bits may not matter; the payload then is the same.
            let same = URL_SAFE_NO_PAD.decode(damaged.rsplit('.').next().unwrap_or(""))
                == URL_SAFE_NO_PAD.decode(good.rsplit('.').next().unwrap_or(""))
                && damaged.rsplit_once('.').map(|p| p.0) == good.rsplit_once('.').map(|p| p.0);
            let answer = interceptor_answer(&damaged);
            if !same {
                prop_assert_eq!(answer, Some(Code::Unauthenticated), "{}", damaged);
            }
        }
        let truncated = &good[..cut % good.len()];
        prop_assert_eq!(interceptor_answer(truncated), Some(Code::Unauthenticated));
    }

    #[test]
    fn r24_signed_garbage_claims_never_pass_unchecked(
        c in claims_object(),
    ) {
        let token = hs256(&c);
        let answer = Verifier::hs256(SECRET).verify(&token);
        if let Ok(caller) = answer {
            // Only claims that are valid by every rule get through.
            let tenant = c["tenant"].as_i64();
            prop_assert_eq!(tenant, Some(caller.tenant.0));
            prop_assert!(c["exp"].as_u64().is_some_and(|e| e + 30 >= now()));
            let sub = c["sub"].as_str().unwrap();
            if c["svc"].as_bool() != Some(true) {
                prop_assert!(!sub.starts_with('0') && sub.bytes().all(|b| b.is_ascii_digit()));
            }
        } else {
            prop_assert_eq!(interceptor_answer(&token), Some(Code::Unauthenticated));
        }
    }
}
