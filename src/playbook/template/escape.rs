//! Ansible's `escape_backslashes`: in a template that comes from a YAML value (not a template
//! file, not a conditional), a string literal inside `{{ … }}` keeps its backslashes as
//! written, because YAML already processed the escapes once. `"{{ s | regex_replace('(a)',
//! '\\1') }}"` hands `\1` to the filter, not chr(1). Statements (`{% … %}`), comments and
//! `{% raw %}` blocks are left alone, as ansible-core's lexer does.
//!
//! minijinja unescapes its string literals itself, so the literal is rewritten so that its
//! unescaped value is exactly the text Jinja's lexer would have delimited.

use std::borrow::Cow;

/// `src` (a template) with the string literals of its `{{ … }}` blocks rewritten.
pub fn template(src: &str) -> Cow<'_, str> {
    if !src.contains('\\') {
        return Cow::Borrowed(src);
    }
    let b = src.as_bytes();
    let mut out = String::with_capacity(src.len() + 8);
    let mut i = 0;
    let mut copied = 0;
    while i + 1 < b.len() {
        match (b[i], b[i + 1]) {
            (b'{', b'{') => {
                out.push_str(&src[copied..i + 2]);
                i = expression(src, i + 2, true, &mut out);
                copied = i;
            }
            (b'{', b'#') => i = find_from(src, i + 2, "#}").map_or(b.len(), |e| e + 2),
            (b'{', b'%') => {
                let end = statement_end(src, i + 2);
                i = if is_raw(statement_body(src, i + 2, end)) {
                    raw_end(src, end)
                } else {
                    end
                };
            }
            _ => i += 1,
        }
    }
    if copied == 0 {
        return Cow::Borrowed(src);
    }
    out.push_str(&src[copied..]);
    Cow::Owned(out)
}

/// A bare expression (a string that is exactly one `{{ expr }}`) rewritten the same way.
pub fn expression_only(expr: &str) -> Cow<'_, str> {
    if !expr.contains('\\') {
        return Cow::Borrowed(expr);
    }
    let mut out = String::with_capacity(expr.len() + 8);
    expression(expr, 0, false, &mut out);
    Cow::Owned(out)
}

fn find_from(src: &str, from: usize, pat: &str) -> Option<usize> {
    src.get(from..)?.find(pat).map(|p| p + from)
}

/// Copy the expression starting at `i` to `out`, rewriting string literals; stop after its
/// closing `}}` (outside brackets) when `delimited`. The index after what was copied.
fn expression(src: &str, mut i: usize, delimited: bool, out: &mut String) -> usize {
    let b = src.as_bytes();
    let mut depth = 0usize;
    let mut copied = i;
    while i < b.len() {
        match b[i] {
            q @ (b'\'' | b'"') => {
                let Some(end) = literal_end(b, i + 1, q) else {
                    break;
                };
                out.push_str(&src[copied..i]);
                out.push(q as char);
                for c in src[i + 1..end].chars() {
                    if c == '\\' || c == q as char {
                        out.push('\\');
                    }
                    out.push(c);
                }
                out.push(q as char);
                i = end + 1;
                copied = i;
                continue;
            }
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' => depth = depth.saturating_sub(1),
            b'}' if delimited && depth == 0 && b.get(i + 1) == Some(&b'}') => {
                out.push_str(&src[copied..i + 2]);
                return i + 2;
            }
            b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    out.push_str(&src[copied..]);
    b.len()
}

/// The index of the quote closing a literal whose body starts at `i` (a backslash makes the
/// next character part of the body, as in Jinja's string regex).
fn literal_end(b: &[u8], mut i: usize, q: u8) -> Option<usize> {
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            c if c == q => return Some(i),
            _ => i += 1,
        }
    }
    None
}

/// The index after the `%}` closing a statement whose body starts at `i` (quotes respected).
fn statement_end(src: &str, mut i: usize) -> usize {
    let b = src.as_bytes();
    while i < b.len() {
        match b[i] {
            q @ (b'\'' | b'"') => match literal_end(b, i + 1, q) {
                Some(e) => i = e + 1,
                None => return b.len(),
            },
            b'%' if b.get(i + 1) == Some(&b'}') => return i + 2,
            _ => i += 1,
        }
    }
    b.len()
}

/// The text of a statement from `start` (after `{%`) to `end` (from [`statement_end`]),
/// without its `%}`. An unterminated statement runs to the end of `src` and has no `%}` to
/// drop (cutting two bytes off it split a multi-byte character: a panic the fuzzer found).
fn statement_body(src: &str, start: usize, end: usize) -> &str {
    let s = &src[start..end];
    s.strip_suffix("%}").unwrap_or(s)
}

fn is_raw(body: &str) -> bool {
    body.trim_matches(|c: char| c == '-' || c == '+' || c.is_whitespace()) == "raw"
}

/// The index after the `{% endraw %}` that closes a raw block whose content starts at `i`.
fn raw_end(src: &str, mut i: usize) -> usize {
    while let Some(s) = find_from(src, i, "{%") {
        let end = statement_end(src, s + 2);
        let body = statement_body(src, s + 2, end);
        if body.trim_matches(|c: char| c == '-' || c == '+' || c.is_whitespace()) == "endraw" {
            return end;
        }
        i = end;
    }
    src.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_in_expressions_keep_their_backslashes() {
        // the string after YAML: {{ s | regex_replace('(\w+)', '\1') }}
        assert_eq!(
            template(r"a {{ s | regex_replace('(\w+)', '\1') }} b"),
            r"a {{ s | regex_replace('(\\w+)', '\\1') }} b"
        );
        assert_eq!(
            template(r#"{{ "it\'s" ~ 'x\"' }}"#),
            r#"{{ "it\\'s" ~ 'x\\"' }}"#
        );
        // statements, comments and raw blocks stay as written
        for s in [
            r"{% set r = '\1' %}{{ r }}",
            r"{# '\1' #}",
            r"{% raw %}{{ '\1' }}{% endraw %}",
            r"no\template",
        ] {
            assert_eq!(template(s), s);
        }
        assert_eq!(
            template(r"{{ {'a': {'b': '\d'}} }}{{ '\t' }}"),
            r"{{ {'a': {'b': '\\d'}} }}{{ '\\t' }}"
        );
        assert_eq!(
            expression_only(r" x | regex_search('\1') "),
            r" x | regex_search('\\1') "
        );
    }
}
