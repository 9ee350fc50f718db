//! Modules: each runs as one (or very few) POSIX shell snippets over the host's transport.
//! Nothing but `sh` and coreutils-like tools is needed on the node. File-editing modules
//! (lineinfile, blockinfile, replace, ini_file) read the file once, compute the new content
//! here exactly as Ansible's Python code does, and write it back atomically only if it changed.

mod cmd;
mod edit;
mod facts;
mod facts_hw;
mod files;
pub mod registry;
mod system;
mod transfer;

use crate::transport::{shell_quote, Become, ExecOpts, ExecOutput, Transport, TransportError};
use minijinja::value::Value as JValue;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::path::PathBuf;

pub type Args = Map<String, Value>;
pub type ModResult = Result<Map<String, Value>, ModError>;

#[derive(Debug, thiserror::Error)]
pub enum ModError {
    /// The module failed (the task fails with this message).
    #[error("{0}")]
    Failed(String),
    #[error(transparent)]
    Transport(#[from] TransportError),
}

pub fn fail<T>(msg: impl Into<String>) -> Result<T, ModError> {
    Err(ModError::Failed(msg.into()))
}

/// What a module may use besides its arguments.
pub struct ModCtx<'a> {
    pub check: bool,
    pub diff: bool,
    pub become_: Option<Become>,
    pub env: Vec<(String, String)>,
    /// Template context (for `template`).
    pub vars: &'a JValue,
    /// Controller directories to look up `files/` and `templates/` in (role path, playbook dir).
    pub search: &'a [PathBuf],
    pub host: &'a str,
}

impl ModCtx<'_> {
    pub fn sh(&self, t: &mut dyn Transport, script: &str) -> Result<ExecOutput, ModError> {
        self.sh_in(t, script, None)
    }
    pub fn sh_in(
        &self,
        t: &mut dyn Transport,
        script: &str,
        stdin: Option<Vec<u8>>,
    ) -> Result<ExecOutput, ModError> {
        Ok(t.exec(
            script,
            &ExecOpts {
                stdin,
                timeout: None,
                become_: self.become_.clone(),
                env: self.env.clone(),
            },
        )?)
    }

    /// Find a controller file: absolute, or `<dir>/<sub>/<name>` then `<dir>/<name>`.
    pub fn find_local(&self, name: &str, sub: &str) -> Option<PathBuf> {
        let p = PathBuf::from(name);
        if p.is_absolute() {
            return p.exists().then_some(p);
        }
        for d in self.search {
            for c in [d.join(sub).join(name), d.join(name)] {
                if c.exists() {
                    return Some(c);
                }
            }
        }
        None
    }
}

/// Run a node module by name (see [`registry`]); controller and task-list modules are the
/// engine's and fail here.
pub fn run(module: &str, t: &mut dyn Transport, c: &ModCtx, a: &Args) -> ModResult {
    match registry::lookup(module) {
        Some(registry::ModuleDef {
            name,
            runs: registry::Runs::Node(handler),
        }) => handler(name, t, c, a),
        Some(_) => fail(format!(
            "module {module} runs on the controller, not on a node"
        )),
        None => fail(format!("module {module} is not implemented")),
    }
}

fn ping(t: &mut dyn Transport, c: &ModCtx) -> ModResult {
    let o = c.sh(t, "echo pong")?;
    if !o.success() {
        return fail(format!("ping failed: {}", o.stderr_str()));
    }
    Ok(obj(json!({"changed": false, "ping": "pong"})))
}

// ---------------------------------------------------------------------------------------
// Helpers shared by modules

pub fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

pub fn s(a: &Args, k: &str) -> Option<String> {
    a.get(k)
        .filter(|v| !v.is_null())
        .map(super::template::py_str)
}

pub fn req(a: &Args, k: &str, module: &str) -> Result<String, ModError> {
    s(a, k).ok_or_else(|| ModError::Failed(format!("{module}: missing required arguments: {k}")))
}

pub fn b(a: &Args, k: &str, default: bool) -> bool {
    a.get(k)
        .filter(|v| !v.is_null())
        .map(super::template::ansible_bool)
        .unwrap_or(default)
}

/// Parse `key=value` lines printed by a probe script.
pub fn kv_lines(out: &str) -> HashMap<String, String> {
    out.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Ansible's `mode`: an int is taken as the octal bits (YAML `0644` = 420), a string of
/// octal digits as octal, anything else as a symbolic mode for `chmod`.
pub fn norm_mode(v: &Value) -> Result<Option<String>, ModError> {
    match v {
        Value::Null => Ok(None),
        Value::Number(n) => Ok(Some(format!("{:o}", n.as_u64().unwrap_or(0)))),
        Value::String(s) if s.is_empty() => Ok(None),
        Value::String(s) if s.chars().all(|c| c.is_ascii_digit()) => {
            if !s.chars().all(|c| ('0'..='7').contains(&c)) {
                return fail(format!("mode must be in octal or symbolic form: {s}"));
            }
            let t = s.trim_start_matches('0');
            Ok(Some(if t.is_empty() {
                "0".into()
            } else {
                t.to_string()
            }))
        }
        Value::String(s) => Ok(Some(s.clone())),
        other => fail(format!("bad mode {other}")),
    }
}

/// Requested file attributes.
#[derive(Clone, Debug, Default)]
pub struct Attrs {
    pub mode: Option<String>,
    pub owner: Option<String>,
    pub group: Option<String>,
}

impl Attrs {
    pub fn from_args(a: &Args) -> Result<Attrs, ModError> {
        Ok(Attrs {
            mode: match a.get("mode") {
                Some(Value::String(s)) if s == "preserve" => None,
                Some(v) => norm_mode(v)?,
                None => None,
            },
            owner: s(a, "owner"),
            group: s(a, "group"),
        })
    }
    /// Shell call of `dp_attrs` for `path_expr` (a quoted path or `"$var"`).
    pub fn call(&self, path_expr: &str, check: bool) -> String {
        format!(
            "dp_attrs {path_expr} {} {} {} {}",
            shell_quote(self.mode.as_deref().unwrap_or("")),
            shell_quote(self.owner.as_deref().unwrap_or("")),
            shell_quote(self.group.as_deref().unwrap_or("")),
            if check { 1 } else { 0 }
        )
    }
}

/// Shell function `dp_st PATH`: one `stat` of PATH (not following a link) into `$dp_U $dp_u
/// $dp_G $dp_g $dp_a $dp_sz` (owner, uid, group, gid, octal mode, size). One process where
/// each field used to cost a `$(stat …)` of its own: on a busy host every fork counts.
macro_rules! stat_fn {
    () => {
        r#"dp_st() {
  dp_ifs=$IFS; IFS=' '
  set -- $(stat -c '%U %u %G %g %a %s' "$1")
  IFS=$dp_ifs; dp_U=$1 dp_u=$2 dp_G=$3 dp_g=$4 dp_a=$5 dp_sz=$6
}
"#
    };
}

/// Shell function: `dp_attrs PATH MODE OWNER GROUP CHECK` sets the attributes that differ
/// and adds 1 to `$dp_ch` when something changed (or would change in check mode). It stats
/// PATH once; when it changed nothing it leaves `$dp_sp` = PATH, so a following `dp_info`
/// of the same path prints from that stat instead of running another.
pub const ATTRS_FN: &str = concat!(
    stat_fn!(),
    r#"dp_ch=0
dp_attrs() {
  dp_st "$1"; dp_mod=0
  if [ -n "$3" ] && [ "$dp_U" != "$3" ] && [ "$dp_u" != "$3" ]; then
    dp_ch=1; if [ "$5" != 1 ]; then chown -h "$3" "$1" || return 1; dp_mod=1; fi
  fi
  if [ -n "$4" ] && [ "$dp_G" != "$4" ] && [ "$dp_g" != "$4" ]; then
    dp_ch=1; if [ "$5" != 1 ]; then chgrp -h "$4" "$1" || return 1; dp_mod=1; fi
  fi
  if [ -n "$2" ] && [ ! -L "$1" ]; then
    # chown may have cleared set-id bits: compare the mode as it is now
    [ $dp_mod = 0 ] || { dp_st "$1"; dp_mod=0; }
    case "$2" in
      *[!0-7]*)
        if [ "$5" != 1 ]; then
          dp_b=$dp_a; chmod "$2" "$1" || return 1; dp_st "$1"
          [ "$dp_a" = "$dp_b" ] || dp_ch=1
        fi ;;
      *)
        if [ "$dp_a" != "$2" ]; then dp_ch=1; if [ "$5" != 1 ]; then chmod "$2" "$1" || return 1; dp_mod=1; fi; fi ;;
    esac
  fi
  if [ $dp_mod = 0 ]; then dp_sp=$1; else dp_sp=; fi
  return 0
}
"#
);

/// Shell snippet printing the common file result fields of `$1` (from `dp_attrs`'s stat
/// when it just looked at the same path and changed nothing).
pub const INFO_FN: &str = concat!(
    stat_fn!(),
    r#"dp_info() {
  if [ -e "$1" ] || [ -L "$1" ]; then
    [ -n "$dp_sp" ] && [ "$dp_sp" = "$1" ] || dp_st "$1"
    dp_sp=
    printf 'mode=%s\nuid=%s\ngid=%s\nowner=%s\ngroup=%s\nsize=%s\n' "$dp_a" "$dp_u" "$dp_g" "$dp_U" "$dp_G" "$dp_sz"
  fi
}
"#
);

pub fn add_info(r: &mut Map<String, Value>, kv: &HashMap<String, String>) {
    if let Some(m) = kv.get("mode") {
        let n = u32::from_str_radix(m, 8).unwrap_or(0);
        r.insert("mode".into(), Value::String(format!("{n:04o}")));
    }
    for k in ["owner", "group"] {
        if let Some(v) = kv.get(k) {
            r.insert(k.into(), Value::String(v.clone()));
        }
    }
    for k in ["uid", "gid", "size"] {
        if let Some(v) = kv.get(k).and_then(|v| v.parse::<i64>().ok()) {
            r.insert(k.into(), json!(v));
        }
    }
}

/// Unified diff of two texts (whole-file hunk with 3 lines of context), for `--diff`.
pub fn unified_diff(before: &str, after: &str, before_name: &str, after_name: &str) -> String {
    let a: Vec<&str> = before.lines().collect();
    let b: Vec<&str> = after.lines().collect();
    // LCS table (files that are diffed are small: Ansible caps diffs at 104448 bytes).
    let (n, m) = (a.len(), b.len());
    if n * m > 25_000_000 {
        return format!("--- {before_name}\n+++ {after_name}\n(diff too large)\n");
    }
    let mut dp = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            dp[i][j] = if a[i] == b[j] {
                dp[i + 1][j + 1] + 1
            } else {
                dp[i + 1][j].max(dp[i][j + 1])
            };
        }
    }
    let mut ops: Vec<(char, &str)> = vec![];
    let (mut i, mut j) = (0, 0);
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            ops.push((' ', a[i]));
            i += 1;
            j += 1;
        } else if i < n && (j == m || dp[i + 1][j] >= dp[i][j + 1]) {
            ops.push(('-', a[i]));
            i += 1;
        } else {
            ops.push(('+', b[j]));
            j += 1;
        }
    }
    let mut out = format!("--- {before_name}\n+++ {after_name}\n");
    // Group into hunks with 3 lines of context.
    let changed: Vec<usize> = ops
        .iter()
        .enumerate()
        .filter(|(_, o)| o.0 != ' ')
        .map(|(i, _)| i)
        .collect();
    if changed.is_empty() {
        return out;
    }
    let mut k = 0;
    while k < changed.len() {
        let start = changed[k].saturating_sub(3);
        let mut end = (changed[k] + 4).min(ops.len());
        while k + 1 < changed.len() && changed[k + 1] <= end + 3 {
            k += 1;
            end = (changed[k] + 4).min(ops.len());
        }
        let a_start = ops[..start].iter().filter(|o| o.0 != '+').count();
        let b_start = ops[..start].iter().filter(|o| o.0 != '-').count();
        let a_len = ops[start..end].iter().filter(|o| o.0 != '+').count();
        let b_len = ops[start..end].iter().filter(|o| o.0 != '-').count();
        out.push_str(&format!(
            "@@ -{},{} +{},{} @@\n",
            a_start + 1,
            a_len,
            b_start + 1,
            b_len
        ));
        for o in &ops[start..end] {
            out.push(o.0);
            out.push_str(o.1);
            out.push('\n');
        }
        k += 1;
    }
    out
}

/// Python's `str.splitlines(True)`-like split keeping `\n` endings.
pub fn split_keep(s: &str) -> Vec<String> {
    let mut out = vec![];
    let mut cur = String::new();
    for ch in s.chars() {
        cur.push(ch);
        if ch == '\n' {
            out.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes() {
        assert_eq!(norm_mode(&json!(420)).unwrap(), Some("644".into()));
        assert_eq!(norm_mode(&json!("0755")).unwrap(), Some("755".into()));
        assert_eq!(norm_mode(&json!("u+x")).unwrap(), Some("u+x".into()));
        assert!(norm_mode(&json!("0855")).is_err());
    }

    #[test]
    fn diffs() {
        let d = unified_diff("a\nb\nc\n", "a\nB\nc\n", "before", "after");
        assert!(d.contains("-b\n+B\n"), "{d}");
        assert!(d.contains("@@ -1,3 +1,3 @@"), "{d}");
    }
}
