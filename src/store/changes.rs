//! The database's revisions, for the read cache (`domain::cache`): per tenant, a number that
//! grows after every committed write of this process that changed rows of the tenant, and
//! after every such write another process announces.
//!
//! Announcing: after a write transaction on PostgreSQL commits, the process sends
//! `NOTIFY CHANNEL, '<token>|<tenants>|<flags>|<writes>|<position>'` on its listening
//! connection (`wrote`): the tenants whose rows changed, comma-separated, with `t/g` for a
//! group of tenant `t` whose own row alone changed (`*`: every tenant, for a write whose
//! reach is not tracked or more than `MAX_NAMED` names), `e` when a member's expiry was set,
//! the number of the writer's last write it covers, and the primary's WAL position. One
//! notification is in flight at a time, so commits that end while one is being sent share
//! the next, which names the union of their tenants. It is not sent inside the writing
//! transaction: PostgreSQL serializes every committing transaction that has notified, through
//! its WAL flush, on one lock for the whole cluster (TPC-B with a `pg_notify` per transaction:
//! 463 tps against 2,458 without, docs/decisions.md). A process that dies between a commit and
//! its notification leaves other processes' cached answers stale until they age out
//! (`cache::MAX_AGE`).
//! Listening: the same connection `LISTEN`s on `CHANNEL` and bumps the revisions a
//! notification of another process names (its own carry its token; a payload it cannot read
//! bumps every tenant). While that connection is down (or not yet up) the revisions are
//! unknown and the cache is bypassed; when it comes back every tenant is bumped, because
//! notifications may have been missed meanwhile, and a notification owed is sent. SQLite is
//! one process: its own writes are all there is, and the revisions are always known.
//!
//! Every write, whatever it touched, also wakes the change feed's followers (`domain::feed`):
//! on PostgreSQL the notification of another process's commit, on SQLite the process's own
//! commit.
//!
//! The listening connection is also how a process knows that PostgreSQL answers
//! (`available`): it is probed every `PROBE` and a lost one is replaced as soon as the
//! database accepts connections again (tried every `RECONNECT`). While it is down, calls fail
//! at once with UNAVAILABLE instead of waiting out the pool's timeout, and health reports
//! NOT_SERVING; both come back within `RECONNECT` of the database's return.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
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

use super::tls::{PgLink, PgTarget};
use crate::domain::Touched;
use crate::domain::consistency::{Consistency, Token};
use crate::domain::model::TenantId;

/// The most tenants one notification names; a wider write is announced as every tenant.
const MAX_NAMED: usize = 100;

/// SQL: the primary's WAL insert position in bytes, past every record written so far.
pub(crate) const POSITION: &str = "(pg_current_wal_insert_lsn() - '0/0')::bigint";

/// SQL: how far a server has replayed (a standby) or written (a primary) its WAL, in bytes.
pub(crate) const REPLAYED: &str = "(CASE WHEN pg_is_in_recovery() \
     THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_insert_lsn() END - '0/0')::bigint";

#[derive(Debug)]
pub(crate) struct Changes {
    /// Grows when every tenant may have changed; part of every tenant's revision.
    epoch: AtomicU64,
    /// Each tenant's own count of changes (0 for a tenant never changed).
    revisions: RwLock<HashMap<i64, u64, foldhash::fast::RandomState>>,
    /// Changes of a group's own row alone (`Touched::groups`): by group, and by tenant (any
    /// of its groups).
    group_rows: RwLock<HashMap<(i64, i64), u64, foldhash::fast::RandomState>>,
    tenant_rows: RwLock<HashMap<i64, u64, foldhash::fast::RandomState>>,
    /// Grows when a member's expiry may have been set (`Database::expiry_revision`).
    expiry: AtomicU64,
    known: AtomicBool,
    /// Counts every change; wakes the change feed's followers.
    wake: tokio::sync::watch::Sender<u64>,
    /// Whether the database answers: on PostgreSQL, whether the listening connection is up.
    up: tokio::sync::watch::Sender<bool>,
    /// Commits of this process that other processes have not been told of yet.
    owed: Mutex<Owed>,
    /// Wakes the listening connection to send what is owed.
    announce: tokio::sync::Notify,
    /// The payload's first field in this process's notifications, by which it knows its own.
    token: String,
    /// This process's writes so far (consistency tokens: `domain::consistency`).
    writes: AtomicU64,
    /// The highest write number heard from each other process, and the primary's WAL
    /// position its notification of it was sent at.
    heard: Mutex<HashMap<String, (u64, u64)>>,
    /// This process's writes covered by a notification already sent, and the primary's WAL
    /// position that notification was sent at: read replicas (`Store::read_pool`).
    announced: Mutex<(u64, u64)>,
    /// The highest WAL position of the primary this process knows to hold a write it has
    /// heard of or made (from the notifications, and the primary's position whenever the
    /// listening connection (re)connects): a standby that has replayed it answers every read
    /// at least as fresh as this process's revisions.
    known_position: AtomicU64,
    /// How long another process's notification is held before it is applied, in
    /// microseconds (0: none): a slow notification path on purpose, for tests.
    hold: AtomicU64,
}

/// What the next notification says.
#[derive(Debug, Default)]
struct Owed {
    any: bool,
    all: bool,
    expiry: bool,
    tenants: BTreeSet<i64>,
    groups: BTreeSet<(i64, i64)>,
    /// The number of the last write it covers.
    writes: u64,
}

impl Owed {
    fn add(&mut self, touched: &Touched) {
        self.any = true;
        self.all |= touched.all;
        self.expiry |= touched.expiry;
        self.tenants.extend(touched.tenants.iter().map(|t| t.0));
        self.groups
            .extend(touched.groups.iter().map(|(t, g)| (t.0, g.0)));
    }

    /// The notification's payload after `token`.
    fn payload(&self, token: &str) -> String {
        let tenants = if self.all || self.tenants.len() + self.groups.len() > MAX_NAMED {
            "*".to_owned()
        } else {
            let ids = self.tenants.iter().map(i64::to_string);
            let groups = self.groups.iter().map(|(t, g)| format!("{t}/{g}"));
            ids.chain(groups).collect::<Vec<String>>().join(",")
        };
        let flags = if self.expiry { "e" } else { "" };
        format!("{token}|{tenants}|{flags}|{}", self.writes)
    }
}

/// What another process's notification `payload` says changed (every tenant when it cannot
/// be read: an older or foreign payload), the number of the last write it covers, and the
/// primary's WAL position it was sent at.
fn heard(payload: &str) -> (Touched, Option<u64>, Option<u64>) {
    let mut parts = payload.split('|');
    let _token = parts.next();
    let mut touched = Touched::default();
    let (tenants, flags, writes) = (parts.next(), parts.next(), parts.next());
    let position = parts.next().and_then(|p| p.parse().ok());
    match (tenants, flags) {
        (Some(tenants), Some(flags)) if tenants != "*" => {
            for id in tenants.split(',').filter(|t| !t.is_empty()) {
                let parsed = match id.split_once('/') {
                    None => id.parse().map(|t| touched.tenant(TenantId(t))),
                    Some((t, g)) => t.parse().and_then(|t| {
                        g.parse()
                            .map(|g| touched.group(TenantId(t), crate::domain::model::GroupId(g)))
                    }),
                };
                if parsed.is_err() {
                    touched.everything();
                    break;
                }
            }
            touched.expiry |= flags.contains('e');
        }
        _ => touched.everything(),
    }
    (touched, writes.and_then(|w| w.parse().ok()), position)
}

impl Changes {
    pub fn new(known: bool) -> Arc<Changes> {
        Arc::new(Changes {
            epoch: AtomicU64::new(1),
            revisions: RwLock::default(),
            group_rows: RwLock::default(),
            tenant_rows: RwLock::default(),
            expiry: AtomicU64::new(1),
            known: AtomicBool::new(known),
            wake: tokio::sync::watch::Sender::new(1),
            // The store was just connected: the database answers until seen otherwise.
            up: tokio::sync::watch::Sender::new(true),
            owed: Mutex::default(),
            announce: tokio::sync::Notify::new(),
            token: format!(
                "{:x}-{:x}",
                std::process::id(),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos())
            ),
            writes: AtomicU64::new(0),
            heard: Mutex::default(),
            announced: Mutex::default(),
            known_position: AtomicU64::new(0),
            hold: AtomicU64::new(0),
        })
    }

    /// This process's position: its mark and its writes so far.
    pub fn token(&self) -> Token {
        Token {
            process: self.token.clone(),
            writes: self.writes.load(Ordering::SeqCst),
        }
    }

    /// Whether this process has heard of the write at `token` (its own writes it always has),
    /// waiting at most `wait` for the notification.
    pub async fn caught_up(&self, token: &Token, wait: Duration) -> bool {
        if token.process == self.token {
            return token.writes <= self.writes.load(Ordering::SeqCst);
        }
        let mut woken = self.wake.subscribe();
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let heard = self
                .heard
                .lock()
                .ok()
                .and_then(|h| h.get(&token.process).copied());
            if heard.is_some_and(|(w, _)| w >= token.writes) {
                return true;
            }
            match tokio::time::timeout_at(deadline, woken.changed()).await {
                Ok(Ok(())) => {}
                _ => return false,
            }
        }
    }

    /// Holds every notification of another process for `by` before applying it.
    pub fn hold_notifications(&self, by: Duration) {
        self.hold.store(
            u64::try_from(by.as_micros()).unwrap_or(u64::MAX),
            Ordering::SeqCst,
        );
    }

    /// Applies another process's notification: its tenants' revisions first, then its write
    /// number (a read that sees the number sees the revisions), then wakes the followers.
    /// `position`: the primary's WAL position the notification names, or one read after it
    /// arrived (a payload without one).
    fn apply_heard(&self, payload: &str, position: u64) {
        let (touched, writes, _) = heard(payload);
        // The position first: a read that sees a revision this notification bumped must not
        // be sent to a standby that lacks the write (`read_position`).
        self.learned_position(position);
        self.count(&touched);
        if let (Some(writes), Some(process)) = (writes, payload.split('|').next())
            && let Ok(mut heard) = self.heard.lock()
        {
            let last = heard.entry(process.to_owned()).or_insert((0, 0));
            *last = (last.0.max(writes), last.1.max(position));
        }
        self.wake.send_modify(|n| *n += 1);
    }

    /// The primary held every write this process knows of at `position`.
    fn learned_position(&self, position: u64) {
        self.known_position.fetch_max(position, Ordering::SeqCst);
    }

    /// The WAL position a standby must have replayed to answer the current read, or `None`
    /// when only the primary may: the read wants to be fully consistent, or names a write
    /// this process has not heard of yet, or this process has writes it has not announced
    /// (their position is not known until it does). Otherwise every write this process knows
    /// of: then an answer a standby gives is as fresh as the revisions it is cached under,
    /// and never older than what this process acknowledged or a caught-up token names.
    pub fn read_position(&self, wanted: &Consistency) -> Option<u64> {
        let (announced, _) = *self.announced.lock().ok()?;
        if announced < self.writes.load(Ordering::SeqCst) {
            return None;
        }
        match wanted {
            Consistency::Full => return None,
            Consistency::AtLeast(token) if token.process == self.token => {
                if token.writes > announced {
                    return None;
                }
            }
            Consistency::AtLeast(token) => {
                let heard = self.heard.lock().ok()?.get(&token.process).copied();
                if heard.is_none_or(|(w, _)| w < token.writes) {
                    return None;
                }
            }
            Consistency::Default => {}
        }
        Some(self.known_position.load(Ordering::SeqCst))
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

    /// The revision of `tenants` (the epoch plus each one's count), or `None` while writes of
    /// other processes could go unnoticed. Every part only grows, so the sum changes whenever
    /// one of them does and never comes back to a number it was.
    pub fn revision(&self, tenants: &[TenantId]) -> Option<u64> {
        // Read the revision before `known`: a listener that drops after this read makes
        // `known` false, and a listener that comes back bumps the epoch first.
        let mut revision = self.epoch.load(Ordering::SeqCst);
        if let Ok(counts) = self.revisions.read() {
            for t in tenants {
                revision += counts.get(&t.0).copied().unwrap_or(0);
            }
        }
        self.known.load(Ordering::SeqCst).then_some(revision)
    }

    pub fn expiry_revision(&self) -> u64 {
        self.expiry.load(Ordering::SeqCst)
    }

    /// A write committed (here or elsewhere) that changed `touched`.
    pub fn bump(&self, touched: &Touched) {
        self.count(touched);
        self.wake.send_modify(|n| *n += 1);
    }

    /// Counts `touched` into the revisions.
    fn count(&self, touched: &Touched) {
        if touched.all {
            self.epoch.fetch_add(1, Ordering::SeqCst);
        } else if !touched.tenants.is_empty()
            && let Ok(mut counts) = self.revisions.write()
        {
            for t in &touched.tenants {
                *counts.entry(t.0).or_insert(0) += 1;
            }
        }
        if !touched.groups.is_empty()
            && let (Ok(mut groups), Ok(mut tenants)) =
                (self.group_rows.write(), self.tenant_rows.write())
        {
            for (t, g) in &touched.groups {
                *groups.entry((t.0, g.0)).or_insert(0) += 1;
                *tenants.entry(t.0).or_insert(0) += 1;
            }
        }
        if touched.expiry {
            self.expiry.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// `Database::group_revision`.
    pub fn group_revision(
        &self,
        tenant: TenantId,
        id: Option<crate::domain::model::GroupId>,
    ) -> u64 {
        match id {
            Some(g) => self
                .group_rows
                .read()
                .map_or(0, |m| m.get(&(tenant.0, g.0)).copied().unwrap_or(0)),
            None => self
                .tenant_rows
                .read()
                .map_or(0, |m| m.get(&tenant.0).copied().unwrap_or(0)),
        }
    }

    /// A write of this process committed, changing `touched`: bumps those revisions; the
    /// write's number. The number first: a read that sees the bumped revisions also sees an
    /// unannounced write, and so does not go to a standby (`read_position`). The write's
    /// answer, with its token, leaves after both.
    pub fn committed(&self, touched: &Touched) -> u64 {
        let number = self.writes.fetch_add(1, Ordering::SeqCst) + 1;
        self.bump(touched);
        number
    }

    /// Every tenant may have changed.
    fn bump_all(&self) {
        let mut all = Touched::default();
        all.everything();
        self.bump(&all);
    }

    /// A write of this process committed, changing `touched`: bumps those revisions and has
    /// the listening connection tell other processes.
    pub fn wrote(&self, touched: &Touched) {
        let writes = self.committed(touched);
        if let Ok(mut owed) = self.owed.lock() {
            owed.add(touched);
            owed.writes = owed.writes.max(writes);
        }
        self.announce.notify_one();
    }

    /// Sends one notification for every commit owed so far; on failure they stay owed.
    async fn send_owed(&self, client: &tokio_postgres::Client) -> anyhow::Result<()> {
        let owed = match self.owed.lock() {
            Ok(mut owed) if owed.any => std::mem::take(&mut *owed),
            _ => return Ok(()),
        };
        let payload = owed.payload(&self.token);
        // The primary's WAL insert position as the notification is sent, after the commits it
        // covers: a standby that has replayed it holds them. It ends the payload.
        let sent = tokio::time::timeout(
            PROBE_TIMEOUT,
            client.query_one(
                &format!(
                    "WITH p AS (SELECT {POSITION} AS position) \
                     SELECT pg_notify('{CHANNEL}', '{payload}|' || p.position), p.position FROM p"
                ),
                &[],
            ),
        )
        .await;
        match sent {
            Ok(Ok(row)) => {
                let position = u64::try_from(row.get::<_, i64>(1)).unwrap_or(0);
                self.learned_position(position);
                if let Ok(mut announced) = self.announced.lock() {
                    *announced = (announced.0.max(owed.writes), announced.1.max(position));
                }
                Ok(())
            }
            failed => {
                if let Ok(mut now) = self.owed.lock() {
                    now.any = true;
                    now.writes = now.writes.max(owed.writes);
                    now.all |= owed.all;
                    now.expiry |= owed.expiry;
                    now.tenants.extend(owed.tenants);
                }
                match failed {
                    Ok(Err(e)) => Err(e.into()),
                    Ok(Ok(_)) => Ok(()),
                    _ => anyhow::bail!("no answer to NOTIFY within {PROBE_TIMEOUT:?}"),
                }
            }
        }
    }

    /// Whether `payload` is one of this process's own notifications.
    fn is_own(&self, payload: &str) -> bool {
        payload.split('|').next() == Some(self.token.as_str())
    }

    fn set_known(&self, known: bool) {
        if known {
            self.bump_all();
        }
        self.known.store(known, Ordering::SeqCst);
        if !known {
            self.bump_all();
        }
        self.up
            .send_if_modified(|up| std::mem::replace(up, known) != known);
    }

    /// Follows other processes' writes on PostgreSQL at `target` for as long as `self` lives,
    /// starting with the connection `first`.
    pub fn listen(self: &Arc<Changes>, target: Arc<PgTarget>, first: PgLink) {
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
                    None => match connect(&target, PROBE_TIMEOUT).await {
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
            // An error ends the connection: after it, a TLS connection answers the same error
            // to every poll at once, so the loop stops at the first (it would never yield).
            while let Some(message) = messages.next().await {
                let failed = message.is_err();
                let message = message.map(|m| match m {
                    tokio_postgres::AsyncMessage::Notification(n) => Some(n.payload().to_owned()),
                    _ => None,
                });
                if tx.send(message).is_err() || failed {
                    break;
                }
            }
        });
        let result = async {
            tokio::time::timeout(PROBE_TIMEOUT, client.batch_execute(&format!("LISTEN {CHANNEL}")))
                .await??;
            // Writes made while this connection was down were not heard: a standby must have
            // replayed at least what the primary holds now.
            let now: i64 = tokio::time::timeout(
                PROBE_TIMEOUT,
                client.query_one(&format!("SELECT {POSITION}"), &[]),
            )
            .await??
            .get(0);
            self.learned_position(u64::try_from(now).unwrap_or(0));
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
                        Some(Ok(Some(payload))) if self.is_own(&payload) => {}
                        Some(Ok(Some(payload))) => {
                            // A payload without a position (an older process's): the primary's
                            // position now, read after the notification came, holds its write.
                            let position = match heard(&payload).2 {
                                Some(position) => position,
                                None => {
                                    let now: i64 = tokio::time::timeout(
                                        PROBE_TIMEOUT,
                                        client.query_one(&format!("SELECT {POSITION}"), &[]),
                                    )
                                    .await??
                                    .get(0);
                                    u64::try_from(now).unwrap_or(0)
                                }
                            };
                            let hold = self.hold.load(Ordering::SeqCst);
                            if hold == 0 {
                                self.apply_heard(&payload, position);
                            } else {
                                let changes = self.clone();
                                tokio::spawn(async move {
                                    tokio::time::sleep(Duration::from_micros(hold)).await;
                                    changes.apply_heard(&payload, position);
                                });
                            }
                        }
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

/// Connects to PostgreSQL at `target`, waiting at most `timeout`.
pub(crate) async fn connect(target: &PgTarget, timeout: Duration) -> anyhow::Result<PgLink> {
    match tokio::time::timeout(timeout, target.connect()).await {
        Ok(link) => Ok(link?),
        Err(_) => anyhow::bail!("no answer within {timeout:?}"),
    }
}
