//! The global functions of the template environment: `lookup()` and `query()` (file, env,
//! pipe, fileglob, items, …, searched as Ansible searches a role's and the play's
//! directories) and Python's `dict()`.

use super::args::{j, jerr, split_kwargs};
use super::*;

pub(super) fn search_path(state: &State, name: &str, sub: &str) -> std::path::PathBuf {
    let p = std::path::Path::new(name);
    if p.is_absolute() {
        return p.to_path_buf();
    }
    for base in ["role_path", "playbook_dir"] {
        if let Some(dir) = state
            .lookup(base)
            .and_then(|v| v.as_str().map(String::from))
        {
            let d = std::path::Path::new(&dir);
            for cand in [d.join(sub).join(name), d.join(name)] {
                if cand.exists() {
                    return cand;
                }
            }
        }
    }
    p.to_path_buf()
}

/// Ansible's `fileglob` lookup: the files (not directories) whose name matches the pattern's
/// last component. A pattern with a directory part globs in the first existing of that
/// directory under the role's `files/`, the role, the playbook's `files/` and the playbook
/// directory (an absolute one as it is); a bare name pattern tries those four in turn and
/// takes the first that matches something.
pub(crate) fn fileglob(
    pattern: &str,
    role_path: Option<&str>,
    playbook_dir: Option<&str>,
) -> Vec<String> {
    use std::path::{Path, PathBuf};
    let p = Path::new(pattern);
    let Some(name) = p.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return Vec::new();
    };
    let bases: Vec<PathBuf> = [role_path, playbook_dir]
        .into_iter()
        .flatten()
        .flat_map(|b| [Path::new(b).join("files"), b.into()])
        .collect();
    let dirs: Vec<PathBuf> = match p.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(d) if d.is_absolute() => vec![d.to_path_buf()],
        Some(d) => bases
            .iter()
            .map(|b| b.join(d))
            .filter(|c| c.exists())
            .take(1)
            .collect(),
        None => bases,
    };
    dirs.iter()
        .map(|d| glob_in(d, &name))
        .find(|found| !found.is_empty())
        .unwrap_or_default()
}

/// The files in `dir` whose name matches `name`, in the directory's own order (as Python's
/// glob lists them, through os.scandir); hidden files only for a pattern starting with a dot.
fn glob_in(dir: &std::path::Path, name: &str) -> Vec<String> {
    let Ok(pat) = glob::Pattern::new(name) else {
        return Vec::new();
    };
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    rd.flatten()
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            (!n.starts_with('.') || name.starts_with('.')) && pat.matches(&n)
        })
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .map(|p| p.to_string_lossy().into_owned())
        .collect()
}

/// Every value a lookup gives (`items`/`list`: its terms).
pub(super) fn lookup_values(
    state: &State,
    kind: &str,
    args: &[JValue],
) -> Result<Vec<JValue>, JError> {
    let (terms, _kw) = split_kwargs(args);
    let mut out = Vec::new();
    for t in &terms {
        let t = t
            .as_str()
            .map(String::from)
            .unwrap_or_else(|| t.to_string());
        match kind {
            "env" => out.push(JValue::from(std::env::var(&t).unwrap_or_default())),
            "file" => {
                let p = search_path(state, &t, "files");
                let s = std::fs::read_to_string(&p)
                    .map_err(|e| jerr(format!("lookup('file', {t:?}): {}: {e}", p.display())))?;
                out.push(JValue::from(s.trim_end_matches('\n').to_string()));
            }
            "pipe" => {
                let o = std::process::Command::new("/bin/sh")
                    .arg("-c")
                    .arg(&t)
                    .output()
                    .map_err(|e| jerr(format!("lookup('pipe'): {e}")))?;
                out.push(JValue::from(
                    String::from_utf8_lossy(&o.stdout).trim_end().to_string(),
                ));
            }
            "items" | "list" => {
                out.push(JValue::from(t));
            }
            "fileglob" => {
                let var = |k: &str| state.lookup(k).and_then(|v| v.as_str().map(String::from));
                let (role, pb) = (var("role_path"), var("playbook_dir"));
                for f in fileglob(&t, role.as_deref(), pb.as_deref()) {
                    out.push(JValue::from(f));
                }
            }
            other => return Err(jerr(format!("lookup plugin {other:?} is not supported"))),
        }
    }
    match kind {
        // `items` flattens its terms one level (LookupBase._flatten); `list` keeps them.
        "items" => Ok(terms
            .into_iter()
            .flat_map(|t| match t.kind() {
                ValueKind::Seq => t.try_iter().map(|it| it.collect()).unwrap_or_default(),
                _ => vec![t],
            })
            .collect()),
        "list" => Ok(terms),
        _ => Ok(out),
    }
}

/// `lookup(kind, …)`: one value as it is, several joined with `,` (Ansible's default).
pub(super) fn fn_lookup(
    state: &State,
    kind: String,
    args: Rest<ValueOrKwargs>,
) -> Result<JValue, JError> {
    let args = args.into_values();
    let mut out = lookup_values(state, &kind, &args)?;
    let (_, kw) = split_kwargs(&args);
    let wantlist = kw
        .get::<Option<JValue>>("wantlist")
        .ok()
        .flatten()
        .is_some_and(|v| v.is_true());
    if wantlist || ["items", "list"].contains(&kind.as_str()) {
        Ok(JValue::from(out))
    } else if out.len() == 1 {
        Ok(out.pop().unwrap())
    } else {
        Ok(JValue::from(
            out.iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join(","),
        ))
    }
}

/// Python's `dict(…)` as Ansible's templates use it: from a mapping or a sequence of pairs
/// (`dict(keys | zip(values))`), then keyword arguments.
pub(super) fn fn_dict(args: Rest<ValueOrKwargs>) -> Result<JValue, JError> {
    let (pos, kw) = split_kwargs(&args.into_values());
    let mut pairs: Vec<(JValue, JValue)> = Vec::new();
    if let Some(src) = pos.first() {
        if src.kind() == ValueKind::Map {
            for k in src.try_iter()? {
                let v = src.get_item(&k)?;
                pairs.push((k, v));
            }
        } else {
            for item in src.try_iter()? {
                let (Ok(k), Ok(v)) = (item.get_item_by_index(0), item.get_item_by_index(1)) else {
                    return Err(jerr(format!(
                        "dict(): each element must be a (key, value) pair, got {item}"
                    )));
                };
                pairs.push((k, v));
            }
        }
    }
    for k in kw.args() {
        let v: JValue = kw.get(k)?;
        pairs.push((JValue::from(k), v));
    }
    let mut m = Map::new();
    for (k, v) in pairs {
        m.insert(py_str(&j(&k)?), j(&v)?);
    }
    Ok(from_json(&Value::Object(m)))
}

/// `query(kind, …)`: always the list of values.
pub(super) fn fn_query(
    state: &State,
    kind: String,
    args: Rest<ValueOrKwargs>,
) -> Result<JValue, JError> {
    Ok(JValue::from(lookup_values(
        state,
        &kind,
        &args.into_values(),
    )?))
}
