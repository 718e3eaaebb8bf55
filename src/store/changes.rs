//! The database's generation, for the read cache (`domain::cache`): a number that grows after
//! every committed write of this process and after every write another process announces.
//!
//! Announcing: a write transaction on PostgreSQL runs `pg_notify(CHANNEL, '')` before it
//! commits, so the notification is delivered exactly when the write becomes visible.
//! Listening: one connection per process `LISTEN`s on `CHANNEL` and bumps the generation on
//! each notification. While that connection is down (or not yet up) the generation is
//! unknown and the cache is bypassed; when it comes back the generation is bumped, because
//! notifications may have been missed meanwhile. SQLite is one process: its own writes are
//! all there is, and the generation is always known.
//!
//! The same signal wakes the change feed's followers (`domain::feed`): on PostgreSQL the
//! notification of another process's commit, on SQLite the process's own commit.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;

/// The PostgreSQL channel on which writes are announced.
pub(crate) const CHANNEL: &str = "group_service_changes";

/// How often the listening connection is probed; a dead one is noticed within this bound.
const PROBE: Duration = Duration::from_millis(500);

#[derive(Debug)]
pub(crate) struct Changes {
    generation: AtomicU64,
    known: AtomicBool,
    /// Wakes the change feed's followers on every bump.
    wake: tokio::sync::watch::Sender<u64>,
}

impl Changes {
    pub fn new(known: bool) -> Arc<Changes> {
        Arc::new(Changes {
            generation: AtomicU64::new(1),
            known: AtomicBool::new(known),
            wake: tokio::sync::watch::Sender::new(1),
        })
    }

    /// A receiver that sees every bump from now on.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.wake.subscribe()
    }

    /// The generation, or `None` while writes of other processes could go unnoticed.
    pub fn generation(&self) -> Option<u64> {
        // Read the generation before `known`: a listener that drops after this read makes
        // `known` false, and a listener that comes back bumps the generation first.
        let generation = self.generation.load(Ordering::SeqCst);
        self.known.load(Ordering::SeqCst).then_some(generation)
    }

    /// A write committed (here or elsewhere).
    pub fn bump(&self) {
        let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        self.wake.send_replace(generation);
    }

    fn set_known(&self, known: bool) {
        if known {
            self.bump();
        }
        self.known.store(known, Ordering::SeqCst);
        if !known {
            self.bump();
        }
    }

    /// Follows other processes' writes on PostgreSQL at `url` for as long as `self` lives.
    pub fn listen(self: &Arc<Changes>, url: String) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let Some(changes) = weak.upgrade() else {
                    return;
                };
                if let Err(e) = changes.follow(&url).await {
                    tracing::warn!(error = %e, "change notifications lost; read cache bypassed");
                }
                changes.set_known(false);
                drop(changes);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
    }

    /// One listening connection, until it fails or `self` is the last owner.
    async fn follow(self: &Arc<Changes>, url: &str) -> anyhow::Result<()> {
        let (client, mut connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
        let (tx, mut notifications) = tokio::sync::mpsc::unbounded_channel();
        let driver = tokio::spawn(async move {
            let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(message) = messages.next().await {
                if tx.send(message.map(|_| ())).is_err() {
                    break;
                }
            }
        });
        let result = async {
            client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
            self.set_known(true);
            loop {
                tokio::select! {
                    message = notifications.recv() => match message {
                        Some(Ok(())) => self.bump(),
                        Some(Err(e)) => return Err(e.into()),
                        None => anyhow::bail!("the listening connection closed"),
                    },
                    _ = tokio::time::sleep(PROBE) => {
                        if Arc::strong_count(self) == 1 {
                            return Ok(());
                        }
                        tokio::time::timeout(PROBE, client.simple_query("SELECT 1")).await??;
                    }
                }
            }
        }
        .await;
        driver.abort();
        result
    }
}
