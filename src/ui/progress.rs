//! A progress handle that draws an indicatif bar on a TTY and prints plain, rate-limited
//! lines otherwise (indicatif hides itself when stderr is not a terminal, so CI logs would
//! otherwise stay empty).

use super::ProgressMode;
use indicatif::{ProgressBar, ProgressStyle};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct Progress {
    mode: ProgressMode,
    bar: Option<ProgressBar>,
    plain: Mutex<PlainState>,
    label: String,
    total: u64,
    bytes: bool,
}

struct PlainState {
    pos: u64,
    last: Instant,
}

impl Progress {
    /// A bar over `total` units; `bytes` formats units as byte sizes.
    pub fn new(mode: ProgressMode, label: &str, total: u64, bytes: bool) -> Self {
        let mode = mode.resolve();
        let bar = (mode == ProgressMode::Tty).then(|| {
            let pb = ProgressBar::new(total);
            let tmpl = if bytes {
                "{prefix:>12} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {msg}"
            } else {
                "{prefix:>12} [{bar:30}] {pos}/{len} {msg}"
            };
            pb.set_style(
                ProgressStyle::with_template(tmpl)
                    .unwrap()
                    .progress_chars("=> "),
            );
            pb.set_prefix(label.to_string());
            pb.enable_steady_tick(Duration::from_millis(200));
            pb
        });
        if mode == ProgressMode::Plain {
            eprintln!("{label}: starting ({})", fmt_units(total, bytes));
        }
        Progress {
            mode,
            bar,
            plain: Mutex::new(PlainState {
                pos: 0,
                last: Instant::now(),
            }),
            label: label.to_string(),
            total,
            bytes,
        }
    }

    pub fn inc(&self, n: u64) {
        if let Some(b) = &self.bar {
            b.inc(n);
        } else if self.mode == ProgressMode::Plain {
            let mut st = self.plain.lock().unwrap();
            st.pos += n;
            if st.last.elapsed() >= Duration::from_secs(10) {
                st.last = Instant::now();
                eprintln!(
                    "{}: {} of {}",
                    self.label,
                    fmt_units(st.pos, self.bytes),
                    fmt_units(self.total, self.bytes)
                );
            }
        }
    }

    pub fn message(&self, msg: &str) {
        if let Some(b) = &self.bar {
            b.set_message(msg.to_string());
        }
    }

    /// Print a line above the bar (or plainly).
    pub fn println(&self, line: &str) {
        match &self.bar {
            Some(b) => b.println(line),
            None if self.mode == ProgressMode::Plain => eprintln!("{line}"),
            None => {}
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        } else if self.mode == ProgressMode::Plain {
            let st = self.plain.lock().unwrap();
            eprintln!("{}: done ({})", self.label, fmt_units(st.pos, self.bytes));
        }
    }
}

fn fmt_units(n: u64, bytes: bool) -> String {
    if bytes {
        super::bytes(n)
    } else {
        n.to_string()
    }
}
