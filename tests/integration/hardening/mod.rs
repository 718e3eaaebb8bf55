//! Hostile input: control characters in every text field, undecodable and
//! oversized messages, errors that would echo huge input, names that only look different,
//! resource names with aliases, counters pushed to their limits, and random requests.

mod counters;
mod error_info;
mod framing;
mod headers;
mod names;
mod props;
mod text;
mod wire;

use group_service::grpc::codec::RawCodec;
use prost::Message;
use tonic::metadata::MetadataValue;
use tonic::{Request, Status};

use crate::harness::TestServer;

/// Calls `path` (`/groups.v1.GroupService/GetGroup`) with `body` as the request message, as
/// a service of tenant 1 when the service is DirectoryService or EventService and as admin
/// user 1 of tenant 1 otherwise; the answer's length on success. Sends bytes no generated
/// client would (not UTF-8, truncated, oversized) as well.
pub async fn call_raw(srv: &TestServer, path: &str, body: Vec<u8>) -> Result<usize, Status> {
    let service = path.contains("DirectoryService") || path.contains("EventService");
    let token = srv.token(
        1,
        if service { "directory" } else { "1" },
        !service,
        service,
    );
    let mut grpc = tonic::client::Grpc::new(srv.channel.clone());
    grpc.ready()
        .await
        .map_err(|e| Status::unavailable(e.to_string()))?;
    let mut req = Request::new(prost::bytes::Bytes::from(body));
    let value: MetadataValue<_> = format!("Bearer {token}").parse().expect("ascii token");
    req.metadata_mut().insert("authorization", value);
    let path = path.parse().expect("a method path");
    if path_is_streaming(&path) {
        let mut stream = grpc
            .server_streaming(req, path, RawCodec)
            .await?
            .into_inner();
        return Ok(stream.message().await?.map_or(0, |m| m.len()));
    }
    Ok(grpc.unary(req, path, RawCodec).await?.into_inner().len())
}

fn path_is_streaming(path: &tonic::codegen::http::uri::PathAndQuery) -> bool {
    path.path().ends_with("/WatchEvents")
}

/// `call_raw` with an encoded message.
pub async fn call(srv: &TestServer, path: &str, req: impl Message) -> Result<usize, Status> {
    call_raw(srv, path, req.encode_to_vec()).await
}
