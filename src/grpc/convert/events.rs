//! `groups.v1.EventService` messages.

use std::str::FromStr;

use tonic::Status;

use super::groups::timestamp;
use super::{Listing, invalid, listing, pb};
use crate::domain::feed::FeedItem;
use crate::domain::model::{Event, TenantId};
use crate::domain::names::{GroupName, TenantName};
use crate::domain::repo::AuditFilter;
use crate::domain::text::quote;

/// A WatchEvents request: whose events, after which cursor.
#[derive(Debug)]
pub struct Watch {
    pub tenant: TenantId,
    pub after: i64,
}

decode! {
    pb::WatchEventsRequest => Watch = |r| Ok(Watch {
        tenant: TenantName::parse("parent", &r.parent)?.tenant,
        after: r.after_cursor,
    });
    pb::GetEarliestCursorRequest => TenantName = |r| Ok(TenantName::parse("parent", &r.parent)?);
    pb::ListAuditEventsRequest => Listing<(TenantId, AuditFilter)> = |r| {
        let tenant = TenantName::parse("parent", &r.parent)?.tenant;
        let filter = audit_filter(&r.filter, tenant)?;
        Ok(listing((tenant, filter), r.page_size, r.page_token))
    };
}

/// `actor = "..."`, `group = "tenants/1/groups/2"`, `kind = "..."`, `create_time >= "RFC 3339"`,
/// `create_time < "RFC 3339"`, joined by AND. Values are quoted.
pub fn audit_filter(text: &str, tenant: TenantId) -> Result<AuditFilter, Status> {
    let mut out = AuditFilter::default();
    if text.trim().is_empty() {
        return Ok(out);
    }
    for clause in text.split(" AND ") {
        let clause = clause.trim();
        let (key, op, value) = [">=", "<", "="]
            .iter()
            .find_map(|op| {
                clause
                    .split_once(op)
                    .map(|(k, v)| (k.trim(), *op, v.trim()))
            })
            .ok_or_else(|| {
                invalid(
                    "filter",
                    format!("{} is not key = \"value\"", quote(clause)),
                )
            })?;
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .ok_or_else(|| invalid("filter", format!("{}: quote the value", quote(clause))))?;
        let time = |v: &str| {
            prost_types::Timestamp::from_str(v)
                .map(|t| t.seconds * 1_000_000 + i64::from(t.nanos) / 1000)
                .map_err(|_| invalid("filter", format!("{} is not an RFC 3339 time", quote(v))))
        };
        match (key, op) {
            ("actor", "=") => out.actor = Some(value.to_owned()),
            ("kind", "=") => out.kind = Some(value.to_owned()),
            ("group", "=") => {
                let g = GroupName::parse("filter", value)?;
                if g.tenant != tenant {
                    return Err(invalid("filter", "the group is not of the listed tenant"));
                }
                out.group = Some(g.group);
            }
            ("create_time", ">=") => out.since = Some(time(value)?),
            ("create_time", "<") => out.until = Some(time(value)?),
            _ => {
                return Err(invalid(
                    "filter",
                    format!(
                        "{}: use actor, group or kind = \"...\", create_time >= or < \
                         \"RFC 3339\"",
                        quote(clause)
                    ),
                ));
            }
        }
    }
    Ok(out)
}

impl From<Event> for pb::Event {
    fn from(e: Event) -> Self {
        pb::Event {
            cursor: e.seq,
            name: format!("tenants/{}/events/{}", e.tenant, e.id.0),
            kind: e.kind,
            group: e
                .group
                .map(|g| format!("tenants/{}/groups/{}", e.tenant, g.0))
                .unwrap_or_default(),
            actor: e.actor,
            create_time: Some(timestamp(e.create_time)),
            payload_json: e.payload,
        }
    }
}

impl From<FeedItem> for pb::WatchEventsResponse {
    fn from(item: FeedItem) -> Self {
        use pb::watch_events_response::Item;
        pb::WatchEventsResponse {
            item: Some(match item {
                FeedItem::Event(e) => Item::Event(e.into()),
                FeedItem::Checkpoint(cursor) => Item::Checkpoint(pb::Cursor { cursor }),
            }),
        }
    }
}

impl From<i64> for pb::Cursor {
    fn from(cursor: i64) -> Self {
        pb::Cursor { cursor }
    }
}

page_response! {
    ListAuditEventsResponse { events: Event }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn audit_filters_take_actor_group_kind_and_a_time_range() {
        let f = audit_filter(
            "actor = \"tenants/1/users/2\" AND group = \"tenants/1/groups/9\" AND \
             kind = \"members.added\" AND create_time >= \"2026-12-01T00:00:00Z\" AND \
             create_time < \"2026-12-01T00:00:01Z\"",
            TenantId(1),
        )
        .unwrap();
        assert_eq!(f.actor.as_deref(), Some("tenants/1/users/2"));
        assert_eq!(f.group, Some(crate::domain::model::GroupId(9)));
        assert_eq!(f.kind.as_deref(), Some("members.added"));
        assert_eq!(f.until.unwrap() - f.since.unwrap(), 1_000_000);
        for bad in [
            "actor = tenants/1/users/2",
            "owner = \"x\"",
            "create_time >= \"yesterday\"",
            "group = \"tenants/2/groups/9\"",
        ] {
            assert!(audit_filter(bad, TenantId(1)).is_err(), "{bad}");
        }
    }
}
