//! # rapport-node
//!
//! The Rapport node daemon, `rapport`: it carries the signed messages of
//! [`rapport_protocol`] between customers and vendors over libp2p, stores them durably, answers
//! each with a signed receipt once it is on disk, and serves a local HTTP API that the CLI
//! uses. The wire protocol is `spec/protocol.md` §11; the node's files, delivery rules, API and
//! export bundle are `spec/node.md`.
//!
//! With the default feature `daemon` off, the crate is only what reads untrusted input offline:
//! [`bundle`], [`config`] and [`api::requests`], without libp2p, tokio or axum. The fuzz
//! targets in `node/fuzz/` build it that way.
#![deny(missing_docs)]

#[cfg(feature = "daemon")]
pub mod api;
/// The local control API; without the daemon, only its request bodies and their checks.
#[cfg(not(feature = "daemon"))]
pub mod api {
    pub mod requests;
}
pub mod bundle;
#[cfg(feature = "daemon")]
pub mod cli;
#[cfg(feature = "daemon")]
pub mod client;
pub mod config;
#[cfg(feature = "daemon")]
pub mod daemon;
#[cfg(feature = "daemon")]
pub mod demo;
#[cfg(feature = "daemon")]
pub mod engine;
#[cfg(feature = "daemon")]
pub mod identity;
#[cfg(feature = "daemon")]
pub mod metrics;
#[cfg(feature = "daemon")]
pub mod network;
#[cfg(feature = "daemon")]
pub mod probe;
#[cfg(feature = "daemon")]
pub mod store;
#[cfg(feature = "daemon")]
pub mod testnet;
