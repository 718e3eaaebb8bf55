//! The database's generation, for the read cache (`domain::cache`): a number that grows after
//! every committed write of this process and after every write another process announces.
//!
//! Announcing: after a write transaction on PostgreSQL commits, the process sends
//! `NOTIFY CHANNEL, '<token>'` on its listening connection (`wrote`): one notification in
//! flight at a time, so commits that end while one is being sent share the next. It is not
//! sent inside the writing transaction: PostgreSQL serializes every committing transaction
//! that has notified, through its WAL flush, on one lock for the whole cluster (TPC-B with a
//! `pg_notify` per transaction: 463 tps against 2,458 without, docs/decisions.md). A process
//! that dies between a commit and its notification leaves other processes' cached answers
//! stale until they age out (`cache::MAX_AGE`).
//! Listening: the same connection `LISTEN`s on `CHANNEL` and bumps the generation on each
//! notification of another process (its own carry its token). While that connection is down
//! (or not yet up) the generation is unknown and the cache is bypassed; when it comes back
//! the generation is bumped, because notifications may have been missed meanwhile, and a
//! notification owed is sent. SQLite is one process: its own writes are all there is, and the
//! generation is always known.
//!
//! The same signal wakes the change feed's followers (`domain::feed`): on PostgreSQL the
//! notification of another process's commit, on SQLite the process's own commit.
//!
//! The listening connection is also how a process knows that PostgreSQL answers
//! (`available`): it is probed every `PROBE` and a lost one is replaced as soon as the
//! database accepts connections again (tried every `RECONNECT`). While it is down, calls fail
//! at once with UNAVAILABLE instead of waiting out the pool's timeout, and health reports
//! NOT_SERVING; both come back within `RECONNECT` of the database's return.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;

/// The PostgreSQL channel on which writes are announced.
pub(crate) const CHANNEL: &str = "group_service_changes";

/// How often the listening connection is probed, and how long a probe (or connecting again)
/// may take: a database that stops answering without closing the connection is noticed
/// within their sum, 1 s.
const PROBE: Duration = Duration::from_millis(400);
const PROBE_TIMEOUT: Duration = Duration::from_millis(600);
/// How often a lost listening connection is tried again.
const RECONNECT: Duration = Duration::from_millis(200);
/// How long connecting may take.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A connection with its driver, as `tokio_postgres::connect` returns it.
pub(crate) type PgLink = (
    tokio_postgres::Client,
    tokio_postgres::Connection<tokio_postgres::Socket, tokio_postgres::tls::NoTlsStream>,
);

#[derive(Debug)]
pub(crate) struct Changes {
    generation: AtomicU64,
    known: AtomicBool,
    /// Wakes the change feed's followers on every bump.
    wake: tokio::sync::watch::Sender<u64>,
    /// Whether the database answers: on PostgreSQL, whether the listening connection is up.
    up: tokio::sync::watch::Sender<bool>,
    /// A commit of this process that other processes have not been told of yet.
    owed: AtomicBool,
    /// Wakes the listening connection to send what is owed.
    announce: tokio::sync::Notify,
    /// The payload of this process's notifications, by which it knows its own.
    token: String,
}

impl Changes {
    pub fn new(known: bool) -> Arc<Changes> {
        Arc::new(Changes {
            generation: AtomicU64::new(1),
            known: AtomicBool::new(known),
            wake: tokio::sync::watch::Sender::new(1),
            // The store was just connected: the database answers until seen otherwise.
            up: tokio::sync::watch::Sender::new(true),
            owed: AtomicBool::new(false),
            announce: tokio::sync::Notify::new(),
            token: format!(
                "{:x}-{:x}",
                std::process::id(),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos())
            ),
        })
    }

    /// Whether the database answers, as last seen.
    pub fn available(&self) -> bool {
        *self.up.borrow()
    }

    /// Follows `available`.
    pub fn watch_available(&self) -> tokio::sync::watch::Receiver<bool> {
        self.up.subscribe()
    }

    /// Resolves when the database is seen not to answer (at once if it is not answering).
    pub async fn lost(&self) {
        let mut up = self.up.subscribe();
        let _ = up.wait_for(|up| !up).await;
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

    /// A write of this process committed: bumps the generation and has the listening
    /// connection tell other processes.
    pub fn wrote(&self) {
        self.bump();
        self.owed.store(true, Ordering::SeqCst);
        self.announce.notify_one();
    }

    /// Sends one notification for every commit owed so far; on failure they stay owed.
    async fn send_owed(&self, client: &tokio_postgres::Client) -> anyhow::Result<()> {
        if !self.owed.swap(false, Ordering::SeqCst) {
            return Ok(());
        }
        let sent = tokio::time::timeout(
            PROBE_TIMEOUT,
            client.batch_execute(&format!("NOTIFY {CHANNEL}, '{}'", self.token)),
        )
        .await;
        match sent {
            Ok(Ok(())) => Ok(()),
            failed => {
                self.owed.store(true, Ordering::SeqCst);
                match failed {
                    Ok(Err(e)) => Err(e.into()),
                    _ => anyhow::bail!("no answer to NOTIFY within {PROBE_TIMEOUT:?}"),
                }
            }
        }
    }

    fn set_known(&self, known: bool) {
        if known {
            self.bump();
        }
        self.known.store(known, Ordering::SeqCst);
        if !known {
            self.bump();
        }
        self.up
            .send_if_modified(|up| std::mem::replace(up, known) != known);
    }

    /// Follows other processes' writes on PostgreSQL at `url` for as long as `self` lives,
    /// starting with the connection `first`.
    pub fn listen(self: &Arc<Changes>, url: String, first: PgLink) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut link = Some(first);
            let mut down_since = None;
            loop {
                let Some(changes) = weak.upgrade() else {
                    return;
                };
                let result = match link.take() {
                    Some(link) => changes.follow(link, &mut down_since).await,
                    None => match connect(&url, PROBE_TIMEOUT).await {
                        Ok(link) => changes.follow(link, &mut down_since).await,
                        Err(e) => Err(e),
                    },
                };
                if let Err(e) = result
                    && down_since.is_none()
                {
                    tracing::error!(
                        error = %e,
                        "the database does not answer: calls fail with UNAVAILABLE, health is \
                         NOT_SERVING and the read cache is bypassed until it does"
                    );
                    down_since = Some(std::time::Instant::now());
                }
                changes.set_known(false);
                drop(changes);
                tokio::time::sleep(RECONNECT).await;
            }
        });
    }

    /// One listening connection, until it fails or `self` is the last owner.
    async fn follow(
        self: &Arc<Changes>,
        (client, mut connection): PgLink,
        down_since: &mut Option<std::time::Instant>,
    ) -> anyhow::Result<()> {
        let (tx, mut notifications) = tokio::sync::mpsc::unbounded_channel();
        let driver = tokio::spawn(async move {
            let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(message) = messages.next().await {
                let message = message.map(|m| match m {
                    tokio_postgres::AsyncMessage::Notification(n) => Some(n.payload().to_owned()),
                    _ => None,
                });
                if tx.send(message).is_err() {
                    break;
                }
            }
        });
        let result = async {
            tokio::time::timeout(PROBE_TIMEOUT, client.batch_execute(&format!("LISTEN {CHANNEL}")))
                .await??;
            self.set_known(true);
            if let Some(since) = down_since.take() {
                tracing::info!(after = ?since.elapsed(), "the database answers again");
            }
            self.send_owed(&client).await?;
            // An interval, not a sleep per turn: notifications must not put the probe off.
            let mut probe = tokio::time::interval_at(tokio::time::Instant::now() + PROBE, PROBE);
            probe.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    message = notifications.recv() => match message {
                        Some(Ok(Some(payload))) if payload == self.token => {}
                        Some(Ok(Some(_))) => self.bump(),
                        Some(Ok(None)) => {}
                        Some(Err(e)) => return Err(e.into()),
                        None => anyhow::bail!("the listening connection closed"),
                    },
                    _ = self.announce.notified() => self.send_owed(&client).await?,
                    _ = probe.tick() => {
                        if Arc::strong_count(self) == 1 {
                            return Ok(());
                        }
                        tokio::time::timeout(PROBE_TIMEOUT, client.simple_query("SELECT 1")).await??;
                    }
                }
            }
        }
        .await;
        driver.abort();
        result
    }
}

/// Connects to PostgreSQL at `url`, waiting at most `timeout`.
pub(crate) async fn connect(url: &str, timeout: Duration) -> anyhow::Result<PgLink> {
    match tokio::time::timeout(timeout, tokio_postgres::connect(url, tokio_postgres::NoTls)).await {
        Ok(link) => Ok(link?),
        Err(_) => anyhow::bail!("no answer within {timeout:?}"),
    }
}
