//! Line-editing modules: lineinfile, blockinfile, replace, ini_file. Each reads the file once,
//! computes the new text on the controller with a pure `*_apply` function (ported from
//! ansible-core 2.19 and community.general 11, unit-tested) and writes it back, with an
//! optional backup, only when it changed. User regexps follow Python's `re` ([`pyre`]).

mod ini;
mod lines;
pub mod pyre;
#[cfg(test)]
mod tests;

pub use ini::ini_apply;
pub use lines::{blockinfile_apply, lineinfile_apply, replace_apply};

use super::files::{write_failure, write_script};
use super::{
    add_info, b, fail, kv_lines, obj, s, Args, Attrs, ModCtx, ModError, ModResult, ATTRS_FN,
    INFO_FN,
};
use crate::transport::{shell_quote, Transport};
use serde_json::{json, Map, Value};

/// What an editor computed: the new text, Ansible's `msg`, whether it changed the file
/// (ansible-core decides this itself, e.g. ini_file when it only adds a final newline) and
/// module-specific result fields (`found`, `rc`).
#[derive(Debug)]
pub struct Outcome {
    pub text: String,
    pub msg: String,
    pub changed: bool,
    pub extra: Map<String, Value>,
}

impl Outcome {
    pub fn new(text: String, msg: &str, changed: bool) -> Outcome {
        Outcome {
            text,
            msg: msg.to_string(),
            changed,
            extra: Map::new(),
        }
    }
}

/// What the module does when the file is missing, decided before anything is computed.
enum Missing {
    /// Edit an empty text and create the file.
    Create,
    /// Return this result: nothing to do.
    Skip(Map<String, Value>),
}

/// Read a remote text file: `None` when it does not exist.
fn read_remote(t: &mut dyn Transport, c: &ModCtx, path: &str) -> Result<Option<String>, ModError> {
    let o = c.sh(
        t,
        &format!(
            "p={}; if [ -d \"$p\" ]; then echo D; elif [ -e \"$p\" ]; then echo F; cat \"$p\" || exit 2; else echo N; fi",
            shell_quote(path)
        ),
    )?;
    if !o.success() {
        return fail(format!("cannot read {path}: {}", o.stderr_str().trim()));
    }
    let out = o.stdout_str();
    let (tag, rest) = out.split_at(out.find('\n').map(|i| i + 1).unwrap_or(out.len()));
    match tag.trim() {
        "F" => Ok(Some(rest.to_string())),
        "D" => fail(format!("Path {path} is a directory !")),
        _ => Ok(None),
    }
}

/// How a module reports a backup: lineinfile always returns `backup` ("" when none was made),
/// the others return `backup_file` only when one was made (ini_file: "" on a new file).
#[derive(Clone, Copy, PartialEq)]
enum BackupKey {
    Backup,
    BackupFile,
    BackupFileOrEmpty,
}

/// The read → transform → write-if-changed flow shared by the editors.
fn edit_file<M, F>(
    t: &mut dyn Transport,
    c: &ModCtx,
    a: &Args,
    path: &str,
    key: BackupKey,
    missing: M,
    f: F,
) -> ModResult
where
    M: FnOnce() -> Result<Missing, ModError>,
    F: FnOnce(Option<&str>) -> Result<Outcome, ModError>,
{
    let original = read_remote(t, c, path)?;
    let attrs = Attrs::from_args(a)?;
    if original.is_none() {
        if let Missing::Skip(r) = missing()? {
            return Ok(r);
        }
    }
    let out = f(original.as_deref())?;
    let mut r = obj(json!({"changed": out.changed, "msg": out.msg}));
    r.extend(out.extra);
    let backup = b(a, "backup", false);
    if key == BackupKey::Backup {
        r.insert("backup".into(), json!(""));
    }
    if out.changed && c.diff {
        r.insert(
            "diff".into(),
            json!({"before": original.clone().unwrap_or_default(), "after": out.text, "before_header": format!("{path} (content)"), "after_header": format!("{path} (content)")}),
        );
    }
    if !out.changed {
        return set_attrs(t, c, path, &attrs, original.is_some(), r);
    }
    if c.check {
        return Ok(r);
    }
    let script = format!(
        "p={}\n{}",
        shell_quote(path),
        write_script(
            &attrs,
            s(a, "validate").as_deref(),
            original.is_none(),
            Some(out.text.len()),
            backup,
        )
    );
    let o = c.sh_in(t, &script, Some(out.text.into_bytes()))?;
    if !o.success() {
        return fail(write_failure(&o, path));
    }
    let kv = kv_lines(&o.stdout_str());
    match (kv.get("backup_file"), key) {
        (Some(bk), BackupKey::Backup) => {
            r.insert("backup".into(), json!(bk));
        }
        (Some(bk), _) => {
            r.insert("backup_file".into(), json!(bk));
        }
        (None, BackupKey::BackupFileOrEmpty) if backup => {
            r.insert("backup_file".into(), json!(""));
        }
        _ => {}
    }
    add_info(&mut r, &kv);
    Ok(r)
}

/// The content is right: apply mode/owner/group and say so in `msg`, as ansible-core does.
fn set_attrs(
    t: &mut dyn Transport,
    c: &ModCtx,
    path: &str,
    attrs: &Attrs,
    exists: bool,
    mut r: Map<String, Value>,
) -> ModResult {
    if !exists || (attrs.mode.is_none() && attrs.owner.is_none() && attrs.group.is_none()) {
        return Ok(r);
    }
    let o = c.sh(
        t,
        &format!(
            "{ATTRS_FN}{INFO_FN}p={}\n{} || exit 3\necho attrs=$dp_ch\ndp_info \"$p\"\n",
            shell_quote(path),
            attrs.call("\"$p\"", c.check)
        ),
    )?;
    if !o.success() {
        return fail(format!(
            "failed to set attributes of {path}: {}",
            o.stderr_str().trim()
        ));
    }
    let kv = kv_lines(&o.stdout_str());
    if kv.get("attrs").map(|v| v == "1").unwrap_or(false) {
        r.insert("changed".into(), Value::Bool(true));
        let m = r.get("msg").and_then(|m| m.as_str()).unwrap_or("");
        let m = if m.is_empty() {
            "ownership, perms or SE linux context changed".to_string()
        } else {
            format!("{m} and ownership, perms or SE linux context changed")
        };
        r.insert("msg".into(), Value::String(m));
    }
    add_info(&mut r, &kv);
    Ok(r)
}

fn path_arg(a: &Args, module: &str) -> Result<String, ModError> {
    ["path", "dest", "destfile", "name"]
        .iter()
        .find_map(|k| s(a, k))
        .ok_or_else(|| ModError::Failed(format!("{module}: missing required arguments: path")))
}

fn skip(msg: String) -> Result<Missing, ModError> {
    Ok(Missing::Skip(obj(json!({"changed": false, "msg": msg}))))
}

pub fn lineinfile(t: &mut dyn Transport, c: &ModCtx, a: &Args) -> ModResult {
    let path = path_arg(a, "lineinfile")?;
    let absent = s(a, "state").as_deref() == Some("absent");
    let missing = || {
        if absent {
            skip("file not present".into())
        } else if b(a, "create", false) {
            Ok(Missing::Create)
        } else {
            fail(format!("Destination {path} does not exist !"))
        }
    };
    edit_file(t, c, a, &path, BackupKey::Backup, missing, |o| {
        lineinfile_apply(o.unwrap_or(""), a)
    })
}

pub fn blockinfile(t: &mut dyn Transport, c: &ModCtx, a: &Args) -> ModResult {
    let path = path_arg(a, "blockinfile")?;
    let missing = || {
        if !b(a, "create", false) {
            fail(format!("Path {path} does not exist !"))
        } else if s(a, "state").as_deref() == Some("absent") {
            skip(format!("File {path} not present"))
        } else {
            Ok(Missing::Create)
        }
    };
    edit_file(t, c, a, &path, BackupKey::BackupFile, missing, |o| {
        blockinfile_apply(o, a)
    })
}

pub fn replace(t: &mut dyn Transport, c: &ModCtx, a: &Args) -> ModResult {
    let path = path_arg(a, "replace")?;
    let missing = || fail(format!("Path {path} does not exist !"));
    edit_file(t, c, a, &path, BackupKey::BackupFile, missing, |o| {
        replace_apply(o.unwrap_or(""), a)
    })
}

pub fn ini_file(t: &mut dyn Transport, c: &ModCtx, a: &Args) -> ModResult {
    let path = path_arg(a, "ini_file")?;
    let missing = || {
        if b(a, "create", true) {
            Ok(Missing::Create)
        } else {
            fail(format!("Destination {path} does not exist!"))
        }
    };
    let mut r = edit_file(t, c, a, &path, BackupKey::BackupFileOrEmpty, missing, |o| {
        ini_apply(o, a)
    })?;
    r.insert("path".into(), json!(path));
    Ok(r)
}
