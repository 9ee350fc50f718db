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
    start: Instant,
}

impl Progress {
    /// A bar over `total` units; `bytes` formats units as byte sizes.
    pub fn new(mode: ProgressMode, label: &str, total: u64, bytes: bool) -> Self {
        let mode = mode.resolve();
        let bar = (mode == ProgressMode::Tty).then(|| {
            let pb = ProgressBar::new(total);
            let tmpl = if bytes {
                "{prefix:>12} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta} {msg}"
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
                start: Instant::now(),
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
                    "{}: {} of {}{}",
                    self.label,
                    fmt_units(st.pos, self.bytes),
                    fmt_units(self.total, self.bytes),
                    eta(st.pos, self.total, st.start.elapsed())
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

/// `, eta 1m05s` from the rate so far (nothing before any progress).
fn eta(pos: u64, total: u64, spent: Duration) -> String {
    if pos == 0 || pos >= total {
        return String::new();
    }
    let left = spent.as_secs_f64() * (total - pos) as f64 / pos as f64;
    let s = left.round() as u64;
    if s >= 60 {
        format!(", eta {}m{:02}s", s / 60, s % 60)
    } else {
        format!(", eta {s}s")
    }
}

#[cfg(test)]
mod eta_tests {
    #[test]
    fn eta_from_the_rate_so_far() {
        use std::time::Duration;
        assert_eq!(super::eta(0, 100, Duration::from_secs(5)), "");
        assert_eq!(super::eta(25, 100, Duration::from_secs(10)), ", eta 30s");
        assert_eq!(super::eta(10, 100, Duration::from_secs(10)), ", eta 1m30s");
        assert_eq!(super::eta(100, 100, Duration::from_secs(10)), "");
    }
}
