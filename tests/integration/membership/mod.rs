//! MembershipService: members, Group Masters, nested groups, transitive membership and
//! cursor pagination (R03, R05, R06, R07, R17, R21, R22, R23, R24, R25).

mod access;
mod batch_checks;
mod checks;
mod churn;
mod expiry;
mod limits;
mod masters;
mod members;
mod names;
mod nesting;
mod paging;

/// The tenant most tests work in; user 1 is its admin.
const T: i64 = 1;
