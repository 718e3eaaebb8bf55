//! Observability: the Prometheus exposition, counts by method and code
//! (cancelled calls included), the in-flight and pool gauges, the access log line, the request
//! id, and gzip.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::harness::*;
use group_service::auth::mint_hs256;
use group_service::grpc::pb;
use group_service::store::Backend;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::Code;
use tonic::codec::CompressionEncoding;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

/// One sample of the exposition: name, labels, value.
#[derive(Debug)]
pub(crate) struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// The samples of an OpenMetrics text exposition, checked line by line: every line is a
/// HELP, TYPE or UNIT comment, a sample with well-formed and correctly escaped labels, or
/// the final `# EOF`. Anything else fails the test.
fn parse_exposition(text: &str) -> Vec<Sample> {
    fn is_name(s: &str) -> bool {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
            && !s.starts_with(|c: char| c.is_ascii_digit())
    }
    let lines: Vec<&str> = text.split_terminator('\n').collect();
    assert_eq!(lines.last(), Some(&"# EOF"), "exposition ends with # EOF");
    let mut samples = Vec::new();
    for line in &lines[..lines.len() - 1] {
        if let Some(comment) = line.strip_prefix("# ") {
            let mut parts = comment.splitn(3, ' ');
            let kind = parts.next().unwrap();
            let name = parts.next().unwrap_or("");
            assert!(
                matches!(kind, "HELP" | "TYPE" | "UNIT") && is_name(name),
                "bad comment line: {line:?}"
            );
            continue;
        }
        let (name, rest) = match line.find(['{', ' ']) {
            Some(i) => line.split_at(i),
            None => panic!("bad sample line: {line:?}"),
        };
        assert!(is_name(name), "bad metric name in {line:?}");
        let mut labels = BTreeMap::new();
        let mut rest = rest;
        if let Some(body) = rest.strip_prefix('{') {
            let mut chars = body.char_indices().peekable();
            let end = loop {
                let (start, c) = chars.next().expect("unterminated labels");
                if c == '}' {
                    break start;
                }
                let start = if c == ',' {
                    chars.next().expect("label after comma").0
                } else {
                    start
                };
                let eq = body[start..].find('=').expect("label =") + start;
                let label = &body[start..eq];
                assert!(is_name(label), "bad label name {label:?} in {line:?}");
                while chars.peek().is_some_and(|(i, _)| *i <= eq) {
                    chars.next();
                }
                assert_eq!(chars.next().map(|(_, c)| c), Some('"'), "quote in {line:?}");
                let mut value = String::new();
                loop {
                    match chars.next().expect("unterminated label value").1 {
                        '"' => break,
                        '\\' => match chars.next().expect("escape").1 {
                            '\\' => value.push('\\'),
                            '"' => value.push('"'),
                            'n' => value.push('\n'),
                            other => panic!("bad escape \\{other} in {line:?}"),
                        },
                        '\n' => panic!("newline in label value: {line:?}"),
                        c => value.push(c),
                    }
                }
                labels.insert(label.to_owned(), value);
            };
            rest = &body[end + 1..];
        }
        let mut fields = rest
            .strip_prefix(' ')
            .expect("space before value")
            .split(' ');
        let value = fields.next().unwrap();
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line:?}")),
        };
        assert!(fields.count() <= 1, "trailing fields in {line:?}");
        samples.push(Sample {
            name: name.to_owned(),
            labels,
            value,
        });
    }
    samples
}

/// The value of the one sample named `name` whose labels include `labels`.
pub(crate) fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let found: Vec<&Sample> = samples
        .iter()
        .filter(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .collect();
    assert!(found.len() <= 1, "{name} {labels:?} matches {found:?}");
    found.first().map(|s| s.value)
}

/// Every series of the exposition, by name and labels.
fn series(samples: &[Sample]) -> BTreeSet<(String, Vec<(String, String)>)> {
    samples
        .iter()
        .map(|s| {
            let labels = s.labels.iter().map(|(k, v)| (k.clone(), v.clone()));
            (s.name.clone(), labels.collect())
        })
        .collect()
}

/// `GET path` on the metrics listener: the status code and the body.
async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut http = tokio::net::TcpStream::connect(addr).await.unwrap();
    http.write_all(
        format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut answer = String::new();
    http.read_to_string(&mut answer).await.unwrap();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in {answer:?}"));
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

pub(crate) async fn scrape(addr: SocketAddr) -> Vec<Sample> {
    let (status, body) = http_get(addr, "/metrics").await;
    assert_eq!(status, 200, "{body}");
    parse_exposition(&body)
}

/// A server with a metrics listener, and the listener's address.
async fn observed_server() -> Option<(TestServer, SocketAddr)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let srv = TestServer::start_setup(|s| s.options.metrics_listener = Some(listener)).await?;
    Some((srv, addr))
}

/// A unary call to `path` with a token: the code it is answered with.
async fn call_path(srv: &TestServer, path: &str) -> Code {
    let mut grpc = tonic::client::Grpc::new(srv.channel.clone());
    grpc.ready().await.unwrap();
    let codec = tonic_prost::ProstCodec::<pb::GetGroupRequest, pb::Group>::default();
    let path = path.parse().expect("path");
    let mut request = tonic::Request::new(get_req("tenants/1/groups/1"));
    let token = format!("Bearer {}", srv.token(1, "7", false, false));
    request
        .metadata_mut()
        .insert("authorization", token.parse().unwrap());
    grpc.unary(request, path, codec).await.unwrap_err().code()
}

const GET_GROUP: [(&str, &str); 2] = [
    ("grpc_service", "groups.v1.GroupService"),
    ("grpc_method", "GetGroup"),
];

fn with<'a>(base: &[(&'a str, &'a str)], more: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    base.iter().chain(more).copied().collect()
}

/// Calls are counted by service, method and code under go-grpc-prometheus's names; the
/// in-flight gauge is back to 0; the pools and the domain's operations are measured.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn obs_metrics_count_calls_by_service_method_and_code() {
    let Some((srv, metrics)) = observed_server().await else {
        return;
    };
    let mut client = srv.groups(1, 7, false);
    for _ in 0..3 {
        let err = client
            .get_group(get_req("tenants/1/groups/1"))
            .await
            .unwrap_err();
        // The caller is not in the directory.
        assert_eq!(err.code(), Code::PermissionDenied);
    }
    let err = srv
        .groups_as(None)
        .get_group(get_req("tenants/1/groups/1"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);

    let samples = scrape(metrics).await;
    let denied = with(&GET_GROUP, &[("grpc_code", "PermissionDenied")]);
    let unauthenticated = with(&GET_GROUP, &[("grpc_code", "Unauthenticated")]);
    let expected = [
        ("grpc_server_handled_total", denied.clone(), 3.0),
        ("grpc_server_handled_total", unauthenticated, 1.0),
        ("grpc_server_started_total", GET_GROUP.to_vec(), 4.0),
        ("grpc_server_handling_seconds_count", denied.clone(), 3.0),
        (
            "grpc_server_handling_seconds_bucket",
            with(&denied, &[("le", "+Inf")]),
            3.0,
        ),
        ("grpc_server_in_flight", GET_GROUP.to_vec(), 0.0),
        // The three authenticated calls ran the domain's `get_group`.
        (
            "group_service_db_operation_seconds_count",
            vec![("operation", "get_group")],
            3.0,
        ),
    ];
    for (name, labels, want) in expected {
        let got = value(&samples, name, &labels);
        assert_eq!(got, Some(want), "{name} {labels:?}");
    }
    let pools: &[&str] = match srv.store.backend {
        Backend::Postgres(_) => &["postgres"],
        Backend::Sqlite { .. } => &["sqlite_writer", "sqlite_readers"],
    };
    for pool in pools {
        let labels = [("pool", *pool)];
        let open = value(&samples, "group_service_db_pool_connections", &labels);
        let idle = value(&samples, "group_service_db_pool_idle_connections", &labels);
        assert!(open.is_some_and(|n| n >= 1.0), "{pool}: {open:?}");
        assert!(idle.is_some_and(|n| n <= open.unwrap()), "{pool}: {idle:?}");
        // Both pools have sent statements: the setup's writes, the calls' reads.
        let sent = value(&samples, "group_service_db_statements_total", &labels);
        assert!(sent.is_some_and(|n| n >= 1.0), "{pool}: {sent:?}");
    }
    // No relay runs here: no lag to report.
    assert!(
        !samples
            .iter()
            .any(|s| s.name.starts_with("group_service_relay_lag"))
    );
    srv.stop().await;
}

/// Hostile and made-up paths, on the metrics listener and as gRPC methods, leave the
/// exposition parseable and add no series: unknown methods count under one label.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn obs_made_up_paths_add_no_series() {
    let Some((srv, metrics)) = observed_server().await else {
        return;
    };
    assert_eq!(
        call_path(&srv, "/no.Such/Method").await,
        Code::Unimplemented
    );
    let before = series(&scrape(metrics).await);

    assert_eq!(http_get(metrics, "/\"x").await.0, 404);
    for i in 0..1000 {
        let path = format!("/metrics{}/{:x}", i % 3, rand::random::<u64>());
        assert_eq!(http_get(metrics, &path).await.0, 404, "{path}");
    }
    let hostile = [
        "/\"x",
        "/groups.v1.GroupService/Nope\"}",
        "/groups.v1.GroupService/",
    ];
    for path in hostile {
        assert_eq!(call_path(&srv, path).await, Code::Unimplemented, "{path}");
    }
    for _ in 0..97 {
        let path = format!("/groups.v1.GroupService/{:x}", rand::random::<u64>());
        assert_eq!(call_path(&srv, &path).await, Code::Unimplemented);
    }

    let samples = scrape(metrics).await;
    assert_eq!(series(&samples), before);
    let unknown = [
        ("grpc_service", "unknown"),
        ("grpc_method", "unknown"),
        ("grpc_code", "Unimplemented"),
    ];
    assert_eq!(
        value(&samples, "grpc_server_handled_total", &unknown),
        Some(101.0)
    );
    srv.stop().await;
}

/// A call whose client gives up (deadline) or goes away (cancel) is still counted, as
/// DeadlineExceeded or Canceled, and leaves the in-flight gauge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn obs_cancelled_and_expired_calls_are_counted() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let metrics = listener.local_addr().unwrap();
    let mut setup = Setup::default();
    setup.options.metrics_listener = Some(listener);
    // Every connection a read could use is taken: calls wait for one until they give up.
    let Some((srv, held)) =
        TestServer::start_setup_with(setup, TestServer::hold_read_connections).await
    else {
        return;
    };
    let client = srv.groups(1, 7, false);
    // The connection is up before the deadline's clock starts (`call_path` needs no
    // database).
    assert_eq!(
        call_path(&srv, "/no.Such/Method").await,
        Code::Unimplemented
    );

    let mut expiring = tonic::Request::new(get_req("tenants/1/groups/1"));
    expiring.set_timeout(Duration::from_millis(300));
    let err = client.clone().get_group(expiring).await.unwrap_err();
    // tonic's server answers a passed `grpc-timeout` CANCELLED ("Timeout expired"); the call
    // is counted as what happened to it.
    assert!(
        matches!(err.code(), Code::Cancelled | Code::DeadlineExceeded),
        "{err:?}"
    );

    let mut cancelled = client.clone();
    let call =
        tokio::spawn(async move { cancelled.get_group(get_req("tenants/1/groups/1")).await });
    let in_flight = eventually(metrics, |s| {
        value(s, "grpc_server_in_flight", &GET_GROUP) == Some(1.0)
    })
    .await;
    assert_eq!(
        value(&in_flight, "grpc_server_in_flight", &GET_GROUP),
        Some(1.0)
    );
    call.abort();

    let samples = eventually(metrics, |s| {
        value(s, "grpc_server_in_flight", &GET_GROUP) == Some(0.0)
    })
    .await;
    let code = |c| with(&GET_GROUP, &[("grpc_code", c)]);
    assert_eq!(
        value(
            &samples,
            "grpc_server_handled_total",
            &code("DeadlineExceeded")
        ),
        Some(1.0)
    );
    assert_eq!(
        value(&samples, "grpc_server_handled_total", &code("Canceled")),
        Some(1.0)
    );
    assert_eq!(
        value(&samples, "grpc_server_started_total", &GET_GROUP),
        Some(2.0)
    );
    assert_eq!(
        value(&samples, "grpc_server_in_flight", &GET_GROUP),
        Some(0.0)
    );
    drop(held);
    srv.stop().await;
}

/// Scrapes until `done` holds, for up to 5 seconds; the last scrape.
pub(crate) async fn eventually(
    metrics: SocketAddr,
    done: impl Fn(&[Sample]) -> bool,
) -> Vec<Sample> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let samples = scrape(metrics).await;
        if done(&samples) || tokio::time::Instant::now() > deadline {
            return samples;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The server binary, started with `--log-format json` over a new SQLite database; its
/// stderr lines go to `lines`.
struct Spawned {
    server: ServerProcess,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Spawned {
    async fn start() -> Spawned {
        use std::io::BufRead;
        let mut server = ServerProcess::start(|command| {
            command
                .args(["--log-format", "json"])
                .env(
                    "GROUP_SERVICE_JWT_SECRET",
                    std::str::from_utf8(SECRET).unwrap(),
                )
                .env("RUST_LOG", "info");
        });
        let stderr = std::io::BufReader::new(server.child.stderr.take().unwrap());
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let spawned = Spawned { server, lines };
        spawned.wait_for(|l| l.contains("\"serving\"")).await;
        spawned
    }

    /// The JSON log lines so far that `keep` selects, once there are some (up to 10 s).
    async fn wait_for(&self, keep: impl Fn(&str) -> bool) -> Vec<serde_json::Value> {
        for _ in 0..500 {
            let found: Vec<serde_json::Value> = self
                .lines
                .lock()
                .unwrap()
                .iter()
                .filter(|l| keep(l))
                .map(|l| serde_json::from_str(l).expect("a JSON log line"))
                .collect();
            if !found.is_empty() {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("no such log line in {:#?}", self.lines.lock().unwrap());
    }

    /// The access log line of the call with `request_id`.
    async fn access_line(&self, request_id: &str) -> serde_json::Value {
        let needle = format!("\"request_id\":\"{request_id}\"");
        let lines = self
            .wait_for(|l| l.contains("group_service::access") && l.contains(&needle))
            .await;
        assert_eq!(lines.len(), 1, "one access line per call: {lines:#?}");
        lines[0]["fields"].clone()
    }
}

fn with_request_id<T>(message: T, id: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("x-request-id", id.parse().unwrap());
    request
}

/// One JSON access log line per call (`--log-format json`) with method, tenant, code, latency
/// and request id; the request id is the client's `x-request-id` when it is fit, else a new
/// one, and comes back in the answer's metadata, on errors too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn obs_access_log_line_per_call_with_request_id() {
    let server = Spawned::start().await;
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", server.server.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let token = mint_hs256(SECRET, 1, "7", false, false, 600).unwrap();
    let bearer: tonic::metadata::MetadataValue<_> = format!("Bearer {token}").parse().unwrap();
    let mut client = pb::group_service_client::GroupServiceClient::with_interceptor(
        channel.clone(),
        move |mut req: tonic::Request<()>| {
            req.metadata_mut().insert("authorization", bearer.clone());
            Ok(req)
        },
    );
    let err = client
        .get_group(with_request_id(get_req("tenants/1/groups/1"), "req-42.a"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert_eq!(err.metadata().get("x-request-id").unwrap(), "req-42.a");
    let denied = server.access_line("req-42.a").await;
    assert_eq!(denied["message"], "call");
    assert_eq!(denied["method"], "/groups.v1.GroupService/GetGroup");
    assert_eq!(denied["tenant"], 1);
    assert_eq!(denied["code"], "PermissionDenied");
    assert!(
        denied["latency_ms"].as_f64().is_some_and(|ms| ms > 0.0),
        "{denied}"
    );

    let mut health = HealthClient::new(channel);
    let too_long = "x".repeat(129);
    let answer = health
        .check(with_request_id(HealthCheckRequest::default(), &too_long))
        .await
        .unwrap();
    let generated = answer
        .metadata()
        .get("x-request-id")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(generated.len(), 32, "{generated}");
    assert!(
        generated.bytes().all(|b| b.is_ascii_hexdigit()),
        "{generated}"
    );
    let checked = server.access_line(&generated).await;
    assert_eq!(checked["method"], "/grpc.health.v1.Health/Check");
    assert_eq!(checked["code"], "OK");
    // Health needs no token: no tenant.
    assert!(checked.get("tenant").is_none(), "{checked}");

    let unnamed = health.check(HealthCheckRequest::default()).await.unwrap();
    let other = unnamed
        .metadata()
        .get("x-request-id")
        .unwrap()
        .to_str()
        .unwrap();
    assert_ne!(other, generated);
    assert_eq!(server.access_line(other).await["code"], "OK");
}

/// A gzip-compressed request is accepted, and the answer comes back compressed to a client
/// that accepts gzip.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn obs_gzip_request_is_accepted() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(1, 2).await;
    let mut admin = srv
        .groups(1, 1, true)
        .send_compressed(CompressionEncoding::Gzip)
        .accept_compressed(CompressionEncoding::Gzip);
    let created = admin
        .create_group(create_req(1, &"compressed ".repeat(5), &[2]))
        .await
        .unwrap();
    assert_eq!(created.metadata().get("grpc-encoding").unwrap(), "gzip");
    let name = created.into_inner().name;
    let read = admin.get_group(get_req(&name)).await.unwrap();
    assert_eq!(read.metadata().get("grpc-encoding").unwrap(), "gzip");
    assert_eq!(read.into_inner().name, name);
    srv.stop().await;
}

/// Where a relay runs, its lag is exposed (`group_service_relay_lag_seconds`), whether or not
/// NATS answers yet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn obs_relay_lag_is_exposed_where_a_relay_runs() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let metrics = listener.local_addr().unwrap();
    let Some(srv) = TestServer::start_setup(|s| {
        s.options.metrics_listener = Some(listener);
        // Nothing listens there: the relay keeps retrying.
        s.options.nats_url = Some("nats://127.0.0.1:1".into());
    })
    .await
    else {
        return;
    };
    let samples = scrape(metrics).await;
    let lag = value(&samples, "group_service_relay_lag_seconds", &[]);
    assert!(lag.is_some_and(|s| s >= 0.0), "{lag:?}");
    srv.stop().await;
}

/// A stream is in flight for as long as it is open and is counted when it ends (here the
/// client drops it: Canceled); a unary OK, whose code comes in the trailers, counts as OK.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn obs_streams_are_in_flight_until_they_end() {
    let Some((srv, metrics)) = observed_server().await else {
        return;
    };
    srv.company(1, 2).await;
    let watch = [
        ("grpc_service", "groups.v1.EventService"),
        ("grpc_method", "WatchEvents"),
    ];
    let stream = srv
        .events(1)
        .watch_events(pb::WatchEventsRequest {
            parent: "tenants/1".into(),
            after_cursor: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let open = scrape(metrics).await;
    assert_eq!(value(&open, "grpc_server_in_flight", &watch), Some(1.0));
    assert_eq!(value(&open, "grpc_server_handled_total", &watch), None);
    drop(stream);

    let samples = eventually(metrics, |s| {
        value(s, "grpc_server_in_flight", &watch) == Some(0.0)
    })
    .await;
    let cancelled = with(&watch, &[("grpc_code", "Canceled")]);
    assert_eq!(
        value(&samples, "grpc_server_handled_total", &cancelled),
        Some(1.0)
    );
    // The fixture's tenant and users: unary calls answered OK.
    let upserts = [
        ("grpc_service", "groups.v1.DirectoryService"),
        ("grpc_method", "UpsertUser"),
        ("grpc_code", "OK"),
    ];
    assert_eq!(
        value(&samples, "grpc_server_handled_total", &upserts),
        Some(2.0)
    );
    srv.stop().await;
}
