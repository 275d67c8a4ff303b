//! Client-side subcommands of the `cistern` binary, which talk to a running
//! server over its JSON API.

pub mod healthcheck;
pub mod pool;
