//! The start-up re-key: when `domain::text::fold_case` changes (its `KEY_VERSION` is bumped),
//! the `name_key` and `search_text` stored for existing groups are computed again, so that
//! uniqueness (R01), search and autocomplete compare old and new names alike. It runs after
//! the migrations (`Store::migrate`, at every start and by `group-service migrate`) and costs
//! one indexed read once nothing is left to re-key.
//!
//! Two stored names that the new key makes equal ("Straße" and "STRASSE") both stay, with
//! their names unchanged: the group that already holds the key keeps it (among groups that
//! both change, the older, lower id, comes first), and the other's key gets the suffix
//! U+0001 and its id. U+0001 is a control character, which no name may contain, so no new
//! name can take a suffixed key; the suffixed group still sorts and autocompletes under its
//! name, and renaming it computes a plain key again. Each collision is logged.

use crate::domain::error::Result;
use crate::domain::model::{name_key, search_text};
use crate::domain::repo::StaleKeys;
use crate::domain::text::KEY_VERSION;

use super::Store;

/// Groups re-keyed per transaction.
const BATCH: i64 = 500;

/// How a re-key went.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rekeyed {
    /// Groups whose keys were computed again.
    pub groups: usize,
    /// Of those, groups whose new name key another group already had.
    pub collisions: usize,
}

impl Store {
    /// Computes the comparison keys of every group stored by an older `KEY_VERSION`.
    pub async fn rekey_names(&self) -> Result<Rekeyed> {
        let mut total = Rekeyed::default();
        loop {
            let batch = self
                .write(|tx| {
                    Box::pin(async move {
                        let mut done = Rekeyed::default();
                        for old in tx.stale_name_keys(KEY_VERSION, BATCH).await? {
                            let mut new = StaleKeys {
                                name_key: name_key(&old.display_name),
                                search_text: search_text(&old.display_name, &old.description),
                                ..old.clone()
                            };
                            if new.name_key != old.name_key
                                && tx.name_key_taken(old.tenant, old.id, &new.name_key).await?
                            {
                                tracing::warn!(
                                    tenant = old.tenant.0,
                                    group = old.id.0,
                                    "group name now equals another group's; its key is suffixed"
                                );
                                new.name_key = format!("{}\u{1}{}", new.name_key, old.id.0);
                                done.collisions += 1;
                            }
                            tx.set_name_keys(&new, KEY_VERSION).await?;
                            done.groups += 1;
                        }
                        Ok(done)
                    })
                })
                .await?;
            total.groups += batch.groups;
            total.collisions += batch.collisions;
            if batch.groups < BATCH as usize {
                if total.groups > 0 {
                    tracing::info!(?total, "group name keys computed again");
                }
                return Ok(total);
            }
        }
    }
}
