//! The broker server on this runtime (filled in by the server work).
