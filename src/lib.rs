//! buntime-supervisor runs many Bun web apps on one host, serverless-style: each app
//! instance is its own `bun` process, started on demand, spoken to over framed
//! Unix-socket IPC, and retired by idle, TTL and max-request rules.
//!
//! # Layout
//!
//! - [`cli`]: the command line and its flags.
//! - [`check`]: `check` and `apps`: validating and listing what a run would serve.
//! - [`run`]: turning flags into a running supervisor, and shutting it down.
//! - [`settings`]: merging flags, environment and `buntime.jsonc` into one set of settings.
//! - [`config`]: `buntime.jsonc`, per-app `worker.jsonc`, and the duration and size units.
//! - [`apps`]: finding app releases in the app dirs, npm-style version ranges, entrypoints.
//! - [`ipc`]: the wire protocol (documented there) and the multiplexed connection.
//! - [`metrics`]: the Prometheus metrics and their labels.
//! - [`notify`]: systemd readiness, stopping and watchdog notifications.
//! - [`pool`]: spawning children, their lifecycle, the LRU and ephemeral limits.
//! - [`proxy`]: per-app proxy rules: HTTP and WebSocket reverse proxying to other servers.
//! - [`server`]: the axum front door, request forwarding, the internal API, errors.
//! - [`bun`]: finding the `bun` executable.
//! - [`shim`]: the embedded JavaScript shim every child runs.

#![deny(unsafe_code)]
#![warn(missing_docs, clippy::unwrap_used)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod apps;
pub mod bun;
pub mod check;
pub mod cli;
pub mod config;
pub mod ipc;
pub mod metrics;
pub mod notify;
pub mod pool;
pub mod proxy;
pub mod run;
pub mod server;
pub mod settings;
pub mod shim;
mod sync;
