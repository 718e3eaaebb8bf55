//! Request ids (AIP-155): a call retried with the same `request_id` gets the first call's
//! answer; the same id with another request is refused (`REQUEST_ID_REUSED`). Creates remember
//! the group they made, batch calls their whole answer.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::caller::Caller;
use super::error::{Error, Reason, Result};
use super::model::{GroupId, TenantId};
use super::repo::Tx;

/// What identifies a request for idempotency: method, caller and content, hashed.
pub(crate) fn fingerprint(method: &str, caller: &Caller, content: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(format!("{method}|{}|{:?}|", caller.tenant, caller.principal).as_bytes());
    h.update(content.as_bytes());
    h.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A request id and the fingerprint of the request that carries it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RequestKey<'a> {
    pub id: &'a str,
    pub fingerprint: &'a str,
}

fn reused() -> Error {
    Error::InvalidArgumentReason {
        reason: Reason::RequestIdReused,
        field: "request_id",
        description: "this request_id was used for a different request".into(),
    }
}

/// A claim whose transaction rolled back is gone by the time it could be read: run again.
fn rolled_back() -> Error {
    Error::Retry("request id claimed by a rolled back call".into())
}

/// Claims the request id for a create of group `id`. `Some(group)` when an earlier call with
/// this id created `group` (the caller answers with it), `None` when this call goes ahead.
pub(crate) async fn claim_create(
    tx: &mut dyn Tx,
    tenant: TenantId,
    key: RequestKey<'_>,
    id: GroupId,
    now: i64,
) -> Result<Option<GroupId>> {
    if tx
        .insert_create_request(tenant, key.id, key.fingerprint, id, now)
        .await?
    {
        return Ok(None);
    }
    let (first, group) = tx
        .get_create_request(tenant, key.id)
        .await?
        .ok_or_else(rolled_back)?;
    if first != key.fingerprint {
        return Err(reused());
    }
    Ok(Some(group))
}

/// Claims the request id for a batch call. `Some(answer)` when an earlier call with this id
/// answered; `None` when this call goes ahead and must `save_batch` its answer.
pub(crate) async fn claim_batch<T: DeserializeOwned>(
    tx: &mut dyn Tx,
    tenant: TenantId,
    key: Option<RequestKey<'_>>,
    now: i64,
) -> Result<Option<T>> {
    let Some(key) = key else {
        return Ok(None);
    };
    if tx
        .claim_batch_request(tenant, key.id, key.fingerprint, now)
        .await?
    {
        return Ok(None);
    }
    let (first, response) = tx
        .get_batch_request(tenant, key.id)
        .await?
        .ok_or_else(rolled_back)?;
    if first != key.fingerprint {
        return Err(reused());
    }
    serde_json::from_str(&response)
        .map(Some)
        .map_err(|e| Error::Internal(format!("stored response: {e}")))
}

/// Stores a batch call's answer under its request id.
pub(crate) async fn save_batch<T: Serialize>(
    tx: &mut dyn Tx,
    tenant: TenantId,
    key: Option<RequestKey<'_>>,
    answer: &T,
) -> Result<()> {
    if let Some(key) = key {
        let response = serde_json::to_string(answer).map_err(|e| Error::Internal(e.to_string()))?;
        tx.save_batch_response(tenant, key.id, &response).await?;
    }
    Ok(())
}
