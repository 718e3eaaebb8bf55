//! Issue 11, hostile input: control characters in every text field, undecodable and
//! oversized messages, errors that would echo huge input, names that only look different,
//! resource names with aliases, counters pushed to their limits, and random requests.

mod counters;
mod names;
mod props;
mod text;
mod wire;

use prost::Message;
use prost::bytes::{Buf, BufMut};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::metadata::MetadataValue;
use tonic::{Request, Status};

use crate::harness::TestServer;

/// Sends already-encoded request bytes and ignores the answer's content: lets a test send
/// bytes no generated client would (invalid UTF-8, truncated, oversized).
#[derive(Clone, Copy, Default)]
pub struct RawCodec;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = usize;
    type Encoder = RawCodec;
    type Decoder = RawCodec;
    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }
    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;
    fn encode(&mut self, item: Vec<u8>, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        buf.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = usize;
    type Error = Status;
    /// The answer's length in bytes.
    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<usize>, Status> {
        let n = buf.remaining();
        buf.advance(n);
        Ok(Some(n))
    }
}

/// Calls `path` (`/groups.v1.GroupService/GetGroup`) with `body` as the request message, as
/// a service of tenant 1 when the service is DirectoryService or EventService and as admin
/// user 1 of tenant 1 otherwise; the answer's length on success.
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
    let mut req = Request::new(body);
    let value: MetadataValue<_> = format!("Bearer {token}").parse().expect("ascii token");
    req.metadata_mut().insert("authorization", value);
    let path = path.parse().expect("a method path");
    if path_is_streaming(&path) {
        let mut stream = grpc
            .server_streaming(req, path, RawCodec)
            .await?
            .into_inner();
        return Ok(stream.message().await?.unwrap_or(0));
    }
    Ok(grpc.unary(req, path, RawCodec).await?.into_inner())
}

fn path_is_streaming(path: &tonic::codegen::http::uri::PathAndQuery) -> bool {
    path.path().ends_with("/WatchEvents")
}

/// `call_raw` with an encoded message.
pub async fn call(srv: &TestServer, path: &str, req: impl Message) -> Result<usize, Status> {
    call_raw(srv, path, req.encode_to_vec()).await
}
