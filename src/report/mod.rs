//! What the flows hand back and how they report progress on the way: the report types that
//! `ops/` produces and `ui/` prints, and the reporter traits `ops/` calls and `ui/` implements.
//! Both floors import this module; neither imports the other.

pub mod build;
pub mod bundle;
pub mod site;
pub mod support;

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

/// An error that is darkport's own fault (a bug), not the input's or a target's.
#[derive(Debug, thiserror::Error)]
#[error("internal error: {0}")]
pub struct Internal(pub String);

/// Exit code for a failed command: 2 when the error chain holds an internal error (a bug in
/// darkport: [`Internal`], a worker's panic), 1 for everything else (bad input, a refused
/// bundle, an unreachable or failing host).
pub fn exit_code(err: &anyhow::Error) -> i32 {
    let internal = err
        .chain()
        .any(|c| c.is::<Internal>() || c.is::<crate::fanout::Panicked>());
    if internal {
        2
    } else {
        1
    }
}

/// A report that knows whether the operation it describes succeeded (exit 0) or not (1).
pub trait Verdict {
    fn ok(&self) -> bool;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_errors_exit_2_and_the_rest_exit_1() {
        let user = anyhow::anyhow!("inventory.ini:3: bad line").context("loading the inventory");
        assert_eq!(exit_code(&user), 1);
        let bug = anyhow::Error::new(Internal("state read twice".into())).context("install");
        assert_eq!(exit_code(&bug), 2);
        let panic = anyhow::Error::new(crate::fanout::Panicked("index out of bounds".into()))
            .context("node n1")
            .context("install did not finish");
        assert_eq!(exit_code(&panic), 2);
        // A hint or an io error further down does not change the class.
        let io =
            anyhow::Error::new(std::io::Error::other("disk full")).context(Hint("free".into()));
        assert_eq!(exit_code(&io), 1);
    }

    #[test]
    fn byte_units() {
        assert_eq!(bytes(5), "5 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(3 << 30), "3.0 GiB");
    }
}
