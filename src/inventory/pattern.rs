//! Host patterns as Ansible evaluates them (`hosts:` and `--limit`): `all`, `*`, shell globs,
//! `~regex`, unions `a:b` / `a,b`, exclusions `!a`, intersections `&a`, subscripts `g[0]`,
//! `g[1:3]`, `g[-1]`, `g[2:]`, and `@file` in limits.
//!
//! Like ansible-core's `InventoryManager`, the parts are applied in the order: plain ones,
//! then intersections, then exclusions; hosts come out in the order the plain parts give them
//! (a group yields its hosts in inventory order). A name that matches nothing is ignored with a
//! warning.

use std::collections::HashSet;
use std::sync::OnceLock;

use regex::Regex;

use super::{hostpat, Inventory, InventoryError};

/// The hosts a pattern selected, and Ansible-style warnings about parts that matched nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    pub hosts: Vec<String>,
    pub warnings: Vec<String>,
}

/// Ansible's `split_host_pattern`.
pub fn split_pattern(pattern: &str) -> Vec<String> {
    static PARTS: OnceLock<Regex> = OnceLock::new();
    let parts: Vec<String> = if pattern.contains(',') {
        pattern.split(',').map(str::to_string).collect()
    } else if hostpat::parse_address(pattern).is_some() {
        vec![pattern.to_string()]
    } else {
        PARTS
            .get_or_init(|| Regex::new(r"(?:[^\s:\[\]]|\[[^\]]*\])+").expect("regex"))
            .find_iter(pattern)
            .map(|m| m.as_str().to_string())
            .collect()
    };
    parts
        .into_iter()
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

fn order_patterns(parts: Vec<String>) -> Vec<String> {
    let mut regular = Vec::new();
    let mut inter = Vec::new();
    let mut excl = Vec::new();
    for p in parts {
        if p.starts_with('!') {
            excl.push(p);
        } else if p.starts_with('&') {
            inter.push(p);
        } else {
            regular.push(p);
        }
    }
    if regular.is_empty() {
        regular.push("all".to_string());
    }
    regular.into_iter().chain(inter).chain(excl).collect()
}

pub fn select(
    inv: &Inventory,
    pattern: &str,
    limit: Option<&str>,
) -> Result<Selection, InventoryError> {
    let mut warnings = Vec::new();
    let mut hosts = evaluate(inv, split_pattern(pattern), &mut warnings)?;
    if let Some(limit) = limit {
        let mut parts = Vec::new();
        for p in split_pattern(limit) {
            if let Some(file) = p.strip_prefix('@') {
                let text = std::fs::read_to_string(file).map_err(|e| InventoryError::Pattern {
                    pattern: p.clone(),
                    msg: format!("cannot read limit file {file}: {e}"),
                })?;
                parts.extend(
                    text.lines()
                        .map(|l| l.trim().to_string())
                        .filter(|l| !l.is_empty()),
                );
            } else {
                parts.push(p);
            }
        }
        let allowed: HashSet<usize> = evaluate(inv, parts, &mut warnings)?.into_iter().collect();
        hosts.retain(|h| allowed.contains(h));
    }
    Ok(Selection {
        hosts: hosts
            .into_iter()
            .map(|h| inv.hosts[h].name.clone())
            .collect(),
        warnings,
    })
}

fn evaluate(
    inv: &Inventory,
    parts: Vec<String>,
    warnings: &mut Vec<String>,
) -> Result<Vec<usize>, InventoryError> {
    // `have` mirrors `hosts`, so each part costs what it matches (a `--limit @file` of
    // 100,000 names is linear, not quadratic).
    let mut hosts: Vec<usize> = Vec::new();
    let mut have: HashSet<usize> = HashSet::new();
    for p in order_patterns(parts) {
        if let Some(&h) = inv.host_idx.get(&p) {
            if have.insert(h) {
                hosts.push(h);
            }
            continue;
        }
        let that = match_one(inv, &p, warnings)?;
        if p.starts_with('!') || p.starts_with('&') {
            let that: HashSet<usize> = that.into_iter().collect();
            let keep = !p.starts_with('!');
            hosts.retain(|h| that.contains(h) == keep);
            have.retain(|h| that.contains(h) == keep);
        } else {
            for h in that {
                if have.insert(h) {
                    hosts.push(h);
                }
            }
        }
    }
    Ok(hosts)
}

enum Subscript {
    One(i64),
    Range(i64, i64),
}

fn split_subscript(p: &str) -> (String, Option<Subscript>) {
    static SUB: OnceLock<Regex> = OnceLock::new();
    if p.starts_with('~') {
        return (p.to_string(), None);
    }
    let re = SUB.get_or_init(|| {
        Regex::new(r"^(.+)\[(?:(-?[0-9]+)|([0-9]+)([:-])([0-9]*))\]$").expect("regex")
    });
    match re.captures(p) {
        Some(c) => {
            let base = c[1].to_string();
            if let Some(i) = c.get(2) {
                (base, i.as_str().parse().ok().map(Subscript::One))
            } else {
                let start: i64 = c[3].parse().unwrap_or(0);
                let end: i64 = if c[5].is_empty() {
                    -1
                } else {
                    c[5].parse().unwrap_or(-1)
                };
                (base, Some(Subscript::Range(start, end)))
            }
        }
        None => (p.to_string(), None),
    }
}

fn match_one(
    inv: &Inventory,
    p: &str,
    warnings: &mut Vec<String>,
) -> Result<Vec<usize>, InventoryError> {
    let bare = p.strip_prefix(['&', '!']).unwrap_or(p);
    if bare.is_empty() {
        return Ok(Vec::new());
    }
    let (expr, sub) = split_subscript(bare);
    let hosts = enumerate(inv, &expr, warnings)?;
    let Some(sub) = sub else { return Ok(hosts) };
    if hosts.is_empty() {
        return Ok(hosts);
    }
    let n = hosts.len() as i64;
    let oob = || InventoryError::Pattern {
        pattern: p.to_string(),
        msg: "no hosts matched the subscripted pattern".into(),
    };
    match sub {
        Subscript::One(i) => {
            let idx = if i < 0 { n + i } else { i };
            if idx < 0 || idx >= n {
                return Err(oob());
            }
            Ok(vec![hosts[idx as usize]])
        }
        Subscript::Range(start, end) => {
            // Python: hosts[start:end + 1], with end -1 meaning "to the last"
            let end = if end == -1 { n - 1 } else { end };
            if end == 0 {
                // Ansible treats an end of 0 as "no range": just the start element
                let idx = start;
                if idx >= n {
                    return Err(oob());
                }
                return Ok(vec![hosts[idx as usize]]);
            }
            let s = start.min(n).max(0) as usize;
            let e = (end + 1).min(n).max(0) as usize;
            Ok(if s < e {
                hosts[s..e].to_vec()
            } else {
                Vec::new()
            })
        }
    }
}

fn compile(pattern: &str) -> Result<Regex, InventoryError> {
    let src = match pattern.strip_prefix('~') {
        Some(re) => format!("^(?:{re})"),
        None => fnmatch_translate(pattern),
    };
    Regex::new(&src).map_err(|e| InventoryError::Pattern {
        pattern: pattern.to_string(),
        msg: format!("invalid host list pattern: {e}"),
    })
}

/// Python's `fnmatch.translate` (case-sensitive, anchored).
pub fn fnmatch_translate(pat: &str) -> String {
    let c: Vec<char> = pat.chars().collect();
    let mut out = String::from("(?s)^");
    let mut i = 0;
    while i < c.len() {
        let ch = c[i];
        i += 1;
        match ch {
            '*' => {
                while i < c.len() && c[i] == '*' {
                    i += 1;
                }
                out.push_str(".*");
            }
            '?' => out.push('.'),
            '[' => {
                let mut j = i;
                if j < c.len() && c[j] == '!' {
                    j += 1;
                }
                if j < c.len() && c[j] == ']' {
                    j += 1;
                }
                while j < c.len() && c[j] != ']' {
                    j += 1;
                }
                if j >= c.len() {
                    out.push_str("\\[");
                } else {
                    let body: String = c[i..j].iter().collect();
                    i = j + 1;
                    let (neg, body) = match body.strip_prefix('!') {
                        Some(b) => (true, b.to_string()),
                        None => (false, body),
                    };
                    let mut cls = String::new();
                    for bc in body.chars() {
                        if matches!(bc, '\\' | '[' | ']' | '&' | '~' | '|' | '^') {
                            cls.push('\\');
                        }
                        cls.push(bc);
                    }
                    if cls.is_empty() {
                        // "[]" or "[!]" : nothing / anything, as Python ends up
                        out.push_str(if neg { "." } else { "(?!)" });
                    } else {
                        out.push('[');
                        if neg {
                            out.push('^');
                        }
                        out.push_str(&cls);
                        out.push(']');
                    }
                }
            }
            other => out.push_str(&regex::escape(&other.to_string())),
        }
    }
    out.push('$');
    out
}

fn enumerate(
    inv: &Inventory,
    pattern: &str,
    warnings: &mut Vec<String>,
) -> Result<Vec<usize>, InventoryError> {
    let re = compile(pattern)?;
    let mut results: Vec<usize> = Vec::new();
    let matching_groups: Vec<usize> = (0..inv.groups.len())
        .filter(|&g| re.is_match(&inv.groups[g].name))
        .collect();
    for &g in &matching_groups {
        results.extend(inv.group_hosts(g));
    }
    let special = pattern.starts_with('~') || pattern.contains(['.', '?', '*', '[']);
    if matching_groups.is_empty() || special {
        for h in 0..inv.hosts.len() {
            if re.is_match(&inv.hosts[h].name) {
                results.push(h);
            }
        }
    }
    if results.is_empty() && matching_groups.is_empty() && pattern != "all" {
        warnings.push(format!(
            "Could not match supplied host pattern, ignoring: {pattern}"
        ));
    }
    Ok(results)
}
