//! group-service: a gRPC service that manages internal and external groups of a workplace
//! suite. Layers, outside in: `grpc` (edge), `auth` (callers), `domain` (rules), `store`
//! (Diesel over SQLite or PostgreSQL).

pub mod auth;
pub mod config;
pub mod domain;
pub mod grpc;
pub mod guard;
pub mod health;
pub mod metrics;
pub mod relay;
pub mod server;
pub mod store;
pub mod telemetry;
pub mod tls;
