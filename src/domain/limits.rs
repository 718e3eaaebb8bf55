//! R03, the product's limits, in one place: groups per tenant by plan, direct groups per
//! user; and the sizes of one request that keep a call bounded.

use super::model::Plan;

/// R03: groups a FREE tenant may hold, internal and external together.
pub const FREE_GROUP_LIMIT: i64 = 1_000;
/// R03: groups a PAID tenant may hold.
pub const PAID_GROUP_LIMIT: i64 = 100_000;
/// The most one ReportFeatureUsage may say a feature of a group holds (1 TiB). Five features
/// of each of `PAID_GROUP_LIMIT` groups at this size still sum far below `i64::MAX`, so the
/// group and tenant storage counters cannot overflow.
pub const MAX_REPORTED_BYTES: i64 = 1 << 40;
/// R03: a user is a direct member of at most this many groups.
pub const USER_GROUP_LIMIT: i64 = 2_000;

/// Members named in one AddMembers or RemoveMembers call, users in one masters call.
pub const MAX_BATCH: usize = 100;
/// Masters plus members named in one create.
pub const MAX_INITIAL_MEMBERS: usize = 100;
/// Characters of a `request_id`.
pub const MAX_REQUEST_ID_CHARS: usize = 100;

/// R03: groups a tenant on `plan` may hold.
pub fn group_limit(plan: Plan) -> i64 {
    match plan {
        Plan::Free => FREE_GROUP_LIMIT,
        Plan::Paid => PAID_GROUP_LIMIT,
    }
}
