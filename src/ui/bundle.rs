//! Reporters for bundle building and verification: a byte bar on a TTY, plain lines otherwise.

use super::progress::Progress;
use super::ProgressMode;
use std::sync::Mutex;

pub struct BundleProgress {
    mode: ProgressMode,
    bar: Mutex<Option<Progress>>,
}

impl BundleProgress {
    pub fn new(mode: ProgressMode) -> Self {
        BundleProgress {
            mode: mode.resolve(),
            bar: Mutex::new(None),
        }
    }
}

impl crate::bundle::Reporter for BundleProgress {
    fn start(&self, phase: &str, total_bytes: u64) {
        if self.mode != ProgressMode::Quiet {
            *self.bar.lock().unwrap() = Some(Progress::new(self.mode, phase, total_bytes, true));
        }
    }
    fn advance(&self, bytes: u64) {
        if let Some(b) = &*self.bar.lock().unwrap() {
            b.inc(bytes);
        }
    }
    fn finish(&self) {
        if let Some(b) = self.bar.lock().unwrap().take() {
            b.finish();
        }
    }
}

impl crate::source::FetchReporter for BundleProgress {
    fn note(&self, msg: &str) {
        if self.mode != ProgressMode::Quiet {
            eprintln!("{msg}");
        }
    }
}

impl crate::report::build::BuildReporter for BundleProgress {
    fn image(&self, name: &str, source: &str) {
        if self.mode != ProgressMode::Quiet {
            eprintln!("image {name} <- {source}");
        }
    }
}
