//! GroupService: create, get, delete (R01, R02, R04, R07, R12).

use crate::harness::*;
use group_service::grpc::pb;
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r01_create_and_get_group() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(1, 3).await;
    let mut admin = srv.groups(1, 1, true);
    let g = admin
        .create_group(create_req(1, "Design", &[2]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(g.display_name, "Design");
    let got = admin
        .get_group(pb::GetGroupRequest {
            name: g.name.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got, g);
    let err = admin
        .create_group(create_req(1, "DESIGN", &[2]))
        .await
        .unwrap_err();
    assert_reason(&err, Code::AlreadyExists, "GROUP_NAME_TAKEN");
}
