//! Proto messages to strict domain types (`TryFrom`, INVALID_ARGUMENT naming the field) and
//! domain answers back to proto messages (`From`). All parsing of the edge lives here; nothing
//! here calls the domain.

/// Implements `TryFrom<request>` (error `Status`) for requests whose decoding is one
/// expression: `pb::GetTenantRequest => TenantId = |r| tenant_id("tenant_id", r.tenant_id);`.
macro_rules! decode {
    ($($req:ty => $out:ty = |$r:ident| $body:expr;)*) => {$(
        impl TryFrom<$req> for $out {
            type Error = tonic::Status;
            fn try_from($r: $req) -> Result<Self, tonic::Status> {
                $body
            }
        }
    )*};
}

/// Implements `From<(rows, next_page_token)>` for list responses whose rows convert with
/// `From`: `ListUsersResponse { users: User }`.
macro_rules! page_response {
    ($($resp:ident { $field:ident: $row:ty })*) => {$(
        impl From<(Vec<$row>, String)> for super::pb::$resp {
            fn from((rows, next_page_token): (Vec<$row>, String)) -> Self {
                super::pb::$resp {
                    $field: rows.into_iter().map(Into::into).collect(),
                    next_page_token,
                }
            }
        }
    )*};
}

mod directory;
mod events;
mod groups;
mod membership;

pub use events::Watch;
pub use groups::{Autocomplete, DeleteFeatureData, DeleteGroup, FeatureUsage, Query};
pub use membership::{BatchCheck, CheckMember, Expiry, GroupsOfUser, Masters};

use tonic::Status;

use super::pb;
use crate::domain::error::Error;
use crate::domain::model::{TenantId, UserId, UserKey};
use crate::domain::page::PageRequest;

/// A list request: what is listed, and which page of it.
#[derive(Debug)]
pub struct Listing<T> {
    pub of: T,
    pub page: PageRequest,
}

fn listing<T>(of: T, size: i32, token: String) -> Listing<T> {
    Listing {
        of,
        page: page(size, token),
    }
}

fn page(size: i32, token: String) -> PageRequest {
    PageRequest { size, token }
}

fn invalid(field: &str, description: impl Into<String>) -> Status {
    Error::invalid(field, description).into()
}

/// A message field that proto3 makes optional and the API requires.
fn required<T>(field: &str, value: Option<T>) -> Result<T, Status> {
    value.ok_or_else(|| invalid(field, "is required"))
}

fn positive(field: &str, id: i64) -> Result<i64, Status> {
    if id > 0 {
        Ok(id)
    } else {
        Err(invalid(field, "must be a positive id"))
    }
}

fn tenant_id(field: &str, id: i64) -> Result<TenantId, Status> {
    Ok(TenantId(positive(field, id)?))
}

/// A user from two id fields given as (field, value); the tenant is checked first.
fn user_key(tenant: (&str, i64), user: (&str, i64)) -> Result<UserKey, Status> {
    Ok(UserKey {
        tenant: tenant_id(tenant.0, tenant.1)?,
        user: UserId(positive(user.0, user.1)?),
    })
}

/// A `UserRef` in request field `field`: violations name `{field}.tenant_id` or
/// `{field}.user_id`.
fn user_ref(field: &str, u: &pb::UserRef) -> Result<UserKey, Status> {
    user_key(
        (&format!("{field}.tenant_id"), u.tenant_id),
        (&format!("{field}.user_id"), u.user_id),
    )
}

/// A repeated `UserRef` field: violations name `{field}[{i}].tenant_id` and so on.
fn user_refs(field: &str, users: &[pb::UserRef]) -> Result<Vec<UserKey>, Status> {
    users
        .iter()
        .enumerate()
        .map(|(i, u)| user_ref(&format!("{field}[{i}]"), u))
        .collect()
}

impl From<UserKey> for pb::UserRef {
    fn from(u: UserKey) -> Self {
        pb::UserRef {
            tenant_id: u.tenant.0,
            user_id: u.user.0,
        }
    }
}

fn user_refs_out(users: Vec<UserKey>) -> Vec<pb::UserRef> {
    users.into_iter().map(Into::into).collect()
}

/// A request's Timestamp in microseconds since the epoch (nanoseconds below a microsecond are
/// dropped): the range and the nanos of the Timestamp's own definition, or INVALID_ARGUMENT.
fn timestamp_micros(field: &str, t: prost_types::Timestamp) -> Result<i64, Status> {
    const YEAR_1: i64 = -62_135_596_800;
    const YEAR_9999_END: i64 = 253_402_300_799;
    if !(0..1_000_000_000).contains(&t.nanos) {
        return Err(invalid(field, "nanos must be 0-999999999"));
    }
    if !(YEAR_1..=YEAR_9999_END).contains(&t.seconds) {
        return Err(invalid(field, "must be in the years 1-9999"));
    }
    Ok(t.seconds * 1_000_000 + i64::from(t.nanos / 1000))
}

/// Optional strings (request ids, etags): proto3 sends an absent one as "".
fn non_empty(id: String) -> Option<String> {
    Some(id).filter(|id| !id.is_empty())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use tonic::Code;
    use tonic_types::StatusExt;

    /// The (field, description) pairs of an INVALID_ARGUMENT status.
    pub(super) fn violations(status: Status) -> Vec<(String, String)> {
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        let details = status.get_error_details();
        details
            .bad_request()
            .unwrap()
            .field_violations
            .iter()
            .map(|v| (v.field.clone(), v.description.clone()))
            .collect()
    }

    pub(super) fn one(field: &str, description: &str) -> Vec<(String, String)> {
        vec![(field.to_owned(), description.to_owned())]
    }

    #[test]
    fn user_refs_round_trip_and_name_the_bad_index() {
        let key = UserKey {
            tenant: TenantId(2),
            user: UserId(7),
        };
        let r = pb::UserRef::from(key);
        assert_eq!(user_ref("user", &r).unwrap(), key);

        let bad = [
            r,
            pb::UserRef {
                tenant_id: 2,
                user_id: 0,
            },
        ];
        let err = user_refs("users", &bad).unwrap_err();
        assert_eq!(
            violations(err),
            one("users[1].user_id", "must be a positive id")
        );
        let err = user_ref("user", &pb::UserRef::default()).unwrap_err();
        assert_eq!(
            violations(err),
            one("user.tenant_id", "must be a positive id")
        );
    }

    #[test]
    fn an_empty_string_is_absent() {
        assert_eq!(non_empty(String::new()), None);
        assert_eq!(non_empty("r1".into()), Some("r1".into()));
    }
}
