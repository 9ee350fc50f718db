//! `ini_file` (community.general 11): a port of its `do_ini`, line for line, so the text and
//! the `msg` are the collection's. Its regexps are fixed, so they are matched by hand here.

use super::Outcome;
use crate::playbook::modules::{b, fail, s, split_keep, Args, ModError};
use crate::playbook::template::py_str;
use serde_json::Value;

/// The collection's name for the lines before the first section.
const FAKE_SECTION: &str = "ad01e11446efb704fcdbdb21f2c43757423d91c5";

/// `( |\t)*([#;]?)( |\t)*(OPTION)( |\t)*(=|$)( |\t)*(.*)` matched at the start of `line`:
/// the comment mark (group 2) and the value (group 8). `active`: no comment mark allowed.
fn match_opt(option: &str, line: &str, active: bool) -> Option<(bool, String)> {
    let blank = [' ', '\t'];
    let mut rest = line.trim_start_matches(blank);
    let mut commented = false;
    if !active {
        if let Some(r) = rest.strip_prefix(['#', ';']) {
            commented = true;
            rest = r.trim_start_matches(blank);
        }
    }
    let rest = rest.strip_prefix(option)?.trim_start_matches(blank);
    let value = if let Some(v) = rest.strip_prefix('=') {
        v.trim_start_matches(blank)
    } else if rest.is_empty() || rest == "\n" {
        ""
    } else {
        return None;
    };
    let value = value.split('\n').next().unwrap_or("");
    Some((commented, value.to_string()))
}

/// `^\[\s*SECTION\s*]` at the start of `line`.
fn is_header(section: &str, line: &str) -> bool {
    line.strip_prefix('[')
        .map(|r| r.trim_start())
        .and_then(|r| r.strip_prefix(section))
        .map(|r| r.trim_start().starts_with(']'))
        .unwrap_or(false)
}

/// `^[ \t]*([#;].*)?$`: a blank or comment line.
fn blank_or_comment(line: &str) -> bool {
    let body = line.strip_suffix('\n').unwrap_or(line);
    let r = body.trim_start_matches([' ', '\t']);
    !r.contains('\n') && (r.is_empty() || r.starts_with(['#', ';']))
}

/// A `list` argument as Ansible converts it: a string is split on commas.
fn str_list(v: Option<&Value>) -> Option<Vec<String>> {
    match v? {
        Value::Null => None,
        Value::Array(xs) => Some(xs.iter().filter(|x| !x.is_null()).map(py_str).collect()),
        Value::String(x) => Some(x.split(',').map(|p| p.trim().to_string()).collect()),
        other => Some(vec![py_str(other)]),
    }
}

struct Cond {
    option: String,
    values: Vec<String>,
}

struct Opts {
    section: String,
    has_values: Option<Vec<Cond>>,
    option: Option<String>,
    values: Vec<String>,
    present: bool,
    exclusive: bool,
    fmt_eq: &'static str,
    ignore_spaces: bool,
    allow_no_value: bool,
    active_only: bool,
}

impl Opts {
    fn from_args(a: &Args) -> Result<Opts, ModError> {
        let present = s(a, "state").as_deref() != Some("absent");
        let allow_no_value = b(a, "allow_no_value", false);
        if s(a, "value").is_some() && str_list(a.get("values")).is_some() {
            return fail("parameters are mutually exclusive: value|values");
        }
        let mut values = match s(a, "value") {
            Some(v) => vec![v],
            None => str_list(a.get("values")).unwrap_or_default(),
        };
        if present && !allow_no_value && values.is_empty() {
            return fail(
                "Parameter 'value(s)' must be defined if state=present and allow_no_value=False.",
            );
        }
        let mut unique: Vec<String> = vec![];
        for v in values.drain(..) {
            if !unique.contains(&v) {
                unique.push(v);
            }
        }
        let has_values = match a.get("section_has_values") {
            Some(Value::Array(cs)) => Some(
                cs.iter()
                    .filter_map(|c| c.as_object())
                    .map(|c| Cond {
                        option: s(c, "option").unwrap_or_default(),
                        values: match s(c, "value") {
                            Some(v) => vec![v],
                            None => str_list(c.get("values")).unwrap_or_default(),
                        },
                    })
                    .collect(),
            ),
            _ => None,
        };
        Ok(Opts {
            section: s(a, "section")
                .filter(|x| !x.is_empty())
                .unwrap_or(FAKE_SECTION.into()),
            has_values,
            option: s(a, "option").filter(|x| !x.is_empty()),
            values: unique,
            present,
            exclusive: b(a, "exclusive", true),
            fmt_eq: if b(a, "no_extra_spaces", false) {
                "="
            } else {
                " = "
            },
            ignore_spaces: b(a, "ignore_spaces", false),
            allow_no_value,
            active_only: !b(a, "modify_inactive_option", true),
        })
    }

    fn assign(&self, option: &str, value: &str) -> String {
        format!("{option}{}{value}\n", self.fmt_eq)
    }

    fn has_values(&self, lines: &[String]) -> bool {
        let Some(conds) = &self.has_values else {
            return true;
        };
        conds.iter().all(|c| {
            lines.iter().any(|l| {
                match_opt(&c.option, l, false)
                    .map(|(_, v)| c.values.is_empty() || c.values.contains(&v))
                    .unwrap_or(false)
            })
        })
    }
}

/// The collection's `update_section_line`: replace line `i` unless only spacing differs
/// (`ignore_spaces`), mark it as handled.
fn update_line(o: &Opts, opt: &str, st: &mut State, i: usize, newline: String) {
    let mut differs = None;
    if o.ignore_spaces {
        if let Some((false, old)) = match_opt(opt, &st.lines[i], false) {
            differs = Some(match_opt(opt, &newline, false).map(|m| m.1) != Some(old));
        }
    }
    let differs = differs.unwrap_or(st.lines[i] != newline);
    if differs {
        st.lines[i] = newline;
        st.changed = true;
        st.msg = "option changed";
    }
    st.done[i] = true;
}

struct State {
    lines: Vec<String>,
    done: Vec<bool>,
    changed: bool,
    msg: &'static str,
}

/// `ini_file` on a file's text (`None`: the file does not exist and `create` is on).
pub fn ini_apply(orig: Option<&str>, a: &Args) -> Result<Outcome, ModError> {
    let mut o = Opts::from_args(a)?;
    // Read as Python text: BOM dropped, universal newlines.
    let text = orig.unwrap_or("");
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    let mut ini = split_keep(&text);
    let mut changed = false;
    if ini.is_empty() {
        ini.push("\n".into());
    }
    if !ini.last().unwrap().ends_with('\n') {
        ini.last_mut().unwrap().push('\n');
        changed = true;
    }
    ini.insert(0, format!("[{FAKE_SECTION}]"));
    ini.push("[".into());
    let (mut within, mut start, mut end) = (false, 0, 0);
    let wanted = o.section.trim().to_string();
    for (i, l) in ini.iter().enumerate() {
        if within && l.starts_with('[') {
            if o.has_values(&ini[start..i]) {
                end = i;
                break;
            }
            (within, start, end) = (false, 0, 0);
        }
        if is_header(&wanted, l) {
            within = true;
            start = i;
        }
    }
    let after = ini.split_off(end);
    let section = ini.split_off(start);
    let before = ini;
    let n = section.len();
    let mut st = State {
        lines: section,
        done: vec![false; n],
        changed,
        msg: "OK",
    };
    if o.present {
        present(&mut o, &mut st);
    } else {
        absent(&o, &mut st);
    }
    let mut out: Vec<String> = before
        .into_iter()
        .chain(std::mem::take(&mut st.lines))
        .chain(after)
        .collect();
    out.remove(0);
    out.pop();
    if !within && o.present {
        add_section(&mut o, &mut out, &mut st);
    }
    Ok(Outcome::new(out.concat(), st.msg, st.changed))
}

fn present(o: &mut Opts, st: &mut State) {
    let matches = |o: &Opts, l: &str, opt: &str| match_opt(opt, l, o.active_only);
    let mut no_value_present = false;
    if let Some(opt) = o.option.clone() {
        for i in 0..st.lines.len() {
            let Some((_, v)) = matches(o, &st.lines[i], &opt) else {
                continue;
            };
            if !o.values.is_empty() && o.values.contains(&v) {
                let newline = if v.is_empty() && o.allow_no_value {
                    no_value_present = true;
                    format!("{opt}\n")
                } else {
                    o.assign(&opt, &v)
                };
                update_line(o, &opt, st, i, newline);
                let k = o.values.iter().position(|x| *x == v).unwrap();
                o.values.remove(k);
            } else if o.values.is_empty() && o.allow_no_value {
                update_line(o, &opt, st, i, format!("{opt}\n"));
                no_value_present = true;
                break;
            }
        }
    }
    let opt = o.option.clone().unwrap_or_default();
    if o.exclusive && !o.allow_no_value {
        if !o.values.is_empty() {
            for i in 0..st.lines.len() {
                if !st.done[i] && matches(o, &st.lines[i], &opt).is_some() {
                    let v = o.values.remove(0);
                    update_line(o, &opt, st, i, o.assign(&opt, &v));
                    if o.values.is_empty() {
                        break;
                    }
                }
            }
        }
        for i in (1..st.lines.len()).rev() {
            if !st.done[i] && matches(o, &st.lines[i], &opt).is_some() {
                st.lines.remove(i);
                st.done.remove(i);
                st.changed = true;
                st.msg = "option changed";
            }
        }
    }
    for i in (1..=st.lines.len()).rev() {
        if blank_or_comment(&st.lines[i - 1]) {
            continue;
        }
        if o.option.is_some() && !o.values.is_empty() {
            for v in o.values.iter().rev() {
                st.lines.insert(i, o.assign(&opt, v));
                st.msg = "option added";
                st.changed = true;
            }
        } else if o.option.is_some() && o.values.is_empty() && o.allow_no_value && !no_value_present
        {
            st.lines.insert(i, format!("{opt}\n"));
            st.msg = "option added";
            st.changed = true;
        }
        break;
    }
}

fn absent(o: &Opts, st: &mut State) {
    match &o.option {
        Some(opt) => {
            let keep = |l: &String| match match_opt(opt, l, true) {
                None => true,
                Some(_) if o.exclusive => false,
                Some((_, v)) => !o.values.contains(&v),
            };
            if o.exclusive || !o.values.is_empty() {
                let new: Vec<String> = st.lines.iter().filter(|l| keep(l)).cloned().collect();
                if new != st.lines {
                    st.lines = new;
                    st.changed = true;
                    st.msg = "option changed";
                }
            }
        }
        None => {
            if !st.lines.is_empty() {
                st.lines.clear();
                st.msg = "section removed";
                st.changed = true;
            }
        }
    }
}

/// The section was not found: append it, with the options of `section_has_values` and ours.
fn add_section(o: &mut Opts, out: &mut Vec<String>, st: &mut State) {
    out.push(format!("[{}]\n", o.section));
    st.msg = "section and option added";
    let opt = o.option.clone();
    if let Some(conds) = &o.has_values {
        for c in conds {
            if Some(&c.option) != opt.as_ref() {
                if !c.values.is_empty() {
                    for v in &c.values {
                        out.push(o.assign(&c.option, v));
                    }
                } else if o.allow_no_value {
                    out.push(format!("{}\n", c.option));
                }
            } else if !o.exclusive {
                for v in &c.values {
                    if !o.values.contains(v) {
                        o.values.push(v.clone());
                    }
                }
            }
        }
    }
    match &opt {
        Some(op) if !o.values.is_empty() => {
            for v in &o.values {
                out.push(o.assign(op, v));
            }
        }
        Some(op) if o.allow_no_value => out.push(format!("{op}\n")),
        _ => st.msg = "only section added",
    }
    st.changed = true;
}
