//! The Rapport node daemon (`rapport`): libp2p transport, durable storage, delivery with
//! signed receipts, the local control API and the CLI.
//!
//! Not built yet: this crate is a workspace member so that the layout of `DESIGN.md` holds
//! from the start. It depends on `rapport-protocol` for every byte it will sign or verify.
