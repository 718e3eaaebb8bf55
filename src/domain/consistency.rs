//! Consistency per call: how fresh a read must be, and the token a write answers.
//!
//! A write's token names this process and the number of its writes so far
//! (`Database::token`): on the process that acknowledged the write every read is at least
//! that fresh already (the write's tenants were bumped before its answer left); another
//! process is once it has heard that process's notification of that number
//! (`Database::caught_up`). A read asks for one of:
//! - `Default`: the fastest; never older than what this process acknowledged, and than what
//!   other processes announced to it (the cache's rule, `cache`).
//! - `AtLeast(token)`: at least as fresh as the write that answered `token`: served from the
//!   cache once this process has heard of that write, after waiting at most `TOKEN_WAIT` for
//!   it; otherwise read from the database, which holds every committed write.
//! - `Full`: read from the database, never from the cache.
//!
//! A token of another tenant's write, of a process long gone or made up, changes nothing but
//! the wait: the read then comes from the database.
//!
//! The edge sets the call's choice (`scope`) from the request and takes the write's token
//! from it when the handler is done; the seam records the token (`record`) and the cache asks
//! `fresh_enough`. Work outside a call (timers, the relay) has no scope and keeps the default.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::service::Database;

/// How long a read with a token waits for this process to hear of the token's write before it
/// reads the database instead.
pub const TOKEN_WAIT: Duration = Duration::from_millis(50);

/// A read's consistency choice.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Consistency {
    #[default]
    Default,
    AtLeast(Token),
    Full,
}

/// A write's position: the writing process's mark and the number of its writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    pub process: String,
    pub writes: u64,
}

/// Tokens as clients see them: `v1.<process>.<writes>`, opaque to them.
impl std::fmt::Display for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "v1.{}.{}", self.process, self.writes)
    }
}

impl std::str::FromStr for Token {
    type Err = &'static str;
    fn from_str(s: &str) -> Result<Token, &'static str> {
        let malformed = "not a consistency token this service issued";
        let rest = s.strip_prefix("v1.").ok_or(malformed)?;
        let (process, writes) = rest.rsplit_once('.').ok_or(malformed)?;
        let valid = !process.is_empty()
            && process.len() <= 64
            && process.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
        if !valid {
            return Err(malformed);
        }
        Ok(Token {
            process: process.to_owned(),
            writes: writes.parse().map_err(|_| malformed)?,
        })
    }
}

/// One call's consistency: what the request asked for, and the token its write answers.
#[derive(Debug, Default)]
pub struct Call {
    pub requested: Consistency,
    answered: Mutex<Option<Token>>,
}

impl Call {
    pub fn new(requested: Consistency) -> Arc<Call> {
        Arc::new(Call {
            requested,
            answered: Mutex::default(),
        })
    }

    /// The token of the call's last write, if it wrote.
    pub fn answered(&self) -> Option<Token> {
        self.answered.lock().ok()?.clone()
    }
}

tokio::task_local! {
    static CALL: Arc<Call>;
}

/// Runs `fut` (a call's handling) with `call` as its consistency.
pub async fn scope<F: std::future::Future>(call: Arc<Call>, fut: F) -> F::Output {
    CALL.scope(call, fut).await
}

/// The seam: a write of the current call committed at `token`.
pub(crate) fn record(token: Token) {
    let _ = CALL.try_with(|call| {
        if let Ok(mut answered) = call.answered.lock() {
            *answered = Some(token);
        }
    });
}

/// The current call's consistency choice (the default outside calls): the store routes reads
/// to standbys by it (`Store::with_standbys`).
pub fn requested() -> Consistency {
    CALL.try_with(|call| call.requested.clone())
        .unwrap_or_default()
}

/// Whether the current call has committed a write (its answer then carries a token): such an
/// answer is never refused afterwards (`grpc::limits`), since what it did is kept.
pub fn committed_a_write() -> bool {
    CALL.try_with(|call| call.answered().is_some())
        .unwrap_or(false)
}

/// How the current call's consistency was met (metrics: `Observer::consistency`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Met {
    /// No choice made: the default.
    Default,
    /// `Full`: the database, not the cache.
    FullyConsistent,
    /// `AtLeast`, already heard of.
    CaughtUp,
    /// `AtLeast`, heard of within the wait.
    Waited,
    /// `AtLeast`, not heard of within the wait: the database, not the cache.
    FellThrough,
}

impl Met {
    /// Whether the cache may answer.
    pub fn cache_may_answer(self) -> bool {
        matches!(self, Met::Default | Met::CaughtUp | Met::Waited)
    }

    pub fn label(self) -> &'static str {
        match self {
            Met::Default => "default",
            Met::FullyConsistent => "fully_consistent",
            Met::CaughtUp => "caught_up",
            Met::Waited => "waited",
            Met::FellThrough => "fell_through",
        }
    }
}

/// How the current call's consistency lets the cache answer: not for `Full`; for `AtLeast`,
/// once this process has heard of the token's write (waiting at most `TOKEN_WAIT`).
pub(crate) async fn fresh_enough(db: &dyn Database) -> Met {
    match requested() {
        Consistency::Default => Met::Default,
        Consistency::Full => Met::FullyConsistent,
        Consistency::AtLeast(token) => {
            if db.caught_up(&token, Duration::ZERO).await {
                Met::CaughtUp
            } else if db.caught_up(&token, TOKEN_WAIT).await {
                Met::Waited
            } else {
                Met::FellThrough
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Token;

    #[test]
    fn tokens_read_back_and_strangers_are_refused() {
        let token = Token {
            process: "3f2a-18c0ffee".into(),
            writes: 42,
        };
        assert_eq!(token.to_string().parse::<Token>(), Ok(token));
        for bad in [
            "", "v1.", "v1.abc", "v2.ab.1", "v1.xyz.1", "v1.ab.-1", "v1..3",
        ] {
            assert!(bad.parse::<Token>().is_err(), "{bad}");
        }
    }
}
