//! A JWKS kept fresh: read from a file or fetched over HTTP(S), reloaded every interval, and
//! early (at most once per interval) when a token names a key id the set lacks. A reload
//! that fails keeps the last good set.

use std::path::PathBuf;
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::keys::KeySet;

/// Where a JWKS comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JwksSource {
    File(PathBuf),
    Url(String),
}

impl JwksSource {
    /// An `http://` or `https://` URL, otherwise a file path.
    pub fn parse(s: &str) -> Self {
        if s.starts_with("https://") || s.starts_with("http://") {
            JwksSource::Url(s.to_owned())
        } else {
            JwksSource::File(PathBuf::from(s))
        }
    }

    pub(crate) async fn load(&self) -> anyhow::Result<KeySet> {
        let bytes = match self {
            JwksSource::File(path) => tokio::fs::read(path)
                .await
                .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?,
            JwksSource::Url(url) => super::fetch::get(url, FETCH_TIMEOUT).await?,
        };
        KeySet::from_jwks_json(&bytes)
    }
}

impl std::fmt::Display for JwksSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JwksSource::File(path) => write!(f, "{}", path.display()),
            JwksSource::Url(url) => f.write_str(url),
        }
    }
}

const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// The keys a verifier reads on every call, and the bell that asks for an early reload.
pub(crate) struct Keys {
    current: RwLock<Arc<KeySet>>,
    /// `None` for static keys, which never change.
    early: Option<Arc<Notify>>,
}

impl Keys {
    pub fn fixed(set: KeySet) -> Arc<Self> {
        Arc::new(Keys {
            current: RwLock::new(Arc::new(set)),
            early: None,
        })
    }

    /// Loads the set once (an error here stops the start) and spawns its reloader, which
    /// ends once the verifier is gone.
    pub async fn refreshed(source: JwksSource, interval: Duration) -> anyhow::Result<Arc<Self>> {
        let first = source
            .load()
            .await
            .map_err(|e| anyhow::anyhow!("JWKS {source}: {e}"))?;
        let early = Arc::new(Notify::new());
        let keys = Arc::new(Keys {
            current: RwLock::new(Arc::new(first)),
            early: Some(early.clone()),
        });
        tokio::spawn(reload(Arc::downgrade(&keys), source, interval, early));
        Ok(keys)
    }

    pub fn current(&self) -> Arc<KeySet> {
        // A panic while holding the lock cannot leave a half-written set: writers swap an Arc.
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// A token named a key id the set lacks: perhaps the provider rotated.
    pub fn ask_early_reload(&self) {
        if let Some(early) = &self.early {
            early.notify_one();
        }
    }

    fn replace(&self, set: KeySet) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(set);
    }
}

async fn reload(keys: Weak<Keys>, source: JwksSource, interval: Duration, early: Arc<Notify>) {
    let mut due = Instant::now() + interval;
    let mut early_allowed = Instant::now();
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(due) => {}
            () = early.notified() => {
                let now = Instant::now();
                if now < early_allowed {
                    continue;
                }
                early_allowed = now + interval;
            }
        }
        if keys.strong_count() == 0 {
            return;
        }
        let loaded = source.load().await;
        let Some(keys) = keys.upgrade() else { return };
        match loaded {
            Ok(set) => {
                tracing::debug!(%source, keys = set.keys.len(), "JWKS reloaded");
                keys.replace(set);
            }
            Err(e) => {
                tracing::warn!(%source, error = %e, "JWKS reload failed; keeping the last good set")
            }
        }
        due = Instant::now() + interval;
    }
}
