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
pub mod names;
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

/// What identifies a request for idempotency: method, caller and content, hashed. A request
/// id reused with another fingerprint is refused (`REQUEST_ID_REUSED`).
fn request_fingerprint(method: &str, caller: &caller::Caller, content: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(format!("{method}|{}|{:?}|", caller.tenant, caller.principal).as_bytes());
    h.update(content.as_bytes());
    h.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
