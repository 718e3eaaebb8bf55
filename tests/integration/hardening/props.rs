//! The properties the cargo-fuzz targets under `fuzz/` check
//! (`group_service::grpc::properties`), run with proptest in every `cargo test` (CI does not
//! build the fuzz targets: docs/reliability.md, "Fuzzing"), and random requests sent to the
//! real server: no panic, no INTERNAL (R24 for tokens, R25 for everything else).

use group_service::grpc::pb;
use group_service::grpc::properties;
use proptest::prelude::*;
use prost::Message;
use tonic::Code;

use super::call_raw;
use crate::fixtures::claims_object;
use crate::harness::*;

/// Text built from pieces of names, so that shapes close to valid ones come up often.
fn name_like() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("tenants".to_owned()),
        Just("groups".to_owned()),
        Just("users".to_owned()),
        Just("/".to_owned()),
        "[0-9]{1,20}",
        "[+-]?0*[0-9]{1,3}",
        "\\PC{0,3}",
        any::<char>().prop_map(String::from),
    ];
    prop::collection::vec(piece, 0..10).prop_map(|p| p.concat())
}

/// A JWKS document with keys of every type, some fields missing or of the wrong kind.
fn jwks_json() -> impl Strategy<Value = Vec<u8>> {
    use serde_json::{Value, json};
    let field = prop_oneof![
        Just(Value::Null),
        Just(json!("AQAB")),
        Just(json!("P-256")),
        "[A-Za-z0-9_-]{0,20}".prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
    ];
    let key = prop::collection::btree_map(
        prop::sample::select(vec![
            "kty", "kid", "alg", "use", "n", "e", "crv", "x", "y", "k",
        ]),
        prop_oneof![
            Just(json!("RSA")),
            Just(json!("EC")),
            Just(json!("oct")),
            Just(json!("RS256")),
            Just(json!("sig")),
            field,
        ],
        0..8,
    )
    .prop_map(|k| Value::Object(k.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()));
    prop::collection::vec(key, 0..3)
        .prop_map(|keys| serde_json::to_vec(&json!({ "keys": keys })).unwrap())
}

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config(2000))]

    #[test]
    fn r25_resource_names_have_no_aliases(text in name_like()) {
        properties::resource_name(&text).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn r25_page_tokens_are_refused_unless_issued(
        token in prop_oneof!["\\PC{0,60}", "[A-Za-z0-9_-]{0,40}\\.[A-Za-z0-9_-]{0,30}"],
        size in any::<i32>(),
        after in any::<i64>(),
    ) {
        properties::page_token(&token, size, after).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn r25_update_masks_convert_or_are_invalid(
        paths in prop::collection::vec(
            prop_oneof![Just("display_name".to_owned()), Just("*".to_owned()), "\\PC{0,20}"],
            0..6,
        )
    ) {
        properties::update_mask(paths).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn r24_bearer_text_without_a_signature_is_unauthenticated(
        text in prop_oneof!["\\PC{0,80}", "[A-Za-z0-9_-]{0,40}\\.[A-Za-z0-9_-]{0,60}\\.[A-Za-z0-9_-]{0,43}"],
    ) {
        properties::bearer_token(&text).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn r24_signed_tokens_pass_only_when_valid_by_every_rule(
        header in prop_oneof![
            Just(br#"{"alg":"HS256","typ":"JWT"}"#.to_vec()),
            Just(br#"{"alg":"HS256","kid":"k1"}"#.to_vec()),
            Just(br#"{"alg":"RS256"}"#.to_vec()),
            Just(br#"{"alg":"none"}"#.to_vec()),
            prop::collection::vec(any::<u8>(), 0..40),
        ],
        claims in prop_oneof![
            4 => claims_object().prop_map(|c| serde_json::to_vec(&c).unwrap()),
            1 => prop::collection::vec(any::<u8>(), 0..80),
        ],
        strict in any::<bool>(),
    ) {
        properties::signed_token(&header, &claims, strict).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn jwks_documents_load_or_are_refused(
        doc in prop_oneof![
            jwks_json(),
            prop::collection::vec(any::<u8>(), 0..120),
        ],
    ) {
        properties::jwks_document(&doc).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn r25_every_request_decodes_and_converts_without_internal(
        which in any::<usize>(),
        bytes in prop::collection::vec(any::<u8>(), 0..200),
    ) {
        properties::request(which, &bytes).map_err(TestCaseError::fail)?;
    }
}

/// Random bodies for random methods, sent to one server: one case is a batch of calls.
async fn random_calls(calls: Vec<(usize, Vec<u8>)>) -> Result<(), TestCaseError> {
    let Some(srv) = server().await else {
        return Ok(());
    };
    srv.company(1, 3).await;
    let methods = [
        "GroupService/CreateGroup",
        "GroupService/GetGroup",
        "GroupService/UpdateGroup",
        "GroupService/ListGroups",
        "GroupService/SearchGroups",
        "GroupService/AutocompleteGroups",
        "GroupService/ReportFeatureUsage",
        "GroupService/ConvertMessageRoom",
        "MembershipService/AddMembers",
        "MembershipService/ListMembers",
        "MembershipService/CheckMembership",
        "DirectoryService/UpsertUser",
        "DirectoryService/UpsertTeam",
        "EventService/ListAuditEvents",
    ];
    for (which, body) in calls {
        let path = format!("/groups.v1.{}", methods[which % methods.len()]);
        if let Err(status) = call_raw(&srv, &path, body.clone()).await {
            prop_assert!(
                !matches!(status.code(), Code::Internal | Code::Unknown),
                "{} {:?}: {:?}",
                path,
                body,
                status
            );
        }
    }
    srv.stop().await;
    Ok(())
}

/// A valid CreateGroupRequest with random text in its fields, or random bytes.
fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..120),
        (name_like(), "\\PC{0,30}", "\\PC{0,30}").prop_map(|(parent, name, description)| {
            pb::CreateGroupRequest {
                parent,
                group: Some(pb::Group {
                    display_name: name,
                    description,
                    ..Default::default()
                }),
                master_user_ids: vec![2],
                ..Default::default()
            }
            .encode_to_vec()
        }),
    ]
}

proptest! {
    #![proptest_config(config(6))]

    #[test]
    fn r25_random_requests_never_answer_internal(
        calls in prop::collection::vec((any::<usize>(), body()), 60)
    ) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(random_calls(calls))?;
    }
}
