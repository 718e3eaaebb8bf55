//! R01 and R02 on update: renames are validated and unique case-insensitively, descriptions
//! are bounded, and a change failing on one field changes none (R25).

use group_service::grpc::pb;
use tonic::Code;

use crate::fixtures::*;
use crate::harness::*;

/// A rename of `name` to `display_name`.
fn renamed(name: &str, display_name: &str) -> pb::Group {
    pb::Group {
        display_name: display_name.to_owned(),
        ..patch(name)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r01_rename_validates_the_name() {
    let Some(srv) = server().await else { return };
    srv.company(1, 2).await;
    let g = group(1, "Valid").master(2).create(&srv).await;
    let mut admin = srv.groups(1, 1, true);
    for name in [
        String::new(),
        "   ".into(),
        "a".repeat(101),
        "가".repeat(101),
        "bell\u{7}".into(),
    ] {
        let err = try_update(&mut admin, renamed(&g.name, &name), &["display_name"])
            .await
            .unwrap_err();
        assert_bad_field(&err, "group.display_name");
    }
    assert_eq!(get(&srv, &g.name).await, g);
    for name in ["가".repeat(100), "R&D / 100% _under_ 'quoted'".into()] {
        let got = try_update(&mut admin, renamed(&g.name, &name), &["display_name"])
            .await
            .unwrap();
        assert_eq!(got.display_name, name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r01_rename_to_a_taken_name_is_group_name_taken() {
    let Some(srv) = server().await else { return };
    srv.company(1, 2).await;
    srv.company(2, 2).await;
    group(1, "Design").master(2).create(&srv).await;
    let g = group(1, "Équipe").master(2).create(&srv).await;
    let mut admin = srv.groups(1, 1, true);
    for taken in ["Design", "DESIGN", "design"] {
        let err = try_update(&mut admin, renamed(&g.name, taken), &["display_name"])
            .await
            .unwrap_err();
        assert_reason(&err, Code::AlreadyExists, "GROUP_NAME_TAKEN");
    }
    assert_eq!(get(&srv, &g.name).await, g);
    // Its own name in another case is no conflict.
    let got = try_update(&mut admin, renamed(&g.name, "ÉQUIPE"), &["display_name"])
        .await
        .unwrap();
    assert_eq!(got.display_name, "ÉQUIPE");
    // The old name is free again; a name used in another tenant is no conflict.
    group(1, "équipe 2").master(2).create(&srv).await;
    let other = group(2, "Other").master(2).create(&srv).await;
    let mut admin2 = srv.groups(2, 1, true);
    try_update(
        &mut admin2,
        renamed(&other.name, "design"),
        &["display_name"],
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r01_concurrent_renames_to_one_name_leave_one_winner() {
    let Some(srv) = server().await else { return };
    srv.company(1, 2).await;
    let mut groups = Vec::new();
    for i in 0..12 {
        groups.push(
            group(1, &format!("Runner {i}"))
                .master(2)
                .create(&srv)
                .await,
        );
    }
    let admin = srv.groups(1, 1, true);
    let answers = race(12, groups.iter().enumerate(), |(i, g)| {
        let mut client = admin.clone();
        // One name in several cases.
        let name = if i % 2 == 0 { "Winner" } else { "WINNER" };
        let body = renamed(&g.name, name);
        async move { try_update(&mut client, body, &["display_name"]).await }
    })
    .await;
    let ok = winners(answers, Code::AlreadyExists, "GROUP_NAME_TAKEN").len();
    assert_eq!(ok, 1);
    let mut winners = 0;
    for g in &groups {
        if get(&srv, &g.name).await.display_name.to_lowercase() == "winner" {
            winners += 1;
        }
    }
    assert_eq!(winners, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r02_update_description_and_photo_are_validated() {
    let Some(srv) = server().await else { return };
    srv.company(1, 2).await;
    let g = group(1, "Described").master(2).create(&srv).await;
    let mut admin = srv.groups(1, 1, true);
    let described = |description: String| pb::Group {
        description,
        ..patch(&g.name)
    };
    let err = try_update(&mut admin, described("설".repeat(301)), &["description"])
        .await
        .unwrap_err();
    assert_bad_field(&err, "group.description");
    assert_eq!(get(&srv, &g.name).await, g);
    let got = try_update(&mut admin, described("설".repeat(300)), &["description"])
        .await
        .unwrap();
    assert_eq!(got.description.chars().count(), 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r25_update_failing_on_one_field_changes_no_field() {
    let Some(srv) = server().await else { return };
    srv.company(1, 2).await;
    group(1, "Holder")
        .master(2)
        .with(|g| g.mailing_list = Some(mailing_list("taken")))
        .create(&srv)
        .await;
    let g = group(1, "All or nothing").master(2).create(&srv).await;
    let body = pb::Group {
        display_name: "Renamed".into(),
        description: "described".into(),
        mailing_list: Some(mailing_list("taken")),
        ..patch(&g.name)
    };
    let paths = ["display_name", "description", "mailing_list"];
    let err = try_update(&mut srv.groups(1, 1, true), body, &paths)
        .await
        .unwrap_err();
    assert_reason(&err, Code::FailedPrecondition, "ADDRESS_IN_USE");
    assert_eq!(get(&srv, &g.name).await, g);
}
