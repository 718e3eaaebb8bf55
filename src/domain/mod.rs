//! Every rule of DOMAIN.md, as plain Rust over the `Tx` interface. Knows nothing of tonic,
//! prost or Diesel.

pub mod caller;
pub mod directory;
pub mod discovery;
pub mod error;
pub mod external;
pub mod groups;
pub mod membership;
pub mod model;
pub mod page;
pub mod repo;
pub mod settings;

use crate::store::Store;
use page::Pager;

/// The service: the store plus what the rules need around it.
#[derive(Clone)]
pub struct Service {
    store: Store,
    pager: Pager,
}

impl Service {
    pub fn new(store: Store, page_token_key: &[u8]) -> Self {
        Service {
            store,
            pager: Pager::new(page_token_key),
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }
}

/// Builds an outbox event for a group.
fn group_event(
    group: &model::Group,
    kind: &str,
    payload: serde_json::Value,
    now: i64,
) -> model::Event {
    model::Event {
        tenant: group.tenant,
        id: model::EventId(model::next_id()),
        group: Some(group.id),
        kind: kind.to_owned(),
        payload: payload.to_string(),
        create_time: now,
    }
}
