//! `group-load`: a load tool for a running group-service (or any gRPC server on this machine
//! whose methods it knows), where ghz cannot be installed. It reads ghz's JSON configuration
//! files and flags for the keys it supports.
//!
//! - `group-load run [--config FILE] [flags]`: one load run, closed or open loop; a text or
//!   JSON report; exits non-zero when a call fails unexpectedly.
//! - `group-load call --call M -d JSON [-m JSON]`: one call, the answer printed as JSON.
//! - `group-load seed --database-url URL`: a 100,000-group tenant inserted straight into a
//!   migrated database; prints the ids (and tokens) a benchmark needs.
//! - `group-load token-reads --write-host A --read-host B`: the latency a consistency token
//!   adds to a read on another server right after a write (`token`).
//!
//! Only loopback addresses are targets; every run is bounded in calls and in time.

mod config;
mod runner;
mod seed;
mod template;
mod token;

use std::time::Duration;

use clap::{Parser, Subcommand};
use serde_json::Value;
use tonic::Code;

use config::{Ghz, go_duration};
use runner::{Bodies, Metas, Plan};

#[derive(Parser)]
#[command(name = "group-load", about = "Load tool and seeder for group-service")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// One load run against a running server.
    Run(Box<RunArgs>),
    /// One call; prints the answer as JSON.
    Call(CallArgs),
    /// Inserts a large tenant into a migrated database.
    Seed(Box<seed::SeedArgs>),
    /// Reads on server B right after writes on server A, with and without the write's
    /// consistency token.
    TokenReads(token::TokenArgs),
}

/// Flags named as ghz's (short and long); each overrides the configuration file's key.
#[derive(clap::Args)]
struct RunArgs {
    /// A ghz JSON configuration file.
    #[arg(long)]
    config: Option<String>,
    /// `package.Service.Method` or `package.Service/Method`.
    #[arg(long)]
    call: Option<String>,
    /// host:port (loopback only); ghz takes it as the last argument too.
    #[arg(long = "host")]
    host_flag: Option<String>,
    host: Option<String>,
    /// Calls in flight (closed loop), or at most in flight (open loop).
    #[arg(short = 'c', long)]
    concurrency: Option<u64>,
    /// HTTP/2 connections, used round-robin by request number.
    #[arg(long)]
    connections: Option<u64>,
    /// Open loop: calls a second, each timed from its scheduled send.
    #[arg(short = 'r', long)]
    rps: Option<u64>,
    /// Measured calls (ghz default 200 when no duration is given).
    #[arg(short = 'n', long)]
    total: Option<u64>,
    /// Measured duration, Go syntax (`10s`); with it, `total` only caps the count.
    #[arg(short = 'z', long)]
    duration: Option<String>,
    /// As ghz's `max-duration`: a duration that does not lift the `total` cap.
    #[arg(short = 'x', long = "max-duration")]
    max_duration: Option<String>,
    /// Per-call timeout (Go syntax; ghz default 20s).
    #[arg(short = 't', long)]
    timeout: Option<String>,
    /// Request JSON, or an array of them used round-robin; ghz template actions allowed.
    #[arg(short = 'd', long)]
    data: Option<String>,
    /// File holding the `data` JSON.
    #[arg(short = 'D', long = "data-file")]
    data_file: Option<String>,
    /// Metadata JSON object of strings (or, an extension, an array of them used round-robin).
    #[arg(short = 'm', long)]
    metadata: Option<String>,
    #[arg(short = 'M', long = "metadata-file")]
    metadata_file: Option<String>,
    /// Calls left out of the report at the start (ghz `skipFirst`).
    #[arg(long = "skipFirst")]
    skip_first: Option<u64>,
    /// Warm-up before measuring: calls sent, not counted (not a ghz key).
    #[arg(long, default_value = "0")]
    warmup: String,
    /// `summary` (text) or `json` / `pretty`.
    #[arg(short = 'O', long)]
    format: Option<String>,
    /// Writes the report there instead of stdout.
    #[arg(short = 'o', long)]
    output: Option<String>,
    /// Also writes the JSON report to this file (whatever `format` is).
    #[arg(long)]
    json_out: Option<String>,
    #[arg(long)]
    name: Option<String>,
    /// JSON that every OK answer must contain (fields compared as a subset).
    #[arg(long)]
    expect: Option<String>,
    /// Status codes that do not fail the run besides OK, e.g. `AlreadyExists,Aborted`.
    #[arg(long, value_delimiter = ',')]
    allow_status: Vec<String>,
}

#[derive(clap::Args)]
struct CallArgs {
    #[arg(long)]
    call: String,
    #[arg(long, default_value = "127.0.0.1:50051")]
    host: String,
    #[arg(short = 'd', long, default_value = "{}")]
    data: String,
    #[arg(short = 'm', long)]
    metadata: Option<String>,
    #[arg(short = 't', long, default_value = "20s")]
    timeout: String,
}

fn json_arg(what: &str, s: &str) -> anyhow::Result<Value> {
    serde_json::from_str(s).map_err(|e| anyhow::anyhow!("{what} is not JSON: {e}"))
}

fn json_file(what: &str, path: &str) -> anyhow::Result<Value> {
    let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{what} {path}: {e}"))?;
    json_arg(&format!("{what} {path}"), &text)
}

fn parse_code(s: &str) -> anyhow::Result<Code> {
    let norm: String = s.chars().filter(|c| *c != '_').collect::<String>();
    (0..=16)
        .map(Code::from_i32)
        .find(|c| format!("{c:?}").eq_ignore_ascii_case(&norm))
        .ok_or_else(|| anyhow::anyhow!("unknown status code {s}"))
}

async fn run(args: RunArgs) -> anyhow::Result<bool> {
    let cfg = match &args.config {
        Some(path) => Ghz::load(path)?,
        None => Ghz::default(),
    };
    let pool = runner::descriptors()?;
    let call = args
        .call
        .or(cfg.call)
        .ok_or_else(|| anyhow::anyhow!("no call: give --call or a config with `call`"))?;
    let method = runner::find_method(&pool, &call)?;
    let host = args
        .host_flag
        .or(args.host)
        .or(cfg.host)
        .unwrap_or_else(|| "127.0.0.1:50051".into());
    if cfg.insecure == Some(false) {
        anyhow::bail!("TLS is not supported: set `insecure` to true");
    }
    // Data: flags over the file's keys; a file over inline data, as in ghz.
    let data = match (args.data, args.data_file, cfg.data_file, cfg.data) {
        (Some(d), _, _, _) => Some(json_arg("--data", &d)?),
        (None, Some(f), _, _) | (None, None, Some(f), _) => Some(json_file("data-file", &f)?),
        (None, None, None, d) => d,
    };
    let metadata = match (
        args.metadata,
        args.metadata_file,
        cfg.metadata_file,
        cfg.metadata,
    ) {
        (Some(m), _, _, _) => Some(json_arg("--metadata", &m)?),
        (None, Some(f), _, _) | (None, None, Some(f), _) => Some(json_file("metadata-file", &f)?),
        (None, None, None, m) => m,
    };
    let dur = |s: Option<String>| s.map(|s| go_duration(&s)).transpose();
    let duration = dur(args.duration.or(cfg.duration))?;
    let max_duration = dur(args.max_duration.or(cfg.max_duration))?;
    let total = args.total.or(cfg.total);
    // ghz: `duration` lifts `total`; `max-duration` keeps it.
    let (total, duration) = match (duration, max_duration) {
        (Some(d), _) => (args.total, Some(d)),
        (None, Some(x)) => (Some(total.unwrap_or(200)), Some(x)),
        (None, None) => (total, None),
    };
    let mut allow = Vec::new();
    for s in &args.allow_status {
        allow.push(parse_code(s)?);
    }
    let format = args
        .format
        .or(cfg.format)
        .unwrap_or_else(|| "summary".into());
    let plan = Plan {
        name: args
            .name
            .or(cfg.name)
            .unwrap_or_else(|| method.name().to_owned()),
        bodies: Bodies::new(&method, data.as_ref())?,
        metas: Metas::new(metadata.as_ref())?,
        method,
        host,
        concurrency: args.concurrency.or(cfg.concurrency).unwrap_or(50) as usize,
        connections: args.connections.or(cfg.connections).unwrap_or(1) as usize,
        rps: args.rps.or(cfg.rps).filter(|r| *r > 0),
        total,
        duration,
        warmup: go_duration(&args.warmup)?,
        skip_first: args.skip_first.or(cfg.skip_first).unwrap_or(0),
        timeout: dur(args.timeout.or(cfg.timeout))?.unwrap_or(Duration::from_secs(20)),
        connect_timeout: dur(cfg.connect_timeout)?.unwrap_or(Duration::from_secs(10)),
        expect: args
            .expect
            .as_deref()
            .map(|e| json_arg("--expect", e))
            .transpose()?,
        allow,
    };
    let report = runner::run(plan).await?;
    let out = match format.as_str() {
        "summary" => report.text(),
        "json" => format!("{}\n", report.json),
        "pretty" => format!("{}\n", serde_json::to_string_pretty(&report.json)?),
        f => anyhow::bail!("format {f:?}: group-load writes summary, json or pretty"),
    };
    match args.output.or(cfg.output) {
        Some(path) => std::fs::write(path, out)?,
        None => print!("{out}"),
    }
    if let Some(path) = args.json_out {
        std::fs::write(path, format!("{}\n", report.json))?;
    }
    Ok(report.passed)
}

async fn call(args: CallArgs) -> anyhow::Result<bool> {
    let pool = runner::descriptors()?;
    let method = runner::find_method(&pool, &args.call)?;
    let body = runner::encode_json(&method, &args.data)?;
    let md = Metas::new(
        args.metadata
            .as_deref()
            .map(|m| json_arg("--metadata", m))
            .transpose()?
            .as_ref(),
    )?;
    let Metas::Static(mut maps) = md else {
        anyhow::bail!("call takes no template actions in metadata");
    };
    let channel = runner::connect(&args.host, 1, Duration::from_secs(10)).await?;
    let path = format!("/{}/{}", method.parent_service().full_name(), method.name()).parse()?;
    let timeout = go_duration(&args.timeout)?;
    match runner::unary(channel[0].clone(), path, body, maps.remove(0), timeout).await {
        Ok(bytes) => {
            let answer = runner::decode_json(&method, &bytes)?;
            println!("{}", serde_json::to_string_pretty(&answer)?);
            Ok(true)
        }
        Err(s) => {
            eprintln!("{}: {}", runner::code_name(s.code()), s.message());
            Ok(false)
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let ok = match cli.command {
        Command::Run(args) => run(*args).await?,
        Command::Call(args) => call(args).await?,
        Command::TokenReads(args) => token::token_reads(args).await?,
        Command::Seed(args) => {
            let out = seed::seed(*args).await?;
            println!("{}", serde_json::to_string_pretty(&out)?);
            true
        }
    };
    if !ok {
        std::process::exit(1);
    }
    Ok(())
}
