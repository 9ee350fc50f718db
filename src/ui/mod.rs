//! Everything that prints: progress (indicatif on a TTY, plain lines otherwise) and error
//! rendering, and the text form of every report. Nothing below `commands/` prints: domain modules
//! and ops call the reporter traits of [`crate::report`], implemented here.

pub mod bundle;
pub mod inspect_html;
pub mod json;
pub mod playbook;
pub mod progress;
pub mod site;
pub mod support;

pub use crate::report::{bytes, Hint};
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

/// Print a report as the command's `--json` document on stdout (see [`json`]).
pub fn print_json(report: &impl serde::Serialize) {
    json::print(report, None);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_rendering() {
        let e =
            anyhow::anyhow!("inventory.ini:7: host node4 has ansible_port=\"ssh\": not a number")
                .context(Hint("ports are numbers, e.g. ansible_port=2222".into()))
                .context("loading the inventory inventory.ini");
        insta::assert_snapshot!(render_error(&e));
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
