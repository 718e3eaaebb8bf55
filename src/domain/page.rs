//! Opaque, tamper-checked page tokens for keyset pagination. A token carries the last key of
//! the page it ends and a digest of the query and tenant it belongs to, signed with HMAC-SHA256:
//! an altered token, or one reused with other parameters, is rejected.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use super::error::{Error, Reason, Result};

pub const DEFAULT_PAGE_SIZE: i64 = 50;
pub const MAX_PAGE_SIZE: i64 = 100;

type HmacSha256 = Hmac<Sha256>;

#[derive(Clone)]
pub struct Pager {
    key: Vec<u8>,
}

#[derive(Serialize, serde::Deserialize)]
struct Payload<K> {
    /// Digest of the query scope.
    q: String,
    /// The last key of the previous page.
    k: K,
}

/// A page request as the client sent it.
#[derive(Clone, Debug, Default)]
pub struct PageRequest {
    pub size: i32,
    pub token: String,
}

impl Pager {
    pub fn new(key: &[u8]) -> Self {
        Pager { key: key.to_vec() }
    }

    fn mac(&self, data: &[u8]) -> Vec<u8> {
        // HMAC accepts keys of any length.
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(data);
        mac.finalize().into_bytes()[..16].to_vec()
    }

    fn scope_digest(scope: &str) -> String {
        let d = Sha256::digest(scope.as_bytes());
        URL_SAFE_NO_PAD.encode(&d[..12])
    }

    /// The page size to use (0 means the default; larger than the maximum is coerced to it)
    /// and the key to continue after.
    pub fn start<K: DeserializeOwned>(
        &self,
        scope: &str,
        req: &PageRequest,
    ) -> Result<(i64, Option<K>)> {
        self.start_sized(scope, req, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    }

    /// `start` for a listing whose pages are `default` rows unless the request says, and at
    /// most `max`.
    pub fn start_sized<K: DeserializeOwned>(
        &self,
        scope: &str,
        req: &PageRequest,
        default: i64,
        max: i64,
    ) -> Result<(i64, Option<K>)> {
        if req.size < 0 {
            return Err(Error::invalid("page_size", "must not be negative"));
        }
        let size = match i64::from(req.size) {
            0 => default,
            n => n.min(max),
        };
        if req.token.is_empty() {
            return Ok((size, None));
        }
        let bad = || Error::InvalidArgumentReason {
            reason: Reason::InvalidPageToken,
            field: "page_token",
            description: "the page token is not valid for this query".into(),
        };
        let (payload, mac) = req.token.split_once('.').ok_or_else(bad)?;
        let payload = URL_SAFE_NO_PAD.decode(payload).map_err(|_| bad())?;
        let mac = URL_SAFE_NO_PAD.decode(mac).map_err(|_| bad())?;
        if !constant_time_eq(&self.mac(&payload), &mac) {
            return Err(bad());
        }
        let payload: Payload<K> = serde_json::from_slice(&payload).map_err(|_| bad())?;
        if payload.q != Self::scope_digest(scope) {
            return Err(bad());
        }
        Ok((size, Some(payload.k)))
    }

    /// The token for the page after `rows`, or "" when `rows` was the last page.
    pub fn next<T, K: Serialize>(
        &self,
        scope: &str,
        rows: &[T],
        size: i64,
        key: impl Fn(&T) -> K,
    ) -> String {
        if (rows.len() as i64) < size {
            return String::new();
        }
        match rows.last() {
            Some(last) => self.token(scope, &key(last)),
            None => String::new(),
        }
    }

    /// The token that continues `scope` after `last`.
    pub fn token<K: Serialize>(&self, scope: &str, last: &K) -> String {
        let payload = serde_json::to_vec(&Payload {
            q: Self::scope_digest(scope),
            k: last,
        })
        // Page keys are integers and strings: serializing them cannot fail.
        .expect("page keys serialize");
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(&payload),
            URL_SAFE_NO_PAD.encode(self.mac(&payload))
        )
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn req(token: String) -> PageRequest {
        PageRequest { size: 10, token }
    }

    #[test]
    fn token_round_trips_and_binds_to_scope() {
        let pager = Pager::new(b"k");
        let rows = vec![1i64, 2, 3];
        let token = pager.next("users|1", &rows, 3, |r| *r);
        let (_, after) = pager.start::<i64>("users|1", &req(token.clone())).unwrap();
        assert_eq!(after, Some(3));
        let err = pager
            .start::<i64>("users|2", &req(token.clone()))
            .unwrap_err();
        assert!(matches!(
            err,
            Error::InvalidArgumentReason {
                reason: Reason::InvalidPageToken,
                ..
            }
        ));
        let mut altered = token.into_bytes();
        altered[2] ^= 1;
        let altered = String::from_utf8(altered).unwrap();
        assert!(pager.start::<i64>("users|1", &req(altered)).is_err());
        assert!(
            Pager::new(b"other")
                .start::<i64>("users|1", &req(pager.next("users|1", &rows, 3, |r| *r)))
                .is_err()
        );
    }

    #[test]
    fn short_page_has_no_next_token() {
        let pager = Pager::new(b"k");
        assert_eq!(pager.next("s", &[1i64, 2], 3, |r| *r), "");
    }
}
