//! Output of `darkport support-bundle`: progress per node, then the summary (or `--json`).

use super::progress::Progress;
use super::ProgressMode;
use crate::report::support::{SupportReport, SupportReporter};
use std::sync::Mutex;

/// A bar over the nodes on a TTY, a line per node otherwise.
pub struct SupportProgress {
    mode: ProgressMode,
    bar: Mutex<Option<Progress>>,
}

impl SupportProgress {
    pub fn new(mode: ProgressMode) -> Self {
        SupportProgress {
            mode,
            bar: Mutex::new(None),
        }
    }
}

impl SupportReporter for SupportProgress {
    fn start(&self, nodes: u64) {
        *self.bar.lock().unwrap() = Some(Progress::new(self.mode, "collecting", nodes, false));
    }
    fn node_done(&self, line: &str) {
        if let Some(b) = &*self.bar.lock().unwrap() {
            b.inc(1);
            b.println(line);
        }
    }
    fn finish(&self) {
        if let Some(b) = self.bar.lock().unwrap().take() {
            b.finish();
        }
    }
}

pub fn print_report(rep: &SupportReport, json: bool) {
    if json {
        let v = serde_json::json!({
            "output": rep.output,
            "bytes": rep.bundle_bytes,
            "index": rep.index,
        });
        super::print_json(&v);
        return;
    }
    for n in &rep.index.nodes {
        let extra = if n.errors.is_empty() {
            String::new()
        } else {
            format!(", {} errors", n.errors.len())
        };
        println!("{}: {} ({} files{extra})", n.host, n.status, n.files.len());
    }
    for u in &rep.index.unreachable {
        println!("{}: UNREACHABLE: {}", u.host, u.error);
    }
    println!(
        "wrote {} ({}): {} nodes collected, {} unreachable",
        rep.output.display(),
        super::bytes(rep.bundle_bytes),
        rep.index.nodes.len(),
        rep.index.unreachable.len()
    );
}
