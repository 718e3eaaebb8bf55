//! The domain's one error type, and R25: bad input is INVALID_ARGUMENT naming the field
//! (`Violations`), a broken rule FAILED_PRECONDITION, PERMISSION_DENIED or RESOURCE_EXHAUSTED
//! with a stable reason. `grpc::status` maps every variant to a gRPC status with an
//! exhaustive match, so a new variant does not compile until someone picks its code.

use std::fmt;

/// Stable machine-readable reasons, sent as `google.rpc.ErrorInfo.reason` (domain `groups.v1`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// The caller is not allowed to create groups in the tenant (R04).
    GroupCreationRestricted,
    /// The caller may not change this group or this part of it (R06).
    NotGroupManager,
    /// DirectoryService and other system methods need a service caller.
    ServiceCallerRequired,
    /// The method acts for a user; a service token cannot call it.
    UserCallerRequired,
    /// The token names a tenant or user that the directory does not know.
    CallerNotInDirectory,
    /// The token's tenant is not the tenant the request names (R24).
    WrongTenant,
    /// Another group of the tenant has this name, case-insensitively (R01).
    GroupNameTaken,
    /// Another group of the tenant has this external key.
    ExternalKeyTaken,
    /// A request_id was reused with a different request.
    RequestIdReused,
    /// The tenant holds as many groups as its plan allows (R03).
    TenantGroupLimit,
    /// A user is a direct member of as many groups as allowed (R03).
    UserGroupLimit,
    /// A named master or member is not a user, team or group of the tenant.
    UnknownMember,
    /// The tenant named by the request does not exist.
    TenantNotFound,
    /// The given etag no longer matches the resource.
    EtagMismatch,
    /// A referenced user does not belong to the tenant.
    UserNotInTenant,
    /// The page token was altered or does not belong to this query.
    InvalidPageToken,
    /// Adding the group would make it contain itself (R21).
    MembershipCycle,
    /// Adding the group would nest groups deeper than allowed (R21).
    NestingTooDeep,
    /// Every named member is already a member.
    AlreadyMember,
    /// Every named user is already a Group Master.
    AlreadyMaster,
    /// None of the named members is a member.
    NotAMember,
    /// None of the named users is a Group Master.
    NotAMaster,
    /// Group Masters never expire (R05).
    MastersNeverExpire,
    /// The change would leave the group without a Group Master (R05).
    LastMaster,
    /// Members cannot leave a group by themselves (R17, R23).
    MembersCannotLeave,
    /// Note, event, task and folder need message (R08).
    MessageRequired,
    /// Feature data can be deleted only where it exists (R09).
    NoFeatureData,
    /// The mailing-list address is used by a user, a team or another group (R10).
    AddressInUse,
    /// External groups are always private (R07).
    ExternalGroupAlwaysPrivate,
    /// A designated sender must be a direct user member (R10).
    SenderNotMember,
    /// An external recipient contact is not a partner contact of the tenant (R10).
    NotAPartnerContact,
    /// External groups need NAVER WORKS Core (R13).
    CoreRequired,
    /// The user lacks `external_messaging_allowed` (R13, R14).
    ExternalPermissionRequired,
    /// LINE users are never members of an external group (R14).
    LineUserNotAllowed,
    /// External members are added only from the adding master's contacts (R15).
    NotInContacts,
    /// External groups have users as members, never teams or groups.
    ExternalGroupUsersOnly,
    /// A room is converted once, and for good (R16).
    RoomAlreadyConverted,
    /// An external group cannot be a member of another group (R24).
    ExternalGroupNotNestable,
    /// A change-feed cursor older than retention keeps.
    CursorExpired,
    /// A change-feed cursor past the tenant's last: it was never given (another database's
    /// or another tenant's cursor).
    CursorAhead,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::GroupCreationRestricted => "GROUP_CREATION_RESTRICTED",
            Reason::NotGroupManager => "NOT_GROUP_MANAGER",
            Reason::ServiceCallerRequired => "SERVICE_CALLER_REQUIRED",
            Reason::UserCallerRequired => "USER_CALLER_REQUIRED",
            Reason::CallerNotInDirectory => "CALLER_NOT_IN_DIRECTORY",
            Reason::WrongTenant => "WRONG_TENANT",
            Reason::GroupNameTaken => "GROUP_NAME_TAKEN",
            Reason::ExternalKeyTaken => "EXTERNAL_KEY_TAKEN",
            Reason::RequestIdReused => "REQUEST_ID_REUSED",
            Reason::TenantGroupLimit => "TENANT_GROUP_LIMIT",
            Reason::UserGroupLimit => "USER_GROUP_LIMIT",
            Reason::UnknownMember => "UNKNOWN_MEMBER",
            Reason::TenantNotFound => "TENANT_NOT_FOUND",
            Reason::EtagMismatch => "ETAG_MISMATCH",
            Reason::UserNotInTenant => "USER_NOT_IN_TENANT",
            Reason::InvalidPageToken => "INVALID_PAGE_TOKEN",
            Reason::MembershipCycle => "MEMBERSHIP_CYCLE",
            Reason::NestingTooDeep => "NESTING_TOO_DEEP",
            Reason::AlreadyMember => "ALREADY_MEMBER",
            Reason::AlreadyMaster => "ALREADY_MASTER",
            Reason::NotAMember => "NOT_A_MEMBER",
            Reason::NotAMaster => "NOT_A_MASTER",
            Reason::MastersNeverExpire => "MASTERS_NEVER_EXPIRE",
            Reason::LastMaster => "LAST_MASTER",
            Reason::MembersCannotLeave => "MEMBERS_CANNOT_LEAVE",
            Reason::MessageRequired => "MESSAGE_REQUIRED",
            Reason::NoFeatureData => "NO_FEATURE_DATA",
            Reason::AddressInUse => "ADDRESS_IN_USE",
            Reason::ExternalGroupAlwaysPrivate => "EXTERNAL_GROUP_ALWAYS_PRIVATE",
            Reason::SenderNotMember => "SENDER_NOT_MEMBER",
            Reason::NotAPartnerContact => "NOT_A_PARTNER_CONTACT",
            Reason::CoreRequired => "CORE_REQUIRED",
            Reason::ExternalPermissionRequired => "EXTERNAL_PERMISSION_REQUIRED",
            Reason::LineUserNotAllowed => "LINE_USER_NOT_ALLOWED",
            Reason::NotInContacts => "NOT_IN_CONTACTS",
            Reason::ExternalGroupUsersOnly => "EXTERNAL_GROUP_USERS_ONLY",
            Reason::RoomAlreadyConverted => "ROOM_ALREADY_CONVERTED",
            Reason::ExternalGroupNotNestable => "EXTERNAL_GROUP_NOT_NESTABLE",
            Reason::CursorExpired => "CURSOR_EXPIRED",
            Reason::CursorAhead => "CURSOR_AHEAD",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One bad field of a request (`google.rpc.BadRequest.FieldViolation`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldViolation {
    pub field: String,
    pub description: String,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad input; every violation names its field.
    #[error("invalid argument: {0:?}")]
    InvalidArgument(Vec<FieldViolation>),
    /// Bad input that also has a stable reason (a reused request id, a bad page token).
    #[error("invalid argument {field}: {reason}")]
    InvalidArgumentReason {
        reason: Reason,
        field: &'static str,
        description: String,
    },
    /// The resource does not exist, or the caller may not know that it does.
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("already exists: {reason}")]
    AlreadyExists { reason: Reason, message: String },
    #[error("permission denied: {reason}")]
    PermissionDenied { reason: Reason, message: String },
    #[error("failed precondition: {reason}")]
    FailedPrecondition { reason: Reason, message: String },
    /// A limit of R03; `subject` names what is full (`tenants/1`, `tenants/1/users/7`).
    #[error("quota exceeded: {reason} for {subject}")]
    QuotaExceeded {
        reason: Reason,
        subject: String,
        description: String,
    },
    #[error("aborted: {reason}")]
    Aborted { reason: Reason, message: String },
    /// A change-feed cursor whose events retention has removed; `earliest` is the oldest
    /// cursor to resume from.
    #[error("cursor {cursor} is older than the feed keeps (earliest {earliest})")]
    CursorExpired { cursor: i64, earliest: i64 },
    /// A change-feed cursor past the tenant's last event: no event of the tenant ever had it;
    /// `last` is the newest cursor given.
    #[error("cursor {cursor} is past the feed's last cursor {last}")]
    CursorAhead { cursor: i64, last: i64 },
    /// A transaction lost a race (serialization failure, deadlock); the store runs it again
    /// and only gives up after a bounded number of attempts.
    #[error("retry: {0}")]
    Retry(String),
    /// The database cannot be reached; the call may be retried.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// The connection closed under the transaction (the database restarted, or dropped an idle
    /// connection). Pooled connections are not pinged before use: a read meeting this runs
    /// again on a new connection; a write does not (its outcome may be unknown) and the caller
    /// gets UNAVAILABLE.
    #[error("connection closed: {0}")]
    Disconnected(String),
    /// A bug or an unexpected storage answer; logged, never sent to the client.
    #[error("internal: {0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> Self {
        Error::InvalidArgument(vec![FieldViolation {
            field: field.into(),
            description: description.into(),
        }])
    }

    pub fn permission(reason: Reason, message: impl Into<String>) -> Self {
        Error::PermissionDenied {
            reason,
            message: message.into(),
        }
    }

    pub fn precondition(reason: Reason, message: impl Into<String>) -> Self {
        Error::FailedPrecondition {
            reason,
            message: message.into(),
        }
    }
}

/// Collects field violations so one answer names every bad field.
#[derive(Default)]
pub struct Violations(Vec<FieldViolation>);

impl Violations {
    pub fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.0.push(FieldViolation {
            field: field.into(),
            description: description.into(),
        });
    }

    pub fn check(&mut self, ok: bool, field: &str, description: impl FnOnce() -> String) {
        if !ok {
            self.add(field, description());
        }
    }

    pub fn finish(self) -> Result<()> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Error::InvalidArgument(self.0))
        }
    }
}
