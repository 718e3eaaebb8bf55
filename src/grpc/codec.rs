//! The protobuf codec of every `groups.v1` service and client (`build.rs` names it with
//! `codec_path`): prost's encoding, with two answers of R25 added on the way in.
//!
//! - A request that is not a valid message (truncated, a string that is not UTF-8) answers
//!   INVALID_ARGUMENT `MALFORMED_MESSAGE`, not prost's INTERNAL: the client sent it, nothing
//!   failed here.
//! - Before decoding a request, each string field is checked against the text rule of
//!   `domain::text` (no control characters) by walking the wire bytes with the message's
//!   descriptor, so every text field of every request, present and future, follows the one
//!   rule and the violation names the field's path (`group.display_name`,
//!   `mailing_list.external_recipients[2]`).
//!
//! Sizes and framing are not the codec's: tonic and `grpc::wire` check them before the codec
//! sees a message (`grpc::limits`).

use std::fmt;
use std::marker::PhantomData;
use std::sync::OnceLock;

use prost::bytes::{Buf, BufMut, Bytes};
use prost::{Message, Name};
use prost_reflect::{DescriptorPool, Kind, MessageDescriptor};
use tonic::Status;
use tonic::codec::{DecodeBuf, EncodeBuf};

use crate::domain::error::Error;
use crate::domain::text;

/// Messages nest this deep at most in `groups.v1`; the walk stops deeper (prost refuses
/// deeper nesting anyway).
const MAX_DEPTH: usize = 16;

/// `tonic::codec::Codec` for prost messages of `groups.v1`.
#[derive(Debug)]
pub struct Codec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for Codec<T, U> {
    fn default() -> Self {
        Codec(PhantomData)
    }
}

impl<T, U> tonic::codec::Codec for Codec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Name + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = Encoder<T>;
    type Decoder = Decoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        Encoder(PhantomData)
    }

    fn decoder(&mut self) -> Self::Decoder {
        Decoder(PhantomData)
    }
}

#[derive(Debug)]
pub struct Encoder<T>(PhantomData<T>);

impl<T: Message> tonic::codec::Encoder for Encoder<T> {
    type Item = T;
    type Error = Status;

    fn encode(&mut self, item: T, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        // EncodeBuf grows as needed: encoding into it cannot run out of space.
        item.encode(buf)
            .map_err(|e| Error::Internal(format!("encoding: {e}")).into())
    }
}

#[derive(Debug)]
pub struct Decoder<U>(PhantomData<U>);

impl<U: Message + Name + Default> tonic::codec::Decoder for Decoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        let bytes = buf.copy_to_bytes(buf.remaining());
        decode::<U>(&bytes).map(Some)
    }
}

/// Sends and receives message bytes as they are: for the load tool and for tests that send
/// bytes no generated client would (not UTF-8, truncated, oversized).
#[derive(Clone, Copy, Debug, Default)]
pub struct RawCodec;

impl tonic::codec::Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;
    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }
    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl tonic::codec::Encoder for RawCodec {
    type Item = Bytes;
    type Error = Status;
    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawCodec {
    type Item = Bytes;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

/// Decodes one message of type `U` as the server does: the text rule first when `U` is a
/// request, then prost; every failure is INVALID_ARGUMENT.
pub fn decode<U: Message + Name + Default>(bytes: &[u8]) -> Result<U, Status> {
    if U::NAME.ends_with("Request")
        && let Some(desc) = pool().get_message_by_name(&U::full_name())
    {
        check_text(&desc, bytes, None, 0).map_err(Status::from)?;
    }
    U::decode(bytes).map_err(|_| {
        super::status::with_reason(
            tonic::Code::InvalidArgument,
            super::status::reason::MALFORMED_MESSAGE,
            format!("the request is not a valid {} message", U::NAME),
        )
    })
}

fn pool() -> &'static DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        // The descriptors are compiled into the binary by build.rs from the same protos as
        // the messages: they always decode.
        DescriptorPool::decode(super::pb::FILE_DESCRIPTOR_SET).unwrap_or_default()
    })
}

/// Where a field sits in a request (`group.mailing_list.external_recipients[2]`): a chain of
/// borrowed frames, written out only for a violation, so a valid request allocates nothing.
struct FieldPath<'a> {
    parent: Option<&'a FieldPath<'a>>,
    name: &'a str,
    index: Option<usize>,
}

impl fmt::Display for FieldPath<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(parent) = self.parent {
            write!(f, "{parent}.")?;
        }
        f.write_str(self.name)?;
        match self.index {
            Some(i) => write!(f, "[{i}]"),
            None => Ok(()),
        }
    }
}

/// Checks every string field of the message in `bytes` (of type `desc`, inside `parent`)
/// against the text rule. Bytes that are not a well-formed message end the walk without a
/// verdict: prost's decoding then refuses them.
fn check_text(
    desc: &MessageDescriptor,
    mut bytes: &[u8],
    parent: Option<&FieldPath<'_>>,
    depth: usize,
) -> Result<(), Error> {
    if depth > MAX_DEPTH {
        return Ok(());
    }
    let mut seen: Vec<(u32, usize)> = Vec::new();
    while !bytes.is_empty() {
        let Ok(key) = prost::encoding::decode_varint(&mut bytes) else {
            return Ok(());
        };
        let (tag, wire_type) = ((key >> 3) as u32, key & 7);
        let skip = match wire_type {
            0 => match prost::encoding::decode_varint(&mut bytes) {
                Ok(_) => 0,
                Err(_) => return Ok(()),
            },
            1 => 8,
            5 => 4,
            2 => {
                let Ok(len) = prost::encoding::decode_varint(&mut bytes) else {
                    return Ok(());
                };
                let Some(value) = usize::try_from(len).ok().and_then(|n| bytes.get(..n)) else {
                    return Ok(());
                };
                bytes = &bytes[value.len()..];
                if let Some(field) = desc.get_field(tag) {
                    let index =
                        (field.is_list() || field.is_map()).then(|| occurrence(&mut seen, tag));
                    let path = FieldPath {
                        parent,
                        name: field.name(),
                        index,
                    };
                    match field.kind() {
                        Kind::String => check_string(&path, value)?,
                        Kind::Message(inner) => check_text(&inner, value, Some(&path), depth + 1)?,
                        _ => {}
                    }
                }
                0
            }
            _ => return Ok(()),
        };
        let Some(rest) = bytes.get(skip..) else {
            return Ok(());
        };
        bytes = rest;
    }
    Ok(())
}

/// The index of this occurrence of repeated field `tag` in the message.
fn occurrence(seen: &mut Vec<(u32, usize)>, tag: u32) -> usize {
    match seen.iter_mut().find(|(t, _)| *t == tag) {
        Some((_, n)) => {
            *n += 1;
            *n
        }
        None => {
            seen.push((tag, 0));
            0
        }
    }
}

fn check_string(path: &FieldPath<'_>, value: &[u8]) -> Result<(), Error> {
    let Ok(text) = std::str::from_utf8(value) else {
        return Err(Error::invalid(path.to_string(), "must be UTF-8"));
    };
    match text::first_forbidden(path.name, text) {
        Some(c) => Err(Error::invalid(
            path.to_string(),
            text::forbidden_description(c),
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::grpc::pb;
    use tonic::Code;
    use tonic_types::StatusExt;

    fn field_of(status: &Status) -> String {
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        let details = status.get_error_details();
        details.bad_request().unwrap().field_violations[0]
            .field
            .clone()
    }

    #[test]
    fn a_control_character_is_named_by_its_path() {
        let req = pb::CreateGroupRequest {
            parent: "tenants/1".into(),
            group: Some(pb::Group {
                display_name: "a\0b".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let err = decode::<pb::CreateGroupRequest>(&req.encode_to_vec()).unwrap_err();
        assert_eq!(field_of(&err), "group.display_name");

        let req = pb::UpdateGroupRequest {
            group: Some(pb::Group {
                description: "line\nline".into(),
                mailing_list: Some(pb::MailingList {
                    external_recipients: vec!["a@x.test".into(), "b\u{7f}@x.test".into()],
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let err = decode::<pb::UpdateGroupRequest>(&req.encode_to_vec()).unwrap_err();
        assert_eq!(field_of(&err), "group.mailing_list.external_recipients[1]");
    }

    #[test]
    fn bytes_that_are_no_message_are_invalid_argument() {
        // Field 1 (parent), length 2, not UTF-8.
        let err = decode::<pb::ListGroupsRequest>(&[0x0a, 0x02, 0xff, 0xfe]).unwrap_err();
        assert_eq!(field_of(&err), "parent");
        // A length running past the end.
        let err = decode::<pb::ListGroupsRequest>(&[0x0a, 0x09, b'x']).unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
    }
}
