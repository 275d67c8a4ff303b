//! Cistern: a self-hosted file service in one binary.
//!
//! The crate is layered; each layer only calls the ones below it, and module
//! privacy holds the front-ends to that (see `docs/ARCHITECTURE.md`):
//!
//! - Front-ends: [`s3`] speaks the S3 protocol (through `s3s`) on one port;
//!   [`web`] serves the JSON API, health probes, version and metrics on the
//!   other; [`cli`] is the `cistern` command's client side (pool member and
//!   processor, `healthcheck`). [`serving`] runs both listeners the same way: connection
//!   limits, timeouts for slow clients, request bodies that cannot bleed into
//!   the next request, request ids.
//! - [`core`] is the service layer and owns every rule: who may do what to a
//!   bucket, object or pool, the object rules (conditions, ranges,
//!   checksums, multipart), accounts, sessions and passwords, pools (windows,
//!   receipts, leases, events, webhooks), audit and quotas. Its [`core::Store`]
//!   is the only way to data: the metadata store (`core::meta`, every SQL
//!   statement and the group-commit writer, on SQLite or PostgreSQL) and the
//!   blob store (`core::blob`, local disk or any `object_store` backend) are
//!   private to `core`.
//! - [`model`] holds the values every layer shares: the records the store
//!   returns and the typed words ([`model::Role`], [`model::GroupState`],
//!   [`model::MemberRole`], [`model::RefusalReason`], [`model::PoolEventKind`])
//!   that read the same on the wire and in SQL.
//! - [`config`], [`telemetry`] and [`startup`] turn settings into a running
//!   server; `main.rs` only parses the command line and dispatches.
//!   `testing` holds what the unit and integration suites share.

pub mod cli;
pub mod config;
pub mod core;
pub mod model;
pub mod s3;
pub mod serving;
pub mod startup;
pub mod telemetry;
#[doc(hidden)]
pub mod testing;
pub mod web;
