//! Client-side subcommands of the `cistern` binary, which talk to a running
//! server over its JSON API, and the backup commands, which talk to any
//! S3 store (and record their runs on a Cistern server).

pub mod backup;
pub mod healthcheck;
pub mod pool;
