//! Generated ids stay below 2^53 (JavaScript's exact integers); an id another process took
//! too is a retried write, never an overwrite; ids of the earlier, larger layout still work.

use group_service::domain::error::Error;
use group_service::domain::model::{Group, GroupId, MAX_SAFE_ID, TenantId};
use group_service::domain::service::{Database, Mode};

use crate::fixtures::*;
use crate::harness::*;

async fn stored_group(srv: &TestServer, name: &str) -> Group {
    let (t, g) = ids(name);
    srv.store
        .read(move |tx| Box::pin(async move { tx.get_group(TenantId(t), GroupId(g)).await }))
        .await
        .unwrap()
        .expect("the group is stored")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_of_groups_and_events_are_below_2_pow_53() {
    let Some(srv) = server().await else { return };
    srv.company(1, 2).await;
    let mut last = 0;
    for i in 0..20 {
        let g = group(1, &format!("Safe {i}")).master(2).create(&srv).await;
        let (_, id) = ids(&g.name);
        assert!(id > last, "{id} after {last}: ids are time-ordered");
        assert!(id < MAX_SAFE_ID, "group id {id} is not below 2^53");
        last = id;
        for e in events(&srv, &g.name).await {
            assert!(
                e.id.0 < MAX_SAFE_ID,
                "event id {} is not below 2^53",
                e.id.0
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_a_group_id_already_taken_is_a_retry_not_an_overwrite() {
    let Some(srv) = server().await else { return };
    srv.company(1, 2).await;
    let g = group(1, "First holder").master(2).create(&srv).await;
    let first = stored_group(&srv, &g.name).await;
    // Another process's group with the same generated id (and another name).
    let second = Group {
        display_name: "Second holder".into(),
        ..first.clone()
    };
    let mut t = srv.store.begin(Mode::Write).await.unwrap();
    let err = t.insert_group(&second).await.unwrap_err();
    assert!(matches!(err, Error::Retry(_)), "{err:?}");
    drop(t);
    assert_eq!(
        stored_group(&srv, &g.name).await,
        first,
        "nothing overwritten"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_an_event_id_already_taken_is_a_retry() {
    let Some(srv) = server().await else { return };
    srv.company(1, 2).await;
    let g = group(1, "Evented").master(2).create(&srv).await;
    let taken = events(&srv, &g.name).await.remove(0);
    let mut t = srv.store.begin(Mode::Write).await.unwrap();
    t.insert_event(&taken).await.unwrap();
    let err = t.announce("").await.unwrap_err();
    assert!(matches!(err, Error::Retry(_)), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_above_2_pow_53_from_the_earlier_layout_stay_valid() {
    let Some(srv) = server().await else { return };
    srv.company(1, 2).await;
    let g = group(1, "Template").master(2).create(&srv).await;
    // An id of the earlier layout: milliseconds since 2020 above 22 bits of sequence.
    let old_id = (220_000_000_000i64 << 22) | 12_345;
    assert!(old_id > MAX_SAFE_ID);
    let old = Group {
        id: GroupId(old_id),
        display_name: "Made before".into(),
        ..stored_group(&srv, &g.name).await
    };
    srv.store
        .write(move |tx| {
            let old = old.clone();
            Box::pin(async move { tx.insert_group(&old).await })
        })
        .await
        .unwrap();
    let name = format!("tenants/1/groups/{old_id}");
    let got = srv
        .groups(1, 1, true)
        .get_group(get_req(&name))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.name, name);
    assert_eq!(got.display_name, "Made before");
}
