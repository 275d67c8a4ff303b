//! Cistern: a self-hosted file service in one binary.
//!
//! The crate is layered; each layer only calls the one below it:
//!
//! - [`s3`] and [`web`] are the HTTP front-ends: the S3 protocol (through `s3s`)
//!   on one listener; the JSON API, health, version and metrics on the other.
//!   [`serving`] runs both listeners the same way: connection limits,
//!   timeouts for slow clients, request bodies that cannot bleed into the
//!   next request, request ids.
//! - [`core`] is the service layer: validated names, the object rules
//!   (conditions, ranges, checksums, multipart) and the errors they raise. It
//!   knows nothing of HTTP or SQL.
//! - [`meta`] owns every SQL statement (SQLite or PostgreSQL through `sqlx`),
//!   including the group-commit writer; [`blob`] owns object bytes (durable
//!   local disk or any `object_store` backend).
//! - [`config`], [`telemetry`] and [`startup`] turn settings into a running
//!   server; `main.rs` only parses the command line and dispatches.

pub mod cli;
pub mod config;
pub mod core;
pub mod model;
pub mod s3;
pub mod serving;
pub mod startup;
pub mod telemetry;
pub mod web;
