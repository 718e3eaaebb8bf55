//! Faults, shutdown, deadlines and overload, through the real server: the slow tests, in a
//! binary (and a CI step) of their own. They share the integration tests' harness.

// A failed unwrap in a test is the test failing, with the error in the panic message.
#![allow(clippy::unwrap_used)]
// The shared harness and fixtures hold helpers (and re-exports) only the integration tests use.
#![allow(dead_code, unused_imports)]

mod admission;
#[path = "../integration/fixtures/mod.rs"]
mod fixtures;
#[path = "../integration/harness.rs"]
mod harness;
mod hold;
mod shutdown;
