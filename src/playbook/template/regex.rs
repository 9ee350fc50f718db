//! Ansible's regular-expression filters (`regex_replace`, `regex_search`, `regex_findall`,
//! `regex_escape`) and tests (`match`, `search`) with Python `re` semantics where the regex
//! crate allows: replacement templates as `re.sub` reads them (`\1`, `\g<name>`, `\g<2>`,
//! `\n`…, unknown letter escapes refused), `regex_search` group arguments returning a list.

use super::args::{j, jerr, split_kwargs};
use super::py_str;
use minijinja::value::{Kwargs, Rest, Value as JValue, ValueOrKwargs};
use minijinja::Error as JError;

/// Python `re` replacement syntax (`\1`, `\g<name>`) to the regex crate's (`${1}`); an
/// escape Python refuses is kept as written (the line-editing modules use this).
pub fn py_repl(r: &str) -> String {
    py_repl_checked(r).unwrap_or_else(|_| r.replace('$', "$$"))
}

/// [`py_repl`], refusing what `re.sub` refuses (`\q`: bad escape; `\g<` without `>`).
pub fn py_repl_checked(r: &str) -> Result<String, String> {
    let b: Vec<char> = r.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == '$' {
            out.push_str("$$");
            i += 1;
            continue;
        }
        if c != '\\' || i + 1 == b.len() {
            out.push(c);
            i += 1;
            continue;
        }
        let n = b[i + 1];
        i += 2;
        match n {
            'g' => {
                let end = (b.get(i) == Some(&'<'))
                    .then(|| b[i..].iter().position(|c| *c == '>'))
                    .flatten()
                    .ok_or_else(|| format!("missing group name at position {}", i - 2))?;
                let name: String = b[i + 1..i + end].iter().collect();
                out.push_str(&format!("${{{name}}}"));
                i += end + 1;
            }
            '0'..='9' => {
                // `\0`, or three octal digits: a character; otherwise a group of 1-2 digits
                let digits: String = b[i - 1..]
                    .iter()
                    .take(3)
                    .take_while(|c| c.is_ascii_digit())
                    .collect();
                let octal = n == '0' || (digits.len() == 3 && digits.chars().all(|c| c < '8'));
                if octal {
                    let o: String = b[i - 1..]
                        .iter()
                        .take(3)
                        .take_while(|c| ('0'..'8').contains(*c))
                        .collect();
                    let v = u32::from_str_radix(&o, 8).unwrap_or(0);
                    out.push(char::from_u32(v).unwrap_or('\0'));
                    i += o.len() - 1;
                } else {
                    let g: String = digits.chars().take(2).collect();
                    out.push_str(&format!("${{{g}}}"));
                    i += g.len() - 1;
                }
            }
            'a' => out.push('\x07'),
            'b' => out.push('\x08'),
            'f' => out.push('\x0c'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            'v' => out.push('\x0b'),
            '\\' => out.push('\\'),
            l if l.is_ascii_alphabetic() => return Err(format!("bad escape \\{l}")),
            '$' => out.push_str("\\$$"),
            other => {
                out.push('\\');
                out.push(other);
            }
        }
    }
    Ok(out)
}

/// Compile `pat` with the `ignorecase` and `multiline` flags of `kw`; Python's `\Z` is `\z`.
pub(super) fn py_regex(pat: &str, kw: &Kwargs) -> Result<regex::Regex, JError> {
    let icase: Option<bool> = kw.get("ignorecase").ok().flatten();
    let multi: Option<bool> = kw.get("multiline").ok().flatten();
    let translated = pat.replace("\\Z", "\\z");
    let mut b = regex::RegexBuilder::new(&translated);
    b.case_insensitive(icase.unwrap_or(false))
        .multi_line(multi.unwrap_or(false));
    b.build()
        .map_err(|e| jerr(format!("bad regular expression {pat:?}: {e}")))
}

pub(super) fn f_regex_replace(
    v: JValue,
    pat: String,
    args: Rest<ValueOrKwargs>,
) -> Result<JValue, JError> {
    let (pos, kw) = split_kwargs(&args.into_values());
    let repl = pos
        .first()
        .and_then(|r| r.as_str().map(String::from))
        .unwrap_or_default();
    let count: usize = kw.get::<Option<usize>>("count")?.unwrap_or(0);
    let mandatory: usize = kw.get::<Option<usize>>("mandatory_count")?.unwrap_or(0);
    let s = py_str(&j(&v)?);
    let re = py_regex(&pat, &kw)?;
    let repl = py_repl_checked(&repl).map_err(|e| jerr(format!("regex_replace: {e}")))?;
    let found = re.find_iter(&s).count();
    let subs = if count == 0 { found } else { found.min(count) };
    if mandatory != 0 && mandatory != subs {
        return Err(jerr(format!(
            "'{pat}' should match {mandatory} times, but matches {subs} times in '{s}'"
        )));
    }
    Ok(JValue::from(
        re.replacen(&s, count, repl.as_str()).into_owned(),
    ))
}

/// A `regex_search` group argument: `\N` (a number) or `\g<name>`.
enum Group {
    Index(usize),
    Name(String),
}

fn group_arg(a: &JValue) -> Result<Group, JError> {
    let s = a.as_str().unwrap_or("");
    if let Some(rest) = s.strip_prefix("\\g") {
        let name = rest
            .strip_prefix('<')
            .and_then(|r| r.split_once('>'))
            .map(|(n, _)| n)
            .filter(|n| !n.is_empty() && !n.contains(char::is_whitespace))
            .ok_or_else(|| jerr(format!("regex_search: bad group argument {s:?}")))?;
        Ok(Group::Name(name.to_string()))
    } else if let Some(rest) = s.strip_prefix('\\') {
        let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        digits
            .parse()
            .map(Group::Index)
            .map_err(|_| jerr(format!("regex_search: bad group argument {s:?}")))
    } else {
        Err(jerr("Unknown argument"))
    }
}

pub(super) fn f_regex_search(
    v: JValue,
    pat: String,
    args: Rest<ValueOrKwargs>,
) -> Result<JValue, JError> {
    let (pos, kw) = split_kwargs(&args.into_values());
    let groups = pos.iter().map(group_arg).collect::<Result<Vec<_>, _>>()?;
    let s = py_str(&j(&v)?);
    let re = py_regex(&pat, &kw)?;
    let Some(c) = re.captures(&s) else {
        return Ok(JValue::from(()));
    };
    if groups.is_empty() {
        return Ok(JValue::from(c.get(0).map_or("", |m| m.as_str())));
    }
    let mut out = Vec::new();
    for g in groups {
        let (m, known) = match &g {
            Group::Index(i) => (c.get(*i), *i < c.len()),
            Group::Name(n) => (c.name(n), re.capture_names().any(|x| x == Some(n))),
        };
        if !known {
            return Err(jerr("regex_search: no such group"));
        }
        // a group that took no part in the match is None, as in Python
        out.push(m.map_or(JValue::from(()), |m| JValue::from(m.as_str())));
    }
    Ok(JValue::from(out))
}

pub(super) fn f_regex_findall(v: JValue, pat: String, kw: Kwargs) -> Result<JValue, JError> {
    let s = py_str(&j(&v)?);
    let re = py_regex(&pat, &kw)?;
    let text = |m: Option<regex::Match>| JValue::from(m.map_or("", |m| m.as_str()));
    let out: Vec<JValue> = re
        .captures_iter(&s)
        .map(|c| match c.len() {
            1 => text(c.get(0)),
            2 => text(c.get(1)),
            n => JValue::from((1..n).map(|i| text(c.get(i))).collect::<Vec<_>>()),
        })
        .collect();
    Ok(JValue::from(out))
}

pub(super) fn f_regex_escape(s: String) -> String {
    regex::escape(&s)
}

pub(super) fn t_match(v: String, pat: String, kw: Kwargs) -> Result<bool, JError> {
    let re = py_regex(&format!("^(?:{pat})"), &kw)?;
    Ok(re.is_match(&v))
}

pub(super) fn t_search(v: String, pat: String, kw: Kwargs) -> Result<bool, JError> {
    Ok(py_regex(&pat, &kw)?.is_match(&v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_replacement_templates() {
        assert_eq!(py_repl_checked(r"\2 \1").unwrap(), "${2} ${1}");
        assert_eq!(py_repl_checked(r"\g<b>-\g<2>0").unwrap(), "${b}-${2}0");
        assert_eq!(py_repl_checked(r"\10").unwrap(), "${10}");
        assert_eq!(py_repl_checked(r"\101").unwrap(), "A");
        assert_eq!(py_repl_checked(r"a\\b\n$1").unwrap(), "a\\b\n$$1");
        assert_eq!(py_repl_checked(r"\.").unwrap(), r"\.");
        assert!(py_repl_checked(r"\q").is_err());
        assert!(py_repl_checked(r"\g<1").is_err());
        assert_eq!(py_repl(r"\q"), r"\q");
    }
}
