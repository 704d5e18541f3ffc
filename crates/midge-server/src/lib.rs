//! Scaffolding; the real crate is being written.
