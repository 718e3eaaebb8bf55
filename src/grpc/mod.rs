//! The thin gRPC edge: decode a request into a domain command (`TryFrom`, INVALID_ARGUMENT
//! naming the field), take the `Caller` from the request's extensions, make one domain call,
//! encode the answer. No SQL and no rules here.

mod convert;
mod directory;
mod groups;
mod membership;
mod status;

pub use directory::DirectoryApi;
pub use groups::GroupApi;
pub use membership::MembershipApi;
pub use status::to_status;

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
        .ok_or_else(|| Status::unauthenticated("missing bearer token"))
}
