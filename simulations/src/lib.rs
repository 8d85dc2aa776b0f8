//! Rapport simulations over the real protocol core and node code.
//!
//! - [`dst`]: deterministic simulation of delivery, the outbox and relationship state under
//!   partitions, crashes and torn logs, over many seeds (issue #6).
//!
//! Many-node market simulations over libp2p (issue #5) will live beside it.
#![deny(missing_docs)]

pub mod dst;
pub mod market;
