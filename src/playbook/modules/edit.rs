//! Line-editing modules: lineinfile, blockinfile, replace, ini_file. Each reads the file,
//! computes the new text with a pure `*_apply` function (unit-tested) and writes it back
//! only when it changed.

use super::files::write_script;
use super::{
    add_info, b, fail, kv_lines, obj, req, s, split_keep, Args, Attrs, ModCtx, ModError, ModResult,
    ATTRS_FN, INFO_FN,
};
use crate::transport::{shell_quote, Transport};
use serde_json::{json, Value};

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

/// The read → transform → write-if-changed flow shared by the line/block/ini editors.
fn edit_file<F>(t: &mut dyn Transport, c: &ModCtx, a: &Args, path: &str, f: F) -> ModResult
where
    F: FnOnce(Option<&str>) -> Result<Option<(String, String)>, ModError>,
{
    let original = read_remote(t, c, path)?;
    let attrs = Attrs::from_args(a)?;
    let Some((new, msg)) = f(original.as_deref())? else {
        // Nothing to do and nothing to write (e.g. absent on a missing file).
        return Ok(obj(json!({"changed": false, "msg": "", "path": path})));
    };
    let changed = original.as_deref() != Some(new.as_str());
    let mut r = obj(json!({"changed": changed, "msg": msg, "path": path}));
    if changed && c.diff {
        r.insert(
            "diff".into(),
            json!({"before": original.clone().unwrap_or_default(), "after": new, "before_header": format!("{path} (content)"), "after_header": format!("{path} (content)")}),
        );
    }
    if changed {
        if c.check {
            return Ok(r);
        }
        if b(a, "backup", false) && original.is_some() {
            c.sh(
                t,
                &format!(
                    "cp -p {p} {p}.$(date +%Y-%m-%d@%H:%M:%S)~",
                    p = shell_quote(path)
                ),
            )?;
        }
        let script = format!(
            "p={}\n{}",
            shell_quote(path),
            write_script(
                &attrs,
                s(a, "validate").as_deref(),
                original.is_none(),
                Some(new.len())
            )
        );
        let o = c.sh_in(t, &script, Some(new.into_bytes()))?;
        if !o.success() {
            return fail(format!("failed to write {path}: {}", o.stderr_str().trim()));
        }
        add_info(&mut r, &kv_lines(&o.stdout_str()));
    } else if (attrs.mode.is_some() || attrs.owner.is_some() || attrs.group.is_some())
        && original.is_some()
    {
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
            let m = r
                .get("msg")
                .and_then(|m| m.as_str())
                .unwrap_or("")
                .to_string();
            r.insert(
                "msg".into(),
                Value::String(if m.is_empty() {
                    "ownership, perms or SE linux context changed".into()
                } else {
                    format!("{m} and ownership, perms or SE linux context changed")
                }),
            );
        }
        add_info(&mut r, &kv);
    }
    Ok(r)
}

fn pyre(p: &str) -> Result<regex::Regex, ModError> {
    regex::Regex::new(p).map_err(|e| ModError::Failed(format!("bad regular expression {p:?}: {e}")))
}

/// Ansible's `lineinfile` (present/absent with regexp, search_string, insertafter/before,
/// backrefs, firstmatch), line for line.
pub fn lineinfile_apply(orig: &str, a: &Args) -> Result<(String, String, bool), ModError> {
    let regexp = s(a, "regexp").or_else(|| s(a, "regex"));
    let search = s(a, "search_string");
    let state = s(a, "state").unwrap_or("present".into());
    let backrefs = b(a, "backrefs", false);
    let firstmatch = b(a, "firstmatch", false);
    let insertafter = s(a, "insertafter");
    let insertbefore = s(a, "insertbefore");
    let re_m = regexp.as_deref().map(pyre).transpose()?;
    let mut lines = split_keep(orig);
    if state == "absent" {
        let before = lines.len();
        lines.retain(|l| {
            let bare = l.trim_end_matches(['\r', '\n']);
            !match (&re_m, &search) {
                (Some(r), _) => r.is_match(bare),
                (None, Some(s)) => l.contains(s.as_str()),
                (None, None) => Some(bare) == s(a, "line").as_deref(),
            }
        });
        let n = before - lines.len();
        let msg = if n > 0 {
            format!("{n} line(s) removed")
        } else {
            String::new()
        };
        return Ok((lines.concat(), msg, n > 0));
    }
    let line = s(a, "line")
        .or_else(|| s(a, "value"))
        .ok_or_else(|| ModError::Failed("line is required with state=present".into()))?;
    let ins_re = match (&insertafter, &insertbefore) {
        (Some(x), _) if x != "BOF" && x != "EOF" => Some(pyre(x)?),
        (None, Some(x)) if x != "BOF" => Some(pyre(x)?),
        _ => None,
    };
    let mut index: [i64; 2] = [-1, -1];
    let mut m_caps: Option<String> = None;
    for (i, cur) in lines.iter().enumerate() {
        let found = match (&re_m, &search) {
            (Some(r), _) => {
                if let Some(c) = r.captures(cur.trim_end_matches(['\r', '\n'])) {
                    if backrefs {
                        let mut dst = String::new();
                        c.expand(&crate::playbook::template::py_repl(&line), &mut dst);
                        m_caps = Some(dst);
                    }
                    true
                } else {
                    false
                }
            }
            (None, Some(s)) => cur.contains(s.as_str()),
            (None, None) => cur.trim_end_matches(['\r', '\n']) == line,
        };
        if found {
            index[0] = i as i64;
            if firstmatch {
                break;
            }
        }
        if let Some(r) = &ins_re {
            if r.is_match(cur) {
                if insertafter.is_some() {
                    index[1] = i as i64 + 1;
                    if firstmatch {
                        break;
                    }
                }
                if insertbefore.is_some() {
                    index[1] = i as i64;
                    if firstmatch {
                        break;
                    }
                }
            }
        }
    }
    let mut exact = false;
    if index[0] == -1 && (re_m.is_some() || search.is_some()) {
        // The regexp did not match, but the line may already be there.
        if let Some(i) = lines
            .iter()
            .position(|l| l.trim_end_matches(['\r', '\n']) == line)
        {
            index[0] = i as i64;
            exact = true;
        }
    }
    let mut changed = false;
    let mut msg = String::new();
    if index[0] != -1 {
        let i = index[0] as usize;
        let mut new_line = if exact {
            lines[i].trim_end_matches(['\r', '\n']).to_string()
        } else if backrefs {
            m_caps.clone().unwrap_or(line.clone())
        } else {
            line.clone()
        };
        if !new_line.ends_with('\n') {
            new_line.push('\n');
        }
        if lines[i] != new_line {
            lines[i] = new_line;
            msg = "line replaced".into();
            changed = true;
        }
    } else if backrefs {
        // Nothing: the backrefs cannot be filled.
    } else if insertbefore.as_deref() == Some("BOF") || insertafter.as_deref() == Some("BOF") {
        lines.insert(0, format!("{line}\n"));
        msg = "line added".into();
        changed = true;
    } else if insertafter.as_deref() == Some("EOF") || index[1] == -1 {
        if let Some(last) = lines.last_mut() {
            if !last.ends_with('\n') && !last.ends_with('\r') {
                lines.push("\n".into());
            }
        }
        lines.push(format!("{line}\n"));
        msg = "line added".into();
        changed = true;
    } else if insertafter.is_some() && index[1] != -1 {
        let k = index[1] as usize;
        if lines.len() == k {
            if lines[k - 1].trim_end_matches(['\r', '\n']) != line {
                lines.push(format!("{line}\n"));
                msg = "line added".into();
                changed = true;
            }
        } else if line != lines[k].trim_end_matches(['\r', '\n']) {
            lines.insert(k, format!("{line}\n"));
            msg = "line added".into();
            changed = true;
        }
    } else {
        lines.insert(index[1] as usize, format!("{line}\n"));
        msg = "line added".into();
        changed = true;
    }
    Ok((lines.concat(), msg, changed))
}

pub fn lineinfile(t: &mut dyn Transport, c: &ModCtx, a: &Args) -> ModResult {
    let path = s(a, "path")
        .or_else(|| s(a, "dest"))
        .or_else(|| s(a, "name"))
        .ok_or_else(|| ModError::Failed("lineinfile: missing required arguments: path".into()))?;
    let create = b(a, "create", false);
    let state = s(a, "state").unwrap_or("present".into());
    edit_file(t, c, a, &path, |orig| match orig {
        None if state == "absent" => Ok(None),
        None if !create => fail(format!("Destination {path} does not exist !")),
        o => {
            let (new, msg, _) = lineinfile_apply(o.unwrap_or(""), a)?;
            Ok(Some((new, msg)))
        }
    })
}

pub fn blockinfile_apply(orig: &str, a: &Args) -> Result<(String, String), ModError> {
    let marker = s(a, "marker").unwrap_or("# {mark} ANSIBLE MANAGED BLOCK".into());
    let mb = s(a, "marker_begin").unwrap_or("BEGIN".into());
    let me = s(a, "marker_end").unwrap_or("END".into());
    let m0 = format!("{}\n", marker.replace("{mark}", &mb));
    let m1 = format!("{}\n", marker.replace("{mark}", &me));
    let block = s(a, "block")
        .or_else(|| s(a, "content"))
        .unwrap_or_default();
    let state = s(a, "state").unwrap_or("present".into());
    let insertafter = s(a, "insertafter");
    let insertbefore = s(a, "insertbefore");
    let blocklines: Vec<String> = if block.is_empty() || state == "absent" {
        vec![]
    } else {
        let mut v = vec![m0.clone()];
        v.extend(block.lines().map(|l| format!("{l}\n")));
        v.push(m1.clone());
        v
    };
    let mut lines = split_keep(orig);
    let norm = |l: &str| -> String { format!("{}\n", l.trim_end_matches(['\r', '\n'])) };
    let mut n0: Option<usize> = None;
    let mut n1: Option<usize> = None;
    for (i, l) in lines.iter().enumerate() {
        if norm(l) == m0 {
            n0 = Some(i);
        }
        if norm(l) == m1 {
            n1 = Some(i);
        }
    }
    let mut at: usize;
    match (n0, n1) {
        (Some(a0), Some(a1)) => {
            if a0 < a1 {
                lines.drain(a0..=a1);
                at = a0;
            } else {
                lines.drain(a1..=a0);
                at = a1;
            }
        }
        _ => {
            let ins = match (&insertafter, &insertbefore) {
                (Some(x), _) if x != "EOF" => Some((pyre(x)?, true)),
                (None, Some(x)) if x != "BOF" => Some((pyre(x)?, false)),
                _ => None,
            };
            if let Some((re, after)) = ins {
                let mut found = None;
                for (i, l) in lines.iter().enumerate() {
                    if re.is_match(l) {
                        found = Some(i);
                    }
                }
                at = match found {
                    None => lines.len(),
                    Some(i) if after => i + 1,
                    Some(i) => i,
                };
            } else if insertbefore.is_some() {
                at = 0;
            } else {
                at = lines.len();
            }
        }
    }
    if at > lines.len() {
        at = lines.len();
    }
    if at > 0 && !blocklines.is_empty() && !lines[at - 1].ends_with('\n') {
        lines[at - 1].push('\n');
    }
    for (k, l) in blocklines.iter().enumerate() {
        lines.insert(at + k, l.clone());
    }
    let result = lines.concat();
    let msg = if result == orig {
        String::new()
    } else if blocklines.is_empty() {
        "Block removed".into()
    } else {
        "Block inserted".into()
    };
    Ok((result, msg))
}

pub fn blockinfile(t: &mut dyn Transport, c: &ModCtx, a: &Args) -> ModResult {
    let path = s(a, "path")
        .or_else(|| s(a, "dest"))
        .ok_or_else(|| ModError::Failed("blockinfile: missing required arguments: path".into()))?;
    let create = b(a, "create", false);
    let state = s(a, "state").unwrap_or("present".into());
    edit_file(t, c, a, &path, |orig| match orig {
        None if state == "absent" => Ok(None),
        None if !create => fail(format!("Path {path} does not exist !")),
        o => {
            let (new, msg) = blockinfile_apply(o.unwrap_or(""), a)?;
            if o.is_none() && new.is_empty() {
                return Ok(None);
            }
            Ok(Some((
                new,
                if o.is_none() {
                    "File created".into()
                } else {
                    msg
                },
            )))
        }
    })
}

pub fn replace(t: &mut dyn Transport, c: &ModCtx, a: &Args) -> ModResult {
    let path = s(a, "path")
        .or_else(|| s(a, "dest"))
        .ok_or_else(|| ModError::Failed("replace: missing required arguments: path".into()))?;
    let regexp = req(a, "regexp", "replace")?;
    let repl = s(a, "replace").unwrap_or_default();
    let after = s(a, "after");
    let before = s(a, "before");
    let re = regex::RegexBuilder::new(&regexp)
        .multi_line(true)
        .build()
        .map_err(|e| ModError::Failed(format!("bad regexp {regexp:?}: {e}")))?;
    edit_file(t, c, a, &path, |orig| {
        let Some(orig) = orig else {
            return fail(format!("Path {path} does not exist !"));
        };
        let mut start = 0;
        let mut end = orig.len();
        if let Some(af) = &after {
            if let Some(m) = pyre(af)?.find(orig) {
                start = m.end();
            }
        }
        if let Some(bf) = &before {
            if let Some(m) = pyre(bf)?.find(&orig[start..]) {
                end = start + m.start();
            }
        }
        let section = &orig[start..end];
        let n = re.find_iter(section).count();
        let replaced = re.replace_all(section, crate::playbook::template::py_repl(&repl).as_str());
        let new = format!("{}{}{}", &orig[..start], replaced, &orig[end..]);
        let msg = if n > 0 && new != orig {
            format!("{n} replacements made")
        } else {
            String::new()
        };
        Ok(Some((new, msg)))
    })
}

pub fn ini_apply(orig: &str, a: &Args) -> Result<(String, String), ModError> {
    let section = s(a, "section").filter(|s| !s.is_empty());
    let option = s(a, "option");
    let value = s(a, "value");
    let state = s(a, "state").unwrap_or("present".into());
    let no_spaces = b(a, "no_extra_spaces", false);
    let allow_no_value = b(a, "allow_no_value", false);
    let sep = if no_spaces { "=" } else { " = " };
    let mut lines: Vec<String> = split_keep(orig)
        .into_iter()
        .map(|l| l.trim_end_matches(['\r', '\n']).to_string())
        .collect();
    let header = |l: &str| -> Option<String> {
        let t = l.trim();
        (t.starts_with('[') && t.ends_with(']')).then(|| t[1..t.len() - 1].trim().to_string())
    };
    // Section bounds: [start, end) of the body (None = global section before any header).
    let (sec_start, sec_end, found) = match &section {
        None => (
            0,
            lines
                .iter()
                .position(|l| header(l).is_some())
                .unwrap_or(lines.len()),
            true,
        ),
        Some(sname) => match lines
            .iter()
            .position(|l| header(l).as_deref() == Some(sname.as_str()))
        {
            Some(h) => {
                let end = lines[h + 1..]
                    .iter()
                    .position(|l| header(l).is_some())
                    .map(|e| h + 1 + e)
                    .unwrap_or(lines.len());
                (h + 1, end, true)
            }
            None => (lines.len(), lines.len(), false),
        },
    };
    let opt_re = option
        .as_ref()
        .map(|o| pyre(&format!(r"^\s*[#;]?\s*{}\s*(=|$)", regex::escape(o))))
        .transpose()?;
    let is_opt = |l: &str| -> bool {
        let t = l.trim_start();
        !t.starts_with('#')
            && !t.starts_with(';')
            && opt_re.as_ref().map(|r| r.is_match(l)).unwrap_or(false)
    };
    let mut msg = "OK".to_string();
    let new_line = option.as_ref().map(|o| match &value {
        Some(v) => format!("{o}{sep}{v}"),
        None if allow_no_value => o.clone(),
        None => format!("{o}{sep}"),
    });
    if state == "present" {
        if !found {
            if let Some(last) = lines.last() {
                if !last.trim().is_empty() {
                    // Ansible adds the new section at the end of the file.
                }
            }
            lines.push(format!("[{}]", section.clone().unwrap()));
            if let Some(nl) = &new_line {
                lines.push(nl.clone());
            }
            msg = "section and option added".into();
        } else if let Some(nl) = &new_line {
            let hit = (sec_start..sec_end).find(|&i| is_opt(&lines[i]));
            match hit {
                Some(i) => {
                    if lines[i] != *nl {
                        lines[i] = nl.clone();
                        msg = "option changed".into();
                    }
                }
                None => {
                    // Insert after the last non-blank line of the section.
                    let mut at = sec_end;
                    while at > sec_start && lines[at - 1].trim().is_empty() {
                        at -= 1;
                    }
                    lines.insert(at, nl.clone());
                    msg = "option added".into();
                }
            }
        }
    } else if found {
        match &option {
            Some(_) => {
                let before = lines.len();
                let mut i = sec_start;
                let mut end = sec_end;
                while i < end {
                    if is_opt(&lines[i]) {
                        lines.remove(i);
                        end -= 1;
                    } else {
                        i += 1;
                    }
                }
                if lines.len() != before {
                    msg = "option changed".into();
                }
            }
            None => {
                if section.is_some() {
                    lines.drain(sec_start - 1..sec_end);
                    msg = "section removed".into();
                }
            }
        }
    }
    let mut out = lines.join("\n");
    if !out.is_empty() {
        out.push('\n');
    }
    Ok((out, msg))
}

pub fn ini_file(t: &mut dyn Transport, c: &ModCtx, a: &Args) -> ModResult {
    let path = s(a, "path")
        .or_else(|| s(a, "dest"))
        .ok_or_else(|| ModError::Failed("ini_file: missing required arguments: path".into()))?;
    let create = b(a, "create", true);
    edit_file(t, c, a, &path, |orig| {
        if orig.is_none() && !create {
            return fail(format!("Destination {path} does not exist!"));
        }
        let (new, msg) = ini_apply(orig.unwrap_or(""), a)?;
        if orig.is_none() && new.is_empty() {
            return Ok(None);
        }
        Ok(Some((new, msg)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: Value) -> Args {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn lineinfile_semantics() {
        let f = "a=1\nb=2\n";
        let (n, m, c) =
            lineinfile_apply(f, &args(json!({"regexp": "^b=", "line": "b=3"}))).unwrap();
        assert_eq!(
            (n.as_str(), m.as_str(), c),
            ("a=1\nb=3\n", "line replaced", true)
        );
        let (n, _, c) = lineinfile_apply(f, &args(json!({"line": "b=2"}))).unwrap();
        assert_eq!((n.as_str(), c), (f, false));
        let (n, _, _) = lineinfile_apply("x", &args(json!({"line": "y"}))).unwrap();
        assert_eq!(n, "x\ny\n");
        let (n, _, _) =
            lineinfile_apply(f, &args(json!({"line": "z", "insertbefore": "BOF"}))).unwrap();
        assert_eq!(n, "z\na=1\nb=2\n");
        let (n, _, _) =
            lineinfile_apply(f, &args(json!({"line": "z", "insertafter": "^a="}))).unwrap();
        assert_eq!(n, "a=1\nz\nb=2\n");
        let (n, m, _) =
            lineinfile_apply(f, &args(json!({"regexp": "^a", "state": "absent"}))).unwrap();
        assert_eq!((n.as_str(), m.as_str()), ("b=2\n", "1 line(s) removed"));
        let (n, _, _) = lineinfile_apply(
            "port 80\n",
            &args(json!({"regexp": "^port (\\d+)", "line": "listen \\1", "backrefs": true})),
        )
        .unwrap();
        assert_eq!(n, "listen 80\n");
    }

    #[test]
    fn blockinfile_semantics() {
        let (n, m) = blockinfile_apply("x\n", &args(json!({"block": "a\nb"}))).unwrap();
        assert_eq!(
            n,
            "x\n# BEGIN ANSIBLE MANAGED BLOCK\na\nb\n# END ANSIBLE MANAGED BLOCK\n"
        );
        assert_eq!(m, "Block inserted");
        let (n2, m2) = blockinfile_apply(&n, &args(json!({"block": "a\nb"}))).unwrap();
        assert_eq!((n2.as_str(), m2.as_str()), (n.as_str(), ""));
        let (n3, _) = blockinfile_apply(&n, &args(json!({"state": "absent"}))).unwrap();
        assert_eq!(n3, "x\n");
    }

    #[test]
    fn ini_semantics() {
        let (n, _) = ini_apply(
            "",
            &args(json!({"section": "s", "option": "k", "value": "v"})),
        )
        .unwrap();
        assert_eq!(n, "[s]\nk = v\n");
        let (n2, m) = ini_apply(
            &n,
            &args(json!({"section": "s", "option": "k", "value": "w"})),
        )
        .unwrap();
        assert_eq!(
            (n2.as_str(), m.as_str()),
            ("[s]\nk = w\n", "option changed")
        );
    }
}
