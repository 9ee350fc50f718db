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

/// A report that knows whether the operation it describes succeeded (exit 0) or not (1).
pub trait Verdict {
    fn ok(&self) -> bool;
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
}
