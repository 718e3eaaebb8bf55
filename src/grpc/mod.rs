//! The thin gRPC edge: decode a request into a domain command (`TryFrom`, INVALID_ARGUMENT
//! naming the field), take the `Caller` from the request's extensions, make one domain call,
//! encode the answer. No SQL and no rules here.

/// Implements a service trait whose methods all have the one handler shape: the caller from
/// the request's extensions, the request decoded with `try_into()` (convert/), the one domain
/// call the row names, the answer encoded with `into()` and, for a read, held to the answer
/// limit (`grpc::limits`). The header names the service and the
/// caller for the rows (`|s, caller|`); a row reads
/// `method(Request) -> Response = |command: Command| domain call;`.
/// Written once here so that the methods differ only in what they call.
macro_rules! handlers {
    (impl $service_trait:ident for $api:ident |$service:ident, $caller:ident| {
        $($method:ident($req:ty) -> $resp:ty = |$cmd:ident: $cmd_ty:ty| $call:expr;)*
    }) => {
        #[tonic::async_trait]
        impl $service_trait for $api {
            $(
                async fn $method(
                    &self,
                    req: tonic::Request<$req>,
                ) -> Result<tonic::Response<$resp>, tonic::Status> {
                    let $caller = &$crate::grpc::caller(&req)?;
                    let limit = req.extensions().get::<$crate::grpc::limits::AnswerLimit>().copied();
                    let $cmd: $cmd_ty = req.into_inner().try_into()?;
                    let $service = &self.service;
                    let out = $call;
                    let answer: $resp = out.into();
                    // A call that committed a write answers what it did, whatever its size.
                    if !$crate::domain::consistency::committed_a_write() {
                        $crate::grpc::limits::check_answer(limit.as_ref(), &answer)?;
                    }
                    Ok(tonic::Response::new(answer))
                }
            )*
        }
    };
}

pub mod codec;
pub mod consistency;
mod convert;
mod directory;
mod events;
mod groups;
pub mod limits;
mod membership;
pub mod properties;
pub(crate) mod status;
pub mod web;
pub mod wire;

pub use directory::DirectoryApi;
pub use events::EventApi;
pub use groups::GroupApi;
pub use membership::MembershipApi;

/// Generated messages, clients and servers of `groups.v1`.
pub mod pb {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("groups.v1");

    /// Encoded descriptors of `groups.v1` and its imports, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/groups_descriptor.bin"));
}

use crate::domain::caller::Caller;
use tonic::{Request, Status};

/// The verified caller the auth interceptor put in the request.
fn caller<T>(req: &Request<T>) -> Result<Caller, Status> {
    req.extensions()
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| crate::auth::Rejection::Missing.into())
}
