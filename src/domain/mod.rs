//! Every rule of docs/rules.md, as plain Rust over the `Tx` interface (`repo`) and the
//! transaction seam (`service`). Knows nothing of tonic, prost or Diesel. Where each rule
//! lives:
//!
//! | rules | module |
//! |---|---|
//! | R01, R02, R04, R12 | `groups` |
//! | R03 | `limits` (numbers), `members` (per user), `groups` (per tenant) |
//! | R05 | `masters`, `departures` (succession) |
//! | R06, R07, R20, R24 | `access` |
//! | R08, R10 | `settings` |
//! | R09, R19 (usage) | `features`, `external` |
//! | R11 | `events`, `members` (recipients), `feed` (delivery) |
//! | R13, R14, R15 | `members` (admission), `groups` (creation) |
//! | R16, R19 | `external` |
//! | R17, R22, R23 | `membership` |
//! | R18 | `departures` |
//! | R21 | `nesting` |
//! | R25 | `error`, `text` (control characters, names, comparison keys) |

pub mod access;
pub mod cache;
pub mod caller;
pub mod clock;
pub mod consistency;
pub mod departures;
pub mod directory;
pub mod discovery;
pub mod error;
pub mod events;
pub mod expiry;
pub mod external;
pub mod features;
pub mod feed;
pub mod grace;
pub mod groups;
pub mod idempotency;
pub mod limits;
pub mod masters;
pub mod members;
pub mod membership;
pub mod model;
pub mod names;
pub mod nesting;
pub mod operation;
pub mod page;
pub mod repo;
pub mod service;
pub mod settings;
pub mod text;

pub use service::{Database, Mode, Service, Touched, Transaction, TxFuture};
