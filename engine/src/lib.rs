//! The tch model engine.
