//! Listing, search and autocomplete of groups. Visibility (R07, R20) is the rule of
//! `access`, applied here by the store's statements for a whole page at once.

use super::caller::{Actor, Caller};
use super::error::{Error, Result, Violations};
use super::model::*;
use super::operation::Operation;
use super::page::PageRequest;
use super::repo::{GroupFilter, Page};
use super::service::Service;
use super::text::quote;

pub const MAX_QUERY_CHARS: usize = 100;
pub const MAX_AUTOCOMPLETE: i32 = 20;
pub const DEFAULT_AUTOCOMPLETE: i32 = 10;

/// The viewer whose visibility applies, and whether they see every group of the tenant
/// (its admins and services). A service has no user: `0/0` matches no membership.
fn viewer(actor: &Actor, tenant: TenantId) -> (UserKey, bool) {
    let key = actor.user_key().unwrap_or(UserKey {
        tenant: TenantId(0),
        user: UserId(0),
    });
    (key, actor.is_admin_of(tenant))
}

fn check_text(field: &str, text: &str) -> Result<String> {
    let mut v = Violations::default();
    let n = text.chars().count();
    v.check(n > 0 && n <= MAX_QUERY_CHARS, field, || {
        format!("must be 1-{MAX_QUERY_CHARS} characters")
    });
    v.finish()?;
    Ok(fold_case(text))
}

/// `kind = INTERNAL|EXTERNAL`, `visibility = PUBLIC|PRIVATE` and
/// `has_external_key = true|false`, joined by AND.
pub fn parse_filter(filter: &str) -> Result<GroupFilter> {
    let mut out = GroupFilter::default();
    if filter.trim().is_empty() {
        return Ok(out);
    }
    for clause in filter.split(" AND ") {
        let Some((key, value)) = clause.split_once('=') else {
            return Err(Error::invalid(
                "filter",
                format!("{} is not key = value", quote(clause)),
            ));
        };
        match (key.trim(), value.trim()) {
            ("kind", "INTERNAL") => out.kind = Some(GroupKind::Internal),
            ("kind", "EXTERNAL") => out.kind = Some(GroupKind::External),
            ("visibility", "PUBLIC") => out.is_public = Some(true),
            ("visibility", "PRIVATE") => out.is_public = Some(false),
            ("has_external_key", "true") => out.has_external_key = Some(true),
            ("has_external_key", "false") => out.has_external_key = Some(false),
            _ => {
                return Err(Error::invalid(
                    "filter",
                    format!(
                        "{}: use kind = INTERNAL|EXTERNAL, visibility = PUBLIC|PRIVATE or \
                         has_external_key = true|false",
                        quote(clause)
                    ),
                ));
            }
        }
    }
    Ok(out)
}

impl Service {
    pub async fn list_groups(
        &self,
        caller: &Caller,
        tenant: TenantId,
        filter: String,
        page: PageRequest,
    ) -> Result<(Vec<Group>, String)> {
        let parsed = parse_filter(&filter)?;
        let scope = format!(
            "list|{tenant}|{filter}|{}|{:?}",
            caller.tenant, caller.principal
        );
        let (size, after) = self.pager.start::<i64>(&scope, &page)?;
        let page = Page {
            after: after.map(GroupId),
            limit: size,
        };
        let rows = self
            .read(
                Operation::ListGroups,
                caller,
                parsed,
                |tx, actor, parsed| {
                    Box::pin(async move {
                        let (v, all) = viewer(actor, tenant);
                        tx.list_groups(tenant, v, all, parsed, page).await
                    })
                },
            )
            .await?;
        let next = self.pager.next(&scope, &rows, size, |g| g.id.0);
        Ok((rows, next))
    }

    pub async fn search_groups(
        &self,
        caller: &Caller,
        tenant: TenantId,
        query: String,
        page: PageRequest,
    ) -> Result<(Vec<Group>, String)> {
        let query = check_text("query", &query)?;
        let scope = format!(
            "search|{tenant}|{query}|{}|{:?}",
            caller.tenant, caller.principal
        );
        let (size, after) = self.pager.start::<(i32, String, i64)>(&scope, &page)?;
        let page = Page { after, limit: size };
        let rows = self
            .read(
                Operation::SearchGroups,
                caller,
                (query, page),
                |tx, actor, (query, page)| {
                    Box::pin(async move {
                        let (v, all) = viewer(actor, tenant);
                        tx.search_groups(tenant, v, all, query, page.clone()).await
                    })
                },
            )
            .await?;
        let next = self.pager.next(&scope, &rows, size, |(rank, g)| {
            (*rank, name_key(&g.display_name), g.id.0)
        });
        Ok((rows.into_iter().map(|(_, g)| g).collect(), next))
    }

    pub async fn autocomplete_groups(
        &self,
        caller: &Caller,
        tenant: TenantId,
        prefix: String,
        limit: i32,
    ) -> Result<Vec<Group>> {
        let prefix = check_text("prefix", &prefix)?;
        let mut v = Violations::default();
        v.check((0..=MAX_AUTOCOMPLETE).contains(&limit), "limit", || {
            format!("must be 0-{MAX_AUTOCOMPLETE}")
        });
        v.finish()?;
        let limit = i64::from(if limit == 0 {
            DEFAULT_AUTOCOMPLETE
        } else {
            limit
        });
        self.read(
            Operation::AutocompleteGroups,
            caller,
            prefix,
            |tx, actor, prefix| {
                Box::pin(async move {
                    let (v, all) = viewer(actor, tenant);
                    tx.autocomplete_groups(tenant, v, all, prefix, limit).await
                })
            },
        )
        .await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn r07_filter_takes_kind_and_visibility_joined_by_and() {
        let f = parse_filter("kind = EXTERNAL AND visibility = PRIVATE").unwrap();
        assert_eq!(f.kind, Some(GroupKind::External));
        assert_eq!(f.is_public, Some(false));
        assert_eq!(parse_filter("  ").unwrap(), GroupFilter::default());
        assert_eq!(
            parse_filter("visibility=PUBLIC").unwrap().is_public,
            Some(true)
        );
    }

    #[test]
    fn r25_bad_filters_name_the_filter_field() {
        for bad in [
            "kind",
            "kind = internal",
            "owner = 7",
            "kind = INTERNAL OR kind = EXTERNAL",
        ] {
            match parse_filter(bad) {
                Err(Error::InvalidArgument(v)) => assert_eq!(v[0].field, "filter", "{bad}"),
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    #[test]
    fn search_text_is_folded_and_bounded() {
        assert_eq!(check_text("query", "ΣΑΣ").unwrap(), "σασ");
        assert!(check_text("query", "").is_err());
        assert!(check_text("query", &"x".repeat(MAX_QUERY_CHARS + 1)).is_err());
    }
}
