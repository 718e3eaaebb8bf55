//! One integration-test binary: every test starts the real gRPC server over its own database.

mod harness;

mod groups;
