//! command, shell, raw, script.

use super::{b, fail, obj, s, Args, ModCtx, ModResult};
use crate::transport::{shell_quote, Transport};
use serde_json::{json, Value};
use std::time::{Instant, SystemTime};

/// POSIX `shlex.split`.
pub fn shlex_split(s: &str) -> Result<Vec<String>, String> {
    let mut out = vec![];
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(x) => cur.push(x),
                        None => return Err("No closing quotation".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(x) if "\\\"$`\n".contains(x) => cur.push(x),
                            Some(x) => {
                                cur.push('\\');
                                cur.push(x)
                            }
                            None => return Err("No escaped character".into()),
                        },
                        Some(x) => cur.push(x),
                        None => return Err("No closing quotation".into()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some('\n') => {}
                    Some(x) => cur.push(x),
                    None => return Err("No escaped character".into()),
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                cur.push(c)
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

fn ts(t: SystemTime) -> String {
    humantime::format_rfc3339_micros(t)
        .to_string()
        .replace('T', " ")
        .trim_end_matches('Z')
        .to_string()
}

fn lines(s: &str) -> Value {
    Value::Array(s.lines().map(|l| Value::String(l.to_string())).collect())
}

pub fn run(module: &str, t: &mut dyn Transport, c: &ModCtx, a: &Args) -> ModResult {
    let raw = s(a, "_raw_params").or_else(|| s(a, "cmd"));
    let argv: Option<Vec<String>> = match a.get("argv") {
        Some(Value::Array(v)) => Some(v.iter().map(crate::playbook::template::py_str).collect()),
        _ => None,
    };
    let (script, cmd_val): (String, Value) = match module {
        "command" => {
            let words = match (&argv, &raw) {
                (Some(v), _) => v.clone(),
                (None, Some(r)) => {
                    shlex_split(r).map_err(|e| super::ModError::Failed(format!("command: {e}")))?
                }
                (None, None) => return fail("no command given"),
            };
            if words.is_empty() {
                return fail("no command given");
            }
            let expand = b(a, "expand_argument_vars", true);
            (
                words
                    .iter()
                    .map(|w| {
                        if expand {
                            expand_word(w)
                        } else {
                            shell_quote(w)
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(" "),
                json!(words),
            )
        }
        "shell" => {
            let r = raw.ok_or_else(|| super::ModError::Failed("no command given".into()))?;
            let script = match s(a, "executable") {
                Some(exe) => format!("{} -c {}", shell_quote(&exe), shell_quote(&r)),
                None => r.clone(),
            };
            (script, Value::String(r))
        }
        "raw" => {
            let r = raw.ok_or_else(|| super::ModError::Failed("no command given".into()))?;
            (r.clone(), Value::String(r))
        }
        "script" => {
            let r = raw.ok_or_else(|| super::ModError::Failed("no script given".into()))?;
            let words =
                shlex_split(&r).map_err(|e| super::ModError::Failed(format!("script: {e}")))?;
            let path = c.find_local(&words[0], "files").ok_or_else(|| {
                super::ModError::Failed(format!("Could not find or access '{}'", words[0]))
            })?;
            let body = std::fs::read(&path)
                .map_err(|e| super::ModError::Failed(format!("{}: {e}", path.display())))?;
            let interp = match s(a, "executable") {
                Some(e) => e,
                None => {
                    let first = body.split(|b| *b == b'\n').next().unwrap_or(b"");
                    match first.strip_prefix(b"#!") {
                        Some(sb) => String::from_utf8_lossy(sb).trim().to_string(),
                        None => "/bin/sh".into(),
                    }
                }
            };
            // The script goes in through stdin; a here-file keeps it off the command line.
            let args: Vec<String> = words[1..].iter().map(|w| shell_quote(w)).collect();
            let s = format!(
                "dp_s=$(mktemp) && cat > \"$dp_s\" && chmod 700 \"$dp_s\" && {{ {interp} \"$dp_s\" {}; dp_rc=$?; rm -f \"$dp_s\"; exit $dp_rc; }}",
                args.join(" ")
            );
            return run_script(t, c, a, &s, Some(body), Value::String(r));
        }
        _ => unreachable!(),
    };
    let stdin = s(a, "stdin").map(|mut x| {
        if b(a, "stdin_add_newline", true) {
            x.push('\n');
        }
        x.into_bytes()
    });
    run_script(t, c, a, &script, stdin, cmd_val).map(|mut r| {
        if module == "raw" {
            r.remove("cmd");
            r.remove("start");
            r.remove("end");
            r.remove("delta");
        }
        r
    })
}

fn run_script(
    t: &mut dyn Transport,
    c: &ModCtx,
    a: &Args,
    script: &str,
    stdin: Option<Vec<u8>>,
    cmd_val: Value,
) -> ModResult {
    let creates = s(a, "creates");
    let removes = s(a, "removes");
    let chdir = s(a, "chdir");
    let mut pre = String::new();
    const SKIP: &str = "__dp_skip__";
    if let Some(cr) = &creates {
        pre.push_str(&format!(
            "for dp_f in {}; do if [ -e \"$dp_f\" ]; then echo {SKIP}; exit 0; fi; done\n",
            glob_word(cr)
        ));
    }
    if let Some(rm) = &removes {
        pre.push_str(&format!(
            "dp_any=0; for dp_f in {}; do [ -e \"$dp_f\" ] && dp_any=1; done; if [ $dp_any = 0 ]; then echo {SKIP}; exit 0; fi\n",
            glob_word(rm)
        ));
    }
    if c.check {
        if creates.is_none() && removes.is_none() {
            return Ok(obj(json!({
                "changed": false, "skipped": true,
                "msg": "Command would have run if not in check mode",
                "rc": 0, "stdout": "", "stderr": "", "stdout_lines": [], "stderr_lines": []
            })));
        }
        pre.push_str("exit 0\n");
    }
    if let Some(d) = &chdir {
        pre.push_str(&format!("cd {} || exit 1\n", shell_quote(d)));
    }
    let full = format!("{pre}{script}");
    let start = SystemTime::now();
    let t0 = Instant::now();
    let o = c.sh_in(t, &full, stdin)?;
    let end = SystemTime::now();
    let stdout_raw = o.stdout_str();
    if stdout_raw.trim_end() == SKIP {
        let (what, p) = match &creates {
            Some(p) => ("exists", p.clone()),
            None => ("does not exist", removes.clone().unwrap_or_default()),
        };
        return Ok(obj(json!({
            "changed": false, "rc": 0, "cmd": cmd_val,
            "stdout": format!("skipped, since {p} {what}"),
            "stdout_lines": [format!("skipped, since {p} {what}")],
            "stderr": "", "stderr_lines": [],
            "msg": format!("Did not run command since '{p}' {what}"),
        })));
    }
    if c.check {
        return Ok(obj(json!({
            "changed": true, "msg": "Command would have run if not in check mode", "rc": 0,
            "stdout": "", "stderr": "", "stdout_lines": [], "stderr_lines": []
        })));
    }
    let strip = b(a, "strip_empty_ends", true);
    let stdout = if strip {
        stdout_raw.trim_end_matches(['\r', '\n']).to_string()
    } else {
        stdout_raw.clone()
    };
    let stderr_raw = o.stderr_str();
    let stderr = if strip {
        stderr_raw.trim_end_matches(['\r', '\n']).to_string()
    } else {
        stderr_raw
    };
    let delta = t0.elapsed();
    let mut r = obj(json!({
        "changed": true,
        "cmd": cmd_val,
        "rc": o.exit_code,
        "stdout": stdout,
        "stderr": stderr,
        "stdout_lines": lines(&stdout),
        "stderr_lines": lines(&stderr),
        "start": ts(start),
        "end": ts(end),
        "delta": format!("{}:{:02}:{:02}.{:06}", delta.as_secs() / 3600, (delta.as_secs() / 60) % 60, delta.as_secs() % 60, delta.subsec_micros()),
    }));
    if o.exit_code != 0 {
        r.insert("failed".into(), Value::Bool(true));
        r.insert(
            "msg".into(),
            Value::String(if o.exit_code == 127 && stdout.is_empty() {
                format!(
                    "[Errno 2] No such file or directory: {}",
                    crate::playbook::template::py_str(&r["cmd"])
                )
            } else {
                "non-zero return code".into()
            }),
        );
    }
    Ok(r)
}

/// Shell text for one argv word with Python's `expanduser(expandvars(w))` semantics, done by
/// the node's shell: `$VAR`/`${VAR}` expand when set (else stay literal), a leading `~` expands.
fn expand_word(w: &str) -> String {
    if !w.contains('$') && !w.starts_with('~') {
        return shell_quote(w);
    }
    let mut out = String::new();
    let mut rest = w;
    if let Some(r) = w.strip_prefix('~') {
        let end = r.find('/').unwrap_or(r.len());
        let user = &r[..end];
        if user
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            out.push('~');
            out.push_str(user);
            rest = &r[end..];
        }
    }
    let mut lit = String::new();
    let b = rest.as_bytes();
    let mut i = 0;
    let flush = |lit: &mut String, out: &mut String| {
        if !lit.is_empty() {
            out.push_str(&shell_quote(lit));
            lit.clear();
        }
    };
    while i < b.len() {
        if b[i] == b'$' {
            let (name, len) = if rest[i + 1..].starts_with('{') {
                match rest[i + 2..].find('}') {
                    Some(e) => (&rest[i + 2..i + 2 + e], e + 3),
                    None => ("", 0),
                }
            } else {
                let n = rest[i + 1..]
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(rest.len() - i - 1);
                (&rest[i + 1..i + 1 + n], n + 1)
            };
            if !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !name.starts_with(|c: char| c.is_ascii_digit())
            {
                flush(&mut lit, &mut out);
                let braced = rest[i + 1..].starts_with('{');
                if braced {
                    out.push_str(&format!("\"${{{name}-\\${{{name}\\}}}}\""));
                } else {
                    out.push_str(&format!("\"${{{name}-\\${name}}}\""));
                }
                i += len;
                continue;
            }
        }
        let ch = rest[i..].chars().next().unwrap();
        lit.push(ch);
        i += ch.len_utf8();
    }
    flush(&mut lit, &mut out);
    if out.is_empty() {
        "''".into()
    } else {
        out
    }
}

/// A path for `for x in …` that still expands globs but nothing else.
fn glob_word(p: &str) -> String {
    if p.contains(['*', '?', '[']) {
        // Quote everything but the glob characters.
        let mut out = String::new();
        for ch in p.chars() {
            if "*?[]".contains(ch) {
                out.push(ch);
            } else {
                out.push_str(&shell_quote(&ch.to_string()));
            }
        }
        out
    } else {
        shell_quote(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn expand() {
        assert_eq!(expand_word("$HOME/x"), "\"${HOME-\\$HOME}\"/x");
        assert_eq!(expand_word("a${B}c"), "a\"${B-\\${B\\}}\"c");
        assert_eq!(expand_word("~/d"), "~/d");
        assert_eq!(expand_word("it's"), "'it'\\''s'");
    }

    #[test]
    fn shlex() {
        assert_eq!(
            shlex_split(r#"echo "a b" 'c d' e\ f $HOME"#).unwrap(),
            vec!["echo", "a b", "c d", "e f", "$HOME"]
        );
        assert!(shlex_split("echo 'x").is_err());
    }
}
