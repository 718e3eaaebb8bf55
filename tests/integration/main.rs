//! One integration-test binary: every test starts the real gRPC server over its own database.

// A failed unwrap in a test is the test failing, with the error in the panic message.
#![allow(clippy::unwrap_used)]

mod fixtures;
mod harness;

mod api;
mod auth;
mod cache;
mod consistency;
mod directory;
mod discovery;
mod docs;
mod events;
mod external;
mod groups;
mod hardening;
mod identity;
mod membership;
mod membership_props;
mod observability;
mod ops;
mod round_trips;
mod settings;
mod startup;
mod tls;
mod web;
