//! `darkport hash`: sha256 of files in parallel, with the throughput.

use crate::digest::Digest;
use anyhow::Context;
use rayon::prelude::*;
use std::path::PathBuf;
use std::time::Instant;

/// Each file's digest and size (or why it could not be read), in the order given, and
/// the totals.
pub struct HashReport {
    pub files: Vec<(PathBuf, anyhow::Result<(Digest, u64)>)>,
    pub bytes: u64,
    pub seconds: f64,
}

impl HashReport {
    pub fn mib_per_s(&self) -> f64 {
        self.bytes as f64 / self.seconds.max(1e-9) / (1 << 20) as f64
    }
    pub fn any_failed(&self) -> bool {
        self.files.iter().any(|(_, r)| r.is_err())
    }
}

pub fn hash_files(files: &[PathBuf]) -> HashReport {
    let start = Instant::now();
    let results: Vec<anyhow::Result<(Digest, u64)>> = files
        .par_iter()
        .map(|p| Digest::of_file(p).with_context(|| format!("failed to hash {}", p.display())))
        .collect();
    let seconds = start.elapsed().as_secs_f64();
    let bytes = results.iter().flatten().map(|(_, n)| n).sum();
    HashReport {
        files: files.iter().cloned().zip(results).collect(),
        bytes,
        seconds,
    }
}
