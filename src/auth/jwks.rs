//! A JWKS kept fresh: read from a file or fetched over HTTP(S), reloaded every interval, and
//! early when a token names a key id the set lacks, at most once per `EARLY_RELOAD_GAP`.
//! A reload that fails keeps the last good set.

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

/// The shortest time between two loads of the set when tokens name unknown key ids: a
/// rotated key is accepted within about this long, and a flood of made-up key ids costs the
/// provider one fetch per this long.
pub const EARLY_RELOAD_GAP: Duration = Duration::from_secs(5);

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
    // The set was loaded just before this task started.
    let mut loaded_at = Instant::now();
    let mut due = loaded_at + interval;
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(due) => {}
            // Unknown key ids ring while a reload is due anyway share it (one permit however
            // many ring); within the gap after a load, the bell moves the reload to the gap's
            // end rather than being dropped, so a rotation is never missed for an interval.
            () = early.notified() => {
                due = due.min(loaded_at + EARLY_RELOAD_GAP);
                if Instant::now() < due {
                    continue;
                }
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
        loaded_at = Instant::now();
        due = loaded_at + interval;
    }
}
