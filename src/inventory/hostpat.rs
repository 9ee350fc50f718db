//! Host entries as Ansible reads them: `host:port`, `[ipv6]:port`, and ranges such as
//! `web[01:10]`, `web[01:10:2]`, `db-[a:f]` (nested: `r[1:2]n[a:b]`).

use std::sync::OnceLock;

use regex::Regex;

const LETTERS: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

fn re(cell: &'static OnceLock<Regex>, pat: &str) -> &'static Regex {
    cell.get_or_init(|| Regex::new(pat).expect("static regex"))
}

/// Split `host:port` (or `[host]:port`); `None` when the host part is not a valid host
/// identifier, in which case Ansible keeps the whole entry as the host name, without a port.
pub fn parse_address(address: &str) -> Option<(String, Option<u32>)> {
    static BRACKETED: OnceLock<Regex> = OnceLock::new();
    static HOSTPORT: OnceLock<Regex> = OnceLock::new();
    let mut addr = address.to_string();
    let mut port = None;
    if let Some(c) = re(&BRACKETED, r"^\[(.+)\]:([0-9]+)$").captures(&addr) {
        port = Some(c[2].parse::<u32>().ok()?);
        addr = c[1].to_string();
    }
    if let Some(c) = re(&HOSTPORT, r"^((?:[^:\[\]]|\[[^\]]*\])*):([0-9]+)$").captures(&addr) {
        port = Some(c[2].parse::<u32>().ok()?);
        addr = c[1].to_string();
    }
    if is_ipv4(&addr) || is_ipv6(&addr) || is_hostname(&addr) {
        Some((addr, port))
    } else {
        None
    }
}

/// Ansible's `_expand_hostpattern`: the host names and the optional port of one entry.
pub fn expand_hostpattern(pattern: &str) -> Result<(Vec<String>, Option<u32>), String> {
    let (host, port) = parse_address(pattern).unwrap_or_else(|| (pattern.to_string(), None));
    let hosts = if host.contains('[') {
        expand_range(&host)?
    } else {
        vec![host]
    };
    Ok((hosts, port))
}

/// Expand the first `[a:b(:step)]` range of `line`, recursively for the following ones.
pub fn expand_range(line: &str) -> Result<Vec<String>, String> {
    let open = line.find('[').ok_or("no range")?;
    let close_rel = line[open + 1..]
        .find(']')
        .ok_or_else(|| format!("host range in {line:?} has no closing ']'"))?;
    let head = &line[..open];
    let nrange = &line[open + 1..open + 1 + close_rel];
    let tail = &line[open + 2 + close_rel..];
    if head.contains('|') || nrange.contains('|') || tail.contains('|') {
        return Err(format!("host range in {line:?} contains '|'"));
    }
    let bounds: Vec<&str> = nrange.split(':').collect();
    if bounds.len() != 2 && bounds.len() != 3 {
        return Err(format!(
            "host range [{nrange}] must be begin:end or begin:end:step"
        ));
    }
    let beg = if bounds[0].is_empty() { "0" } else { bounds[0] };
    let end = bounds[1];
    let step: i64 = if bounds.len() == 3 {
        py_int(bounds[2]).ok_or_else(|| format!("host range [{nrange}] has a bad step"))?
    } else {
        1
    };
    if end.is_empty() {
        return Err(format!("host range [{nrange}] must specify end value"));
    }
    let pad = if beg.starts_with('0') && beg.len() > 1 {
        if beg.len() != end.len() {
            return Err(format!(
                "host range [{nrange}] must specify equal-length begin and end formats"
            ));
        }
        beg.len()
    } else {
        0
    };
    if step == 0 {
        return Err(format!("host range [{nrange}] has a step of zero"));
    }
    let seq: Vec<String> = match (LETTERS.find(beg), LETTERS.find(end)) {
        (Some(ib), Some(ie)) => {
            if ib > ie {
                return Err(format!("host range [{nrange}] must have begin <= end"));
            }
            let letters: Vec<char> = LETTERS.chars().collect();
            let slice = &letters[ib..=ie];
            if step > 0 {
                slice
                    .iter()
                    .step_by(step as usize)
                    .map(|c| c.to_string())
                    .collect()
            } else {
                // Python's slice with a negative step over [ib:ie+1] walks backwards
                slice
                    .iter()
                    .rev()
                    .step_by(step.unsigned_abs() as usize)
                    .map(|c| c.to_string())
                    .collect()
            }
        }
        _ => {
            let b = py_int(beg)
                .ok_or_else(|| format!("host range [{nrange}] is not numeric or alphabetic"))?;
            let e = py_int(end)
                .ok_or_else(|| format!("host range [{nrange}] is not numeric or alphabetic"))?;
            let mut v = Vec::new();
            let mut x = b;
            let stop = e + 1;
            while (step > 0 && x < stop) || (step < 0 && x > stop) {
                v.push(if pad > 0 {
                    zfill(x, pad)
                } else {
                    x.to_string()
                });
                if v.len() > 1_000_000 {
                    return Err(format!("host range [{nrange}] expands to too many hosts"));
                }
                x += step;
            }
            v
        }
    };
    let mut out = Vec::new();
    for r in seq {
        let name = format!("{head}{r}{tail}");
        if name.contains('[') {
            out.extend(expand_range(&name)?);
        } else {
            out.push(name);
        }
        if out.len() > 1_000_000 {
            return Err(format!("host range in {line:?} expands to too many hosts"));
        }
    }
    Ok(out)
}

/// Python's `str(x).zfill(n)`.
fn zfill(x: i64, n: usize) -> String {
    if x < 0 {
        format!("-{:0>w$}", -x, w = n.saturating_sub(1))
    } else {
        format!("{x:0>n$}")
    }
}

/// Python's `int(s)` for decimal strings (spaces, sign and `_` separators allowed).
fn py_int(s: &str) -> Option<i64> {
    let t = s.trim();
    let (neg, digits) = match t.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    if digits.is_empty()
        || digits.starts_with('_')
        || digits.ends_with('_')
        || digits.contains("__")
        || !digits.chars().all(|c| c.is_ascii_digit() || c == '_')
    {
        return None;
    }
    let v: i64 = digits.replace('_', "").parse().ok()?;
    Some(if neg { -v } else { v })
}

fn strip_ranges(s: &str, hex: bool, alpha: bool) -> String {
    static NUM: OnceLock<Regex> = OnceLock::new();
    static HEX: OnceLock<Regex> = OnceLock::new();
    static ALNUM: OnceLock<Regex> = OnceLock::new();
    let r = if alpha {
        re(&ALNUM, r"(?i)\[(?:[a-z]:[a-z]|[0-9]+:[0-9]+)(?::[0-9]+)?\]")
    } else if hex {
        re(&HEX, r"(?i)\[(?:[0-9a-f]+:[0-9a-f]+)(?::[0-9]+)?\]")
    } else {
        re(&NUM, r"\[(?:[0-9]+:[0-9]+)(?::[0-9]+)?\]")
    };
    r.replace_all(s, "0").into_owned()
}

fn is_ipv4(s: &str) -> bool {
    let t = strip_ranges(s, false, false);
    let parts: Vec<&str> = t.split('.').collect();
    parts.len() == 4
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.len() <= 3
                && p.chars().all(|c| c.is_ascii_digit())
                && p.parse::<u32>().map(|v| v <= 255).unwrap_or(false)
        })
}

fn is_ipv6(s: &str) -> bool {
    let t = strip_ranges(s, true, false);
    t.contains(':') && t.parse::<std::net::Ipv6Addr>().is_ok()
}

fn is_hostname(s: &str) -> bool {
    // Replace each range by one word character, then check dot-separated labels.
    let t = strip_ranges(s, false, true);
    if t.is_empty() {
        return false;
    }
    t.split('.').all(|label| {
        let mut chars = label.chars();
        let first = match chars.next() {
            Some(c) => c,
            None => return false,
        };
        (first.is_alphanumeric() || first == '_')
            && label
                .chars()
                .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
            && !label.ends_with('_')
            && !label.ends_with('-')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_and_addresses() {
        assert_eq!(
            parse_address("web1:2222"),
            Some(("web1".into(), Some(2222)))
        );
        assert_eq!(parse_address("[::1]:22"), Some(("::1".into(), Some(22))));
        assert_eq!(parse_address("::1"), Some(("::1".into(), None)));
        assert_eq!(
            parse_address("10.0.0.1:22"),
            Some(("10.0.0.1".into(), Some(22)))
        );
        assert_eq!(
            parse_address("web[01:03]:22"),
            Some(("web[01:03]".into(), Some(22)))
        );
        assert_eq!(parse_address("bad_:22"), None);
        assert_eq!(
            parse_address("a.b-c.example"),
            Some(("a.b-c.example".into(), None))
        );
    }

    #[test]
    fn ranges() {
        assert_eq!(
            expand_range("web[01:03]").unwrap(),
            ["web01", "web02", "web03"]
        );
        assert_eq!(expand_range("w[1:9:4]").unwrap(), ["w1", "w5", "w9"]);
        assert_eq!(expand_range("db-[a:c]").unwrap(), ["db-a", "db-b", "db-c"]);
        assert_eq!(
            expand_range("r[1:2]n[a:b]").unwrap(),
            ["r1na", "r1nb", "r2na", "r2nb"]
        );
        assert_eq!(expand_range("x[:2]").unwrap(), ["x0", "x1", "x2"]);
        assert!(expand_range("x[01:100]").is_err());
        assert!(expand_range("x[1]").is_err());
        assert!(expand_range("x[1:]").is_err());
        assert!(expand_range("x[c:a]").is_err());
        assert!(expand_range("x[1:q]").is_err());
        assert!(expand_range("x[1:3:0]").is_err());
        assert!(expand_range("x[1:3").is_err());
    }
}
