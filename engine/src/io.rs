//! File and process helpers shared by the engine's modules and tools: JSON files and the
//! process's peak memory.

use crate::error::{EngineError, Result};
use serde::Serialize;
use std::path::Path;

/// Write `v` to `path` as pretty-printed JSON.
pub fn write_json(path: &Path, v: &impl Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(v)?;
    std::fs::write(path, text).map_err(|e| EngineError::io(path, e))
}

/// Peak resident memory of this process (Linux), in MiB.
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}
