//! Pure, wasm-safe domain types and logic for Pairwise.
