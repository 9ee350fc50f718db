//! User regular expressions with Python's `re` semantics, on `fancy-regex` (look-around and
//! back-references). Python-only syntax is translated first: `(?P=name)` and `(?P<name>…)`
//! pass through (fancy-regex reads them), `\Z` becomes `\z`, a `{` that is no quantifier is a
//! literal, `{,n}` means `{0,n}`, `[` inside a class is a literal, `(?#…)` is a comment and
//! the flags `a`, `L`, `u` are dropped. Replacement templates follow `re.sub`'s rules
//! (`\1`, `\g<1>`, `\g<name>`, `\n`, octal escapes; an unknown letter escape is an error).

use fancy_regex::{Captures, Regex, RegexBuilder};

/// How `$` (outside `(?m)`) is read. Python's `$` also matches before a final `\n`; on a
/// single line (lineinfile, blockinfile: one line with its `\n` at a time) that is exactly
/// "end, ignoring trailing newlines", which fancy-regex spells `\Z`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Matched against one line at a time (its `\n` included).
    Line,
    /// Whole text with `re.MULTILINE` (replace): `^`/`$` at every line, as in Rust's `(?m)`.
    Multiline,
    /// Whole text with `re.DOTALL` (replace's after/before section).
    DotAll,
}

/// Compile a user pattern. The error names the pattern; callers add the module and option.
pub fn compile(pat: &str, mode: Mode) -> Result<Regex, String> {
    let body = translate(pat, mode == Mode::Line && !has_global_m(pat))?;
    let full = match mode {
        Mode::Line => body,
        Mode::Multiline => format!("(?m){body}"),
        Mode::DotAll => format!("(?s){body}"),
    };
    RegexBuilder::new(&full)
        .build()
        .map_err(|e| format!("{pat:?} is not a valid regular expression: {e}"))
}

/// `(?m)` (possibly among other flags) at the start: Python applies it to the whole pattern.
pub fn has_global_m(p: &str) -> bool {
    p.strip_prefix("(?")
        .and_then(|r| r.split_once(')'))
        .map(|(f, _)| !f.is_empty() && f.chars().all(|c| "aiLmsux".contains(c)) && f.contains('m'))
        .unwrap_or(false)
}

/// Rewrite Python syntax that fancy-regex reads differently. `dollar`: `$` → `\Z` (see [`Mode`]).
pub fn translate(p: &str, dollar: bool) -> Result<String, String> {
    let c: Vec<char> = p.chars().collect();
    let mut out = String::with_capacity(p.len() + 8);
    let mut i = 0;
    let mut in_class = false;
    while i < c.len() {
        let ch = c[i];
        if ch == '\\' {
            let Some(&n) = c.get(i + 1) else {
                return Err(format!("{p:?}: bad escape (end of pattern)"));
            };
            if !in_class && n == 'Z' {
                out.push_str("\\z");
            } else if n == '0' || (n.is_digit(8) && in_class) {
                // Octal escape: \0, \0o, \0oo (and any octal in a class).
                let mut j = i + 1;
                let mut v = 0u32;
                while j < c.len() && j < i + 4 && c[j].is_digit(8) {
                    v = v * 8 + c[j].to_digit(8).unwrap();
                    j += 1;
                }
                out.push_str(&format!("\\x{{{v:x}}}"));
                i = j;
                continue;
            } else {
                out.push(ch);
                out.push(n);
            }
            i += 2;
            continue;
        }
        if in_class {
            match ch {
                ']' => in_class = false,
                '[' | '&' | '~' => out.push('\\'),
                '-' if c.get(i + 1) == Some(&'-') => out.push('\\'),
                _ => {}
            }
            out.push(ch);
            i += 1;
            continue;
        }
        match ch {
            '[' => {
                in_class = true;
                out.push('[');
                i += 1;
                if c.get(i) == Some(&'^') {
                    out.push('^');
                    i += 1;
                }
                if c.get(i) == Some(&']') {
                    out.push_str("\\]");
                    i += 1;
                }
                continue;
            }
            '$' if dollar => out.push_str("\\Z"),
            '{' => match quantifier(&c[i..]) {
                Some((q, len)) => {
                    out.push_str(&q);
                    i += len;
                    continue;
                }
                None => out.push_str("\\{"),
            },
            '}' => out.push_str("\\}"),
            '(' if c.get(i + 1) == Some(&'?') => {
                i += group_prefix(&c, i, &mut out);
                continue;
            }
            _ => out.push(ch),
        }
        i += 1;
    }
    Ok(out)
}

/// A Python quantifier at `c[0] == '{'`: `{n}`, `{n,}`, `{,m}`, `{n,m}`; its Rust form and length.
fn quantifier(c: &[char]) -> Option<(String, usize)> {
    let end = c.iter().position(|&x| x == '}')?;
    let inner: String = c[1..end].iter().collect();
    if inner.is_empty() || !inner.chars().all(|x| x.is_ascii_digit() || x == ',') {
        return None;
    }
    let (lo, hi) = match inner.split_once(',') {
        None => (inner.clone(), None),
        Some((lo, hi)) if !hi.contains(',') => (lo.to_string(), Some(hi.to_string())),
        _ => return None,
    };
    let lo = if lo.is_empty() { "0".to_string() } else { lo };
    let q = match hi {
        None => format!("{{{lo}}}"),
        Some(h) => format!("{{{lo},{h}}}"),
    };
    Some((q, end + 1))
}

/// `(?…` at `c[i]`: comments are dropped and the ASCII/locale/unicode flags removed; anything
/// else is copied. Returns how many chars were consumed.
fn group_prefix(c: &[char], i: usize, out: &mut String) -> usize {
    if c.get(i + 2) == Some(&'#') {
        let close = c[i..].iter().position(|&x| x == ')').unwrap_or(c.len() - i);
        return close + 1;
    }
    let mut j = i + 2;
    let mut flags = String::new();
    while j < c.len() && "aiLmsux-".contains(c[j]) {
        flags.push(c[j]);
        j += 1;
    }
    if !flags.is_empty() && matches!(c.get(j), Some(')') | Some(':')) {
        let kept: String = flags.chars().filter(|f| !"aLu".contains(*f)).collect();
        let kept = kept.trim_end_matches('-');
        if kept.is_empty() {
            if c[j] == ':' {
                out.push_str("(?:");
            }
        } else {
            out.push_str("(?");
            out.push_str(kept);
            out.push(c[j]);
        }
        return j + 1 - i;
    }
    out.push_str("(?");
    2
}

/// One piece of a parsed replacement template.
#[derive(Debug, PartialEq)]
pub enum Piece {
    Lit(String),
    Group(usize),
}

/// Parse a `re.sub` template against `re`'s groups, with Python's error messages.
pub fn template(t: &str, re: &Regex) -> Result<Vec<Piece>, String> {
    let groups = re.captures_len();
    let names: Vec<Option<&str>> = re.capture_names().collect();
    let c: Vec<char> = t.chars().collect();
    let mut out: Vec<Piece> = vec![];
    let mut lit = String::new();
    let group = |out: &mut Vec<Piece>, lit: &mut String, g: usize| {
        if !lit.is_empty() {
            out.push(Piece::Lit(std::mem::take(lit)));
        }
        out.push(Piece::Group(g));
    };
    let mut i = 0;
    while i < c.len() {
        if c[i] != '\\' {
            lit.push(c[i]);
            i += 1;
            continue;
        }
        let Some(&n) = c.get(i + 1) else {
            return Err(format!("bad escape (end of pattern) at position {i}"));
        };
        let at = i;
        i += 2;
        match n {
            'g' => {
                if c.get(i) != Some(&'<') {
                    return Err("missing <".into());
                }
                let close = c[i..]
                    .iter()
                    .position(|&x| x == '>')
                    .ok_or("missing >, unterminated name")?;
                let name: String = c[i + 1..i + close].iter().collect();
                i += close + 1;
                let g = if !name.is_empty() && name.chars().all(|x| x.is_ascii_digit()) {
                    let g: usize = name.parse().map_err(|_| "invalid group reference")?;
                    if g >= groups {
                        return Err(format!("invalid group reference {g}"));
                    }
                    g
                } else {
                    names
                        .iter()
                        .position(|x| *x == Some(name.as_str()))
                        .ok_or_else(|| format!("unknown group name '{name}'"))?
                };
                group(&mut out, &mut lit, g);
            }
            '0' => {
                let mut v = 0u32;
                let mut k = 0;
                while k < 2 && c.get(i).map(|x| x.is_digit(8)).unwrap_or(false) {
                    v = v * 8 + c[i].to_digit(8).unwrap();
                    i += 1;
                    k += 1;
                }
                lit.push(char::from_u32(v).unwrap_or('\0'));
            }
            d if d.is_ascii_digit() => {
                let mut num = d.to_string();
                if let Some(&e) = c.get(i).filter(|x| x.is_ascii_digit()) {
                    num.push(e);
                    i += 1;
                    let third = c.get(i).filter(|x| x.is_digit(8)).copied();
                    if let (true, Some(f)) = (num.chars().all(|x| x.is_digit(8)), third) {
                        num.push(f);
                        i += 1;
                        let v = u32::from_str_radix(&num, 8).unwrap();
                        if v > 0o377 {
                            return Err(format!(
                                "octal escape value \\{num} outside of range 0-0o377"
                            ));
                        }
                        lit.push(char::from_u32(v).unwrap());
                        continue;
                    }
                }
                let g: usize = num.parse().unwrap();
                if g >= groups {
                    return Err(format!(
                        "invalid group reference {g} at position {}",
                        at + 1
                    ));
                }
                group(&mut out, &mut lit, g);
            }
            'a' => lit.push('\x07'),
            'b' => lit.push('\x08'),
            'f' => lit.push('\x0c'),
            'n' => lit.push('\n'),
            'r' => lit.push('\r'),
            't' => lit.push('\t'),
            'v' => lit.push('\x0b'),
            '\\' => lit.push('\\'),
            l if l.is_ascii_alphabetic() => {
                return Err(format!("bad escape \\{l} at position {at}"))
            }
            other => {
                lit.push('\\');
                lit.push(other);
            }
        }
    }
    if !lit.is_empty() {
        out.push(Piece::Lit(lit));
    }
    Ok(out)
}

/// `Match.expand`: unmatched groups give the empty string (Python 3.5+).
pub fn expand(pieces: &[Piece], caps: &Captures<'_, str>) -> String {
    let mut s = String::new();
    for p in pieces {
        match p {
            Piece::Lit(l) => s.push_str(l),
            Piece::Group(g) => s.push_str(caps.get(*g).map(|m| m.as_str()).unwrap_or("")),
        }
    }
    s
}

/// `re.search(...)` is not None.
pub fn search(re: &Regex, text: &str) -> Result<bool, String> {
    re.is_match(text).map_err(|e| e.to_string())
}

/// `re.subn`: Python 3.7+ rules for empty matches (one may follow a non-empty match, two
/// empty matches never share a position). Returns the new text and the number of matches.
pub fn subn(re: &Regex, text: &str, pieces: &[Piece]) -> Result<(String, usize), String> {
    let mut out = String::with_capacity(text.len());
    let mut last = 0; // end of the text copied so far
    let mut pos = 0;
    let mut n = 0;
    let mut prev_empty_at: Option<usize> = None;
    while pos <= text.len() {
        let Some(caps) = re.captures_from_pos(text, pos).map_err(|e| e.to_string())? else {
            break;
        };
        let m = caps.get(0).unwrap();
        if m.start() == m.end() && prev_empty_at == Some(m.start()) {
            // Must advance: look again one character further on.
            match text[m.start()..].chars().next() {
                Some(ch) => {
                    pos = m.start() + ch.len_utf8();
                    prev_empty_at = None;
                    continue;
                }
                None => break,
            }
        }
        out.push_str(&text[last..m.start()]);
        out.push_str(&expand(pieces, &caps));
        last = m.end();
        n += 1;
        prev_empty_at = (m.start() == m.end()).then_some(m.end());
        pos = m.end();
    }
    out.push_str(&text[last..]);
    Ok((out, n))
}
