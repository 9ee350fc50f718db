//! The pure text transforms of `lineinfile`, `blockinfile` and `replace`, ported statement by
//! statement from ansible-core 2.19's modules (same branches, same messages), so that the
//! bytes written are the ones ansible-core writes.

use super::pyre::{self, Mode};
use super::Outcome;
use crate::playbook::modules::{b, fail, s, split_keep, Args, ModError};
use fancy_regex::Regex;
use serde_json::json;

/// Compile a user pattern; the error names the module, the option and the pattern.
pub(super) fn re_opt(module: &str, opt: &str, p: &str, mode: Mode) -> Result<Regex, ModError> {
    pyre::compile(p, mode).map_err(|e| ModError::Failed(format!("{module}: {opt} {e}")))
}

/// `re.search` on a line; a run-time failure (backtrack limit) names the module and pattern.
fn found(module: &str, re: &Regex, line: &str) -> Result<bool, ModError> {
    pyre::search(re, line)
        .map_err(|e| ModError::Failed(format!("{module}: matching {:?} failed: {e}", re.as_str())))
}

/// Refuse options Ansible declares mutually exclusive, with its message.
pub(super) fn exclusive(a: &Args, pairs: &[(&str, &str)]) -> Result<(), ModError> {
    for (x, y) in pairs {
        if s(a, x).is_some() && s(a, y).is_some() && a.get(*x) != Some(&json!(false)) {
            return fail(format!("parameters are mutually exclusive: {x}|{y}"));
        }
    }
    Ok(())
}

fn stripped(l: &str) -> &str {
    l.trim_end_matches(['\r', '\n'])
}

/// `lineinfile` on an existing (or, with `create`, empty) file's text.
pub fn lineinfile_apply(orig: &str, a: &Args) -> Result<Outcome, ModError> {
    exclusive(
        a,
        &[
            ("insertbefore", "insertafter"),
            ("regexp", "search_string"),
            ("backrefs", "search_string"),
        ],
    )?;
    let regexp = s(a, "regexp").or_else(|| s(a, "regex"));
    let search = s(a, "search_string");
    let line = s(a, "line").or_else(|| s(a, "value"));
    let lines = split_keep(orig);
    let re = regexp
        .as_deref()
        .map(|p| re_opt("lineinfile", "regexp", p, Mode::Line))
        .transpose()?;
    if s(a, "state").as_deref() == Some("absent") {
        if (&regexp, &search, &line) == (&None, &None, &None) {
            return fail("one of line, search_string, or regexp is required with state=absent");
        }
        let mut kept = vec![];
        let mut n = 0;
        for l in lines {
            let hit = match (&re, &search) {
                (Some(r), _) => found("lineinfile", r, &l)?,
                (None, Some(ss)) => l.contains(ss.as_str()),
                (None, None) => Some(stripped(&l)) == line.as_deref(),
            };
            if hit {
                n += 1;
            } else {
                kept.push(l);
            }
        }
        let mut o = Outcome::new(kept.concat(), "", n > 0);
        if n > 0 {
            o.msg = format!("{n} line(s) removed");
        }
        o.extra.insert("found".into(), json!(n));
        return Ok(o);
    }
    let backrefs = b(a, "backrefs", false);
    if backrefs && regexp.is_none() {
        return fail("regexp is required with backrefs=true");
    }
    let Some(line) = line else {
        return fail("line is required with state=present");
    };
    let mut ins_before = s(a, "insertbefore");
    let mut ins_after = s(a, "insertafter");
    if ins_before.is_none() && ins_after.is_none() {
        ins_after = Some("EOF".into());
    }
    let ins_re = match (&ins_after, &ins_before) {
        (Some(x), _) if x != "BOF" && x != "EOF" => {
            Some(re_opt("lineinfile", "insertafter", x, Mode::Line)?)
        }
        (None, Some(x)) if x != "BOF" => Some(re_opt("lineinfile", "insertbefore", x, Mode::Line)?),
        _ => None,
    };
    if ins_before.as_deref() == Some("") {
        ins_before = None; // Python: an empty string is false
    }
    let opts = Present {
        regexp: re.as_ref(),
        search: search.as_deref(),
        line: &line,
        ins_after: ins_after.as_deref().filter(|x| !x.is_empty()),
        ins_before: ins_before.as_deref(),
        ins_re: ins_re.as_ref(),
        backrefs,
        firstmatch: b(a, "firstmatch", false),
    };
    present(lines, &opts)
}

struct Present<'a> {
    regexp: Option<&'a Regex>,
    search: Option<&'a str>,
    line: &'a str,
    ins_after: Option<&'a str>,
    ins_before: Option<&'a str>,
    ins_re: Option<&'a Regex>,
    backrefs: bool,
    firstmatch: bool,
}

/// Where the regexp/search_string matched (`index[0]`), where insertafter/insertbefore did
/// (`index[1]`), the regexp's captures for `backrefs`, whether the line itself was found.
struct Found {
    index: [i64; 2],
    matched: bool,
    expanded: Option<String>,
    exact: bool,
}

fn locate(lines: &[String], o: &Present) -> Result<Found, ModError> {
    let mut f = Found {
        index: [-1, -1],
        matched: false,
        expanded: None,
        exact: false,
    };
    if let Some(re) = o.regexp {
        for (i, l) in lines.iter().enumerate() {
            let caps = re.captures(l.as_str()).map_err(|e| {
                ModError::Failed(format!(
                    "lineinfile: matching {:?} failed: {e}",
                    re.as_str()
                ))
            })?;
            if let Some(caps) = caps {
                f.index[0] = i as i64;
                f.matched = true;
                f.expanded = if o.backrefs {
                    let t = pyre::template(o.line, re).map_err(|e| {
                        ModError::Failed(format!("lineinfile: line {:?}: {e}", o.line))
                    })?;
                    Some(pyre::expand(&t, &caps))
                } else {
                    None
                };
                if o.firstmatch {
                    break;
                }
            }
        }
    }
    if let Some(ss) = o.search {
        for (i, l) in lines.iter().enumerate() {
            if l.contains(ss) {
                f.index[0] = i as i64;
                f.matched = true;
                if o.firstmatch {
                    break;
                }
            }
        }
    }
    if !f.matched {
        for (i, l) in lines.iter().enumerate() {
            if stripped(l) == o.line {
                f.index[0] = i as i64;
                f.exact = true;
            } else if let Some(r) = o.ins_re {
                if found("lineinfile", r, l)? {
                    if o.ins_after.is_some() {
                        f.index[1] = i as i64 + 1;
                        if o.firstmatch {
                            break;
                        }
                    }
                    if o.ins_before.is_some() {
                        f.index[1] = i as i64;
                        if o.firstmatch {
                            break;
                        }
                    }
                }
            }
        }
    }
    Ok(f)
}

fn present(mut lines: Vec<String>, o: &Present) -> Result<Outcome, ModError> {
    let f = locate(&lines, o)?;
    let line_nl = format!("{}\n", o.line);
    let mut msg = "";
    let [i0, i1] = f.index;
    if i0 != -1 {
        let mut new_line = match (&f.expanded, o.backrefs && f.matched) {
            (Some(e), true) => e.clone(),
            _ => o.line.to_string(),
        };
        if !new_line.ends_with('\n') {
            new_line.push('\n');
        }
        // (The ansible-core branch for "no regexp, no search, no exact match" cannot be
        // reached with index[0] set, so it is left out.)
        if lines[i0 as usize] != new_line {
            lines[i0 as usize] = new_line;
            msg = "line replaced";
        }
    } else if o.backrefs {
        // No match: the back-references cannot be filled, so nothing is done.
    } else if o.ins_before == Some("BOF") || o.ins_after == Some("BOF") {
        lines.insert(0, line_nl);
        msg = "line added";
    } else if o.ins_after == Some("EOF") || i1 == -1 {
        if let Some(last) = lines.last() {
            if !last.ends_with(['\n', '\r']) {
                lines.push("\n".into());
            }
        }
        lines.push(line_nl);
        msg = "line added";
    } else if o.ins_after.is_some() && i1 != -1 {
        let k = i1 as usize;
        if lines.len() == k {
            if stripped(&lines[k - 1]) != o.line {
                lines.push(line_nl);
                msg = "line added";
            }
        } else if o.line != stripped(&lines[k]) {
            lines.insert(k, line_nl);
            msg = "line added";
        }
    } else {
        lines.insert(i1 as usize, line_nl);
        msg = "line added";
    }
    Ok(Outcome::new(lines.concat(), msg, !msg.is_empty()))
}

/// Python's `bytes.splitlines(True)`: lines end at `\n`, `\r\n` or a lone `\r`.
fn splitlines_keep(s: &str) -> Vec<String> {
    let mut out = vec![];
    let mut start = 0;
    let bs = s.as_bytes();
    let mut i = 0;
    while i < bs.len() {
        let end = match bs[i] {
            b'\n' => i + 1,
            b'\r' if bs.get(i + 1) == Some(&b'\n') => i + 2,
            b'\r' => i + 1,
            _ => {
                i += 1;
                continue;
            }
        };
        out.push(s[start..end].to_string());
        start = end;
        i = end;
    }
    if start < s.len() {
        out.push(s[start..].to_string());
    }
    out
}

/// Where a block goes when its markers are not both in the file (`n0` in ansible-core).
fn block_position(
    orig: &str,
    lines: &[String],
    ins_after: Option<&str>,
    ins_before: Option<&str>,
) -> Result<usize, ModError> {
    let re = match (ins_after, ins_before) {
        (Some(x), _) if x != "EOF" => Some(re_opt("blockinfile", "insertafter", x, Mode::Line)?),
        (None, Some(x)) if x != "BOF" => {
            Some(re_opt("blockinfile", "insertbefore", x, Mode::Line)?)
        }
        _ => None,
    };
    let Some(re) = re else {
        return Ok(if ins_before.is_some() { 0 } else { lines.len() });
    };
    let pat = ins_after.or(ins_before).unwrap_or("");
    let mut n0 = None;
    if pyre::has_global_m(pat) {
        // A `(?m)` pattern is searched in the whole text; the block goes by line count.
        if let Some(m) = re
            .find(orig)
            .map_err(|e| ModError::Failed(format!("blockinfile: {e}")))?
        {
            let at = if ins_after.is_some() {
                m.end()
            } else {
                m.start()
            };
            n0 = Some(orig[..at].matches('\n').count());
        }
    } else {
        for (i, l) in lines.iter().enumerate() {
            if found("blockinfile", &re, l)? {
                n0 = Some(i);
            }
        }
    }
    Ok(match n0 {
        None => lines.len(),
        Some(n) if ins_after.is_some() => n + 1,
        Some(n) => n,
    })
}

/// `blockinfile`; `orig` is `None` for a file that does not exist yet (`create: yes`).
pub fn blockinfile_apply(orig: Option<&str>, a: &Args) -> Result<Outcome, ModError> {
    exclusive(a, &[("insertbefore", "insertafter")])?;
    let marker = s(a, "marker").unwrap_or("# {mark} ANSIBLE MANAGED BLOCK".into());
    let m0 = format!(
        "{}\n",
        marker.replace("{mark}", &s(a, "marker_begin").unwrap_or("BEGIN".into()))
    );
    let m1 = format!(
        "{}\n",
        marker.replace("{mark}", &s(a, "marker_end").unwrap_or("END".into()))
    );
    let mut block = s(a, "block")
        .or_else(|| s(a, "content"))
        .unwrap_or_default();
    let present = s(a, "state").as_deref() != Some("absent");
    let ins_before = s(a, "insertbefore");
    let mut ins_after = s(a, "insertafter");
    if ins_before.is_none() && ins_after.is_none() {
        ins_after = Some("EOF".into());
    }
    let blocklines: Vec<String> = if present && !block.is_empty() {
        if !block.ends_with('\n') {
            block.push('\n');
        }
        let mut v = vec![m0.clone()];
        v.extend(splitlines_keep(&block));
        v.push(m1.clone());
        v
    } else {
        vec![]
    };
    let mut lines = splitlines_keep(orig.unwrap_or(""));
    let n0 = lines.iter().rposition(|l| *l == m0);
    let n1 = lines.iter().rposition(|l| *l == m1);
    let mut at = match (n0, n1) {
        (Some(x), Some(y)) if x < y => {
            lines.drain(x..=y);
            x
        }
        (Some(x), Some(y)) => {
            lines.drain(y..=x);
            y
        }
        _ => block_position(
            orig.unwrap_or(""),
            &lines,
            ins_after.as_deref(),
            ins_before.as_deref(),
        )?,
    };
    if at > 0 && !lines[at - 1].ends_with('\n') {
        lines[at - 1].push('\n');
    }
    if b(a, "prepend_newline", false) && present && at != 0 && lines[at - 1] != "\n" {
        lines.insert(at, "\n".into());
        at += 1;
    }
    let after = at + blocklines.len();
    lines.splice(at..at, blocklines.iter().cloned());
    if b(a, "append_newline", false) && present && after < lines.len() && lines[after] != "\n" {
        lines.insert(after, "\n".into());
    }
    let result = lines.concat();
    let msg = if orig == Some(result.as_str()) {
        ""
    } else if orig.is_none() {
        "File created"
    } else if blocklines.is_empty() {
        "Block removed"
    } else {
        "Block inserted"
    };
    Ok(Outcome::new(result, msg, !msg.is_empty()))
}

/// `replace` on a file's text: `regexp` (MULTILINE) replaced by `replace` between `after` and
/// `before` (searched as one DOTALL pattern, as ansible-core builds it).
pub fn replace_apply(orig: &str, a: &Args) -> Result<Outcome, ModError> {
    let regexp = s(a, "regexp")
        .ok_or_else(|| ModError::Failed("replace: missing required arguments: regexp".into()))?;
    let repl = s(a, "replace").unwrap_or_default();
    let after = s(a, "after").filter(|x| !x.is_empty());
    let before = s(a, "before").filter(|x| !x.is_empty());
    let pattern = match (&after, &before) {
        (Some(x), Some(y)) => format!("{x}(?P<subsection>.*?){y}"),
        (Some(x), None) => format!("{x}(?P<subsection>.*)"),
        (None, Some(y)) => format!("(?P<subsection>.*){y}"),
        (None, None) => String::new(),
    };
    let (start, end) = if pattern.is_empty() {
        (0, orig.len())
    } else {
        let sre = re_opt("replace", "after/before", &pattern, Mode::DotAll)?;
        let caps = sre
            .captures(orig)
            .map_err(|e| ModError::Failed(format!("replace: {e}")))?;
        match caps.and_then(|c| c.name("subsection").map(|m| (m.start(), m.end()))) {
            Some(r) => r,
            None => {
                let mut o = Outcome::new(orig.to_string(), "", false);
                o.msg = format!(
                    "Pattern for before/after params did not match the given file: {pattern}"
                );
                o.extra.insert("rc".into(), json!(0));
                return Ok(o);
            }
        }
    };
    let re = re_opt("replace", "regexp", &regexp, Mode::Multiline)?;
    let err = |e: String| ModError::Failed(format!("Unable to process replace due to error: {e}"));
    let pieces = pyre::template(&repl, &re).map_err(err)?;
    let section = &orig[start..end];
    let (new_section, n) = pyre::subn(&re, section, &pieces).map_err(err)?;
    let mut o = if n > 0 && new_section != section {
        let text = format!("{}{}{}", &orig[..start], new_section, &orig[end..]);
        Outcome::new(text, &format!("{n} replacements made"), true)
    } else {
        Outcome::new(orig.to_string(), "", false)
    };
    o.extra.insert("rc".into(), json!(0));
    Ok(o)
}
