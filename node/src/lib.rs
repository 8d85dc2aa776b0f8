//! # rapport-node
//!
//! The Rapport node daemon, `rapport`: it carries the signed messages of
//! [`rapport_protocol`] between customers and vendors over libp2p, stores them durably, answers
//! each with a signed receipt once it is on disk, and serves a local HTTP API that the CLI
//! uses. The wire protocol is `spec/protocol.md` §11; the node's files, delivery rules, API and
//! export bundle are `spec/node.md`.
#![deny(missing_docs)]

pub mod api;
pub mod bundle;
pub mod cli;
pub mod client;
pub mod config;
pub mod daemon;
pub mod demo;
pub mod engine;
pub mod identity;
pub mod metrics;
pub mod network;
pub mod probe;
pub mod store;
pub mod testnet;
