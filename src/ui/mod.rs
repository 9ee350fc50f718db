//! Everything that prints: progress (indicatif on a TTY, plain lines otherwise) and error
//! rendering. Domain modules never print; they call small reporter traits implemented here.

pub mod bundle;
pub mod playbook;
pub mod progress;
pub mod site;
pub mod support;

use std::io::IsTerminal;

/// How progress is shown. `Auto` picks `Tty` when stderr is a terminal, else `Plain`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum ProgressMode {
    #[default]
    Auto,
    Tty,
    Plain,
    /// No progress at all (e.g. with `--json`).
    Quiet,
}

impl ProgressMode {
    pub fn resolve(self) -> ProgressMode {
        match self {
            ProgressMode::Auto => {
                let dumb = std::env::var("TERM").map(|t| t == "dumb").unwrap_or(true);
                if std::io::stderr().is_terminal() && !dumb {
                    ProgressMode::Tty
                } else {
                    ProgressMode::Plain
                }
            }
            m => m,
        }
    }
}

/// Render an error chain the way darkport prints it: `error: …`, `Caused by:` lines, and a
/// `hint:` when the error carries one (see [`Hint`]).
pub fn render_error(err: &anyhow::Error) -> String {
    let mut out = format!("error: {err}\n");
    let hint = err.downcast_ref::<Hint>().map(|h| h.0.clone());
    let causes: Vec<String> = err
        .chain()
        .skip(1)
        .map(|c| c.to_string())
        .filter(|c| Some(c) != hint.as_ref())
        .collect();
    if !causes.is_empty() {
        out.push_str("Caused by:\n");
        for c in causes {
            out.push_str(&format!("    {c}\n"));
        }
    }
    if let Some(h) = hint {
        out.push_str(&format!("hint: {h}\n"));
    }
    out
}

/// Attach to an error with `.context(Hint(...))` to print a `hint:` line.
#[derive(Debug)]
pub struct Hint(pub String);

impl std::fmt::Display for Hint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Human-readable byte counts (binary units).
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_units() {
        assert_eq!(bytes(5), "5 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(3 << 30), "3.0 GiB");
    }

    #[test]
    fn error_chain_with_hint() {
        let e = anyhow::anyhow!("disk full")
            .context(Hint("free space on /var".into()))
            .context("failed to write blob");
        let s = render_error(&e);
        assert!(s.starts_with("error: failed to write blob\n"));
        assert!(s.contains("Caused by:\n    disk full\n"), "{s}");
        assert!(s.ends_with("hint: free space on /var\n"));
    }
}
