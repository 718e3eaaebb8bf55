//! Callers (R24): tokens, tenants, directory membership and the health check.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::fixtures::*;
use crate::harness::*;
use group_service::auth::{Claims, mint_hs256};
use group_service::domain::model::{GroupId, TenantId, UserId, UserKey};
use group_service::grpc::pb;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// A group of tenant 1 (admin 1, plain users 2..=3; master 2) and its name.
async fn tenant_one_group(srv: &TestServer) -> pb::Group {
    srv.company(1, 3).await;
    group(1, "Tenant one").master(2).create(srv).await
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r24_call_without_token_is_unauthenticated() {
    let Some(srv) = server().await else { return };
    let g = tenant_one_group(&srv).await;
    let err = srv
        .groups_as(None)
        .get_group(get_req(&g.name))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    let err = srv
        .groups_as(None)
        .create_group(create_req(1, "Anonymous", &[2]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    let err = srv
        .directory_as(None)
        .get_tenant(pb::GetTenantRequest { tenant_id: 1 })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    assert_eq!(srv.group_count(1).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r24_malformed_token_is_unauthenticated() {
    let Some(srv) = server().await else { return };
    let g = tenant_one_group(&srv).await;
    for token in ["", "garbage", "a.b.c"] {
        let err = srv
            .groups_as(Some(token.into()))
            .get_group(get_req(&g.name))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Unauthenticated, "{token:?}: {err:?}");
    }
    // A token naming no tenant, or a user subject that is not a user id.
    for token in [
        mint_hs256(SECRET, 0, "1", true, false, 600).unwrap(),
        mint_hs256(SECRET, 1, "alice", true, false, 600).unwrap(),
    ] {
        let err = srv
            .groups_as(Some(token))
            .get_group(get_req(&g.name))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r24_token_signed_with_another_secret_is_unauthenticated() {
    let Some(srv) = server().await else { return };
    let g = tenant_one_group(&srv).await;
    let forged = mint_hs256(
        b"some-other-secret-0123456789abcdef",
        1,
        "1",
        true,
        false,
        600,
    )
    .unwrap();
    let err = srv
        .groups_as(Some(forged.clone()))
        .get_group(get_req(&g.name))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    let err = srv
        .groups_as(Some(forged))
        .delete_group(delete_req(&g.name, ""))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    let forged_service = mint_hs256(
        b"some-other-secret-0123456789abcdef",
        1,
        "directory",
        false,
        true,
        600,
    )
    .unwrap();
    let err = srv
        .directory_as(Some(forged_service))
        .delete_tenant(pb::DeleteTenantRequest { tenant_id: 1 })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    assert_eq!(srv.group_count(1).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r24_expired_token_is_unauthenticated() {
    let Some(srv) = server().await else { return };
    let g = tenant_one_group(&srv).await;
    let issued = now() - 3_600;
    let expired = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &Claims {
            sub: "1".into(),
            tenant: 1,
            admin: true,
            svc: false,
            exp: now() - 120,
            iat: issued,
        },
        &EncodingKey::from_secret(SECRET),
    )
    .unwrap();
    let err = srv
        .groups_as(Some(expired))
        .get_group(get_req(&g.name))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    // The same claims, still valid, are accepted: only the expiry differs.
    let fresh = mint_hs256(SECRET, 1, "1", true, false, 600).unwrap();
    srv.groups_as(Some(fresh))
        .get_group(get_req(&g.name))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r24_user_of_another_tenant_gets_not_found_like_a_missing_group() {
    let Some(srv) = server().await else { return };
    let g = tenant_one_group(&srv).await;
    srv.company(2, 2).await;
    let missing = missing_group(1);
    let mut stranger = srv.groups(2, 2, false);
    let hidden = stranger.get_group(get_req(&g.name)).await.unwrap_err();
    let absent = stranger.get_group(get_req(&missing)).await.unwrap_err();
    assert_eq!(hidden.code(), Code::NotFound, "{hidden:?}");
    assert_eq!(fingerprint(&hidden), fingerprint(&absent));
    // Nor can it delete it.
    let err = stranger
        .delete_group(delete_req(&g.name, ""))
        .await
        .unwrap_err();
    assert_eq!(fingerprint(&err), fingerprint(&absent));
    assert_eq!(srv.group_count(1).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r24_admin_of_another_tenant_gets_not_found_like_a_missing_group() {
    let Some(srv) = server().await else { return };
    let g = tenant_one_group(&srv).await;
    srv.company(2, 2).await;
    let missing = missing_group(1);
    let mut foreign_admin = srv.groups(2, 1, true);
    let hidden = foreign_admin.get_group(get_req(&g.name)).await.unwrap_err();
    let absent = foreign_admin
        .get_group(get_req(&missing))
        .await
        .unwrap_err();
    assert_eq!(hidden.code(), Code::NotFound, "{hidden:?}");
    assert_eq!(fingerprint(&hidden), fingerprint(&absent));
    // The statement behind both reads returns the same row: the caller, no membership and no
    // group, so that decoding a row the caller may not see cannot tell the two apart.
    for name in [&g.name, &missing] {
        let id: i64 = name.rsplit('/').next().unwrap().parse().unwrap();
        let seen = srv
            .store
            .read(move |tx| {
                let foreign = UserKey {
                    tenant: TenantId(2),
                    user: UserId(1),
                };
                Box::pin(async move {
                    tx.get_group_seen_by(TenantId(1), GroupId(id), foreign)
                        .await
                })
            })
            .await
            .unwrap();
        assert!(seen.group.is_none(), "{name}: {:?}", seen.group);
        assert!(seen.user.is_some_and(|u| u.is_admin), "{name}");
    }
    let err = foreign_admin
        .delete_group(delete_req(&g.name, ""))
        .await
        .unwrap_err();
    assert_eq!(fingerprint(&err), fingerprint(&absent));
    // Nor may it create a group in tenant 1.
    let err = foreign_admin
        .create_group(create_req(1, "Planted", &[2]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    assert_eq!(srv.group_count(1).await, 1);
    // Tenant 1's own admin still sees it unchanged.
    let got = srv
        .groups(1, 1, true)
        .get_group(get_req(&g.name))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got, g);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r24_user_missing_from_directory_is_permission_denied() {
    let Some(srv) = server().await else { return };
    let g = tenant_one_group(&srv).await;
    // A user id the tenant does not have, and a tenant the directory does not have.
    for (tenant, user) in [(1, 77), (9, 1)] {
        let mut ghost = srv.groups(tenant, user, true);
        let err = ghost.get_group(get_req(&g.name)).await.unwrap_err();
        assert_reason(&err, Code::PermissionDenied, "CALLER_NOT_IN_DIRECTORY");
        let err = ghost
            .create_group(create_req(tenant, "Ghosts", &[user]))
            .await
            .unwrap_err();
        assert_reason(&err, Code::PermissionDenied, "CALLER_NOT_IN_DIRECTORY");
    }
    assert_eq!(srv.group_count(1).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r24_user_token_cannot_call_directory_service() {
    let Some(srv) = server().await else { return };
    srv.company(1, 2).await;
    for (user, admin) in [(2, false), (1, true)] {
        let mut dir = srv.directory_as(Some(srv.token(1, &user.to_string(), admin, false)));
        let err = dir
            .get_tenant(pb::GetTenantRequest { tenant_id: 1 })
            .await
            .unwrap_err();
        assert_reason(&err, Code::PermissionDenied, "SERVICE_CALLER_REQUIRED");
        let err = dir
            .upsert_user(pb::UpsertUserRequest {
                user: Some(pb::User {
                    display_name: "Now an admin".into(),
                    is_admin: true,
                    ..user_spec(1, 2)
                }),
            })
            .await
            .unwrap_err();
        assert_reason(&err, Code::PermissionDenied, "SERVICE_CALLER_REQUIRED");
    }
    let user2 = srv
        .directory(1)
        .get_user(pb::GetUserRequest {
            tenant_id: 1,
            user_id: 2,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!user2.is_admin);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r24_service_of_another_tenant_cannot_touch_the_directory() {
    let Some(srv) = server().await else { return };
    srv.company(1, 2).await;
    srv.company(2, 1).await;
    let mut other = srv.directory(2);
    let err = other
        .upsert_user(pb::UpsertUserRequest {
            user: Some(pb::User {
                email: "intruder@t1.example".into(),
                display_name: "Intruder".into(),
                is_admin: true,
                ..user_spec(1, 9)
            }),
        })
        .await
        .unwrap_err();
    assert_reason(&err, Code::PermissionDenied, "WRONG_TENANT");
    let err = other
        .delete_tenant(pb::DeleteTenantRequest { tenant_id: 1 })
        .await
        .unwrap_err();
    assert_reason(&err, Code::PermissionDenied, "WRONG_TENANT");
    let err = other
        .get_user(pb::GetUserRequest {
            tenant_id: 1,
            user_id: 1,
        })
        .await
        .unwrap_err();
    assert_reason(&err, Code::PermissionDenied, "WRONG_TENANT");
    let err = other
        .list_users(pb::ListUsersRequest {
            tenant_id: 1,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_reason(&err, Code::PermissionDenied, "WRONG_TENANT");
    // Nothing was written.
    let err = srv
        .directory(1)
        .get_user(pb::GetUserRequest {
            tenant_id: 1,
            user_id: 9,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    srv.get_tenant(1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r24_health_check_answers_serving_without_a_token() {
    let Some(srv) = server().await else { return };
    // A plain channel of its own: no interceptor, no token.
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", srv.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = HealthClient::new(channel);
    for service in ["", "groups.v1.GroupService"] {
        // The first database ping may still be under way just after start (what health says
        // then is `ops::ops_health_is_not_serving_until_the_database_answers`).
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        let status = loop {
            let answer = health
                .check(HealthCheckRequest {
                    service: service.into(),
                })
                .await;
            match answer {
                Ok(r) if r.get_ref().status == ServingStatus::Serving as i32 => {
                    break r.into_inner().status;
                }
                Err(e) if e.code() != Code::NotFound => panic!("health of {service:?}: {e:?}"),
                other if tokio::time::Instant::now() > deadline => {
                    panic!("health of {service:?} is not SERVING: {other:?}")
                }
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        assert_eq!(status, ServingStatus::Serving as i32, "{service:?}");
    }
}
