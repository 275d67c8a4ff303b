//! Integration tests: each test starts the real server on loopback port 0
//! with its own data directory (and its own PostgreSQL database when
//! `CISTERN_TEST_DATABASE_URL` is set) and talks to it with `aws-sdk-s3`.

mod helpers;
mod hostile;

mod access;
mod api_objects;
mod audit;
mod auth;
mod backup;
mod buckets;
mod clients;
mod cluster;
mod console;
mod console_actions;
mod crash;
mod gallery;
mod hardening;
mod listing;
mod multipart;
mod objects;
mod openapi;
mod operations;
mod pool_cli;
mod pools;
mod quotas;
mod usage;
