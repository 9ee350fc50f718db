//! Python-style printing of values: `repr`/`str`, `json.dumps` and PyYAML-like dumping, so
//! templated output matches what Ansible prints for the same data.

use serde_json::Value;

fn py_str_repr(s: &str) -> String {
    let q = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::new();
    out.push(q);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c == q => {
                out.push('\\');
                out.push(c)
            }
            c => out.push(c),
        }
    }
    out.push(q);
    out
}

fn py_num(n: &serde_json::Number) -> String {
    if let Some(f) = n.as_f64().filter(|_| n.is_f64()) {
        crate::playbook::yaml::py_float(f)
    } else {
        n.to_string()
    }
}

/// Python's `repr()` of a JSON value.
pub fn py_repr(v: &Value) -> String {
    match v {
        Value::Null => "None".into(),
        Value::Bool(b) => if *b { "True" } else { "False" }.into(),
        Value::Number(n) => py_num(n),
        Value::String(s) => py_str_repr(s),
        Value::Array(a) => format!("[{}]", a.iter().map(py_repr).collect::<Vec<_>>().join(", ")),
        Value::Object(o) => format!(
            "{{{}}}",
            o.iter()
                .map(|(k, v)| format!("{}: {}", py_str_repr(k), py_repr(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Python's `str()` of a JSON value (what `{{ x }}` prints).
pub fn py_str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => py_repr(other),
    }
}

// ---------------------------------------------------------------------------------------
// Python json.dumps

fn json_str(s: &str, ensure_ascii: bool) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (ensure_ascii && (c as u32) > 0x7e) => {
                let mut buf = [0u16; 2];
                for u in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{:04x}", u));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `json.dumps(v, indent=indent, sort_keys=sort, ensure_ascii=ascii)`.
pub fn py_json(v: &Value, indent: Option<usize>, sort: bool, ascii: bool) -> String {
    fn go(v: &Value, ind: Option<usize>, sort: bool, ascii: bool, lvl: usize, out: &mut String) {
        match v {
            Value::Null => out.push_str("null"),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Number(n) => out.push_str(&py_num(n)),
            Value::String(s) => out.push_str(&json_str(s, ascii)),
            Value::Array(a) => {
                if a.is_empty() {
                    out.push_str("[]");
                    return;
                }
                out.push('[');
                for (i, x) in a.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                        if ind.is_none() {
                            out.push(' ');
                        }
                    }
                    if let Some(n) = ind {
                        out.push('\n');
                        out.push_str(&" ".repeat(n * (lvl + 1)));
                    }
                    go(x, ind, sort, ascii, lvl + 1, out);
                }
                if let Some(n) = ind {
                    out.push('\n');
                    out.push_str(&" ".repeat(n * lvl));
                }
                out.push(']');
            }
            Value::Object(o) => {
                if o.is_empty() {
                    out.push_str("{}");
                    return;
                }
                let mut keys: Vec<&String> = o.keys().collect();
                if sort {
                    keys.sort();
                }
                out.push('{');
                for (i, k) in keys.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                        if ind.is_none() {
                            out.push(' ');
                        }
                    }
                    if let Some(n) = ind {
                        out.push('\n');
                        out.push_str(&" ".repeat(n * (lvl + 1)));
                    }
                    out.push_str(&json_str(k, ascii));
                    out.push_str(": ");
                    go(&o[k.as_str()], ind, sort, ascii, lvl + 1, out);
                }
                if let Some(n) = ind {
                    out.push('\n');
                    out.push_str(&" ".repeat(n * lvl));
                }
                out.push('}');
            }
        }
    }
    let mut out = String::new();
    go(v, indent, sort, ascii, 0, &mut out);
    out
}

// ---------------------------------------------------------------------------------------
// YAML dumping (PyYAML-like, for to_yaml / to_nice_yaml)

fn yaml_scalar(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => if *b { "true" } else { "false" }.into(),
        Value::Number(n) => py_num(n),
        Value::String(s) => {
            let plain_ok = !s.is_empty()
                && !s.starts_with(|c: char| " -?:,[]{}#&*!|>'\"%@`".contains(c))
                && !s.ends_with(' ')
                && !s.contains(": ")
                && !s.contains(" #")
                && !s.contains('\n')
                && matches!(
                    crate::playbook::yaml::resolve_plain(s),
                    crate::playbook::yaml::YValue::Str(_)
                );
            if plain_ok {
                s.clone()
            } else if s.contains('\n') || s.chars().any(|c| c.is_control()) {
                json_str(s, false)
            } else {
                format!("'{}'", s.replace('\'', "''"))
            }
        }
        _ => unreachable!(),
    }
}

fn is_scalar(v: &Value) -> bool {
    !matches!(v, Value::Array(_) | Value::Object(_))
}

fn yaml_flow(v: &Value) -> String {
    match v {
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(yaml_flow).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(o) => {
            let mut keys: Vec<&String> = o.keys().collect();
            keys.sort();
            format!(
                "{{{}}}",
                keys.iter()
                    .map(|k| format!(
                        "{}: {}",
                        yaml_scalar(&Value::String((*k).clone())),
                        yaml_flow(&o[k.as_str()])
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
        s => yaml_scalar(s),
    }
}

/// `yaml.dump(v, default_flow_style=None)` (to_yaml) or block style with `indent` (to_nice_yaml).
pub fn py_yaml(v: &Value, nice: bool, indent: usize) -> String {
    fn leaf(v: &Value) -> bool {
        match v {
            Value::Array(a) => a.iter().all(is_scalar),
            Value::Object(o) => o.values().all(is_scalar),
            _ => true,
        }
    }
    fn block(v: &Value, nice: bool, ind: usize, lvl: usize, out: &mut String) {
        let pad = " ".repeat(lvl);
        match v {
            Value::Object(o) => {
                let mut keys: Vec<&String> = o.keys().collect();
                keys.sort();
                for k in keys {
                    let x = &o[k.as_str()];
                    out.push_str(&pad);
                    out.push_str(&yaml_scalar(&Value::String(k.clone())));
                    out.push(':');
                    let empty = matches!(x, Value::Array(a) if a.is_empty())
                        || matches!(x, Value::Object(m) if m.is_empty());
                    if is_scalar(x) || empty || (!nice && leaf(x)) {
                        out.push(' ');
                        out.push_str(&yaml_flow(x));
                        out.push('\n');
                    } else {
                        out.push('\n');
                        let sub = if matches!(x, Value::Array(_)) {
                            lvl
                        } else {
                            lvl + ind
                        };
                        block(x, nice, ind, sub, out);
                    }
                }
            }
            Value::Array(a) => {
                for x in a {
                    out.push_str(&pad);
                    out.push('-');
                    let empty = matches!(x, Value::Array(a) if a.is_empty())
                        || matches!(x, Value::Object(m) if m.is_empty());
                    if is_scalar(x) || empty || (!nice && leaf(x)) {
                        out.push(' ');
                        out.push_str(&yaml_flow(x));
                        out.push('\n');
                    } else {
                        out.push_str(&" ".repeat(ind - 1));
                        let mut sub = String::new();
                        block(x, nice, ind, lvl + ind, &mut sub);
                        out.push_str(sub.trim_start());
                    }
                }
            }
            s => {
                out.push_str(&yaml_scalar(s));
                out.push('\n');
            }
        }
    }
    let mut out = String::new();
    if is_scalar(v) || (!nice && leaf(v)) && !matches!(v, Value::Object(_) | Value::Array(_)) {
        out.push_str(&yaml_flow(v));
        out.push_str("\n...\n");
        return out;
    }
    let empty = matches!(v, Value::Array(a) if a.is_empty())
        || matches!(v, Value::Object(m) if m.is_empty());
    if empty || (!nice && leaf(v)) {
        out.push_str(&yaml_flow(v));
        out.push('\n');
        return out;
    }
    block(v, nice, indent, 0, &mut out);
    out
}
