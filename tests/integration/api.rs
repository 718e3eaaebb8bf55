//! The API as reflection serves it: field behaviors (AIP-203) and the file options that code
//! generators of other languages read.

use futures_util::StreamExt;
use prost::Message;
use prost_reflect::{DescriptorPool, MessageDescriptor, Value};
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
use tonic_reflection::pb::v1::{ServerReflectionRequest, ServerReflectionResponse};

use crate::harness::*;

/// One reflection answer: the files it carries, as served (decoded with prost_types they
/// would lose the extension options, which prost drops as unknown fields).
async fn reflect(srv: &TestServer, request: MessageRequest) -> Vec<Vec<u8>> {
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(request),
    };
    let mut answers = ServerReflectionClient::new(srv.channel.clone())
        .server_reflection_info(tokio_stream::once(request))
        .await
        .unwrap()
        .into_inner();
    let answer: ServerReflectionResponse = answers.next().await.unwrap().unwrap();
    let Some(MessageResponse::FileDescriptorResponse(files)) = answer.message_response else {
        panic!("no files: {answer:?}");
    };
    files.file_descriptor_proto
}

fn file_descriptor(bytes: &[u8]) -> prost_types::FileDescriptorProto {
    prost_types::FileDescriptorProto::decode(bytes).unwrap()
}

/// The file defining `symbol` and every file it imports, transitively, fetched by name as
/// grpcurl does, as the encoded descriptors.
async fn files_of(srv: &TestServer, symbol: &str) -> Vec<Vec<u8>> {
    let mut files = reflect(srv, MessageRequest::FileContainingSymbol(symbol.to_owned())).await;
    let mut next = 0;
    while next < files.len() {
        for import in file_descriptor(&files[next]).dependency {
            if !files.iter().any(|f| file_descriptor(f).name() == import) {
                files.extend(reflect(srv, MessageRequest::FileByFilename(import)).await);
            }
        }
        next += 1;
    }
    files
}

/// A pool of the encoded files, options and their extensions kept.
fn pool_of(files: &[Vec<u8>]) -> DescriptorPool {
    let mut set = Vec::new();
    for file in files {
        prost::encoding::bytes::encode(1, file, &mut set);
    }
    DescriptorPool::decode(&set[..]).unwrap()
}

/// The `google.api.field_behavior` values of a field, by name.
fn behaviors(pool: &DescriptorPool, message: &MessageDescriptor, field: &str) -> Vec<String> {
    let extension = pool
        .get_extension_by_name("google.api.field_behavior")
        .expect("reflection serves google/api/field_behavior.proto");
    let enumeration = pool.get_enum_by_name("google.api.FieldBehavior").unwrap();
    let options = message
        .get_field_by_name(field)
        .unwrap_or_else(|| panic!("no field {field} in {}", message.name()))
        .options();
    let Value::List(values) = options.get_extension(&extension).into_owned() else {
        panic!("field_behavior is repeated");
    };
    values
        .iter()
        .map(|v| {
            let number = v.as_enum_number().unwrap();
            enumeration.get_value(number).unwrap().name().to_owned()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_reflection_serves_field_behaviors() {
    let Some(srv) = server().await else { return };
    let pool = pool_of(&files_of(&srv, "groups.v1.MembershipService").await);
    let message = |name: &str| pool.get_message_by_name(name).unwrap();
    let group = message("groups.v1.Group");
    for (message, field, expected) in [
        (&group, "name", &["IDENTIFIER"][..]),
        (&group, "display_name", &["REQUIRED"]),
        (&group, "kind", &["IMMUTABLE"]),
        (&group, "create_time", &["OUTPUT_ONLY"]),
        (&group, "update_time", &["OUTPUT_ONLY"]),
        (&group, "storage_used_bytes", &["OUTPUT_ONLY"]),
        (&group, "excluded_members", &["OUTPUT_ONLY"]),
        (&group, "description", &[]),
        (&group, "etag", &[]),
        (
            &message("groups.v1.CreateGroupRequest"),
            "parent",
            &["REQUIRED"],
        ),
        (&message("groups.v1.CreateGroupRequest"), "request_id", &[]),
        (
            &message("groups.v1.UpdateGroupRequest"),
            "group",
            &["REQUIRED"],
        ),
        (&message("groups.v1.UpdateGroupRequest"), "update_mask", &[]),
        (
            &message("groups.v1.CheckMembershipRequest"),
            "user",
            &["REQUIRED"],
        ),
        (&message("groups.v1.UserRef"), "user_id", &["REQUIRED"]),
    ] {
        assert_eq!(
            behaviors(&pool, message, field),
            expected,
            "{}.{field}",
            message.name()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_every_file_names_its_go_and_java_package() {
    let Some(srv) = server().await else { return };
    let mut seen = Vec::new();
    for service in [
        "GroupService",
        "MembershipService",
        "DirectoryService",
        "EventService",
    ] {
        let files = files_of(&srv, &format!("groups.v1.{service}")).await;
        for file in files.iter().map(|f| file_descriptor(f)) {
            if file.package() != "groups.v1" {
                continue;
            }
            let options = file.options.clone().unwrap_or_default();
            assert_eq!(
                options.go_package(),
                "example.com/group-service/gen/go/groups/v1;groupsv1",
                "{}",
                file.name()
            );
            assert_eq!(
                options.java_package(),
                "com.example.groups.v1",
                "{}",
                file.name()
            );
            assert!(options.java_multiple_files(), "{}", file.name());
            seen.push(file.name().to_owned());
        }
    }
    seen.sort();
    seen.dedup();
    assert_eq!(
        seen,
        [
            "groups/v1/common.proto",
            "groups/v1/directory.proto",
            "groups/v1/events.proto",
            "groups/v1/groups.proto",
            "groups/v1/membership.proto",
        ]
    );
}
