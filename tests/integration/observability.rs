//! Observability: the Prometheus exposition in both text formats, counts by type, method and
//! code (cancelled calls included), the in-flight and pool gauges, the access log line, the
//! request id, gzip, and the spans exported over OTLP.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::harness::*;
use group_service::auth::mint_hs256;
use group_service::grpc::pb;
use group_service::metrics::Format;
use group_service::store::Backend;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, Span, span, status};
use prost::Message;
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

/// The samples of a text exposition, checked line by line: every line is a HELP or TYPE
/// comment (or UNIT, in OpenMetrics), a sample with well-formed and correctly escaped labels,
/// or, in OpenMetrics and there only, the final `# EOF`. Anything else fails the test.
fn parse_exposition(text: &str, format: Format) -> Vec<Sample> {
    fn is_name(s: &str) -> bool {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
            && !s.starts_with(|c: char| c.is_ascii_digit())
    }
    let mut lines: Vec<&str> = text.split_terminator('\n').collect();
    if format == Format::OpenMetrics {
        assert_eq!(lines.pop(), Some("# EOF"), "OpenMetrics ends with # EOF");
    }
    let mut samples = Vec::new();
    for line in &lines {
        if let Some(comment) = line.strip_prefix("# ") {
            let mut parts = comment.splitn(3, ' ');
            let kind = parts.next().unwrap();
            let name = parts.next().unwrap_or("");
            let kinds: &[&str] = match format {
                Format::OpenMetrics => &["HELP", "TYPE", "UNIT"],
                Format::Classic => &["HELP", "TYPE"],
            };
            assert!(
                kinds.contains(&kind) && is_name(name),
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
    let (status, _, body) = http_get_accepting(addr, path, None).await;
    (status, body)
}

/// `GET path` with `accept` as the `Accept` header, when given: the status code, the
/// `content-type` and the body.
async fn http_get_accepting(
    addr: SocketAddr,
    path: &str,
    accept: Option<&str>,
) -> (u16, String, String) {
    let mut http = tokio::net::TcpStream::connect(addr).await.unwrap();
    let accept = accept
        .map(|a| format!("accept: {a}\r\n"))
        .unwrap_or_default();
    http.write_all(
        format!("GET {path} HTTP/1.1\r\nhost: x\r\n{accept}connection: close\r\n\r\n").as_bytes(),
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
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let content_type = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-type")
                .then(|| value.trim().to_owned())
        })
        .unwrap_or_default();
    (status, content_type, body.to_owned())
}

/// What Prometheus 2 sends: OpenMetrics preferred, the classic format next.
const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0;q=0.5,\
     application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2";

/// The exposition as Prometheus scrapes it (OpenMetrics), parsed.
pub(crate) async fn scrape(addr: SocketAddr) -> Vec<Sample> {
    let (status, content_type, body) =
        http_get_accepting(addr, "/metrics", Some(PROMETHEUS_ACCEPT)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        content_type,
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    parse_exposition(&body, Format::OpenMetrics)
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

/// `/metrics` answers in the format the scraper asks for: OpenMetrics when the `Accept`
/// header names it (Prometheus' header), the classic text format otherwise (no header,
/// `text/plain`, `*/*`): no `# EOF`, counters named `<name>_total` in HELP and TYPE, and the
/// same samples.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_negotiate_classic_and_openmetrics() {
    let Some((srv, metrics)) = observed_server().await else {
        return;
    };
    assert_eq!(
        call_path(&srv, "/no.Such/Method").await,
        Code::Unimplemented
    );
    let openmetrics = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    let classic = "text/plain; version=0.0.4; charset=utf-8";
    let cases = [
        (Some(PROMETHEUS_ACCEPT), openmetrics),
        (
            Some("application/openmetrics-text; version=1.0.0"),
            openmetrics,
        ),
        (None, classic),
        (Some("*/*"), classic),
        (Some("text/plain;version=0.0.4"), classic),
        (Some("application/json"), classic),
    ];
    for (accept, want) in cases {
        let (status, content_type, body) = http_get_accepting(metrics, "/metrics", accept).await;
        assert_eq!(status, 200, "{accept:?}: {body}");
        assert_eq!(content_type, want, "{accept:?}");
        if want == openmetrics {
            assert!(body.ends_with("# EOF\n"), "{accept:?}: {body}");
            assert!(
                body.contains("\n# TYPE grpc_server_handled counter\n"),
                "{body}"
            );
            parse_exposition(&body, Format::OpenMetrics);
        } else {
            assert!(!body.contains("# EOF"), "{accept:?}: {body}");
            assert!(!body.contains("# UNIT"), "{accept:?}: {body}");
            assert!(
                body.contains("\n# TYPE grpc_server_handled_total counter\n"),
                "{body}"
            );
            assert!(
                body.contains("\n# HELP grpc_server_handled_total "),
                "{body}"
            );
            parse_exposition(&body, Format::Classic);
        }
    }
    // Both formats carry the same samples.
    let (_, _, om) = http_get_accepting(metrics, "/metrics", Some(PROMETHEUS_ACCEPT)).await;
    let (_, _, text) = http_get_accepting(metrics, "/metrics", None).await;
    let om = parse_exposition(&om, Format::OpenMetrics);
    let text = parse_exposition(&text, Format::Classic);
    assert_eq!(series(&om), series(&text));
    let unknown = [("grpc_method", "unknown"), ("grpc_code", "Unimplemented")];
    assert_eq!(
        value(&text, "grpc_server_handled_total", &unknown),
        Some(1.0)
    );
    srv.stop().await;
}

/// Every HELP text, in both formats, is a sentence ending in exactly one period.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_help_texts_end_in_one_period() {
    let Some((srv, metrics)) = observed_server().await else {
        return;
    };
    // Families appear with their first sample: a call that runs a domain operation.
    let err = srv
        .groups(1, 7, false)
        .get_group(get_req("tenants/1/groups/1"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    for accept in [Some(PROMETHEUS_ACCEPT), None] {
        let (_, _, body) = http_get_accepting(metrics, "/metrics", accept).await;
        let helps: Vec<&str> = body.lines().filter(|l| l.starts_with("# HELP ")).collect();
        assert!(helps.len() >= 8, "{body}");
        for help in helps {
            assert!(
                help.ends_with('.') && !help.ends_with(".."),
                "{accept:?}: {help}"
            );
        }
    }
    srv.stop().await;
}

/// The call metrics carry go-grpc-prometheus' `grpc_type`: `unary`, `server_stream`,
/// `bidi_stream` as the method is declared, `unknown` for a method not served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_server_metrics_carry_grpc_type() {
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::{ServerReflectionRequest, server_reflection_request};
    let Some((srv, metrics)) = observed_server().await else {
        return;
    };
    let err = srv
        .groups(1, 7, false)
        .get_group(get_req("tenants/1/groups/1"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert_eq!(
        call_path(&srv, "/no.Such/Method").await,
        Code::Unimplemented
    );
    let mut health = HealthClient::new(srv.channel.clone());
    let watch = health
        .watch(HealthCheckRequest::default())
        .await
        .unwrap()
        .into_inner();
    let mut reflection = ServerReflectionClient::new(srv.channel.clone());
    let list = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(server_reflection_request::MessageRequest::ListServices(
            String::new(),
        )),
    };
    let mut answers = reflection
        .server_reflection_info(tokio_stream::iter([list]))
        .await
        .unwrap()
        .into_inner();
    assert!(answers.message().await.unwrap().is_some());
    assert!(answers.message().await.unwrap().is_none());
    drop(watch);

    let samples = eventually(metrics, |s| {
        value(s, "grpc_server_in_flight", &[("grpc_method", "Watch")]) == Some(0.0)
    })
    .await;
    let expected = [
        ("unary", "groups.v1.GroupService", "GetGroup"),
        ("server_stream", "grpc.health.v1.Health", "Watch"),
        (
            "bidi_stream",
            "grpc.reflection.v1.ServerReflection",
            "ServerReflectionInfo",
        ),
        ("unknown", "unknown", "unknown"),
    ];
    for (grpc_type, service, method) in expected {
        let labels = [
            ("grpc_type", grpc_type),
            ("grpc_service", service),
            ("grpc_method", method),
        ];
        for name in ["grpc_server_started_total", "grpc_server_in_flight"] {
            assert!(
                value(&samples, name, &labels).is_some(),
                "{name} {labels:?}"
            );
        }
        for name in [
            "grpc_server_handled_total",
            "grpc_server_handling_seconds_count",
        ] {
            assert_eq!(
                value(&samples, name, &labels),
                Some(1.0),
                "{name} {labels:?}"
            );
        }
    }
    // Every call series has the label.
    for sample in samples
        .iter()
        .filter(|s| s.name.starts_with("grpc_server_"))
    {
        assert!(sample.labels.contains_key("grpc_type"), "{sample:?}");
    }
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
        Spawned::start_with(|_| {}).await
    }

    /// `start`, with the command changed by `configure` first.
    async fn start_with(configure: impl FnOnce(&mut std::process::Command)) -> Spawned {
        use std::io::BufRead;
        let mut server = ServerProcess::start(|command| {
            command
                .args(["--log-format", "json"])
                .env(
                    "GROUP_SERVICE_JWT_SECRET",
                    std::str::from_utf8(SECRET).unwrap(),
                )
                .env("RUST_LOG", "info");
            configure(command);
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

/// The spans an OTLP collector received, whichever protocol brought them.
#[derive(Clone, Default)]
struct Collected(Arc<Mutex<Vec<ResourceSpans>>>);

impl Collected {
    fn take(&self, request: ExportTraceServiceRequest) {
        self.0.lock().unwrap().extend(request.resource_spans);
    }

    /// Every span received, with its resource's `service.name`.
    fn spans(&self) -> Vec<(String, Span)> {
        let mut out = Vec::new();
        for rs in self.0.lock().unwrap().iter() {
            let service = rs
                .resource
                .as_ref()
                .and_then(|r| string_attr(&r.attributes, "service.name"))
                .unwrap_or_default();
            for ss in &rs.scope_spans {
                out.extend(ss.spans.iter().map(|s| (service.clone(), s.clone())));
            }
        }
        out
    }
}

#[tonic::async_trait]
impl TraceService for Collected {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.take(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// An OTLP collector on 127.0.0.1 for `protocol` (`http/protobuf`: `POST /v1/traces`;
/// `grpc`: the trace service): its endpoint and what it receives.
async fn collector(protocol: &str) -> (String, Collected) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let collected = Collected::default();
    if protocol == "grpc" {
        let service = TraceServiceServer::new(collected.clone());
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
    } else {
        let sink = collected.clone();
        let app = axum::Router::new().route(
            "/v1/traces",
            axum::routing::post(move |body: axum::body::Bytes| {
                let sink = sink.clone();
                async move {
                    sink.take(ExportTraceServiceRequest::decode(body).unwrap());
                    (
                        [("content-type", "application/x-protobuf")],
                        ExportTraceServiceResponse::default().encode_to_vec(),
                    )
                }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
    }
    (endpoint, collected)
}

fn attr<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a any_value::Value> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
}

fn string_attr(attributes: &[KeyValue], key: &str) -> Option<String> {
    match attr(attributes, key)? {
        any_value::Value::StringValue(s) => Some(s.clone()),
        _ => None,
    }
}

fn int_attr(attributes: &[KeyValue], key: &str) -> Option<i64> {
    match attr(attributes, key)? {
        any_value::Value::IntValue(i) => Some(*i),
        _ => None,
    }
}

/// The server binary exporting to a collector over `protocol`, over the backend's database;
/// a GetGroup carrying a W3C `traceparent`; SIGTERM. The spans are exported when the server
/// stops (the batch delay is a minute), so their arrival proves the flush on shutdown too.
async fn spans_follow_the_callers_traceparent(protocol: &str) {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    let (endpoint, collected) = collector(protocol).await;
    let mut server = Spawned::start_with(|c| {
        for var in [
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
            "OTEL_RESOURCE_ATTRIBUTES",
            "OTEL_TRACES_SAMPLER",
            "OTEL_SDK_DISABLED",
        ] {
            c.env_remove(var);
        }
        c.env("DATABASE_URL", &srv.url)
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)
            .env("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
            .env("OTEL_SERVICE_NAME", "groups-under-test")
            .env("OTEL_BSP_SCHEDULE_DELAY", "60000")
            .env("GROUP_SERVICE_SHUTDOWN_DELAY_MS", "0");
    })
    .await;
    let addr = server.server.addr;
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let trace_id = format!("{:032x}", rand::random::<u128>() | 1);
    let parent_id = format!("{:016x}", rand::random::<u64>() | 1);
    let token = mint_hs256(SECRET, 1, "7", false, false, 600).unwrap();
    let mut request = tonic::Request::new(get_req("tenants/1/groups/1"));
    let metadata = request.metadata_mut();
    metadata.insert("authorization", format!("Bearer {token}").parse().unwrap());
    let traceparent = format!("00-{trace_id}-{parent_id}-01");
    metadata.insert("traceparent", traceparent.parse().unwrap());
    let err = pb::group_service_client::GroupServiceClient::new(channel)
        .get_group(request)
        .await
        .unwrap_err();
    // The caller is not in the directory.
    assert_eq!(err.code(), Code::PermissionDenied);

    let pid = server.server.child.id().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let mut exited = None;
    for _ in 0..500 {
        exited = server.server.child.try_wait().unwrap();
        if exited.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(exited.is_some_and(|s| s.success()), "{exited:?}");

    let spans = collected.spans();
    let of_trace: Vec<&(String, Span)> = spans
        .iter()
        .filter(|(_, s)| hex(&s.trace_id) == trace_id)
        .collect();
    let (service, call) = of_trace
        .iter()
        .find(|(_, s)| s.kind == span::SpanKind::Server as i32)
        .unwrap_or_else(|| panic!("no server span of trace {trace_id} in {spans:#?}"));
    assert_eq!(service, "groups-under-test");
    assert_eq!(call.name, "groups.v1.GroupService/GetGroup");
    assert_eq!(hex(&call.parent_span_id), parent_id);
    let a = &call.attributes;
    assert_eq!(string_attr(a, "rpc.system").as_deref(), Some("grpc"));
    assert_eq!(
        string_attr(a, "rpc.service").as_deref(),
        Some("groups.v1.GroupService")
    );
    assert_eq!(string_attr(a, "rpc.method").as_deref(), Some("GetGroup"));
    assert_eq!(
        int_attr(a, "rpc.grpc.status_code"),
        Some(Code::PermissionDenied as i64)
    );
    assert_eq!(
        string_attr(a, "server.address").as_deref(),
        Some("127.0.0.1")
    );
    assert_eq!(int_attr(a, "server.port"), Some(i64::from(addr.port())));
    // A client's refusal is no server error.
    assert_ne!(
        call.status.as_ref().map(|s| s.code),
        Some(status::StatusCode::Error as i32)
    );

    let db_system = match srv.store.backend {
        Backend::Postgres(_) => "postgresql",
        Backend::Sqlite { .. } => "sqlite",
    };
    // The call's operations: the group's read, and the cache's horizon (the next member
    // expiry) when the cache had not read it yet.
    let children: Vec<_> = of_trace
        .iter()
        .map(|(_, s)| s)
        .filter(|s| s.parent_span_id == call.span_id)
        .collect();
    for child in &children {
        assert!(
            ["get_group", "next_expiry"].contains(&child.name.as_str()),
            "{children:#?}"
        );
    }
    let operation = children
        .iter()
        .find(|s| s.name == "get_group")
        .unwrap_or_else(|| panic!("no get_group child of the call's span in {of_trace:#?}"));
    assert_eq!(operation.kind, span::SpanKind::Client as i32);
    let a = &operation.attributes;
    assert_eq!(string_attr(a, "db.system").as_deref(), Some(db_system));
    assert_eq!(
        string_attr(a, "db.operation.name").as_deref(),
        Some("get_group")
    );
    assert!(operation.start_time_unix_nano >= call.start_time_unix_nano);
    assert!(operation.end_time_unix_nano <= call.end_time_unix_nano);
    srv.stop().await;
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Over OTLP/HTTP (the default protocol): the call's server span continues the caller's
/// trace (same trace id, the caller's span as parent) with the `rpc.*` attributes, and the
/// domain operation is its child with `db.system`; spans buffered at SIGTERM are exported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_spans_follow_the_callers_traceparent() {
    spans_follow_the_callers_traceparent("http/protobuf").await;
}

/// The same over OTLP/gRPC (`OTEL_EXPORTER_OTLP_PROTOCOL=grpc`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_grpc_spans_follow_the_callers_traceparent() {
    spans_follow_the_callers_traceparent("grpc").await;
}

/// The read cache and the consistency choices are counted: a miss then hits of one check, a
/// write making the next lookup stale, a fully consistent read bypassing the cache, and a
/// token read of the server's own write caught up at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn obs_cache_lookups_and_consistency_reads_are_counted() {
    let Some((srv, metrics)) = observed_server().await else {
        return;
    };
    srv.company(1, 3).await;
    use crate::fixtures::{add_req, group, user_of, user_ref};
    let g = group(1, "Counted").master(2).create(&srv).await.name;
    let mut admin = srv.membership(1, 1, true);
    let check = || pb::CheckMembershipRequest {
        group: g.clone(),
        user: Some(user_ref(1, 3)),
    };
    for _ in 0..3 {
        admin.check_membership(check()).await.unwrap();
    }
    let token = admin
        .add_members(add_req(&g, vec![user_of(1, 3)]))
        .await
        .unwrap()
        .metadata()
        .get("x-consistency-token")
        .unwrap()
        .clone();
    let mut with_token = tonic::Request::new(check());
    with_token
        .metadata_mut()
        .insert("x-consistency-token", token);
    assert!(
        admin
            .check_membership(with_token)
            .await
            .unwrap()
            .into_inner()
            .member
    );
    let mut full = tonic::Request::new(check());
    full.metadata_mut()
        .insert("x-consistency", "fully-consistent".parse().unwrap());
    admin.check_membership(full).await.unwrap();

    let samples = scrape(metrics).await;
    let lookups = |outcome| {
        value(
            &samples,
            "group_service_cache_lookups_total",
            &[("answer", "membership"), ("outcome", outcome)],
        )
    };
    assert_eq!(lookups("miss"), Some(1.0));
    assert_eq!(lookups("hit"), Some(2.0));
    assert_eq!(
        lookups("stale"),
        Some(1.0),
        "the write made the entry stale"
    );
    assert_eq!(lookups("bypassed"), Some(1.0), "the fully consistent read");
    let met = |met| {
        value(
            &samples,
            "group_service_consistency_reads_total",
            &[("met", met)],
        )
    };
    assert_eq!(met("caught_up"), Some(1.0));
    assert!(met("fully_consistent").is_some_and(|n| n >= 1.0));
    srv.stop().await;
}
