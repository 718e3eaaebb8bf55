//! The JetStream relay: every event published exactly once, in order, across NATS outages.

use std::time::Duration;

use async_nats::jetstream;
use group_service::domain::Service;
use group_service::metrics::Metrics;
use group_service::relay;
use tokio_stream::StreamExt;

use super::*;
use crate::fixtures::*;

const NATS: &str = "nats://127.0.0.1:4222";

/// NATS with JetStream, or `None` outside CI when it does not answer (said on stderr).
async fn nats() -> Option<async_nats::Client> {
    match async_nats::connect(NATS).await {
        Ok(c) => Some(c),
        Err(e) if !is_ci() => {
            eprintln!("skipping: NATS at {NATS} does not answer ({e}); CI starts it");
            None
        }
        Err(e) => panic!("NATS at {NATS} does not answer: {e}"),
    }
}

/// Runs the relay for `for_` against `url`.
async fn relay_for(srv: &TestServer, url: &str, for_: Duration) {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let service = Service::new(srv.store.clone(), b"k");
    let metrics = Metrics::new(&service, true);
    let task = tokio::spawn(relay::run(
        service,
        relay::Nats {
            url: url.into(),
            replicas: 1,
        },
        "test".into(),
        metrics,
        stopped,
    ));
    tokio::time::sleep(for_).await;
    stop.send(true).unwrap();
    task.await.unwrap();
}

/// Messages of the stream on `groups.<tenant>.>`, in stream order.
async fn published(client: &async_nats::Client, tenant: i64) -> Vec<serde_json::Value> {
    let js = jetstream::new(client.clone());
    let stream = js
        .get_or_create_stream(relay::stream_config(1))
        .await
        .unwrap();
    let consumer = stream
        .create_consumer(jetstream::consumer::pull::Config {
            filter_subject: format!("groups.{tenant}.>"),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut out = Vec::new();
    let mut batch = consumer
        .fetch()
        .max_messages(1000)
        .expires(Duration::from_secs(2))
        .messages()
        .await
        .unwrap();
    while let Some(m) = batch.next().await {
        let m = m.unwrap();
        out.push(serde_json::from_slice(&m.payload).unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r11_relay_publishes_every_event_once_in_order_across_a_nats_outage() {
    let Some(client) = nats().await else { return };
    let Some(srv) = server().await else { return };
    // A tenant id no other run of this test used: the stream outlives test databases.
    let tenant = 1_000_000 + (std::process::id() as i64) * 1000 + unique() as i64;
    tenant_with_users(&srv, tenant, 8).await;
    let g = group(tenant, "Relayed").master(1).create(&srv).await.name;
    for u in 2..6 {
        add(
            &mut srv.membership(tenant, 1, true),
            &g,
            vec![user_of(tenant, u)],
        )
        .await
        .unwrap();
    }
    // NATS "down": a port that refuses. Nothing is published, nothing is lost.
    relay_for(&srv, "nats://127.0.0.1:1", Duration::from_millis(800)).await;
    assert!(published(&client, tenant).await.is_empty());
    // As if a relay had published the first event and died before marking it: the relay
    // sends it again with the same message id, and JetStream drops the copy.
    let first = super::feed::audit_all(&srv, tenant, "")
        .await
        .pop()
        .unwrap();
    assert_eq!(first.cursor, 1);
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", first.name.as_str());
    let js = jetstream::new(client.clone());
    js.get_or_create_stream(relay::stream_config(1))
        .await
        .unwrap();
    let body = serde_json::json!({"cursor": 1, "kind": "group.created", "earlier": true});
    js.publish_with_headers(
        format!("groups.{tenant}.group_created"),
        headers,
        serde_json::to_vec(&body).unwrap().into(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    // Up: the backlog goes out; a burst during the run follows it.
    let burst = {
        let (mut c, g) = (srv.membership(tenant, 1, true), g.clone());
        tokio::spawn(async move {
            for u in 6..9 {
                add(&mut c, &g, vec![user_of(tenant, u)]).await.unwrap();
            }
        })
    };
    relay_for(&srv, NATS, Duration::from_secs(3)).await;
    burst.await.unwrap();
    relay_for(&srv, NATS, Duration::from_secs(2)).await;
    let end = newest_cursor(&srv, tenant).await;
    let got = published(&client, tenant).await;
    let cursors: Vec<i64> = got.iter().map(|m| m["cursor"].as_i64().unwrap()).collect();
    assert_eq!(
        cursors,
        (1..=end).collect::<Vec<_>>(),
        "once each, in order"
    );
    assert_eq!(
        got[0]["earlier"], true,
        "the copy with the same id was dropped"
    );
    assert_eq!(got[1]["kind"], "members.added");
}
