//! Many-node Rapport simulations over the real protocol core and node stack.
//!
//! Not built yet: a workspace member so that the layout of `DESIGN.md` holds from the start.
