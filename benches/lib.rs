//! Criterion benchmarks for Midge live under `benches/`; this library is empty.
