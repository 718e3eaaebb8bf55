//! The JetStream relay: publishes the change feed (`domain::feed`) to a NATS JetStream stream,
//! at least once, with the event's name as the message id so that JetStream drops the
//! duplicates a retry sends. On when `NATS_URL` is set.
//!
//! - Order: events go out in (tenant, sequence) order; a round stops at the first event that
//!   fails, so no event of a tenant is published before an earlier one.
//! - Nothing lost: an event is marked published only after JetStream acknowledged it; while
//!   NATS is down the relay backs off (up to `MAX_BACKOFF`) and starts again from the oldest
//!   unpublished event.
//! - One relay per database: a lease row (`relay_lease`), renewed every round; another server
//!   takes over after it expires.
//! - Lag: the age of the oldest unpublished event, as the metric
//!   `group_service_relay_lag_seconds`.

use std::time::Duration;

use async_nats::jetstream;
use tokio::sync::watch;

use crate::domain::Service;
use crate::domain::model::{Event, EventId, TenantId};
use crate::metrics::Metrics;

/// The stream the relay publishes to; subjects `groups.<tenant>.<kind>`.
pub const STREAM: &str = "GROUP_EVENTS";
/// Events per round.
const BATCH: i64 = 200;
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How long JetStream remembers message ids: a retry within it is dropped as a duplicate.
const DUPLICATE_WINDOW: Duration = Duration::from_secs(600);

/// `groups.<tenant>.<kind>`: NATS subjects use `.` between tokens, so the kind's own dots
/// become `_` (`groups.1.members_added`).
pub fn subject(e: &Event) -> String {
    format!("groups.{}.{}", e.tenant, e.kind.replace('.', "_"))
}

/// The stream as the relay creates it when it is missing: every subject `groups.>`, message
/// ids remembered for `DUPLICATE_WINDOW`, messages kept a week, each on `replicas` servers of
/// the JetStream cluster (3 in production: the stream keeps taking messages, none lost, while
/// one of three servers is down). An existing stream is used as it is.
pub fn stream_config(replicas: usize) -> jetstream::stream::Config {
    jetstream::stream::Config {
        name: STREAM.to_owned(),
        subjects: vec!["groups.>".to_owned()],
        duplicate_window: DUPLICATE_WINDOW,
        max_age: Duration::from_secs(7 * 24 * 3600),
        num_replicas: replicas.max(1),
        ..Default::default()
    }
}

/// `url` (a NATS server or a comma-separated list of them) as logs show it: passwords
/// replaced by `***`.
pub fn shown(url: &str) -> String {
    url.split(',')
        .map(crate::store::redact)
        .collect::<Vec<_>>()
        .join(",")
}

/// Where the relay publishes.
#[derive(Clone, Debug)]
pub struct Nats {
    /// A NATS server, or several separated by commas (the servers of a cluster).
    pub url: String,
    /// `stream_config`'s replicas.
    pub replicas: usize,
}

/// Runs until `stop` becomes true.
pub async fn run(
    service: Service,
    nats: Nats,
    holder: String,
    metrics: Metrics,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = Duration::from_millis(100);
    let mut wake = service.subscribe();
    loop {
        let result = tokio::select! {
            r = round(&service, &nats, &holder, &metrics, &mut wake) => r,
            _ = stop.wait_for(|s| *s) => return,
        };
        let pause = match result {
            Ok(()) => {
                backoff = Duration::from_millis(100);
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, ?backoff, "event relay: will retry");
                let pause = backoff;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                pause
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// Connects, then publishes for as long as that works; an error ends the round.
async fn round(
    service: &Service,
    nats: &Nats,
    holder: &str,
    metrics: &Metrics,
    wake: &mut watch::Receiver<u64>,
) -> anyhow::Result<()> {
    let client = async_nats::ConnectOptions::new()
        .connection_timeout(Duration::from_secs(2))
        .connect(nats.url.as_str())
        .await?;
    let js = jetstream::new(client);
    js.get_or_create_stream(stream_config(nats.replicas))
        .await?;
    tracing::info!(url = %shown(&nats.url), "event relay connected");
    loop {
        wake.borrow_and_update();
        metrics.set_relay_lag(service.relay_lag().await?);
        let Some(events) = service.relay_claim(holder, BATCH).await? else {
            // Another server relays; look again before its lease could expire.
            tokio::time::sleep(crate::domain::feed::RELAY_LEASE / 2).await;
            continue;
        };
        if events.is_empty() {
            let _ = tokio::time::timeout(Duration::from_secs(1), wake.changed()).await;
            continue;
        }
        let mut done: Vec<(TenantId, EventId)> = Vec::with_capacity(events.len());
        let mut failed = None;
        for e in &events {
            match publish(&js, e).await {
                Ok(()) => done.push((e.tenant, e.id)),
                Err(err) => {
                    failed = Some(err);
                    break;
                }
            }
        }
        service.relay_published(&done).await?;
        if let Some(err) = failed {
            return Err(err);
        }
    }
}

async fn publish(js: &jetstream::Context, e: &Event) -> anyhow::Result<()> {
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(
        "Nats-Msg-Id",
        format!("tenants/{}/events/{}", e.tenant, e.id.0).as_str(),
    );
    headers.insert("Group-Service-Cursor", e.seq.to_string().as_str());
    let body = serde_json::json!({
        "cursor": e.seq,
        "name": format!("tenants/{}/events/{}", e.tenant, e.id.0),
        "kind": e.kind,
        "group": e.group.map(|g| format!("tenants/{}/groups/{}", e.tenant, g.0)),
        "actor": e.actor,
        "create_time_micros": e.create_time,
        "payload": serde_json::from_str::<serde_json::Value>(&e.payload)?,
    });
    let ack = js
        .publish_with_headers(subject(e), headers, serde_json::to_vec(&body)?.into())
        .await?;
    tokio::time::timeout(Duration::from_secs(5), ack).await??;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn logged_urls_hide_every_servers_password() {
        assert_eq!(
            super::shown("nats://u:secret@n1:4222,nats://v:other@n2:4222,nats://n3:4222"),
            "nats://u:***@n1:4222,nats://v:***@n2:4222,nats://n3:4222"
        );
    }
}
