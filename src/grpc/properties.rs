//! Properties of the edge's parsing that must hold for any input, checked by the cargo-fuzz
//! targets under `fuzz/` and by the proptests of the integration suite with the same
//! functions: resource names, page tokens, update masks, bearer tokens (JWT and JWKS parsing)
//! and the decoding and conversion of every request. Each returns `Err` with what broke; no
//! input may panic.

use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::Value;

use tonic::{Code, Status};

use super::codec::decode;
use super::convert::*;
use super::pb;
use crate::auth::{DEFAULT_LEEWAY, KeySet, Verifier};
use crate::domain::caller::{Caller, Principal};
use crate::domain::external::ConvertRoom;
use crate::domain::groups::CreateGroup;
use crate::domain::members::MemberBatch;
use crate::domain::model::*;
use crate::domain::names::*;
use crate::domain::page::{PageRequest, Pager};
use crate::domain::repo::AuditFilter;
use crate::domain::settings::UpdateGroup;

/// Bad input must never be INTERNAL or UNKNOWN (R25), and must name a field when invalid.
fn client_error(what: &str, status: &Status) -> Result<(), String> {
    match status.code() {
        Code::Internal | Code::Unknown => Err(format!("{what}: {status:?}")),
        _ if status.message().len() > 1024 => {
            Err(format!("{what}: a {} byte message", status.message().len()))
        }
        _ => Ok(()),
    }
}

fn round_trip<N>(text: &str) -> Result<(), String>
where
    N: FromStr + std::fmt::Display,
{
    if let Ok(name) = text.parse::<N>()
        && name.to_string() != text
    {
        return Err(format!(
            "{text:?} reads as {name}: a second name of one resource"
        ));
    }
    Ok(())
}

/// A resource name reads back only as the text `Display` writes: no aliases.
pub fn resource_name(text: &str) -> Result<(), String> {
    round_trip::<TenantName>(text)?;
    round_trip::<UserName>(text)?;
    round_trip::<TeamName>(text)?;
    round_trip::<GroupName>(text)?;
    round_trip::<GroupPath>(text)?;
    round_trip::<RoomName>(text)?;
    let err = GroupPath::parse("name", text).err().map(Status::from);
    err.map_or(Ok(()), |s| client_error("name", &s))
}

/// Any page token is refused with INVALID_ARGUMENT unless this pager issued it for this
/// scope; a token it issued reads back as the key it holds.
pub fn page_token(token: &str, size: i32, after: i64) -> Result<(), String> {
    let pager = Pager::new(b"properties");
    let req = PageRequest {
        size,
        token: token.to_owned(),
    };
    match pager.start::<i64>("scope", &req) {
        Ok((n, _)) if !(1..=100).contains(&n) => return Err(format!("page size {n}")),
        Ok((_, Some(_))) => return Err(format!("forged token {token:?} accepted")),
        Ok(_) => {}
        Err(e) => client_error("page_token", &Status::from(e))?,
    }
    let issued = PageRequest {
        size: 10,
        token: pager.token("scope", &after),
    };
    match pager.start::<i64>("scope", &issued) {
        Ok((_, Some(k))) if k == after => {}
        other => return Err(format!("issued token read as {other:?}")),
    }
    match pager.start::<i64>("other scope", &issued) {
        Err(e) => client_error("page_token", &Status::from(e)),
        Ok(_) => Err("a token of another scope accepted".into()),
    }
}

/// Any update mask converts or is INVALID_ARGUMENT.
pub fn update_mask(paths: Vec<String>) -> Result<(), String> {
    let req = pb::UpdateGroupRequest {
        group: Some(pb::Group {
            name: "tenants/1/groups/2".into(),
            display_name: "Design".into(),
            ..Default::default()
        }),
        update_mask: Some(prost_types::FieldMask { paths }),
    };
    match UpdateGroup::try_from(req) {
        Ok(_) => Ok(()),
        Err(s) => client_error("update_mask", &s),
    }
}

const TOKEN_SECRET: &[u8] = b"properties";
const ISSUER: &str = "https://id.example";
const AUDIENCE: &str = "group-service";

/// The interceptor's answer to `authorization: Bearer <text>`; `None` when the text cannot
/// be sent as metadata at all.
fn bearer_answer(verifier: &Verifier, text: &str) -> Option<Result<Caller, Status>> {
    let value = format!("Bearer {text}").parse().ok()?;
    let mut req = tonic::Request::new(());
    req.metadata_mut().insert("authorization", value);
    Some(match verifier.interceptor()(req) {
        Ok(mut req) => req
            .extensions_mut()
            .remove::<Caller>()
            .ok_or_else(|| Status::internal("no caller after a passed check")),
        Err(status) => Err(status),
    })
}

/// Any bearer text without this service's signature is UNAUTHENTICATED.
pub fn bearer_token(text: &str) -> Result<(), String> {
    match bearer_answer(&Verifier::hs256(TOKEN_SECRET), text) {
        None => Ok(()),
        Some(Ok(caller)) => Err(format!("{text:?} passed as {caller:?} without a signature")),
        Some(Err(s)) if s.code() == Code::Unauthenticated => Ok(()),
        Some(Err(s)) => Err(format!("{text:?}: {s:?}")),
    }
}

/// A token of any header and claims bytes, correctly signed: UNAUTHENTICATED unless every
/// rule holds (the HS256 header, a positive tenant, an unexpired `exp`, no future `nbf`, a
/// canonical user id or a service name, and with `strict` the issuer and audience), and then
/// it proves exactly the caller its claims name.
pub fn signed_token(header: &[u8], claims: &[u8], strict: bool) -> Result<(), String> {
    let message = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let key = EncodingKey::from_secret(TOKEN_SECRET);
    let signature = jsonwebtoken::crypto::sign(message.as_bytes(), &key, Algorithm::HS256)
        .map_err(|e| format!("signing: {e}"))?;
    let token = format!("{message}.{signature}");
    let mut verifier = Verifier::hs256(TOKEN_SECRET);
    if strict {
        verifier = verifier
            .with_issuers(&[ISSUER.to_owned()])
            .with_audiences(&[AUDIENCE.to_owned()]);
    }
    let caller = match bearer_answer(&verifier, &token) {
        None => return Err(format!("{token:?} is not a metadata value")),
        Some(Err(s)) if s.code() == Code::Unauthenticated => return Ok(()),
        Some(Err(s)) => return Err(format!("{token:?}: {s:?}")),
        Some(Ok(caller)) => caller,
    };
    let wrong = |what: &str| Err(format!("{token:?} passed as {caller:?} with {what}"));
    let head: Value = serde_json::from_slice(header).unwrap_or_default();
    if head["alg"] != "HS256" {
        return wrong("another algorithm");
    }
    let c: Value = serde_json::from_slice(claims).unwrap_or_default();
    if c["tenant"].as_i64() != Some(caller.tenant.0) || caller.tenant.0 <= 0 {
        return wrong("another tenant");
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_secs();
    if c["exp"]
        .as_u64()
        .is_none_or(|exp| exp + DEFAULT_LEEWAY.as_secs() < now)
    {
        return wrong("no valid exp");
    }
    if c["nbf"]
        .as_u64()
        .is_some_and(|nbf| nbf > now + DEFAULT_LEEWAY.as_secs())
    {
        return wrong("a future nbf");
    }
    let sub = c["sub"].as_str().unwrap_or_default();
    let named = match &caller.principal {
        Principal::User(user) => {
            c["svc"].as_bool() != Some(true)
                && !sub.starts_with('0')
                && sub.bytes().all(|b| b.is_ascii_digit())
                && user.0.to_string() == sub
        }
        Principal::Service(name) => c["svc"] == true && name == sub && !sub.is_empty(),
    };
    if !named {
        return wrong("another subject");
    }
    if c["admin"].as_bool().unwrap_or_default() != caller.admin_claim {
        return wrong("another admin claim");
    }
    let audience = match &c["aud"] {
        Value::String(a) => a == AUDIENCE,
        Value::Array(all) => all.iter().any(|a| a == AUDIENCE),
        _ => false,
    };
    if strict && (c["iss"] != ISSUER || !audience) {
        return wrong("another issuer or audience");
    }
    Ok(())
}

/// Any JWKS document loads or is refused, without a panic; a set that loads has a key.
pub fn jwks_document(bytes: &[u8]) -> Result<(), String> {
    match KeySet::from_jwks_json(bytes) {
        Ok(set) if set.keys.is_empty() => Err("an empty key set loaded".into()),
        _ => Ok(()),
    }
}

/// Decodes `bytes` as request `T` the way the server does, then converts it to `D`.
fn convert<T, D>(bytes: &[u8]) -> Result<(), String>
where
    T: prost::Message + prost::Name + Default,
    D: TryFrom<T, Error = Status>,
{
    let what = T::NAME;
    match decode::<T>(bytes) {
        Err(s) => client_error(what, &s),
        Ok(req) => match D::try_from(req) {
            Ok(_) => Ok(()),
            Err(s) => client_error(what, &s),
        },
    }
}

macro_rules! requests {
    ($($req:ident => $out:ty,)*) => {
        /// The requests `request` knows, by index.
        pub const REQUESTS: &[&str] = &[$(stringify!($req)),*];

        /// Request `which` (an index into `REQUESTS`, modulo its length) decoded from `bytes`
        /// and converted as its handler does: never a panic, never INTERNAL.
        pub fn request(which: usize, bytes: &[u8]) -> Result<(), String> {
            let handlers: &[fn(&[u8]) -> Result<(), String>] = &[$(convert::<pb::$req, $out>),*];
            handlers[which % handlers.len()](bytes)
        }
    };
}

requests! {
    UpsertTenantRequest => Tenant,
    GetTenantRequest => TenantId,
    ListTenantsRequest => PageRequest,
    DeleteTenantRequest => TenantId,
    UpsertUserRequest => User,
    GetUserRequest => UserKey,
    ListUsersRequest => Listing<TenantId>,
    DeleteUserRequest => UserKey,
    UpsertTeamRequest => Team,
    GetTeamRequest => TeamName,
    ListTeamsRequest => Listing<TenantId>,
    DeleteTeamRequest => TeamName,
    AddContactRequest => Contact,
    ListContactsRequest => Listing<UserKey>,
    RemoveContactRequest => Contact,
    UpsertMessageRoomRequest => MessageRoom,
    GetMessageRoomRequest => RoomName,
    ListMessageRoomsRequest => Listing<TenantId>,
    DeleteMessageRoomRequest => RoomName,
    WatchEventsRequest => Watch,
    GetEarliestCursorRequest => TenantName,
    ListAuditEventsRequest => Listing<(TenantId, AuditFilter)>,
    CreateGroupRequest => CreateGroup,
    GetGroupRequest => GroupPath,
    DeleteGroupRequest => DeleteGroup,
    UpdateGroupRequest => UpdateGroup,
    ListGroupsRequest => Query,
    SearchGroupsRequest => Query,
    AutocompleteGroupsRequest => Autocomplete,
    DeleteFeatureDataRequest => DeleteFeatureData,
    ReportFeatureUsageRequest => FeatureUsage,
    ConvertMessageRoomRequest => ConvertRoom,
    GetTenantUsageRequest => TenantName,
    AddMembersRequest => MemberBatch,
    RemoveMembersRequest => MemberBatch,
    SetMembersExpiryRequest => Expiry,
    ListMembersRequest => Listing<GroupPath>,
    ListEffectiveMembersRequest => Listing<GroupPath>,
    AddMastersRequest => Masters,
    RemoveMastersRequest => Masters,
    ListMastersRequest => Listing<GroupPath>,
    CheckMembershipRequest => CheckMember,
    BatchCheckMembershipRequest => BatchCheck,
    ListGroupsOfUserRequest => GroupsOfUser,
    LeaveRequest => GroupPath,
}
