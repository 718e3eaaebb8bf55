//! `group-load token-reads`: what a consistency token costs a reader on another server. Each
//! round writes a new description of one group through server A (UpdateGroup), then reads the
//! group at once through server B: every other round with A's `x-consistency-token`, the
//! others without. A token read must show the round's description (a stale one fails the
//! run); the plain reads show what B answers right after another server's write without it.
//! Prints a JSON report: both kinds' latency percentiles and stale answers.

use std::time::{Duration, Instant};

use group_service::grpc::pb;
use group_service::grpc::pb::group_service_client::GroupServiceClient;
use serde_json::json;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;

#[derive(clap::Args)]
pub struct TokenArgs {
    /// Server A (writes), loopback.
    #[arg(long)]
    write_host: String,
    /// Server B (reads), loopback.
    #[arg(long)]
    read_host: String,
    /// A bearer token that may update the group.
    #[arg(long)]
    token: String,
    /// `tenants/{t}/groups/{g}`.
    #[arg(long)]
    group: String,
    #[arg(long, default_value_t = 2000)]
    rounds: usize,
}

async fn client(host: &str) -> anyhow::Result<GroupServiceClient<Channel>> {
    super::runner::check_loopback(host).await?;
    let channel = Channel::from_shared(format!("http://{host}"))?
        .tcp_nodelay(true)
        .connect()
        .await?;
    Ok(GroupServiceClient::new(channel))
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1000.0
}

fn summary(mut times: Vec<Duration>) -> serde_json::Value {
    times.sort();
    json!({
        "p50_ms": percentile(&times, 0.50),
        "p99_ms": percentile(&times, 0.99),
        "max_ms": percentile(&times, 1.0),
    })
}

/// Runs the rounds; `Ok(false)` when a token read was stale.
pub async fn token_reads(args: TokenArgs) -> anyhow::Result<bool> {
    let mut writer = client(&args.write_host).await?;
    let mut reader = client(&args.read_host).await?;
    let bearer: MetadataValue<_> = format!("Bearer {}", args.token).parse()?;
    let (mut with, mut without) = (Vec::new(), Vec::new());
    let (mut stale_with, mut stale_without) = (0u64, 0u64);
    for round in 0..args.rounds {
        let description = format!("token round {round} {}", std::process::id());
        let mut update = tonic::Request::new(pb::UpdateGroupRequest {
            group: Some(pb::Group {
                name: args.group.clone(),
                description: description.clone(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["description".into()],
            }),
        });
        update
            .metadata_mut()
            .insert("authorization", bearer.clone());
        let written = writer.update_group(update).await?;
        let token = written
            .metadata()
            .get(group_service::grpc::consistency::TOKEN_HEADER)
            .ok_or_else(|| anyhow::anyhow!("the write's answer has no consistency token"))?
            .clone();
        let with_token = round % 2 == 0;
        let mut read = tonic::Request::new(pb::GetGroupRequest {
            name: args.group.clone(),
        });
        read.metadata_mut().insert("authorization", bearer.clone());
        if with_token {
            read.metadata_mut()
                .insert(group_service::grpc::consistency::TOKEN_HEADER, token);
        }
        let started = Instant::now();
        let group = reader.get_group(read).await?.into_inner();
        let took = started.elapsed();
        let stale = u64::from(group.description != description);
        if with_token {
            with.push(took);
            stale_with += stale;
        } else {
            without.push(took);
            stale_without += stale;
        }
    }
    let report = json!({
        "rounds": args.rounds,
        "with_token": summary(with),
        "without_token": summary(without),
        "stale_with_token": stale_with,
        "stale_without_token": stale_without,
    });
    println!("{report}");
    Ok(stale_with == 0)
}
