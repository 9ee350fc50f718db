//! Ansible's `k=v` argument strings: shell-like splitting, quoting and escapes.

use serde_json::{Map, Value};

/// Split `k=v k2="v 2"` free-form arguments the way Ansible's `split_args`/`parse_kv` do,
/// keeping quotes and Jinja blocks together.
pub fn split_args(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut depth = 0i32;
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if depth == 0 && quote.is_none() && c.is_whitespace() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            i += 1;
            continue;
        }
        if c == '\\' && quote.is_some() {
            if let Some(n) = next {
                cur.push(c);
                cur.push(n);
                i += 2;
                continue;
            }
        }
        if (c == '{' && (next == Some('{') || next == Some('%'))) && quote.is_none() {
            depth += 1;
            cur.push(c);
            cur.push(next.unwrap());
            i += 2;
            continue;
        }
        if ((c == '}' || c == '%') && next == Some('}')) && quote.is_none() && depth > 0 {
            depth -= 1;
            cur.push(c);
            cur.push('}');
            i += 2;
            continue;
        }
        match quote {
            Some(q) if c == q => quote = None,
            None if (c == '"' || c == '\'') && depth == 0 => quote = Some(c),
            _ => {}
        }
        cur.push(c);
        i += 1;
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Python `unicode_escape`-style decoding of the common escapes Ansible's `parse_kv` decodes.
fn decode_escapes(s: &str) -> String {
    if !s.contains('\\') {
        return s.to_string();
    }
    let mut out = String::new();
    let mut it = s.chars().peekable();
    while let Some(c) = it.next() {
        if c == '\\' {
            match it.peek().copied() {
                Some('n') => {
                    it.next();
                    out.push('\n')
                }
                Some('t') => {
                    it.next();
                    out.push('\t')
                }
                Some('r') => {
                    it.next();
                    out.push('\r')
                }
                Some('\\') => {
                    it.next();
                    out.push('\\')
                }
                Some('\'') => {
                    it.next();
                    out.push('\'')
                }
                Some('"') => {
                    it.next();
                    out.push('"')
                }
                _ => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn unquote(s: &str) -> String {
    let b = s.as_bytes();
    if b.len() >= 2 && (b[0] == b'"' || b[0] == b'\'') && b[b.len() - 1] == b[0] {
        let inner = &s[1..s.len() - 1];
        if b[0] == b'"' {
            return inner.replace("\\\"", "\"").replace("\\\\", "\\");
        }
        return inner.to_string();
    }
    s.to_string()
}

/// Parse free-form `k=v` arguments. For command-like modules, words that are not `k=v` of a
/// known option form `_raw_params`.
pub fn parse_kv(s: &str, free_form: bool) -> Map<String, Value> {
    const CMD_OPTS: &[&str] = &[
        "creates",
        "removes",
        "chdir",
        "executable",
        "warn",
        "stdin",
        "stdin_add_newline",
        "strip_empty_ends",
        "argv",
    ];
    let mut m = Map::new();
    let mut raw: Vec<String> = Vec::new();
    // Free-form text (a shell script) keeps its own line breaks and spacing: only the option
    // tokens are cut out of it, as Ansible does.
    let mut free_text = s.to_string();
    for tok in split_args(s) {
        let kv = tok.find('=').and_then(|i| {
            let k = &tok[..i];
            if !k.is_empty()
                && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && (!free_form || CMD_OPTS.contains(&k))
            {
                Some((k.to_string(), decode_escapes(&unquote(&tok[i + 1..]))))
            } else {
                None
            }
        });
        match kv {
            Some((k, v)) => {
                if free_form {
                    if let Some(i) = free_text.rfind(tok.as_str()) {
                        free_text.replace_range(i..i + tok.len(), "");
                    }
                }
                m.insert(k, Value::String(v));
            }
            None => raw.push(tok),
        }
    }
    if !raw.is_empty() {
        let text = if free_form && free_text.contains('\n') {
            free_text.trim().to_string()
        } else {
            raw.join(" ")
        };
        m.insert("_raw_params".into(), Value::String(text));
    }
    m
}
