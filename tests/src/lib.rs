//! Vector generation.
