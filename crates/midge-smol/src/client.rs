//! The async client on this runtime (filled in by the client work).
