//! Ansible's INI inventory format, read line by line as ansible-core's `ini` plugin does.
//!
//! `[g]` hosts (`host:port`, ranges, inline `k=v` typed by Python `literal_eval` after shell
//! quoting), `[g:vars]` (`k=v`, also `literal_eval`ed: `x=1` is an int, `x=FALSE` the string
//! "FALSE"), `[g:children]` (groups may be declared later in the file). Group names are kept
//! as written (Ansible's default `TRANSFORM_INVALID_GROUP_CHARS=never` only warns).

use std::collections::HashMap;
use std::path::Path;
use std::sync::OnceLock;

use regex::Regex;

use super::{hostpat, pylit, Inventory, InventoryError, UNGROUPED};

#[derive(PartialEq, Clone, Copy)]
enum State {
    Hosts,
    Vars,
    Children,
}

struct Pending {
    line: usize,
    vars: bool,
    parents: Vec<usize>,
}

fn section_re() -> &'static Regex {
    static R: OnceLock<Regex> = OnceLock::new();
    R.get_or_init(|| Regex::new(r"^\[([^:\]\s]+)(?::(\w+))?\]\s*(?:#.*)?$").expect("regex"))
}

fn groupname_re() -> &'static Regex {
    static R: OnceLock<Regex> = OnceLock::new();
    R.get_or_init(|| Regex::new(r"^([^:\]\s]+)\s*(?:#.*)?$").expect("regex"))
}

pub fn parse(inv: &mut Inventory, text: &str, path: &Path) -> Result<(), InventoryError> {
    let err = |line: usize, msg: String| InventoryError::Parse {
        path: path.to_path_buf(),
        line,
        col: None,
        msg,
    };
    let mut pending: HashMap<String, Pending> = HashMap::new();
    let mut pending_order: Vec<String> = Vec::new();
    let mut group = UNGROUPED;
    let mut state = State::Hosts;
    let mut lineno = 0usize;
    for raw in py_splitlines(text) {
        lineno += 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with(';') || line.starts_with('#') {
            continue;
        }
        if let Some(m) = section_re().captures(line) {
            let gname = m[1].to_string();
            let kind = m.get(2).map(|k| k.as_str()).unwrap_or("hosts");
            state = match kind {
                "hosts" => State::Hosts,
                "vars" => State::Vars,
                "children" => State::Children,
                other => {
                    return Err(err(
                        lineno,
                        format!("section [{}:{other}] has unknown type: {other} (expected hosts, vars or children)", &m[1]),
                    ))
                }
            };
            if !inv.group_idx.contains_key(&gname) {
                if state == State::Vars && !pending.contains_key(&gname) {
                    pending.insert(
                        gname.clone(),
                        Pending {
                            line: lineno,
                            vars: true,
                            parents: vec![],
                        },
                    );
                    pending_order.push(gname.clone());
                }
                inv.add_group(&gname);
            }
            group = inv.group_idx[&gname];
            if state != State::Vars {
                if let Some(p) = pending.get(&gname) {
                    if p.vars {
                        pending.remove(&gname);
                    } else {
                        add_pending_children(inv, &gname, &mut pending)
                            .map_err(|m| err(lineno, m))?;
                    }
                }
            }
            continue;
        } else if line.starts_with('[') && line.ends_with(']') {
            return Err(err(
                lineno,
                format!("invalid section entry {line:?}: unknown section syntax (no spaces allowed; use [group], [group:vars] or [group:children])"),
            ));
        }
        match state {
            State::Hosts => host_line(inv, line, group, path).map_err(|m| err(lineno, m))?,
            State::Vars => {
                let Some((k, v)) = line.split_once('=') else {
                    return Err(err(lineno, format!("expected key=value, got: {line}")));
                };
                let value = pylit::parse_value(v.trim());
                if k.trim().contains(char::is_whitespace) {
                    inv.warnings.push(format!(
                        "{}:{lineno}: {line:?} under a [group:vars] section looks like a host line; it sets a variable named {:?} (hosts go under [group])",
                        path.display(),
                        k.trim()
                    ));
                }
                inv.set_group_var(group, k.trim().to_string(), value)
                    .map_err(|m| err(lineno, m))?;
            }
            State::Children => {
                let Some(m) = groupname_re().captures(line) else {
                    return Err(err(lineno, format!("expected group name, got: {line}")));
                };
                let child = m[1].to_string();
                match inv.group_idx.get(&child) {
                    Some(&c) => inv.add_child(group, c).map_err(|m| err(lineno, m))?,
                    None => match pending.get_mut(&child) {
                        Some(p) => p.parents.push(group),
                        None => {
                            pending.insert(
                                child.clone(),
                                Pending {
                                    line: lineno,
                                    vars: false,
                                    parents: vec![group],
                                },
                            );
                            pending_order.push(child);
                        }
                    },
                }
            }
        }
    }
    for name in pending_order {
        if let Some(p) = pending.get(&name) {
            return Err(if p.vars {
                err(
                    p.line,
                    format!("section [{name}:vars] not valid for undefined group '{name}'"),
                )
            } else {
                let parent = p
                    .parents
                    .last()
                    .map(|&g| inv.groups[g].name.clone())
                    .unwrap_or_default();
                err(
                    p.line,
                    format!("section [{parent}:children] includes undefined group '{name}'"),
                )
            });
        }
    }
    Ok(())
}

/// One host line of a hosts section: a host pattern (ranges expanded, optional port) and
/// `key=value` variables.
fn host_line(inv: &mut Inventory, line: &str, group: usize, path: &Path) -> Result<(), String> {
    let tokens = pylit::shlex_split(line)
        .map_err(|e| format!("error parsing host definition {line:?}: {e}"))?;
    let Some(first) = tokens.first() else {
        return Err(format!("expected a host definition, got {line:?}"));
    };
    let (names, port) = hostpat::expand_hostpattern(first)
        .map_err(|e| format!("bad host range in {first:?}: {e}"))?;
    if first.trim().ends_with(':') && port.is_none() {
        return Err(format!("invalid host pattern {first:?}: ending in ':' is not allowed, this character is reserved to provide a port"));
    }
    if names.iter().any(|n| n.trim() == "---") {
        return Err(format!(
            "invalid host pattern {first:?}: '---' is normally a sign this is a YAML file"
        ));
    }
    let mut vars = Vec::new();
    for t in &tokens[1..] {
        let Some((k, v)) = t.split_once('=') else {
            return Err(format!(
                "expected key=value host variable assignment, got: {t}"
            ));
        };
        vars.push((k.to_string(), pylit::parse_value(v)));
    }
    for n in names {
        if n.is_empty() {
            return Err("invalid empty host name".into());
        }
        let h = inv.add_host(&n, Some(group), port, Some(path));
        for (k, v) in &vars {
            inv.set_host_var(h, k.clone(), v.clone());
        }
    }
    Ok(())
}

fn add_pending_children(
    inv: &mut Inventory,
    group: &str,
    pending: &mut HashMap<String, Pending>,
) -> Result<(), String> {
    let Some(p) = pending.remove(group) else {
        return Ok(());
    };
    let g = inv.group_idx[group];
    for parent in p.parents {
        inv.add_child(parent, g)?;
        let pname = inv.groups[parent].name.clone();
        if pending.get(&pname).is_some_and(|pp| !pp.vars) {
            add_pending_children(inv, &pname, pending)?;
        }
    }
    Ok(())
}

/// Python's `str.splitlines()`.
fn py_splitlines(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut it = text.char_indices().peekable();
    while let Some((i, c)) = it.next() {
        let brk = matches!(
            c,
            '\n' | '\r'
                | '\x0b'
                | '\x0c'
                | '\x1c'
                | '\x1d'
                | '\x1e'
                | '\u{85}'
                | '\u{2028}'
                | '\u{2029}'
        );
        if brk {
            out.push(&text[start..i]);
            let mut end = i + c.len_utf8();
            if c == '\r' {
                if let Some(&(j, '\n')) = it.peek() {
                    it.next();
                    end = j + 1;
                }
            }
            start = end;
        }
    }
    if start < text.len() {
        out.push(&text[start..]);
    }
    out
}
