//! R06: who may change what. The permission matrix cell by cell, and the cases around it.

use group_service::grpc::pb;
use tonic::Code;
use tonic_types::StatusExt;

use crate::fixtures::*;
use crate::harness::*;

#[derive(Clone, Copy, Debug)]
enum Who {
    Admin,
    Master,
    Member,
    NonMember,
    OtherTenantUser,
    OtherTenantAdmin,
}

impl Who {
    const ALL: [Who; 6] = [
        Who::Admin,
        Who::Master,
        Who::Member,
        Who::NonMember,
        Who::OtherTenantUser,
        Who::OtherTenantAdmin,
    ];

    /// Tenant 1: admin 1, master 2, member 3, user 4 in no group; tenant 2: admin 1, user 2.
    fn client(self, srv: &TestServer) -> Groups {
        match self {
            Who::Admin => srv.groups(1, 1, true),
            Who::Master => srv.groups(1, 2, false),
            Who::Member => srv.groups(1, 3, false),
            Who::NonMember => srv.groups(1, 4, false),
            Who::OtherTenantUser => srv.groups(2, 2, false),
            Who::OtherTenantAdmin => srv.groups(2, 1, true),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FieldClass {
    /// display_name, description, photo_uri, visibility.
    Basic,
    /// features (and features.*), mailing_list.
    RoomFeature,
    /// notify_all_members, master_manages_features.
    AdminOnly,
}

const MATRIX_FIELDS: [(&str, FieldClass); 13] = [
    ("display_name", FieldClass::Basic),
    ("description", FieldClass::Basic),
    ("photo_uri", FieldClass::Basic),
    ("visibility", FieldClass::Basic),
    ("features", FieldClass::RoomFeature),
    ("features.message", FieldClass::RoomFeature),
    ("features.note", FieldClass::RoomFeature),
    ("features.event", FieldClass::RoomFeature),
    ("features.task", FieldClass::RoomFeature),
    ("features.folder", FieldClass::RoomFeature),
    ("mailing_list", FieldClass::RoomFeature),
    ("notify_all_members", FieldClass::AdminOnly),
    ("master_manages_features", FieldClass::AdminOnly),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Changed,
    Denied,
    Hidden,
}

/// R06 and R07 as docs/rules.md states them.
fn expected(who: Who, class: FieldClass, tenant_lets_masters: bool, group_grants: bool) -> Outcome {
    match who {
        Who::Admin => Outcome::Changed,
        Who::Master => match class {
            FieldClass::Basic if tenant_lets_masters => Outcome::Changed,
            FieldClass::RoomFeature if tenant_lets_masters && group_grants => Outcome::Changed,
            _ => Outcome::Denied,
        },
        Who::Member => Outcome::Denied,
        Who::NonMember | Who::OtherTenantUser | Who::OtherTenantAdmin => Outcome::Hidden,
    }
}

/// The features a change of `field` sends, and the ones it leaves (None: as sent).
fn feature_change(field: &str) -> (pb::Features, Option<pb::Features>) {
    match field {
        "features" => (features(true, true, true, true, true), None),
        "features.message" => (features(false, false, false, false, false), None),
        "features.note" => (
            features(true, true, false, false, false),
            Some(features(true, true, true, false, false)),
        ),
        "features.event" => (features(true, false, false, false, false), None),
        "features.task" => (
            features(true, false, false, true, false),
            Some(features(true, false, true, true, false)),
        ),
        "features.folder" => (
            features(true, false, false, false, true),
            Some(features(true, false, true, false, true)),
        ),
        other => panic!("no feature change for {other}"),
    }
}

/// The body that changes `field` of a matrix group, and how the field reads afterwards.
/// Matrix groups are created private, with message and event on.
fn matrix_change(name: &str, field: &str, n: usize, group_grants: bool) -> (pb::Group, String) {
    let mut g = patch(name);
    let after = match field {
        "display_name" => {
            g.display_name = format!("Renamed {n}");
            g.display_name.clone()
        }
        "description" => {
            g.description = format!("Described {n}");
            g.description.clone()
        }
        "photo_uri" => {
            g.photo_uri = format!("https://cdn.example.com/{n}.png");
            g.photo_uri.clone()
        }
        "visibility" => {
            g.visibility = pb::Visibility::Public as i32;
            format!("{}", g.visibility)
        }
        "mailing_list" => {
            g.mailing_list = Some(mailing_list(&format!("matrix-{n}")));
            format!("{:?}", g.mailing_list)
        }
        "notify_all_members" => {
            g.notify_all_members = true;
            "true".into()
        }
        "master_manages_features" => {
            g.master_manages_features = !group_grants;
            format!("{}", !group_grants)
        }
        features_field => {
            let (sent, left) = feature_change(features_field);
            g.features = Some(sent);
            format!("{:?}", Some(left.unwrap_or(sent)))
        }
    };
    (g, after)
}

/// How `field` of a group reads, in the form `matrix_change` describes it.
fn matrix_value(g: &pb::Group, field: &str) -> String {
    match field {
        "display_name" => g.display_name.clone(),
        "description" => g.description.clone(),
        "photo_uri" => g.photo_uri.clone(),
        "visibility" => format!("{}", g.visibility),
        "mailing_list" => format!("{:?}", g.mailing_list),
        "notify_all_members" => format!("{}", g.notify_all_members),
        "master_manages_features" => format!("{}", g.master_manages_features),
        _ => format!("{:?}", g.features),
    }
}

/// One cell of the matrix: the tenant's setting and the group's grant.
#[derive(Clone, Copy, Debug)]
struct Cell {
    tenant_lets_masters: bool,
    group_grants: bool,
    who: Who,
    field: &'static str,
    class: FieldClass,
    /// Numbers the cell's group and its values.
    n: usize,
}

/// Runs one cell on a fresh group; what went wrong, if anything.
async fn run_cell(srv: &TestServer, c: Cell) -> Option<String> {
    let before = group(1, &format!("Matrix {}", c.n))
        .master(2)
        .member(user_member(3))
        .with(|g| {
            g.features = Some(features(true, false, true, false, false));
            g.master_manages_features = c.group_grants;
        })
        .create(srv)
        .await;
    let want = expected(c.who, c.class, c.tenant_lets_masters, c.group_grants);
    let cell = format!(
        "{:?} {} (tenant setting {}, group grant {}): expected {want:?}",
        c.who, c.field, c.tenant_lets_masters, c.group_grants
    );
    let (body, after) = matrix_change(&before.name, c.field, c.n, c.group_grants);
    let res = try_update(&mut c.who.client(srv), body, &[c.field]).await;
    let now = get(srv, &before.name).await;
    match (want, res) {
        (Outcome::Changed, Ok(got)) => {
            if matrix_value(&got, c.field) != after {
                Some(format!("{cell}: {} reads {got:?}", c.field))
            } else if got.etag == before.etag {
                Some(format!("{cell}: etag unchanged"))
            } else if now != got {
                Some(format!("{cell}: GetGroup {now:?} != {got:?}"))
            } else {
                None
            }
        }
        (Outcome::Denied, Err(err))
            if err.code() == Code::PermissionDenied
                && err
                    .get_details_error_info()
                    .is_some_and(|i| i.reason == "NOT_GROUP_MANAGER") =>
        {
            (now != before).then(|| format!("{cell}: denied but changed to {now:?}"))
        }
        (Outcome::Hidden, Err(err)) => {
            // Exactly as a missing group would answer.
            let (body, _) = matrix_change(&missing_group(1), c.field, c.n, c.group_grants);
            let absent = try_update(&mut c.who.client(srv), body, &[c.field])
                .await
                .unwrap_err();
            if err.code() != Code::NotFound || fingerprint(&err) != fingerprint(&absent) {
                Some(format!("{cell}: got {err:?}, missing {absent:?}"))
            } else {
                (now != before).then(|| format!("{cell}: hidden but changed to {now:?}"))
            }
        }
        (_, Ok(got)) => Some(format!("{cell}: changed to {got:?}")),
        (_, Err(err)) => Some(format!("{cell}: {err:?}")),
    }
}

/// Every cell: caller x field x tenant `masters_may_manage_settings` x group
/// `master_manages_features`, each on a fresh group. A denied or hidden update must leave the
/// group exactly as it was (same etag).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r06_permission_matrix_cell_by_cell() {
    let Some(srv) = server().await else { return };
    srv.company(1, 4).await;
    srv.company(2, 2).await;
    let mut failures = Vec::new();
    let mut cells = 0;
    for tenant_lets_masters in [true, false] {
        set_tenant(&srv, 1, |t| {
            t.masters_may_manage_settings = tenant_lets_masters
        })
        .await;
        for group_grants in [true, false] {
            for who in Who::ALL {
                for (field, class) in MATRIX_FIELDS {
                    cells += 1;
                    let cell = Cell {
                        tenant_lets_masters,
                        group_grants,
                        who,
                        field,
                        class,
                        n: cells,
                    };
                    failures.extend(run_cell(&srv, cell).await);
                }
            }
        }
    }
    assert_eq!(cells, 2 * 2 * Who::ALL.len() * MATRIX_FIELDS.len());
    assert!(
        failures.is_empty(),
        "{} of {cells} cells failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r06_master_cannot_rename_when_tenant_forbids() {
    let Some(srv) = server().await else { return };
    srv.company(1, 2).await;
    set_tenant(&srv, 1, |t| t.masters_may_manage_settings = false).await;
    let g = group(1, "Fixed name").master(2).create(&srv).await;
    let rename = pb::Group {
        display_name: "Master's name".into(),
        ..patch(&g.name)
    };
    let err = try_update(
        &mut srv.groups(1, 2, false),
        rename.clone(),
        &["display_name"],
    )
    .await
    .unwrap_err();
    assert_reason(&err, Code::PermissionDenied, "NOT_GROUP_MANAGER");
    assert_eq!(get(&srv, &g.name).await, g);
    // The admin turns the setting on: the same request now succeeds.
    set_tenant(&srv, 1, |t| t.masters_may_manage_settings = true).await;
    let got = try_update(&mut srv.groups(1, 2, false), rename, &["display_name"])
        .await
        .unwrap();
    assert_eq!(got.display_name, "Master's name");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r06_master_mask_mixing_allowed_and_admin_only_fields_changes_nothing() {
    let Some(srv) = server().await else { return };
    srv.company(1, 2).await;
    let g = group(1, "Mixed")
        .master(2)
        .with(|g| g.master_manages_features = true)
        .create(&srv)
        .await;
    let mut master = srv.groups(1, 2, false);
    for paths in [
        &["display_name", "notify_all_members"][..],
        &["features", "master_manages_features"],
        &["*"],
    ] {
        let body = pb::Group {
            display_name: "Mixed up".into(),
            features: Some(features(true, true, false, false, false)),
            notify_all_members: true,
            master_manages_features: true,
            ..patch(&g.name)
        };
        let err = try_update(&mut master, body, paths).await.unwrap_err();
        assert_reason(&err, Code::PermissionDenied, "NOT_GROUP_MANAGER");
    }
    assert_eq!(get(&srv, &g.name).await, g);
}

/// Asserts that `client` may change no matrix field of `g`.
async fn assert_changes_nothing(client: &mut Groups, g: &str, group_grants: bool) {
    for (field, _) in MATRIX_FIELDS {
        let (body, _) = matrix_change(g, field, 0, group_grants);
        let err = try_update(client, body, &[field]).await.unwrap_err();
        assert_reason(&err, Code::PermissionDenied, "NOT_GROUP_MANAGER");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r06_non_member_of_a_public_group_sees_it_but_cannot_change_it() {
    let Some(srv) = server().await else { return };
    srv.company(1, 3).await;
    let g = group(1, "Open").master(2).public().create(&srv).await;
    let mut outsider = srv.groups(1, 3, false);
    assert_eq!(
        outsider
            .get_group(get_req(&g.name))
            .await
            .unwrap()
            .into_inner(),
        g
    );
    assert_changes_nothing(&mut outsider, &g.name, false).await;
    assert_eq!(get(&srv, &g.name).await, g);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r06_member_through_a_team_or_nested_group_cannot_change_anything() {
    let Some(srv) = server().await else { return };
    srv.company(1, 4).await;
    srv.team(1, 10, &[3]).await;
    let inner = group(1, "Inner").master(4).create(&srv).await;
    let g = group(1, "Outer")
        .master(2)
        .members([team_member(10), group_member(&inner.name)])
        .with(|g| g.master_manages_features = true)
        .create(&srv)
        .await;
    // User 3 through the team, user 4 (a master of Inner, not of Outer) through nesting.
    for user in [3, 4] {
        assert_changes_nothing(&mut srv.groups(1, user, false), &g.name, true).await;
    }
    assert_eq!(get(&srv, &g.name).await, g);
}
