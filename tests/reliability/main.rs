//! Faults, shutdown, deadlines and overload, through the real server: the slow tests, in a
//! binary (and a CI step) of their own. They share the integration tests' harness.

// A failed unwrap in a test is the test failing, with the error in the panic message.
#![allow(clippy::unwrap_used)]
// The shared harness and fixtures hold helpers (and re-exports) only the integration tests use.
#![allow(dead_code, unused_imports)]

mod admission;
mod crash;
#[path = "../integration/fixtures/mod.rs"]
mod fixtures;
#[path = "../integration/harness.rs"]
mod harness;
mod hold;
mod outage;
mod shutdown;

/// Every acknowledged create, `(display name, resource name)`, reads back with its name.
async fn assert_stored(reader: &mut harness::Groups, acknowledged: &[(String, String)]) {
    for (display_name, name) in acknowledged {
        let g = reader
            .get_group(group_service::grpc::pb::GetGroupRequest { name: name.clone() })
            .await
            .unwrap_or_else(|e| panic!("acknowledged {display_name} ({name}) is gone: {e:?}"))
            .into_inner();
        assert_eq!(&g.display_name, display_name);
    }
}
