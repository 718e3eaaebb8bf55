//! Converting a general message room into an external group (R16), once and for good.

use std::collections::BTreeSet;

use group_service::domain::model::TenantId;
use group_service::grpc::pb;
use tonic::{Code, Status};

use super::{A, B, C, excluded};
use crate::fixtures::*;
use crate::harness::*;

/// The group a room was converted into ("" if none).
async fn converted_group(srv: &TestServer, tenant: i64, id: i64) -> String {
    srv.directory(tenant)
        .get_message_room(pb::GetMessageRoomRequest {
            tenant_id: tenant,
            room_id: id,
        })
        .await
        .expect("get room")
        .into_inner()
        .converted_group
}

fn convert_req(
    tenant: i64,
    room: i64,
    name: &str,
    request_id: &str,
) -> pb::ConvertMessageRoomRequest {
    pb::ConvertMessageRoomRequest {
        room: format!("tenants/{tenant}/rooms/{room}"),
        display_name: name.to_owned(),
        description: format!("converted from room {room}"),
        features: Some(pb::Features {
            message: true,
            note: true,
            ..Default::default()
        }),
        request_id: request_id.to_owned(),
    }
}

/// Converts as user `by` (no admin claim).
async fn convert(
    srv: &TestServer,
    by: Key,
    req: pb::ConvertMessageRoomRequest,
) -> Result<pb::Group, Status> {
    srv.groups(by.0, by.1, false)
        .convert_message_room(req)
        .await
        .map(|r| r.into_inner())
}

/// Room 10 of A with users 2 and 3 of A and user 2 of B.
async fn small_room(srv: &TestServer) {
    srv.company(A, 3).await;
    srv.company(B, 2).await;
    room(srv, A, 10, &[(A, 2), (A, 3), (B, 2)]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r16_conversion_makes_room_members_members_and_the_caller_the_only_master() {
    let Some(srv) = server().await else { return };
    srv.company(A, 2).await;
    person(&srv, A, 3, false, pb::UserKind::Works).await;
    person(&srv, A, 4, true, pb::UserKind::Line).await;
    person(&srv, A, 5, true, pb::UserKind::Works).await;
    srv.company(B, 2).await;
    person(&srv, B, 3, false, pb::UserKind::Works).await;
    srv.company(C, 1).await;
    person(&srv, C, 2, true, pb::UserKind::Line).await;
    person(&srv, C, 3, true, pb::UserKind::Works).await;
    let members = [
        (A, 2),
        (A, 3),
        (A, 4),
        (A, 5),
        (B, 2),
        (B, 3),
        (C, 2),
        (C, 3),
    ];
    room(&srv, A, 10, &members).await;

    let g = convert(&srv, (A, 2), convert_req(A, 10, "Launch Room", ""))
        .await
        .unwrap();
    assert_eq!(g.display_name, "Launch Room");
    assert_eq!(g.description, "converted from room 10");
    assert_eq!(g.kind, pb::GroupKind::External as i32);
    assert_eq!(g.visibility, pb::Visibility::Private as i32);
    let f = g.features.unwrap();
    assert!(f.message && f.note && !f.event, "{f:?}");
    assert_eq!(
        excluded(&g),
        BTreeSet::from([
            ((A, 3), "EXTERNAL_PERMISSION_REQUIRED".to_owned()),
            ((A, 4), "LINE_USER_NOT_ALLOWED".to_owned()),
            ((B, 3), "EXTERNAL_PERMISSION_REQUIRED".to_owned()),
            ((C, 2), "LINE_USER_NOT_ALLOWED".to_owned()),
        ])
    );
    assert_eq!(
        member_users(&srv, &g.name).await,
        BTreeSet::from([(A, 2), (A, 5), (B, 2), (C, 3)])
    );
    assert_eq!(master_keys(&srv, &g.name).await, [(A, 2)]);
    assert_eq!(converted_group(&srv, A, 10).await, g.name);
    assert_eq!(srv.group_count(A).await, 1);
    // Members from the other companies reach it.
    for (t, u) in [(B, 2), (C, 3)] {
        let mut c = srv.groups(t, u, false);
        c.get_group(get_req(&g.name)).await.unwrap();
    }
    for (t, u) in [(B, 3), (C, 2)] {
        let mut c = srv.groups(t, u, false);
        let err = c.get_group(get_req(&g.name)).await.unwrap_err();
        assert_eq!(err.code(), Code::NotFound);
    }
    // One way: the room cannot be converted again.
    let err = convert(&srv, (A, 5), convert_req(A, 10, "Again", ""))
        .await
        .unwrap_err();
    assert_reason(&err, Code::FailedPrecondition, "ROOM_ALREADY_CONVERTED");
    assert_eq!(srv.group_count(A).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r16_converter_must_be_a_permitted_member_of_a_core_tenant() {
    let Some(srv) = server().await else { return };
    srv.company(A, 2).await;
    person(&srv, A, 3, false, pb::UserKind::Works).await;
    person(&srv, A, 4, true, pb::UserKind::Line).await;
    person(&srv, A, 6, true, pb::UserKind::Works).await;
    srv.company(B, 2).await;
    room(&srv, A, 10, &[(A, 2), (A, 3), (A, 4), (B, 2)]).await;
    let launch = || convert_req(A, 10, "Launch", "");

    // Not in the room: answered exactly as a missing room.
    let hidden = convert(&srv, (A, 6), launch()).await.unwrap_err();
    let missing = convert(&srv, (A, 6), convert_req(A, 999, "Launch", ""))
        .await
        .unwrap_err();
    assert_eq!(hidden.code(), Code::NotFound);
    assert_eq!(fingerprint(&hidden), fingerprint(&missing));

    let err = convert(&srv, (A, 3), launch()).await.unwrap_err();
    assert_reason(
        &err,
        Code::FailedPrecondition,
        "EXTERNAL_PERMISSION_REQUIRED",
    );
    let err = convert(&srv, (A, 4), launch()).await.unwrap_err();
    assert_reason(&err, Code::FailedPrecondition, "LINE_USER_NOT_ALLOWED");

    set_tenant(&srv, A, |t| t.core_enabled = false).await;
    let err = convert(&srv, (A, 2), launch()).await.unwrap_err();
    assert_reason(&err, Code::FailedPrecondition, "CORE_REQUIRED");

    assert_eq!(converted_group(&srv, A, 10).await, "");
    assert_eq!(srv.group_count(A).await, 0);
    set_tenant(&srv, A, |t| t.core_enabled = true).await;
    let g = convert(&srv, (A, 2), launch()).await.unwrap();
    assert_eq!(converted_group(&srv, A, 10).await, g.name);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r16_failed_conversion_leaves_the_room_unconverted() {
    let Some(srv) = server().await else { return };
    small_room(&srv).await;
    group(A, "Taken").master(3).create(&srv).await;

    let err = convert(&srv, (A, 2), convert_req(A, 10, "TAKEN", ""))
        .await
        .unwrap_err();
    assert_reason(&err, Code::AlreadyExists, "GROUP_NAME_TAKEN");
    assert_eq!(converted_group(&srv, A, 10).await, "");
    assert_eq!(srv.group_count(A).await, 1);

    // R03: the FREE tenant at its 1,000 groups. The other 999 slots are taken behind the
    // server's back: only the counter matters to the limit.
    srv.store
        .write(|tx| {
            Box::pin(async move {
                for _ in 0..999 {
                    assert!(tx.take_group_slot(TenantId(A)).await?);
                }
                Ok(())
            })
        })
        .await
        .unwrap();
    assert_eq!(srv.group_count(A).await, 1_000);
    let err = convert(&srv, (A, 2), convert_req(A, 10, "Launch", ""))
        .await
        .unwrap_err();
    assert_reason(&err, Code::ResourceExhausted, "TENANT_GROUP_LIMIT");
    assert_eq!(converted_group(&srv, A, 10).await, "");
    assert_eq!(srv.group_count(A).await, 1_000);
    assert!(
        visible_groups_of(&srv, (B, 2), false, (B, 2))
            .await
            .is_empty()
    );

    set_tenant(&srv, A, |t| t.plan = pb::Plan::Paid as i32).await;
    let g = convert(&srv, (A, 2), convert_req(A, 10, "Launch", ""))
        .await
        .unwrap();
    assert_eq!(converted_group(&srv, A, 10).await, g.name);
    assert_eq!(srv.group_count(A).await, 1_001);
    assert!(
        !visible_groups_of(&srv, (B, 2), false, (B, 2))
            .await
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r16_retried_conversion_returns_the_same_group() {
    let Some(srv) = server().await else { return };
    small_room(&srv).await;
    let first = convert(&srv, (A, 2), convert_req(A, 10, "Launch", "conv-1"))
        .await
        .unwrap();
    let again = convert(&srv, (A, 2), convert_req(A, 10, "Launch", "conv-1"))
        .await
        .unwrap();
    assert_eq!(again.name, first.name);
    assert_eq!(srv.group_count(A).await, 1);
    assert_eq!(converted_group(&srv, A, 10).await, first.name);
    // The same id for a different request is refused.
    let err = convert(&srv, (A, 2), convert_req(A, 10, "Other", "conv-1"))
        .await
        .unwrap_err();
    assert_bad_field(&err, "request_id");
    assert_eq!(srv.group_count(A).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r16_concurrent_retries_of_one_conversion_return_the_same_group() {
    let Some(srv) = server().await else { return };
    small_room(&srv).await;
    let answers = race(6, 0..6, |_| {
        let mut c = srv.groups(A, 2, false);
        async move {
            c.convert_message_room(convert_req(A, 10, "Launch", "conv-1"))
                .await
                .map(|r| r.into_inner().name)
        }
    })
    .await;
    let mut names = BTreeSet::new();
    let mut failed = Vec::new();
    for answer in answers {
        match answer {
            Ok(name) => {
                names.insert(name);
            }
            Err(e) => failed.push((e.code(), e.message().to_owned())),
        }
    }
    assert!(
        failed.is_empty(),
        "{} of 6 retries of one conversion failed: {failed:?}",
        failed.len()
    );
    assert_eq!(names.len(), 1, "{names:?}");
    assert_eq!(srv.group_count(A).await, 1);
    assert_eq!(
        converted_group(&srv, A, 10).await,
        names.into_iter().next().unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r16_a_converted_room_is_never_converted_again() {
    let Some(srv) = server().await else { return };
    small_room(&srv).await;
    let g = convert(&srv, (A, 2), convert_req(A, 10, "Launch", "conv-1"))
        .await
        .unwrap();
    // Whatever the name and request id of the second attempt, the answer is the rule it breaks.
    for (by, name, request_id) in [
        ((A, 3), "Second", ""),
        ((A, 3), "Second", "conv-2"),
        ((A, 2), "Launch", ""),
        ((A, 3), "Launch", "conv-3"),
    ] {
        let err = convert(&srv, by, convert_req(A, 10, name, request_id))
            .await
            .unwrap_err();
        assert_reason(&err, Code::FailedPrecondition, "ROOM_ALREADY_CONVERTED");
    }
    assert_eq!(srv.group_count(A).await, 1);
    assert_eq!(converted_group(&srv, A, 10).await, g.name);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r16_concurrent_conversions_of_one_room_convert_it_once() {
    let Some(srv) = server().await else { return };
    srv.company(A, 6).await;
    srv.company(B, 2).await;
    let members = [(A, 2), (A, 3), (A, 4), (A, 5), (A, 6), (B, 2)];
    room(&srv, A, 10, &members).await;
    let answers = race(5, 2..=6, |u| {
        let mut c = srv.groups(A, u, false);
        async move {
            c.convert_message_room(convert_req(A, 10, &format!("Launch {u}"), ""))
                .await
                .map(|r| r.into_inner().name)
        }
    })
    .await;
    let converted = winners(answers, Code::FailedPrecondition, "ROOM_ALREADY_CONVERTED");
    assert_eq!(converted.len(), 1, "{converted:?}");
    assert_eq!(srv.group_count(A).await, 1);
    assert_eq!(converted_group(&srv, A, 10).await, converted[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r25_conversion_names_the_bad_field_of_its_own_request() {
    let Some(srv) = server().await else { return };
    srv.company(A, 2).await;
    srv.company(B, 2).await;
    room(&srv, A, 10, &[(A, 2), (B, 2)]).await;
    // ConvertMessageRoomRequest has `display_name` and `description`, no `group`.
    let err = convert(&srv, (A, 2), convert_req(A, 10, "", ""))
        .await
        .unwrap_err();
    assert_bad_field(&err, "display_name");
    let mut req = convert_req(A, 10, "Launch", "");
    req.description = "d".repeat(301);
    let err = convert(&srv, (A, 2), req).await.unwrap_err();
    assert_bad_field(&err, "description");
    let err = convert(
        &srv,
        (A, 2),
        pb::ConvertMessageRoomRequest {
            room: "rooms/10".into(),
            ..convert_req(A, 10, "Launch", "")
        },
    )
    .await
    .unwrap_err();
    assert_bad_field(&err, "room");
    assert_eq!(converted_group(&srv, A, 10).await, "");
}
