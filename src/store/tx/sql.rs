//! The raw SQL statements (`diesel::sql_query`: recursive walks, conditional counters, unions
//! that Diesel's DSL does not express), assembled from named pieces.
//!
//! Binds are written `$1..$n` and bound by number: PostgreSQL reads `$n` so, and the SQLite
//! backend sends the same text with `?n` (`SqliteTx::statement`), which SQLite also binds by
//! number (it would number `$n` names by first appearance). Each piece documents the binds it
//! mentions, and each statement the binds its query function passes; the tests below assemble
//! every statement and check that it mentions exactly `$1..$n`.
//!
//! Pieces over member rows also mention `$now`, the transaction's instant (`Tx::now`): a member
//! whose `expire_time` is not after it counts nowhere. Each statement numbers it as its last
//! bind (`with_now`).

use crate::domain::repo::GroupFilter;
use crate::store::rows::{
    GROUP_KIND_EXTERNAL, GROUP_KIND_INTERNAL, MEMBER_KIND_GROUP, MEMBER_KIND_TEAM,
    MEMBER_KIND_USER, PLAN_PAID, group_kind_text,
};

/// Piece. Binds `$1` group, `$2` tenant. The CTE `reach(group_id)`: groups reachable from
/// `$1` (the group itself included) inside tenant `$2`. `UNION` de-duplicates, so the walk ends
/// even if a cycle were ever stored. Each step looks the reached group's nested groups up by
/// `group_group_members_group` (`CROSS JOIN` keeps the reached groups as the outer loop on
/// SQLite), so a step costs its own edges, not the tenant's.
const REACH: &str = "WITH RECURSIVE reach(group_id) AS ( \
     SELECT CAST($1 AS BIGINT) \
     UNION \
     SELECT m.member_group_id FROM reach r CROSS JOIN group_group_members m \
     WHERE m.tenant_id = $2 AND m.group_id = r.group_id \
     AND (m.expire_time IS NULL OR m.expire_time > $now)) ";

/// Piece, after `REACH`. Mentions `$2` tenant. Effective users (`tenant_id`, `user_id`) of
/// the groups in `reach` (R22). The teams are found from the reached groups (`CROSS JOIN`
/// order), not from the tenant's team members.
const EFFECTIVE_USERS: &str = "SELECT u.user_tenant_id AS tenant_id, u.user_id AS user_id \
       FROM group_user_members u \
       WHERE u.tenant_id = $2 AND u.group_id IN (SELECT group_id FROM reach) \
       AND (u.expire_time IS NULL OR u.expire_time > $now) \
     UNION \
     SELECT tm.tenant_id AS tenant_id, tm.user_id AS user_id \
       FROM reach r CROSS JOIN group_team_members t CROSS JOIN team_members tm \
       WHERE t.tenant_id = $2 AND t.group_id = r.group_id \
       AND tm.tenant_id = t.tenant_id AND tm.team_id = t.team_id \
       AND (t.expire_time IS NULL OR t.expire_time > $now)";

/// Piece. Binds `$1` user's tenant, `$2` user id. The CTE `up(tenant_id, group_id)`: groups
/// that contain the user directly, through a team, or through nested groups. Each step follows
/// an index from the user outwards (`CROSS JOIN` fixes SQLite's join order), so the cost is the
/// user's memberships, not the tenant's.
const UP_FROM_USER: &str = "WITH RECURSIVE up(tenant_id, group_id) AS ( \
     SELECT u.tenant_id, u.group_id FROM group_user_members u \
       WHERE u.user_tenant_id = $1 AND u.user_id = $2 \
       AND (u.expire_time IS NULL OR u.expire_time > $now) \
     UNION \
     SELECT t.tenant_id, t.group_id FROM team_members tm CROSS JOIN group_team_members t \
       WHERE tm.tenant_id = $1 AND tm.user_id = $2 \
       AND t.tenant_id = tm.tenant_id AND t.team_id = tm.team_id \
       AND (t.expire_time IS NULL OR t.expire_time > $now) \
     UNION \
     SELECT m.tenant_id, m.group_id FROM group_group_members m \
       JOIN up ON m.tenant_id = up.tenant_id AND m.member_group_id = up.group_id \
       WHERE m.expire_time IS NULL OR m.expire_time > $now) ";

/// Piece, a condition on `g`, after `UP_FROM_USER`. Mentions `$1` viewer's tenant.
/// `(viewer may see g)`: public internal groups of the viewer's tenant and the viewer's groups.
/// Admins see every group of their tenant: for them the condition is `TRUE` (the statements
/// bind `$1` and `$2` in `UP_FROM_USER` either way). The membership test is a non-correlated
/// `IN`: both backends compute the viewer's groups once per statement instead of once per
/// candidate row.
fn visible(sees_all: bool) -> String {
    if sees_all {
        "TRUE".to_owned()
    } else {
        format!(
            "((g.kind = '{GROUP_KIND_INTERNAL}' AND g.is_public AND $1 = g.tenant_id) \
             OR (g.tenant_id, g.group_id) IN (SELECT up.tenant_id, up.group_id FROM up))"
        )
    }
}

/// Piece, a `SELECT g.*` after `UP_FROM_USER`. Mentions `$1` viewer's tenant and `$tenant`,
/// the bind number of the tenant being listed. External groups of other tenants that the
/// viewer is a member of (R20), for a viewer of the listed tenant. The caller adds conditions
/// on `g` and an order. `CROSS JOIN` keeps the viewer's few groups as the outer loop: SQLite may
/// otherwise scan every group of every tenant and probe `up` (PostgreSQL plans it as an inner
/// join).
///
/// Mentions `$2` too: `FOREIGN_MEMBERSHIP` gates the part, so that a viewer with no group in
/// another tenant (nearly everyone) costs nothing here. Without it PostgreSQL, estimating one
/// external row, scans the whole `groups` table for the join (21 ms of a 25 ms
/// AutocompleteGroups on the 100,000-group tenant).
fn other_tenants_external(tenant: u8) -> String {
    format!(
        "SELECT g.* FROM up CROSS JOIN groups g \
         WHERE g.tenant_id = up.tenant_id AND g.group_id = up.group_id \
         AND up.tenant_id <> ${tenant} AND $1 = ${tenant} AND g.kind = '{GROUP_KIND_EXTERNAL}' \
         AND {FOREIGN_MEMBERSHIP}"
    )
}

/// Piece, a condition. Mentions `$1` viewer's tenant, `$2` viewer's user id. Whether the
/// viewer is a direct member of a group of another tenant: `up` reaches another tenant only
/// through such a membership (teams and nesting stay inside a tenant). Not correlated, so both
/// backends evaluate it once, as a one-time filter.
const FOREIGN_MEMBERSHIP: &str = "EXISTS (SELECT 1 FROM group_user_members f \
     WHERE f.user_tenant_id = $1 AND f.user_id = $2 AND f.tenant_id <> $1 \
     AND (f.expire_time IS NULL OR f.expire_time > $now))";

/// Piece, conditions on `g`. No binds: the values are the database's own texts.
fn filter_clause(filter: &GroupFilter) -> String {
    let mut out = String::new();
    if let Some(kind) = filter.kind {
        out.push_str(&format!(" AND g.kind = '{}'", group_kind_text(kind)));
    }
    if let Some(public) = filter.is_public {
        out.push_str(if public {
            " AND g.is_public"
        } else {
            " AND NOT g.is_public"
        });
    }
    if let Some(keyed) = filter.has_external_key {
        out.push_str(if keyed {
            " AND g.external_key IS NOT NULL"
        } else {
            " AND g.external_key IS NULL"
        });
    }
    out
}

/// Numbers `$now` as bind `$n`, the statement's last.
fn with_now(sql: String, n: u32) -> String {
    sql.replace("$now", &format!("${n}"))
}

/// Escapes LIKE wildcards; patterns use `ESCAPE '\'`.
pub fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Binds `$1` tenant, `$2` the paid plan's limit, `$3` the free plan's. One conditional
/// UPDATE: the row lock it takes serializes concurrent creates of the tenant, and the
/// re-checked WHERE keeps the count at or under the limit.
pub fn take_group_slot() -> String {
    format!(
        "UPDATE tenants SET group_count = group_count + 1 \
         WHERE tenant_id = $1 \
         AND group_count < CASE WHEN plan = '{PLAN_PAID}' THEN $2 ELSE $3 END"
    )
}

/// Binds `$1` now. Rows: `NextExpiryRow`. The earliest expire time of any member after now,
/// from the partial expiry indexes.
pub const NEXT_EXPIRY: &str = "SELECT MIN(e) AS next_expiry FROM ( \
     SELECT MIN(expire_time) AS e FROM group_user_members WHERE expire_time > $1 \
     UNION ALL SELECT MIN(expire_time) FROM group_team_members WHERE expire_time > $1 \
     UNION ALL SELECT MIN(expire_time) FROM group_group_members WHERE expire_time > $1) x";

/// Binds `$1` tenant. Rows: `KindUsageRow`.
pub const USAGE_BY_KIND: &str = "SELECT kind, COUNT(*) AS n, \
     CAST(COALESCE(SUM(storage_used_bytes), 0) AS BIGINT) AS bytes \
     FROM groups WHERE tenant_id = $1 GROUP BY kind";

/// Binds `$1` delta, `$2` tenant, `$3` group.
pub const ADD_GROUP_STORAGE: &str = "UPDATE groups SET storage_used_bytes = \
     CASE WHEN storage_used_bytes + $1 < 0 THEN 0 ELSE storage_used_bytes + $1 END \
     WHERE tenant_id = $2 AND group_id = $3";

/// Binds `$1` key version, `$2` limit. Rows: `StaleKeysRow`.
pub const STALE_NAME_KEYS: &str = "SELECT tenant_id, group_id, display_name, description, \
     name_key, search_text FROM groups WHERE key_version < $1 \
     ORDER BY tenant_id, group_id LIMIT $2";

/// Binds `$1` tenant, `$2` name key, `$3` group. Rows: `FlagRow`.
pub const NAME_KEY_TAKEN: &str = "SELECT EXISTS (SELECT 1 FROM groups \
     WHERE tenant_id = $1 AND name_key = $2 AND group_id <> $3) AS flag";

/// Binds `$1` name key, `$2` search text, `$3` key version, `$4` tenant, `$5` group.
pub const SET_NAME_KEYS: &str = "UPDATE groups SET name_key = $1, search_text = $2, \
     key_version = $3 WHERE tenant_id = $4 AND group_id = $5";

/// Binds `$1` delta, `$2` tenant.
pub const ADD_TENANT_STORAGE: &str = "UPDATE tenants SET storage_used_bytes = \
     CASE WHEN storage_used_bytes + $1 < 0 THEN 0 ELSE storage_used_bytes + $1 END \
     WHERE tenant_id = $2";

/// Binds `$1` tenant, `$2` LIKE pattern of addresses with the local part, `$3` the local part,
/// `$4` the group to leave out. Rows: `FlagRow`.
pub const ADDRESS_IN_USE: &str = "SELECT (EXISTS (SELECT 1 FROM users \
       WHERE tenant_id = $1 AND lower(email) LIKE $2 ESCAPE '\\') \
     OR EXISTS (SELECT 1 FROM teams WHERE tenant_id = $1 AND lower(email) LIKE $2 ESCAPE '\\') \
     OR EXISTS (SELECT 1 FROM groups \
       WHERE tenant_id = $1 AND mailing_list = $3 AND group_id <> $4)) AS flag";

/// Piece, a condition after `REACH`. Mentions `$2` tenant, `$3` user's tenant, `$4` user id.
/// Whether the user is an effective member (R22) of the group `REACH` starts from.
///
/// Driven from the group's reach: for each reached group, one primary-key probe of the user's
/// direct row and one walk of the group's teams to the user's team row, stopping at the first
/// hit. The probes are scalar subqueries, which neither backend turns into a join, so the cost
/// is the reach's whatever plan the statement is cached under. Written as a join (`IN (SELECT
/// group_id FROM reach)`), PostgreSQL's generic plan scanned the user's every membership row
/// instead (a user in 2,000 groups: 2,000 index entries a check).
const EFFECTIVE_MEMBER: &str = "EXISTS (SELECT 1 FROM reach r WHERE \
       (SELECT 1 FROM group_user_members u \
         WHERE u.tenant_id = $2 AND u.group_id = r.group_id \
         AND u.user_tenant_id = $3 AND u.user_id = $4 \
         AND (u.expire_time IS NULL OR u.expire_time > $now)) IS NOT NULL \
     OR (SELECT 1 FROM group_team_members t CROSS JOIN team_members tm \
         WHERE t.tenant_id = $2 AND t.group_id = r.group_id \
         AND tm.tenant_id = t.tenant_id AND tm.team_id = t.team_id \
         AND tm.tenant_id = $3 AND tm.user_id = $4 \
         AND (t.expire_time IS NULL OR t.expire_time > $now) LIMIT 1) IS NOT NULL)";

/// Binds `$1` group, `$2` tenant, `$3` user's tenant, `$4` user id. Rows: `MembershipRow`.
/// The user's direct row (`master`, NULL when not a direct member) and effective membership
/// (R22) in one statement.
pub fn membership_of() -> String {
    with_now(
        format!(
            "{REACH}SELECT (SELECT d.is_master FROM group_user_members d \
               WHERE d.tenant_id = $2 AND d.group_id = $1 AND d.user_tenant_id = $3 \
               AND d.user_id = $4 AND (d.expire_time IS NULL OR d.expire_time > $now)) \
             AS master, {EFFECTIVE_MEMBER} AS member"
        ),
        5,
    )
}

/// Binds `$1` group, `$2` tenant, `$3` user's tenant, `$4` user id. Rows: `GroupSeenRow`, always
/// one. The group (NULL columns when there is none), whether the user is an effective member
/// and their direct row (`master`, NULL when not a direct member: a check of the caller's own
/// membership needs no second statement), and the user's directory row (NULL columns when the directory does not know them), in one
/// statement: what R24 and R07 need to decide a user's read of a group, the caller resolved
/// in the same round trip. The membership test is the preserved side of the `LEFT JOIN`s, so
/// it runs whether or not the group exists: a missing group costs what an invisible one does
/// (docs/reliability.md, "Existence by timing"). The group's row comes back only to a member or
/// to a user of its own tenant: to anyone else it is invisible (R07, R20), and answering NULL
/// columns for it, as for a missing group, keeps the decoding of a row another tenant may not
/// see from telling the two apart. `seen` has a `LIMIT` so that PostgreSQL keeps it a
/// subquery, evaluated once: pulled up, its test ran once for each place `member` is named.
pub fn group_seen_by() -> String {
    with_now(
        format!(
            "{REACH}SELECT g.*, seen.member, seen.master, c.email AS caller_email, \
               c.display_name AS caller_display_name, c.is_admin AS caller_is_admin, \
               c.external_messaging_allowed AS caller_external_messaging_allowed, \
               c.kind AS caller_kind \
             FROM (SELECT {EFFECTIVE_MEMBER} AS member, \
               (SELECT d.is_master FROM group_user_members d \
                 WHERE d.tenant_id = $2 AND d.group_id = $1 AND d.user_tenant_id = $3 \
                 AND d.user_id = $4 AND (d.expire_time IS NULL OR d.expire_time > $now)) \
               AS master LIMIT 1) seen \
             LEFT JOIN groups g ON g.tenant_id = $2 AND g.group_id = $1 \
               AND (seen.member OR g.tenant_id = $3) \
             LEFT JOIN users c ON c.tenant_id = $3 AND c.user_id = $4"
        ),
        5,
    )
}

/// Binds `$1` group, `$2` tenant. Rows: `UserKeyRow`.
pub fn effective_users() -> String {
    with_now(format!("{REACH}{EFFECTIVE_USERS} ORDER BY 1, 2"), 3)
}

/// Binds `$1` group, `$2` tenant, `$3`, `$4` the user key to start after, `$5` limit. Rows:
/// `UserKeyRow`.
pub fn list_effective_users() -> String {
    with_now(
        format!(
            "{REACH}SELECT e.tenant_id, e.user_id FROM ({EFFECTIVE_USERS}) e \
             WHERE e.tenant_id > $3 OR (e.tenant_id = $3 AND e.user_id > $4) \
             ORDER BY 1, 2 LIMIT $5"
        ),
        6,
    )
}

/// Binds `$1` tenant, `$2` group, `$3`, `$4`, `$5` the (kind, tenant, id) to start after,
/// `$6` limit. Rows: `MemberSqlRow`.
pub fn list_members() -> String {
    let live = "(expire_time IS NULL OR expire_time > $now)";
    with_now(
        format!(
            "SELECT kind, tenant_id, id, is_master, expire_time FROM ( \
               SELECT {MEMBER_KIND_USER} AS kind, user_tenant_id AS tenant_id, user_id AS id, \
                 is_master, expire_time FROM group_user_members \
                 WHERE tenant_id = $1 AND group_id = $2 AND {live} \
               UNION ALL \
               SELECT {MEMBER_KIND_TEAM}, tenant_id, team_id, FALSE, expire_time \
                 FROM group_team_members WHERE tenant_id = $1 AND group_id = $2 AND {live} \
               UNION ALL \
               SELECT {MEMBER_KIND_GROUP}, tenant_id, member_group_id, FALSE, expire_time \
                 FROM group_group_members WHERE tenant_id = $1 AND group_id = $2 AND {live} \
             ) m \
             WHERE kind > $3 OR (kind = $3 AND tenant_id > $4) \
               OR (kind = $3 AND tenant_id = $4 AND id > $5) \
             ORDER BY kind, tenant_id, id LIMIT $6"
        ),
        7,
    )
}

/// Binds `$1` user's tenant, `$2` user id, `$3`, `$4` the (tenant, group) to start after, `$5`
/// limit. Rows: `GroupOfUserRow`. One statement: the walk yields keys only (index-only scans
/// of the covering membership indexes), the page is cut from the keys, and only the page's
/// group rows are read, not one query each and not the user's every group.
pub fn groups_of_user() -> String {
    of_user_page("g.*")
}

/// `groups_of_user` answering only what the names-only listing needs. Rows:
/// `GroupKeyOfUserRow`.
pub fn group_keys_of_user() -> String {
    of_user_page("g.tenant_id, g.group_id, g.kind, g.is_public")
}

/// A page of the user's groups (`groups_of_user`), with `columns` of each and whether the user
/// is a direct member.
fn of_user_page(columns: &str) -> String {
    with_now(
        format!(
            "{UP_FROM_USER}, page AS (SELECT up.tenant_id, up.group_id FROM up \
               WHERE up.tenant_id > $3 OR (up.tenant_id = $3 AND up.group_id > $4) \
               ORDER BY up.tenant_id, up.group_id LIMIT $5) \
             SELECT {columns}, EXISTS ( \
               SELECT 1 FROM group_user_members d WHERE d.tenant_id = g.tenant_id \
               AND d.group_id = g.group_id AND d.user_tenant_id = $1 AND d.user_id = $2 \
               AND (d.expire_time IS NULL OR d.expire_time > $now)) AS direct \
             FROM page CROSS JOIN groups g \
             WHERE g.tenant_id = page.tenant_id AND g.group_id = page.group_id \
             ORDER BY g.tenant_id, g.group_id"
        ),
        6,
    )
}

/// Binds `$1` viewer's tenant, `$2` viewer's user id, `$3` tenant, `$4` group to start after,
/// `$5` limit. Rows: `GroupRow`.
pub fn list_groups(sees_all: bool, filter: &GroupFilter) -> String {
    let visible = visible(sees_all);
    let external = other_tenants_external(3);
    let filter = filter_clause(filter);
    let sql = format!(
        "{UP_FROM_USER}SELECT * FROM ( \
           SELECT * FROM (SELECT g.* FROM groups g WHERE g.tenant_id = $3 AND {visible} \
             AND g.group_id > $4{filter} ORDER BY g.group_id LIMIT $5) own \
           UNION ALL \
           SELECT * FROM ({external} AND g.group_id > $4{filter} \
             ORDER BY g.group_id LIMIT $5) ext \
         ) x ORDER BY group_id LIMIT $5"
    );
    with_now(sql, 6)
}

/// Binds `$1` viewer's tenant, `$2` viewer's user id, `$3` tenant, `$4` the query (exact
/// name), `$5` name prefix pattern, `$6` substring pattern, `$7`, `$8`, `$9` the (rank,
/// name_key, id) to start after, `$10` limit. Rows: `RankedGroupRow`.
///
/// A viewer who does not see the whole tenant gets two disjoint candidate sets instead of a
/// filter over the tenant's every match: the public internal groups of their own tenant (the
/// partial trigram index `groups_search_public` on PostgreSQL) and the groups they belong to
/// (`mine`, from `up`). `mine` is MATERIALIZED so that the pattern is tested on the viewer's
/// groups one by one: offered the pattern, PostgreSQL would rather hash-join `up` with every
/// match of the tenant (a common word matching 6,250 private groups took 21 ms that way, the
/// viewer's 2,000 groups take 3).
pub fn search_groups(sees_all: bool) -> String {
    let candidates = if sees_all {
        let external = other_tenants_external(3);
        format!(
            ", candidates AS (SELECT g.* FROM groups g WHERE g.tenant_id = $3 \
             UNION ALL {external})"
        )
    } else {
        let public = format!("g.kind = '{GROUP_KIND_INTERNAL}' AND g.is_public");
        format!(
            ", mine AS MATERIALIZED (SELECT g.* FROM up CROSS JOIN groups g \
               WHERE g.tenant_id = up.tenant_id AND g.group_id = up.group_id \
               AND NOT ({public} AND g.tenant_id = $1) \
               AND (g.tenant_id = $3 OR ($1 = $3 AND g.kind = '{GROUP_KIND_EXTERNAL}'))), \
             candidates AS (SELECT g.* FROM groups g WHERE g.tenant_id = $3 AND $1 = $3 \
               AND {public} UNION ALL SELECT * FROM mine)"
        )
    };
    let sql = format!(
        "{UP_FROM_USER}{candidates} SELECT * FROM ( \
           SELECT c.*, CASE WHEN c.name_key = $4 THEN 0 \
             WHEN c.name_key LIKE $5 ESCAPE '\\' THEN 1 ELSE 2 END AS search_rank \
           FROM candidates c WHERE c.search_text LIKE $6 ESCAPE '\\') s \
         WHERE s.search_rank > $7 OR (s.search_rank = $7 AND s.name_key > $8) \
           OR (s.search_rank = $7 AND s.name_key = $8 AND s.group_id > $9) \
         ORDER BY s.search_rank, s.name_key, s.group_id LIMIT $10"
    );
    with_now(sql, 11)
}

/// Binds `$1` viewer's tenant, `$2` viewer's user id, `$3` tenant, `$4` prefix, `$5` the
/// first key after every key with the prefix, `$6` limit. Rows: `GroupRow`. A range over the
/// (tenant_id, name_key) index, bytewise on both backends, cut at the limit before the two
/// parts are merged.
pub fn autocomplete_groups(sees_all: bool) -> String {
    let visible = visible(sees_all);
    let external = other_tenants_external(3);
    let sql = format!(
        "{UP_FROM_USER}SELECT * FROM ( \
           SELECT * FROM (SELECT g.* FROM groups g WHERE g.tenant_id = $3 \
             AND g.name_key >= $4 AND g.name_key < $5 AND {visible} \
             ORDER BY g.name_key LIMIT $6) own \
           UNION ALL \
           SELECT * FROM ({external} AND g.name_key >= $4 AND g.name_key < $5 \
             ORDER BY g.name_key LIMIT $6) ext \
         ) x ORDER BY name_key, group_id LIMIT $6"
    );
    with_now(sql, 7)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::model::GroupKind;

    /// The bind numbers of `sql` in order of first appearance (`$now` aside).
    fn first_appearances(sql: &str) -> Vec<u32> {
        let mut seen = Vec::new();
        let mut rest = sql;
        while let Some(at) = rest.find('$') {
            rest = &rest[at + 1..];
            if rest.starts_with("now") {
                continue;
            }
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            assert!(!digits.is_empty(), "a `$` without a number in {sql}");
            let n = digits.parse().expect("a bind number fits u32");
            if !seen.contains(&n) {
                seen.push(n);
            }
        }
        seen
    }

    /// Every one of `$1..$binds` is mentioned, and no other bind (binds go by number).
    #[track_caller]
    fn assert_numbered(sql: &str, binds: u32) {
        let mut seen = first_appearances(sql);
        seen.sort_unstable();
        let expected: Vec<u32> = (1..=binds).collect();
        assert_eq!(seen, expected, "{sql}");
        assert!(!sql.contains("$now"), "`$now` left unnumbered in {sql}");
        assert!(!sql.contains('?'), "positional `?` in {sql}");
    }

    fn filters() -> Vec<GroupFilter> {
        let mut out = vec![GroupFilter::default()];
        for kind in [None, Some(GroupKind::Internal), Some(GroupKind::External)] {
            for is_public in [None, Some(true), Some(false)] {
                for has_external_key in [None, Some(true), Some(false)] {
                    out.push(GroupFilter {
                        kind,
                        is_public,
                        has_external_key,
                    });
                }
            }
        }
        out
    }

    #[test]
    fn fixed_statements_mention_exactly_their_binds() {
        assert_numbered(&take_group_slot(), 3);
        assert_numbered(USAGE_BY_KIND, 1);
        assert_numbered(NEXT_EXPIRY, 1);
        assert_numbered(ADD_GROUP_STORAGE, 3);
        assert_numbered(ADD_TENANT_STORAGE, 2);
        assert_numbered(STALE_NAME_KEYS, 2);
        assert_numbered(NAME_KEY_TAKEN, 3);
        assert_numbered(SET_NAME_KEYS, 5);
        assert_numbered(ADDRESS_IN_USE, 4);
        assert_numbered(&group_seen_by(), 5);
        assert_numbered(&membership_of(), 5);
        assert_numbered(&effective_users(), 3);
        assert_numbered(&list_effective_users(), 6);
        assert_numbered(&list_members(), 7);
        assert_numbered(&groups_of_user(), 6);
        assert_numbered(&group_keys_of_user(), 6);
    }

    #[test]
    fn discovery_statements_mention_exactly_their_binds_for_every_viewer_and_filter() {
        for sees_all in [false, true] {
            for filter in filters() {
                assert_numbered(&list_groups(sees_all, &filter), 6);
            }
            assert_numbered(&search_groups(sees_all), 11);
            assert_numbered(&autocomplete_groups(sees_all), 7);
        }
    }

    #[test]
    fn pieces_mention_only_the_binds_they_document() {
        assert_eq!(first_appearances(REACH), [1, 2]);
        assert_eq!(first_appearances(EFFECTIVE_USERS), [2]);
        assert_eq!(first_appearances(UP_FROM_USER), [1, 2]);
        assert_eq!(first_appearances(&visible(false)), [1]);
        assert!(first_appearances(&visible(true)).is_empty());
        assert_eq!(first_appearances(&other_tenants_external(5)), [5, 1, 2]);
        assert_eq!(first_appearances(FOREIGN_MEMBERSHIP), [1, 2]);
        assert_eq!(first_appearances(EFFECTIVE_MEMBER), [2, 3, 4]);
        for filter in filters() {
            assert!(first_appearances(&filter_clause(&filter)).is_empty());
        }
    }

    #[test]
    fn group_filters_use_the_stored_kind_texts() {
        let external = GroupFilter {
            kind: Some(GroupKind::External),
            is_public: Some(false),
            has_external_key: Some(true),
        };
        assert_eq!(
            filter_clause(&external),
            format!(
                " AND g.kind = '{GROUP_KIND_EXTERNAL}' AND NOT g.is_public \
                 AND g.external_key IS NOT NULL"
            )
        );
    }

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(like_escape(r"50%_a\b"), r"50\%\_a\\b");
    }

    /// SQLite's plan of `sql` (binds unset) on the migrated schema, one line per step.
    fn sqlite_plan(conn: &mut diesel::SqliteConnection, sql: &str) -> Vec<String> {
        use diesel::RunQueryDsl;
        #[derive(diesel::QueryableByName)]
        struct Step {
            #[diesel(sql_type = diesel::sql_types::Text)]
            detail: String,
        }
        let explain = format!("EXPLAIN QUERY PLAN {}", sql.replace('$', "?"));
        diesel::sql_query(explain)
            .load::<Step>(conn)
            .unwrap_or_else(|e| panic!("{e}: {sql}"))
            .into_iter()
            .map(|s| s.detail)
            .collect()
    }

    /// A fresh SQLite database with every migration applied, for `sqlite_plan`.
    fn migrated_sqlite() -> (tempfile::TempDir, diesel::SqliteConnection) {
        use diesel::Connection;
        use diesel_migrations::MigrationHarness;
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("plan.db");
        let mut conn = diesel::SqliteConnection::establish(&path.to_string_lossy())
            .expect("a SQLite database");
        conn.run_pending_migrations(crate::store::SQLITE_MIGRATIONS)
            .expect("migrations");
        (dir, conn)
    }

    /// A user's SearchGroups scans the tenant's public internal groups in the short entries of
    /// `groups_search_public`, testing the LIKE on each entry, rather than reading every group
    /// row of the tenant (the statement took 29 ms against 14 ms for a member's search of a
    /// 100,000-group tenant: docs/performance.md).
    #[test]
    fn search_scans_the_public_search_index_on_sqlite() {
        let (_dir, mut conn) = migrated_sqlite();
        let plan = sqlite_plan(&mut conn, &search_groups(false));
        assert!(
            plan.iter()
                .any(|step| step
                    .contains("USING INDEX groups_search_public (tenant_id=? AND kind=?)")),
            "a user's search does not scan groups_search_public:\n{}",
            plan.join("\n")
        );
    }

    /// The walks down from a group follow an index on the group at every step. Without
    /// statistics SQLite preferred the upward walks' covering indexes, which match only the
    /// tenant: every step read all of the tenant's nesting and team rows (0.7 ms for a
    /// private group with 20,000 nestings in the tenant, against 12 µs).
    #[test]
    fn membership_walks_never_read_the_whole_tenant_on_sqlite() {
        let (_dir, mut conn) = migrated_sqlite();
        let statements = [
            ("group_seen_by", group_seen_by()),
            ("membership_of", membership_of()),
            ("effective_users", effective_users()),
            ("list_effective_users", list_effective_users()),
            ("groups_of_user", groups_of_user()),
            ("group_keys_of_user", group_keys_of_user()),
            ("list_members", list_members()),
        ];
        for (name, sql) in statements {
            let plan = sqlite_plan(&mut conn, &sql);
            for step in &plan {
                assert!(
                    !step.ends_with("(tenant_id=?)"),
                    "{name} reads the whole tenant: {step}\n{}",
                    plan.join("\n")
                );
            }
        }
    }
}

/// PostgreSQL's plans of the statements that test one user's membership, under the generic
/// plan a prepared statement settles on (`plan_cache_mode = force_generic_plan`), on the
/// migrated schema. Runs where `TEST_DATABASE_URL` names a server (CI's PostgreSQL run).
#[cfg(test)]
mod postgres_plans {
    use super::*;

    /// The text of `EXPLAIN` of `sql` under its generic plan, or `None` (said on stderr)
    /// without a server outside CI.
    async fn generic_plans(statements: &[(&str, String)]) -> Option<Vec<(String, String)>> {
        // The suite's SQLite run says so and returns; its PostgreSQL run (CI's included) has
        // the URL.
        let admin = match std::env::var("TEST_DATABASE_URL") {
            Ok(url) if !url.is_empty() => url,
            _ => {
                eprintln!("postgres_plans: PostgreSQL only (set TEST_DATABASE_URL)");
                return None;
            }
        };
        let name = format!("plans_{}_{}", std::process::id(), rand::random::<u32>());
        let (client, conn) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
            .await
            .expect("PostgreSQL at TEST_DATABASE_URL");
        tokio::spawn(conn);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create database");
        // The same server, the new database: the path after the authority, before any query.
        let (base, query) = admin.split_once('?').unwrap_or((&admin, ""));
        let server = match base.find("://").map(|i| i + 3) {
            Some(start) => base[start..]
                .find('/')
                .map_or(base, |slash| &base[..start + slash]),
            None => base,
        };
        let url = if query.is_empty() {
            format!("{server}/{name}")
        } else {
            format!("{server}/{name}?{query}")
        };
        let store = crate::store::Store::connect(&url, 1)
            .await
            .expect("connect");
        store.migrate().await.expect("migrate");
        drop(store);
        let (db, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .expect("connect");
        let driver = tokio::spawn(conn);
        db.batch_execute("SET plan_cache_mode = force_generic_plan")
            .await
            .expect("set");
        let mut plans = Vec::new();
        for (i, (statement, sql)) in statements.iter().enumerate() {
            let binds = sql.matches('$').count();
            let types = vec!["bigint"; binds].join(", ");
            db.batch_execute(&format!("PREPARE s{i} ({types}) AS {sql}"))
                .await
                .unwrap_or_else(|e| panic!("{statement}: {e}"));
            let args = vec!["1"; binds].join(", ");
            let rows = db
                .query(&format!("EXPLAIN (COSTS OFF) EXECUTE s{i} ({args})"), &[])
                .await
                .unwrap_or_else(|e| panic!("{statement}: {e}"));
            let plan: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
            plans.push(((*statement).to_owned(), plan.join("\n")));
        }
        drop(db);
        let _ = driver.await;
        client
            .batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)"))
            .await
            .expect("drop database");
        Some(plans)
    }

    /// Every read of `group_user_members` and `group_team_members` in a membership test is a
    /// probe of one reached group (its condition names `group_id`), never a scan of the
    /// user's every membership row, whatever the statistics.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn membership_tests_probe_the_groups_reach_under_the_generic_plan() {
        let statements = [
            ("membership_of", membership_of()),
            ("group_seen_by", group_seen_by()),
        ];
        let Some(plans) = generic_plans(&statements).await else {
            return;
        };
        for (statement, plan) in plans {
            let lines: Vec<&str> = plan.lines().collect();
            let mut probes = 0;
            for (i, line) in lines.iter().enumerate() {
                if !(line.contains(" on group_user_members")
                    || line.contains(" on group_team_members"))
                {
                    continue;
                }
                assert!(!line.contains("Seq Scan"), "{statement} scans:\n{plan}");
                let cond = lines[i + 1..]
                    .iter()
                    .find(|l| l.contains("Index Cond"))
                    .unwrap_or_else(|| panic!("{statement}: no index condition:\n{plan}"));
                assert!(
                    cond.contains("(group_id = "),
                    "{statement} does not probe by the reached group:\n{plan}"
                );
                probes += 1;
            }
            assert!(probes >= 2, "{statement}: {probes} probes:\n{plan}");
        }
    }
}
