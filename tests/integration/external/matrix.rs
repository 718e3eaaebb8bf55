//! Every call on an external group by every kind of caller of three tenants (R20, R24).

use group_service::grpc::pb;
use tonic::{Code, Status};

use super::{A, B, C, shared_group, three_companies};
use crate::fixtures::*;
use crate::harness::*;

#[derive(Clone, Copy, Debug)]
enum Rpc {
    GetGroup,
    UpdateGroup,
    DeleteGroup,
    ListMembers,
    ListEffectiveMembers,
    ListMasters,
    CheckMembership,
    AddMembers,
    RemoveMembers,
    Leave,
}

/// What a caller gets.
#[derive(Clone, Copy, Debug)]
enum Want {
    Ok,
    Denied(&'static str),
    Precondition(&'static str),
    /// NOT_FOUND, byte for byte the answer for a missing group.
    NotFound,
}

/// (tenant, user, admin claim).
type Who = (i64, i64, bool);

/// What one caller gets from each RPC, in the order the calls are made.
type Row = [(Rpc, Want); 10];

/// Calls `rpc` on `group` as `who`. Changes name user 3 of tenant A: added, then removed.
async fn call(srv: &TestServer, who: Who, rpc: Rpc, group: &str) -> Result<(), Status> {
    let (t, u, admin) = who;
    let mut g = srv.groups(t, u, admin);
    let mut m = srv.membership(t, u, admin);
    let group = group.to_owned();
    match rpc {
        Rpc::GetGroup => g.get_group(get_req(&group)).await.map(drop),
        Rpc::UpdateGroup => {
            let described = pb::Group {
                description: format!("changed by {t}/{u}"),
                ..patch(&group)
            };
            try_update(&mut g, described, &["description"])
                .await
                .map(drop)
        }
        Rpc::DeleteGroup => g.delete_group(delete_req(&group, "")).await.map(drop),
        Rpc::ListMembers => m
            .list_members(pb::ListMembersRequest {
                group,
                page_size: 10,
                page_token: String::new(),
            })
            .await
            .map(drop),
        Rpc::ListEffectiveMembers => m
            .list_effective_members(pb::ListEffectiveMembersRequest {
                group,
                page_size: 10,
                page_token: String::new(),
            })
            .await
            .map(drop),
        Rpc::ListMasters => m
            .list_masters(pb::ListMastersRequest {
                group,
                page_size: 10,
                page_token: String::new(),
            })
            .await
            .map(drop),
        Rpc::CheckMembership => m
            .check_membership(pb::CheckMembershipRequest {
                group,
                user: Some(user_ref(B, 2)),
            })
            .await
            .map(drop),
        Rpc::AddMembers => add(&mut m, &group, vec![user_of(A, 3)]).await.map(drop),
        Rpc::RemoveMembers => remove(&mut m, &group, vec![user_of(A, 3)]).await.map(drop),
        Rpc::Leave => m.leave(pb::LeaveRequest { group }).await.map(drop),
    }
}

/// Checks what `who` gets from each RPC of `row`, in order.
async fn assert_row(srv: &TestServer, label: &str, who: Who, row: Row, g: &str, missing: &str) {
    for (rpc, want) in row {
        let got = call(srv, who, rpc, g).await;
        let context = format!("{label} {rpc:?}: {got:?}");
        match want {
            Want::Ok => assert!(got.is_ok(), "{context}"),
            Want::Denied(reason) => {
                assert_reason(&got.unwrap_err(), Code::PermissionDenied, reason)
            }
            Want::Precondition(reason) => {
                assert_reason(&got.unwrap_err(), Code::FailedPrecondition, reason)
            }
            Want::NotFound => {
                let err = got.expect_err(&context);
                assert_eq!(err.code(), Code::NotFound, "{context}");
                let absent = call(srv, who, rpc, missing).await.unwrap_err();
                assert_eq!(fingerprint(&err), fingerprint(&absent), "{context}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r24_cross_tenant_matrix_of_an_external_group() {
    use Rpc::*;
    use Want::{Denied, NotFound, Ok as Allowed, Precondition};

    let Some(srv) = server().await else { return };
    three_companies(&srv).await;
    let g = shared_group(&srv, "Partners", &[], &[(B, 2), (C, 2)]).await;
    let missing = missing_group(A);

    let own_admin: Who = (A, 1, true);
    let member_b: Who = (B, 2, false);
    let member_c: Who = (C, 2, false);
    let member_row: Row = [
        (GetGroup, Allowed),
        (UpdateGroup, Denied("NOT_GROUP_MANAGER")),
        (ListMembers, Allowed),
        (ListEffectiveMembers, Allowed),
        (ListMasters, Allowed),
        (CheckMembership, Allowed),
        (AddMembers, Denied("NOT_GROUP_MANAGER")),
        (RemoveMembers, Denied("NOT_GROUP_MANAGER")),
        (Leave, Precondition("MEMBERS_CANNOT_LEAVE")),
        (DeleteGroup, Denied("NOT_GROUP_MANAGER")),
    ];
    let stranger_row: Row = [
        GetGroup,
        UpdateGroup,
        ListMembers,
        ListEffectiveMembers,
        ListMasters,
        CheckMembership,
        AddMembers,
        RemoveMembers,
        Leave,
        DeleteGroup,
    ]
    .map(|rpc| (rpc, NotFound));
    let own_admin_row: Row = [
        (GetGroup, Allowed),
        (UpdateGroup, Allowed),
        (ListMembers, Allowed),
        (ListEffectiveMembers, Allowed),
        (ListMasters, Allowed),
        (CheckMembership, Allowed),
        (AddMembers, Allowed),
        (RemoveMembers, Allowed),
        (Leave, Precondition("NOT_A_MEMBER")),
        // Last: it ends the group.
        (DeleteGroup, Allowed),
    ];
    let matrix: Vec<(&str, Who, Row)> = vec![
        ("member from B", member_b, member_row),
        ("member from C", member_c, member_row),
        ("non-member of B", (B, 3, false), stranger_row),
        ("admin of B", (B, 1, true), stranger_row),
        ("admin of C", (C, 1, true), stranger_row),
        ("admin of the owning tenant", own_admin, own_admin_row),
    ];
    for (label, who, row) in matrix {
        assert_row(&srv, label, who, row, &g, &missing).await;
    }
    // The owning tenant's admin deleted it: gone for every tenant.
    for (t, u, admin) in [own_admin, member_b, member_c] {
        let err = srv
            .groups(t, u, admin)
            .get_group(get_req(&g))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::NotFound);
    }
}
