//! Drives one gRPC method of a running server: closed loop (`concurrency` calls in flight) or
//! open loop (`rps` calls a second on a fixed schedule, each call's latency counted from its
//! scheduled send time, so a slow server cannot hide its queueing), over several connections
//! used round-robin. Requests are built from JSON through the method's descriptor and sent as
//! bytes; answers are decoded only when an expectation asks for it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use prost::Message as _;
use prost::bytes::Bytes;
use prost_reflect::{DescriptorPool, DynamicMessage, MethodDescriptor, SerializeOptions};
use serde_json::{Value, json};
use tonic::Code;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::metadata::{AsciiMetadataKey, AsciiMetadataValue, MetadataMap};
use tonic::transport::{Channel, Endpoint};

use crate::template::{CallData, Template};

/// No run sends more than this many calls, whatever its settings.
pub const MAX_CALLS: u64 = 50_000_000;
/// No run lasts longer than this, whatever its settings.
pub const MAX_RUN: Duration = Duration::from_secs(3600);

/// The descriptors of every method the tool can call: the service's own and gRPC Health.
pub fn descriptors() -> anyhow::Result<DescriptorPool> {
    let mut pool = DescriptorPool::decode(group_service::grpc::pb::FILE_DESCRIPTOR_SET)?;
    pool.decode_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)?;
    Ok(pool)
}

/// `package.Service.Method` or `package.Service/Method`, as ghz accepts.
pub fn find_method(pool: &DescriptorPool, call: &str) -> anyhow::Result<MethodDescriptor> {
    let (service, method) = call
        .rsplit_once('/')
        .or_else(|| call.rsplit_once('.'))
        .ok_or_else(|| anyhow::anyhow!("call {call:?} is not package.Service.Method"))?;
    let svc = pool
        .get_service_by_name(service)
        .ok_or_else(|| anyhow::anyhow!("no service {service} (known: {})", services(pool)))?;
    let m = svc
        .methods()
        .find(|m| m.name() == method)
        .ok_or_else(|| anyhow::anyhow!("service {service} has no method {method}"))?;
    anyhow::ensure!(
        !m.is_client_streaming() && !m.is_server_streaming(),
        "{call} streams: only unary calls are supported"
    );
    Ok(m)
}

fn services(pool: &DescriptorPool) -> String {
    pool.services()
        .map(|s| s.full_name().to_owned())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Only addresses on this machine: every address the host resolves to must be loopback.
pub async fn check_loopback(host: &str) -> anyhow::Result<()> {
    let addrs: Vec<_> = tokio::net::lookup_host(host)
        .await
        .map_err(|e| anyhow::anyhow!("host {host:?}: {e} (give host:port)"))?
        .collect();
    anyhow::ensure!(
        !addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback()),
        "host {host} is not a loopback address: the load tool only targets this machine"
    );
    Ok(())
}

/// Opens `n` HTTP/2 connections to `host`.
pub async fn connect(host: &str, n: usize, timeout: Duration) -> anyhow::Result<Vec<Channel>> {
    check_loopback(host).await?;
    let endpoint = Endpoint::from_shared(format!("http://{host}"))?
        .connect_timeout(timeout)
        .tcp_nodelay(true);
    let mut channels = Vec::with_capacity(n);
    for _ in 0..n.max(1) {
        channels.push(
            endpoint.connect().await.map_err(|e| {
                anyhow::anyhow!("connecting to {host}: {e}: is the server running?")
            })?,
        );
    }
    Ok(channels)
}

/// Request bodies: already encoded when they have no template action.
pub enum Bodies {
    Static(Vec<Bytes>),
    Templated(Vec<Template>),
}

/// Metadata sets, used round-robin by request number.
pub enum Metas {
    Static(Vec<MetadataMap>),
    Templated(Vec<Vec<(AsciiMetadataKey, Template)>>),
}

/// Encodes a JSON request for `method` (proto field names or their JSON names, enums by name).
pub fn encode_json(method: &MethodDescriptor, json: &str) -> anyhow::Result<Bytes> {
    let mut de = serde_json::Deserializer::from_str(json);
    let msg = DynamicMessage::deserialize(method.input(), &mut de)
        .map_err(|e| anyhow::anyhow!("request for {}: {e}: {json}", method.full_name()))?;
    de.end()?;
    Ok(Bytes::from(msg.encode_to_vec()))
}

/// Decodes an answer to JSON with proto field names and default values shown.
pub fn decode_json(method: &MethodDescriptor, bytes: &[u8]) -> anyhow::Result<Value> {
    let msg = DynamicMessage::decode(method.output(), bytes)?;
    let opts = SerializeOptions::new()
        .use_proto_field_name(true)
        .skip_default_fields(false)
        .stringify_64_bit_integers(false);
    Ok(msg.serialize_with_options(serde_json::value::Serializer, &opts)?)
}

impl Bodies {
    /// ghz's `data`: one message, or an array of messages used round-robin.
    pub fn new(method: &MethodDescriptor, data: Option<&Value>) -> anyhow::Result<Bodies> {
        let items: Vec<Value> = match data {
            None | Some(Value::Null) => vec![json!({})],
            Some(Value::Array(a)) if a.is_empty() => anyhow::bail!("data is an empty array"),
            Some(Value::Array(a)) => a.clone(),
            Some(v) => vec![v.clone()],
        };
        let templates = items
            .iter()
            .map(|v| Template::parse(&v.to_string()))
            .collect::<anyhow::Result<Vec<_>>>()?;
        if templates.iter().all(Template::is_static) {
            let bytes = items
                .iter()
                .map(|v| encode_json(method, &v.to_string()))
                .collect::<anyhow::Result<_>>()?;
            return Ok(Bodies::Static(bytes));
        }
        let bodies = Bodies::Templated(templates);
        // Render once now so that a bad body fails before the run, not in every call.
        bodies.body(method, "check", 0)?;
        Ok(bodies)
    }

    fn body(&self, method: &MethodDescriptor, worker: &str, n: u64) -> anyhow::Result<Bytes> {
        match self {
            Bodies::Static(b) => Ok(b[(n % b.len() as u64) as usize].clone()),
            Bodies::Templated(t) => {
                let cd = CallData {
                    worker_id: worker,
                    request_number: n,
                    method,
                };
                encode_json(method, &t[(n % t.len() as u64) as usize].render(&cd))
            }
        }
    }
}

impl Metas {
    /// ghz's `metadata` (an object of strings); an array of such objects is this tool's
    /// extension, used round-robin like `data` (one token per tenant, say).
    pub fn new(metadata: Option<&Value>) -> anyhow::Result<Metas> {
        let items: Vec<Value> = match metadata {
            None | Some(Value::Null) => vec![json!({})],
            Some(Value::Array(a)) if a.is_empty() => anyhow::bail!("metadata is an empty array"),
            Some(Value::Array(a)) => a.clone(),
            Some(v) => vec![v.clone()],
        };
        let mut sets = Vec::new();
        for item in &items {
            let obj = item
                .as_object()
                .ok_or_else(|| anyhow::anyhow!("metadata must be an object of strings"))?;
            let mut set = Vec::new();
            for (k, v) in obj {
                let v = v
                    .as_str()
                    .ok_or_else(|| anyhow::anyhow!("metadata {k}: values are strings"))?;
                set.push((
                    AsciiMetadataKey::from_bytes(k.to_lowercase().as_bytes())?,
                    Template::parse(v)?,
                ));
            }
            sets.push(set);
        }
        if sets.iter().flatten().all(|(_, t)| t.is_static()) {
            let maps = items
                .iter()
                .map(|item| {
                    let mut map = MetadataMap::new();
                    for (k, v) in item.as_object().into_iter().flatten() {
                        map.insert(
                            AsciiMetadataKey::from_bytes(k.to_lowercase().as_bytes())?,
                            AsciiMetadataValue::try_from(v.as_str().unwrap_or_default())?,
                        );
                    }
                    Ok(map)
                })
                .collect::<anyhow::Result<_>>()?;
            return Ok(Metas::Static(maps));
        }
        Ok(Metas::Templated(sets))
    }

    fn get(&self, method: &MethodDescriptor, worker: &str, n: u64) -> anyhow::Result<MetadataMap> {
        match self {
            Metas::Static(m) => Ok(m[(n % m.len() as u64) as usize].clone()),
            Metas::Templated(sets) => {
                let cd = CallData {
                    worker_id: worker,
                    request_number: n,
                    method,
                };
                let mut map = MetadataMap::new();
                for (k, t) in &sets[(n % sets.len() as u64) as usize] {
                    map.insert(k.clone(), AsciiMetadataValue::try_from(t.render(&cd))?);
                }
                Ok(map)
            }
        }
    }
}

pub use group_service::grpc::codec::RawCodec;

/// One unary call of raw bytes.
pub async fn unary(
    channel: Channel,
    path: PathAndQuery,
    body: Bytes,
    metadata: MetadataMap,
    timeout: Duration,
) -> Result<Bytes, tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    let mut req = tonic::Request::new(body);
    *req.metadata_mut() = metadata;
    req.set_timeout(timeout);
    let call = async {
        grpc.ready()
            .await
            .map_err(|e| tonic::Status::unavailable(format!("connection not ready: {e}")))?;
        grpc.unary(req, path, RawCodec).await
    };
    // The server is told the deadline; this bounds the wait even if it ignores it.
    match tokio::time::timeout(timeout + Duration::from_millis(500), call).await {
        Ok(r) => r.map(tonic::Response::into_inner),
        Err(_) => Err(tonic::Status::deadline_exceeded("client-side timeout")),
    }
}

/// Everything one run needs.
pub struct Plan {
    pub name: String,
    pub method: MethodDescriptor,
    pub host: String,
    pub concurrency: usize,
    pub connections: usize,
    /// Open loop at this rate; closed loop when absent.
    pub rps: Option<u64>,
    /// Measured calls (after `skip_first`); unbounded by count when only a duration is given.
    pub total: Option<u64>,
    pub duration: Option<Duration>,
    pub warmup: Duration,
    pub skip_first: u64,
    pub timeout: Duration,
    pub connect_timeout: Duration,
    pub bodies: Bodies,
    pub metas: Metas,
    /// Every OK answer must contain these fields with these values.
    pub expect: Option<Value>,
    /// Status codes that do not fail the run (OK always passes).
    pub allow: Vec<Code>,
}

#[derive(Default)]
struct Tally {
    hist: Option<Histogram<u64>>,
    codes: BTreeMap<String, u64>,
    unexpected: u64,
    samples: Vec<String>,
    /// Calls that ended inside the measured window, warm-up calls included: the throughput.
    done_in_window: u64,
    /// Of those, the ones answered OK: the goodput.
    ok_in_window: u64,
}

impl Tally {
    fn record(&mut self, latency: Duration, code: Code, problem: Option<String>) {
        let hist = self.hist.get_or_insert_with(|| {
            Histogram::new_with_bounds(1, 120_000_000, 3).expect("valid histogram bounds")
        });
        let _ = hist.record((latency.as_micros() as u64).clamp(1, 120_000_000));
        *self.codes.entry(code_name(code)).or_default() += 1;
        if let Some(p) = problem {
            if code == Code::Ok {
                self.unexpected += 1;
            }
            if self.samples.len() < 5 {
                self.samples.push(p);
            }
        }
    }
}

/// The names grpc-go (and so ghz) prints: `OK`, `NotFound`, `Unavailable`...
pub fn code_name(code: Code) -> String {
    match code {
        Code::Ok => "OK".into(),
        c => format!("{c:?}"),
    }
}

/// The result of a run, printable as text or JSON.
pub struct Report {
    pub json: Value,
    pub passed: bool,
}

struct Shared {
    plan: Plan,
    path: PathAndQuery,
    channels: Vec<Channel>,
    tally: Mutex<Tally>,
    /// Calls sent in the measured phase.
    measured: AtomicU64,
    /// Every call sent, warm-up included: the request number of templates.
    sent: AtomicU64,
    measure_start: Instant,
    end: Instant,
}

impl Shared {
    /// Sends call `n` and records it when `measured`; latency from `since`.
    async fn call(&self, worker: &str, n: u64, since: Instant, measured: bool) {
        let plan = &self.plan;
        let prepared = plan
            .bodies
            .body(&plan.method, worker, n)
            .and_then(|b| Ok((b, plan.metas.get(&plan.method, worker, n)?)));
        let (body, md) = match prepared {
            Ok(x) => x,
            Err(e) => {
                if measured {
                    let mut t = self.tally.lock().expect("tally lock");
                    t.record(since.elapsed(), Code::InvalidArgument, Some(e.to_string()));
                }
                return;
            }
        };
        let ch = self.channels[(n % self.channels.len() as u64) as usize].clone();
        let result = unary(ch, self.path.clone(), body, md, plan.timeout).await;
        let done = Instant::now();
        let latency = done.saturating_duration_since(since);
        let in_window = done >= self.measure_start && done <= self.end;
        if !measured {
            if in_window {
                let mut t = self.tally.lock().expect("tally lock");
                t.done_in_window += 1;
                t.ok_in_window += u64::from(result.is_ok());
            }
            return;
        }
        let (code, problem) = match result {
            Ok(bytes) => (
                Code::Ok,
                plan.expect.as_ref().and_then(|e| self.check(e, &bytes)),
            ),
            Err(s) => {
                let allowed = plan.allow.contains(&s.code());
                (
                    s.code(),
                    (!allowed).then(|| format!("{}: {}", code_name(s.code()), s.message())),
                )
            }
        };
        let mut tally = self.tally.lock().expect("tally lock");
        tally.record(latency, code, problem);
        tally.done_in_window += u64::from(in_window);
        tally.ok_in_window += u64::from(in_window && code == Code::Ok);
    }

    fn check(&self, expect: &Value, bytes: &[u8]) -> Option<String> {
        match decode_json(&self.plan.method, bytes) {
            Ok(got) if contains(&got, expect) => None,
            Ok(got) => Some(format!("answer {got} does not match {expect}")),
            Err(e) => Some(format!("answer does not decode: {e}")),
        }
    }
}

/// `want`'s fields are all in `got` with equal values (objects compared by subset).
pub fn contains(got: &Value, want: &Value) -> bool {
    match (got, want) {
        (Value::Object(g), Value::Object(w)) => w
            .iter()
            .all(|(k, wv)| g.get(k).is_some_and(|gv| contains(gv, wv))),
        (g, w) => g == w,
    }
}

pub async fn run(plan: Plan) -> anyhow::Result<Report> {
    anyhow::ensure!(plan.concurrency >= 1, "concurrency must be at least 1");
    let channels = connect(&plan.host, plan.connections, plan.connect_timeout).await?;
    let path: PathAndQuery = format!(
        "/{}/{}",
        plan.method.parent_service().full_name(),
        plan.method.name()
    )
    .parse()?;
    let duration = plan.duration.unwrap_or(MAX_RUN).min(MAX_RUN);
    let limit = match (plan.total, plan.duration) {
        (Some(n), _) => n,
        // ghz's default total.
        (None, None) => 200,
        (None, Some(_)) => MAX_CALLS,
    }
    .saturating_add(plan.skip_first)
    .min(MAX_CALLS);
    let start = Instant::now();
    let measure_start = start + plan.warmup;
    let end = measure_start + duration;
    let shared = Arc::new(Shared {
        plan,
        path,
        channels,
        tally: Mutex::new(Tally::default()),
        measured: AtomicU64::new(0),
        sent: AtomicU64::new(0),
        measure_start,
        end,
    });
    let concurrency = shared.plan.concurrency;

    match shared.plan.rps {
        None => {
            let mut workers = Vec::new();
            for w in 0..concurrency {
                let s = shared.clone();
                workers.push(tokio::spawn(async move {
                    let worker = format!("g{w}c{}", w % s.channels.len());
                    loop {
                        let now = Instant::now();
                        if now >= end {
                            break;
                        }
                        let n = s.sent.fetch_add(1, Ordering::Relaxed);
                        if now < measure_start {
                            s.call(&worker, n, now, false).await;
                            continue;
                        }
                        let m = s.measured.fetch_add(1, Ordering::Relaxed);
                        if m >= limit {
                            break;
                        }
                        s.call(&worker, n, now, m >= s.plan.skip_first).await;
                    }
                }));
            }
            for w in workers {
                w.await?;
            }
        }
        Some(rps) => {
            anyhow::ensure!(rps >= 1, "rps must be at least 1");
            let sem = Arc::new(tokio::sync::Semaphore::new(concurrency));
            let interval = 1.0 / rps as f64;
            for i in 0u64.. {
                let scheduled = start + Duration::from_secs_f64(i as f64 * interval);
                if scheduled >= end {
                    break;
                }
                let measured = scheduled >= measure_start;
                let m = if measured {
                    let m = shared.measured.fetch_add(1, Ordering::Relaxed);
                    if m >= limit {
                        break;
                    }
                    Some(m)
                } else {
                    None
                };
                tokio::time::sleep_until(scheduled.into()).await;
                let permit = sem.clone().acquire_owned().await?;
                let s = shared.clone();
                let n = s.sent.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(async move {
                    let _permit = permit;
                    let record = m.is_some_and(|m| m >= s.plan.skip_first);
                    s.call(
                        &format!("open{}", n % concurrency as u64),
                        n,
                        scheduled,
                        record,
                    )
                    .await;
                });
            }
            // Every call in flight holds a permit: taking them all waits for the last.
            let _all = sem.acquire_many(concurrency as u32).await?;
        }
    }
    let finished = Instant::now().min(end);
    Ok(report(&shared, measure_start, finished))
}

/// Latency is of the calls sent in the measured window; throughput is of the calls that ended
/// in it, so warm-up calls still in flight when it opens neither vanish nor inflate it.
fn report(shared: &Shared, measure_start: Instant, finished: Instant) -> Report {
    let plan = &shared.plan;
    let tally = shared.tally.lock().expect("tally lock");
    let hist = tally.hist.clone().unwrap_or_else(|| {
        Histogram::new_with_bounds(1, 120_000_000, 3).expect("valid histogram bounds")
    });
    let count = hist.len();
    let elapsed = finished
        .saturating_duration_since(measure_start)
        .as_secs_f64()
        .max(1e-9);
    let ms = |us: u64| us as f64 / 1000.0;
    let q = |p: f64| ms(hist.value_at_quantile(p));
    let ok = tally.codes.get("OK").copied().unwrap_or(0);
    let failed: u64 = tally
        .codes
        .iter()
        .filter(|(c, _)| {
            c.as_str() != "OK" && !plan.allow.iter().any(|a| code_name(*a) == c.as_str())
        })
        .map(|(_, n)| n)
        .sum();
    let passed = count > 0 && failed == 0 && tally.unexpected == 0;
    let json = json!({
        "name": plan.name,
        "call": format!("{}.{}", plan.method.parent_service().full_name(), plan.method.name()),
        "host": plan.host,
        "mode": if plan.rps.is_some() { "open" } else { "closed" },
        "concurrency": plan.concurrency,
        "connections": plan.connections,
        "rps_target": plan.rps,
        "warmup_s": plan.warmup.as_secs_f64(),
        "skip_first": plan.skip_first,
        "count": count,
        "ok": ok,
        "seconds": elapsed,
        "rps": tally.done_in_window as f64 / elapsed,
        "goodput_rps": tally.ok_in_window as f64 / elapsed,
        "latency_ms": {
            "min": ms(hist.min()),
            "mean": hist.mean() / 1000.0,
            "p50": q(0.50),
            "p90": q(0.90),
            "p99": q(0.99),
            "p99_9": q(0.999),
            "max": ms(hist.max()),
        },
        "status_codes": tally.codes,
        "unexpected_answers": tally.unexpected,
        "failed": failed,
        "problems": tally.samples,
        "passed": passed,
    });
    Report { json, passed }
}

impl Report {
    pub fn text(&self) -> String {
        let j = &self.json;
        let l = &j["latency_ms"];
        let f = |v: &Value| v.as_f64().unwrap_or(0.0);
        let mode = if j["mode"] == "open" {
            format!(
                "open loop at {} calls/s (at most {} in flight)",
                j["rps_target"], j["concurrency"]
            )
        } else {
            format!("closed loop, {} in flight", j["concurrency"])
        };
        let codes: Vec<String> = j["status_codes"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        let mut out = format!(
            "{name}: {call} on {host}\n  {mode}, {conns} connection(s), warm-up {w:.1} s\n  \
             {count} calls in {secs:.2} s: {rps:.1} calls/s\n  latency ms: p50 {p50:.3}  \
             p90 {p90:.3}  p99 {p99:.3}  p99.9 {p999:.3}  max {max:.3}  mean {mean:.3}\n  \
             status: {codes}\n",
            name = j["name"].as_str().unwrap_or(""),
            call = j["call"].as_str().unwrap_or(""),
            host = j["host"].as_str().unwrap_or(""),
            conns = j["connections"],
            w = f(&j["warmup_s"]),
            count = j["count"],
            secs = f(&j["seconds"]),
            rps = f(&j["rps"]),
            p50 = f(&l["p50"]),
            p90 = f(&l["p90"]),
            p99 = f(&l["p99"]),
            p999 = f(&l["p99_9"]),
            max = f(&l["max"]),
            mean = f(&l["mean"]),
            codes = codes.join(", "),
        );
        if j["unexpected_answers"].as_u64().unwrap_or(0) > 0 {
            out.push_str(&format!(
                "  unexpected answers: {}\n",
                j["unexpected_answers"]
            ));
        }
        for p in j["problems"].as_array().into_iter().flatten() {
            out.push_str(&format!("  problem: {}\n", p.as_str().unwrap_or("")));
        }
        if !self.passed {
            out.push_str("  FAILED\n");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_service_methods_are_known() {
        let pool = descriptors().expect("descriptors decode");
        for call in [
            "groups.v1.GroupService.GetGroup",
            "groups.v1.MembershipService/CheckMembership",
            "grpc.health.v1.Health.Check",
        ] {
            assert!(find_method(&pool, call).is_ok(), "{call}");
        }
        let m = find_method(&pool, "groups.v1.GroupService.CreateGroup").expect("method");
        let body = r#"{"parent":"tenants/1","group":{"display_name":"x","visibility":"PUBLIC"},"master_user_ids":[7]}"#;
        assert!(encode_json(&m, body).is_ok());
        assert!(encode_json(&m, r#"{"reflection":true}"#).is_err());
    }

    #[test]
    fn subset_matching() {
        let got = json!({"member": true, "master": false, "direct": false});
        assert!(contains(&got, &json!({"member": true})));
        assert!(!contains(&got, &json!({"member": false})));
    }
}
