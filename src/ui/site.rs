//! Output of `install`, `preflight` and `status`: step lines, push progress, per-node tables.

use super::progress::Progress;
use super::{bytes, ProgressMode};
use crate::digest::Digest;
use crate::ops::install::{NodeResult, PreflightRow, StatusRow};
use crate::ops::push::PushReporter;
use std::time::Duration;

pub struct SitePrinter {
    mode: ProgressMode,
}

impl SitePrinter {
    pub fn new(mode: ProgressMode) -> Self {
        SitePrinter {
            mode: mode.resolve(),
        }
    }
    pub fn quiet(&self) -> bool {
        self.mode == ProgressMode::Quiet
    }
    /// One step line on stderr (nothing with --json).
    pub fn line(&self, msg: &str) {
        if !self.quiet() {
            eprintln!("==> {msg}");
        }
    }
    pub fn push_progress(&self, total: u64) -> PushProgress {
        PushProgress {
            p: Progress::new(self.mode, "push", total, true),
        }
    }
}

pub struct PushProgress {
    p: Progress,
}

impl PushProgress {
    pub fn finish(&self) {
        self.p.finish();
    }
}

impl PushReporter for PushProgress {
    fn blob_started(&self, host: &str, digest: &Digest, _size: u64) {
        self.p.message(&format!("{host} {}", digest.short()));
    }
    fn blob_done(&self, _host: &str, _digest: &Digest, sent: u64, resumed_from: u64) {
        self.p.inc(sent + resumed_from);
    }
}

pub fn print_preflight(rows: &[PreflightRow]) {
    println!(
        "{:<16} {:<8} {:<9} {:<7} {:>10} {:>10} {:>7}  RESULT",
        "HOST", "ROLE", "REACHABLE", "ARCH", "FREE", "NEEDS", "BLOBS"
    );
    for r in rows {
        println!(
            "{:<16} {:<8} {:<9} {:<7} {:>10} {:>10} {:>7}  {}",
            r.host,
            if r.registry { "registry" } else { "node" },
            if r.reachable { "yes" } else { "NO" },
            r.arch.as_deref().unwrap_or("-"),
            r.free_bytes.map(bytes).unwrap_or_else(|| "-".into()),
            bytes(r.needed_bytes),
            r.missing_blobs,
            if r.problems.is_empty() && r.corrupt_blobs > 0 {
                format!(
                    "ok ({} stored blob(s) corrupt: sent again)",
                    r.corrupt_blobs
                )
            } else if r.problems.is_empty() {
                "ok".to_string()
            } else {
                format!("FAIL: {}", r.problems.join("; "))
            }
        );
    }
}

pub fn print_install(rows: &[NodeResult], took: Duration) {
    println!("\nINSTALL RECAP ({:.1}s)", took.as_secs_f64());
    for r in rows {
        let push = r
            .push
            .as_ref()
            .map(|p| {
                format!(
                    "blobs sent={} ({}) present={} resumed={}",
                    p.blobs_sent,
                    bytes(p.bytes_sent),
                    p.blobs_present,
                    bytes(p.bytes_resumed)
                )
            })
            .unwrap_or_default();
        match &r.error {
            None => println!("{:<16} ok      {push}", r.host),
            Some(e) => println!("{:<16} FAILED  {e}", r.host),
        }
    }
}

pub fn print_status(rows: &[StatusRow]) {
    for r in rows {
        if !r.reachable || r.error.is_some() {
            println!(
                "{:<16} UNREACHABLE {}",
                r.host,
                r.error.as_deref().unwrap_or("")
            );
            continue;
        }
        let ver = match (&r.product, &r.version) {
            (Some(p), Some(v)) => format!("{p} {v}"),
            _ => "nothing installed".into(),
        };
        println!(
            "{:<16} {ver}  bundle {}  installed {}",
            r.host,
            r.bundle_digest
                .map(|d| d.short())
                .unwrap_or_else(|| "-".into()),
            r.installed_at.as_deref().unwrap_or("-")
        );
        if let Some(reg) = &r.registry {
            println!("{:<16}   registry {reg}", "");
        }
        if let Some(op) = &r.operation {
            println!("{:<16}   {op}", "");
        }
        if !r.migrations.is_empty() {
            println!("{:<16}   migrations {}", "", r.migrations.join(", "));
        }
    }
}
