//! Playbook YAML as PyYAML's `SafeLoader` reads it (YAML 1.1 implicit types), with a
//! `line:col` position on every node for error messages.
//!
//! saphyr-parser gives us events with spans and the raw text of each scalar together with
//! its style; we resolve plain scalars ourselves with PyYAML's regular expressions:
//! `yes`/`no`/`on`/`off` are booleans, `0644` is octal, `1:30` is sexagesimal, `1e3` is a
//! string (PyYAML's float needs a dot), `~`/`null`/empty are null. Quoted scalars stay strings.

use crate::yaml_limits::{self, AliasBudget};
use saphyr_parser::{Event, Parser, ScalarStyle, Span};
use serde_json::{Map, Number, Value};
use std::collections::HashMap;
use std::sync::OnceLock;

/// A position in a source file (both 1-based).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

#[derive(Clone, Debug, PartialEq)]
pub enum YValue {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<YNode>),
    Map(Vec<(YNode, YNode)>),
}

/// One YAML node with its position.
#[derive(Clone, Debug, PartialEq)]
pub struct YNode {
    pub v: YValue,
    pub pos: Pos,
}

#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}:{col}: {msg}")]
pub struct YamlError {
    pub file: String,
    pub line: usize,
    pub col: usize,
    pub msg: String,
}

impl YNode {
    pub fn as_str(&self) -> Option<&str> {
        match &self.v {
            YValue::Str(s) => Some(s),
            _ => None,
        }
    }
    pub fn as_map(&self) -> Option<&[(YNode, YNode)]> {
        match &self.v {
            YValue::Map(m) => Some(m),
            _ => None,
        }
    }
    pub fn as_seq(&self) -> Option<&[YNode]> {
        match &self.v {
            YValue::Seq(s) => Some(s),
            _ => None,
        }
    }
    /// Look up a key in a mapping node.
    pub fn get(&self, key: &str) -> Option<&YNode> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k.key_string() == key)
            .map(|(_, v)| v)
    }
    /// The key as Python's `str()` would print it (keys become strings in our JSON model).
    pub fn key_string(&self) -> String {
        match &self.v {
            YValue::Str(s) => s.clone(),
            YValue::Null => "None".into(),
            YValue::Bool(b) => if *b { "True" } else { "False" }.into(),
            YValue::Int(i) => i.to_string(),
            YValue::Float(f) => py_float(*f),
            other => {
                let n = YNode {
                    v: other.clone(),
                    pos: self.pos,
                };
                n.to_json().to_string()
            }
        }
    }
    pub fn to_json(&self) -> Value {
        match &self.v {
            YValue::Null => Value::Null,
            YValue::Bool(b) => Value::Bool(*b),
            YValue::Int(i) => Value::Number((*i).into()),
            YValue::Float(f) => Number::from_f64(*f)
                .map(Value::Number)
                .unwrap_or(Value::Null),
            YValue::Str(s) => Value::String(s.clone()),
            YValue::Seq(s) => Value::Array(s.iter().map(|n| n.to_json()).collect()),
            YValue::Map(m) => {
                let mut out = Map::new();
                for (k, v) in m {
                    out.insert(k.key_string(), v.to_json());
                }
                Value::Object(out)
            }
        }
    }
}

/// Python's `repr()` of a float, close enough for keys and messages.
pub fn py_float(f: f64) -> String {
    if f.is_nan() {
        "nan".into()
    } else if f.is_infinite() {
        if f > 0.0 { "inf" } else { "-inf" }.into()
    } else if f == f.trunc() && f.abs() < 1e16 {
        format!("{f:.1}")
    } else {
        format!("{f}")
    }
}

struct Re {
    bool_: regex::Regex,
    int: regex::Regex,
    float: regex::Regex,
    null: regex::Regex,
}

fn re() -> &'static Re {
    static R: OnceLock<Re> = OnceLock::new();
    R.get_or_init(|| Re {
        bool_: regex::Regex::new(
            r"^(?:yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$",
        )
        .unwrap(),
        int: regex::Regex::new(
            r"^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$",
        )
        .unwrap(),
        float: regex::Regex::new(
            r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
        )
        .unwrap(),
        null: regex::Regex::new(r"^(?:~|null|Null|NULL|)$").unwrap(),
    })
}

/// Resolve a plain scalar the way PyYAML's `SafeLoader` does.
pub fn resolve_plain(s: &str) -> YValue {
    let r = re();
    if r.null.is_match(s) {
        return YValue::Null;
    }
    if r.bool_.is_match(s) {
        return YValue::Bool(matches!(
            s.to_ascii_lowercase().as_str(),
            "yes" | "true" | "on"
        ));
    }
    if r.int.is_match(s) {
        if let Some(i) = construct_int(s) {
            return YValue::Int(i);
        }
    }
    if r.float.is_match(s) {
        if let Some(f) = construct_float(s) {
            return YValue::Float(f);
        }
    }
    YValue::Str(s.to_string())
}

fn construct_int(s: &str) -> Option<i64> {
    let v: String = s.chars().filter(|c| *c != '_').collect();
    let (neg, v) = match v.as_bytes().first() {
        Some(b'-') => (true, &v[1..]),
        Some(b'+') => (false, &v[1..]),
        _ => (false, &v[..]),
    };
    let n: i64 = if v == "0" {
        0
    } else if let Some(b) = v.strip_prefix("0b") {
        i64::from_str_radix(b, 2).ok()?
    } else if let Some(h) = v.strip_prefix("0x") {
        i64::from_str_radix(h, 16).ok()?
    } else if let Some(oct) = v.strip_prefix('0') {
        i64::from_str_radix(oct, 8).ok()?
    } else if v.contains(':') {
        let mut n: i64 = 0;
        for part in v.split(':') {
            n = n.checked_mul(60)?.checked_add(part.parse::<i64>().ok()?)?;
        }
        n
    } else {
        v.parse().ok()?
    };
    Some(if neg { -n } else { n })
}

fn construct_float(s: &str) -> Option<f64> {
    let v: String = s
        .chars()
        .filter(|c| *c != '_')
        .collect::<String>()
        .to_ascii_lowercase();
    let (neg, v) = match v.as_bytes().first() {
        Some(b'-') => (true, &v[1..]),
        Some(b'+') => (false, &v[1..]),
        _ => (false, &v[..]),
    };
    let f = if v == ".inf" {
        f64::INFINITY
    } else if v == ".nan" {
        f64::NAN
    } else if v.contains(':') {
        let mut f = 0.0;
        for part in v.split(':') {
            f = f * 60.0 + part.parse::<f64>().ok()?;
        }
        f
    } else {
        v.parse().ok()?
    };
    Some(if neg { -f } else { f })
}

enum Frame {
    Seq(Vec<YNode>, Pos, usize),
    Map(Vec<(YNode, YNode)>, Option<YNode>, Pos, usize),
}

fn pos_of(span: &Span) -> Pos {
    Pos {
        line: span.start.line(),
        col: span.start.col() + 1,
    }
}

/// Parse every document of a YAML stream, within the bounds of [`crate::yaml_limits`]
/// (document size, what aliases may expand to).
pub fn load_all(src: &str, file: &str) -> Result<Vec<YNode>, YamlError> {
    let err = |pos: Pos, msg: String| YamlError {
        file: file.to_string(),
        line: pos.line,
        col: pos.col,
        msg,
    };
    yaml_limits::check_document_size(src.len()).map_err(|m| err(Pos { line: 1, col: 1 }, m))?;
    let mut parser = Parser::new_from_str(src);
    let mut docs = Vec::new();
    let mut stack: Vec<Frame> = Vec::new();
    let mut anchors: HashMap<usize, YNode> = HashMap::new();
    let mut budget = AliasBudget::default();
    while let Some(ev) = parser.next_event() {
        let (ev, span) = ev.map_err(|e| YamlError {
            file: file.to_string(),
            line: e.marker().line(),
            col: e.marker().col() + 1,
            msg: format!("YAML syntax error: {}", e.info()),
        })?;
        let pos = pos_of(&span);
        budget.event(&ev).map_err(|m| err(pos, m))?;
        let done: Option<(YNode, usize)> = match ev {
            Event::StreamStart | Event::DocumentStart(_) | Event::Nothing => None,
            Event::StreamEnd => break,
            Event::DocumentEnd => None,
            Event::Alias(id) => {
                let n = anchors
                    .get(&id)
                    .cloned()
                    .ok_or_else(|| err(pos, "found undefined alias".into()))?;
                Some((YNode { v: n.v, pos }, 0))
            }
            Event::Scalar(val, style, anchor, tag) => {
                let v = match tag {
                    Some(t) => {
                        let suffix = t.suffix.as_str();
                        let core = t.is_yaml_core_schema() || t.handle == "!!";
                        match (core, suffix) {
                            (true, "str") => YValue::Str(val.to_string()),
                            (true, "int") => YValue::Int(
                                construct_int(&val)
                                    .ok_or_else(|| err(pos, format!("invalid !!int {val:?}")))?,
                            ),
                            (true, "float") => YValue::Float(
                                construct_float(&val)
                                    .or_else(|| construct_int(&val).map(|i| i as f64))
                                    .ok_or_else(|| err(pos, format!("invalid !!float {val:?}")))?,
                            ),
                            (true, "bool") => match resolve_plain(&val) {
                                b @ YValue::Bool(_) => b,
                                _ => return Err(err(pos, format!("invalid !!bool {val:?}"))),
                            },
                            (true, "null") => YValue::Null,
                            (false, "unsafe") if t.handle == "!" => YValue::Str(val.to_string()),
                            (false, "vault") if t.handle == "!" => {
                                return Err(err(
                                    pos,
                                    "Ansible Vault values (!vault) are not supported".into(),
                                ))
                            }
                            _ => {
                                return Err(err(
                                    pos,
                                    format!("could not determine a constructor for the tag {t}"),
                                ))
                            }
                        }
                    }
                    None if style == ScalarStyle::Plain && val == "=" => return Err(err(
                        pos,
                        "could not determine a constructor for the tag 'tag:yaml.org,2002:value'"
                            .into(),
                    )),
                    None if style == ScalarStyle::Plain => resolve_plain(&val),
                    None => YValue::Str(val.to_string()),
                };
                Some((YNode { v, pos }, anchor))
            }
            Event::SequenceStart(anchor, _) => {
                stack.push(Frame::Seq(Vec::new(), pos, anchor));
                None
            }
            Event::MappingStart(anchor, _) => {
                stack.push(Frame::Map(Vec::new(), None, pos, anchor));
                None
            }
            Event::SequenceEnd => match stack.pop() {
                Some(Frame::Seq(items, p, anchor)) => Some((
                    YNode {
                        v: YValue::Seq(items),
                        pos: p,
                    },
                    anchor,
                )),
                _ => return Err(err(pos, "unbalanced sequence".into())),
            },
            Event::MappingEnd => match stack.pop() {
                Some(Frame::Map(items, _, p, anchor)) => Some((
                    YNode {
                        v: YValue::Map(flatten_merge(items, file)?),
                        pos: p,
                    },
                    anchor,
                )),
                _ => return Err(err(pos, "unbalanced mapping".into())),
            },
        };
        if let Some((node, anchor)) = done {
            if anchor != 0 {
                anchors.insert(anchor, node.clone());
            }
            match stack.last_mut() {
                None => docs.push(node),
                Some(Frame::Seq(items, _, _)) => items.push(node),
                Some(Frame::Map(items, key, _, _)) => match key.take() {
                    None => *key = Some(node),
                    Some(k) => items.push((k, node)),
                },
            }
        }
    }
    Ok(docs)
}

/// Load a single-document file (an empty file is `null`).
pub fn load(src: &str, file: &str) -> Result<YNode, YamlError> {
    let mut docs = load_all(src, file)?;
    match docs.len() {
        0 => Ok(YNode {
            v: YValue::Null,
            pos: Pos { line: 1, col: 1 },
        }),
        1 => Ok(docs.pop().unwrap()),
        _ => Err(YamlError {
            file: file.to_string(),
            line: docs[1].pos.line,
            col: docs[1].pos.col,
            msg: "expected a single document in the stream".into(),
        }),
    }
}

/// `<<` merge keys (PyYAML `flatten_mapping`): merged entries first, explicit keys win;
/// duplicate keys keep the last value, as PyYAML does.
fn flatten_merge(items: Vec<(YNode, YNode)>, file: &str) -> Result<Vec<(YNode, YNode)>, YamlError> {
    let has_merge = items
        .iter()
        .any(|(k, _)| matches!(&k.v, YValue::Str(s) if s == "<<"));
    let mut merged: Vec<(YNode, YNode)> = Vec::new();
    let mut explicit: Vec<(YNode, YNode)> = Vec::new();
    for (k, v) in items {
        if has_merge && matches!(&k.v, YValue::Str(s) if s == "<<") {
            let maps: Vec<YNode> = match v.v {
                YValue::Map(_) => vec![v],
                YValue::Seq(s) => s,
                _ => {
                    return Err(YamlError {
                        file: file.into(),
                        line: v.pos.line,
                        col: v.pos.col,
                        msg: "expected a mapping or list of mappings for merging".into(),
                    })
                }
            };
            // Earlier maps in the list win over later ones.
            for m in maps.into_iter().rev() {
                if let YValue::Map(entries) = m.v {
                    merged.extend(entries);
                }
            }
        } else {
            explicit.push((k, v));
        }
    }
    merged.extend(explicit);
    // Deduplicate: the last occurrence wins but keeps the first one's place (dict semantics).
    let mut out: Vec<(YNode, YNode)> = Vec::with_capacity(merged.len());
    for (k, v) in merged {
        let ks = k.key_string();
        if let Some(slot) = out.iter_mut().find(|(ok, _)| ok.key_string() == ks) {
            slot.1 = v;
        } else {
            out.push((k, v));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn j(src: &str) -> Value {
        load(src, "t.yml").unwrap().to_json()
    }

    #[test]
    fn yaml11_scalars() {
        let v = j("a: yes\nb: Off\nc: y\nd: 0644\ne: 017\nf: 1e3\ng: 1.5\nh: ~\ni:\nj: '0644'\nk: 0x1F\nl: 1:30\nm: 08\nn: 1_000\no: .inf\np: 0o17\n");
        assert_eq!(v["a"], true);
        assert_eq!(v["b"], false);
        assert_eq!(v["c"], "y");
        assert_eq!(v["d"], 420);
        assert_eq!(v["e"], 15);
        assert_eq!(v["f"], "1e3");
        assert_eq!(v["g"], 1.5);
        assert_eq!(v["h"], Value::Null);
        assert_eq!(v["i"], Value::Null);
        assert_eq!(v["j"], "0644");
        assert_eq!(v["k"], 31);
        assert_eq!(v["l"], 90);
        assert_eq!(v["m"], "08");
        assert_eq!(v["n"], 1000);
        assert_eq!(v["o"], Value::Null); // inf has no JSON form
        assert_eq!(v["p"], "0o17");
    }

    #[test]
    fn positions_and_errors() {
        let n = load("- name: a\n  debug: msg=x\n- name: b\n", "p.yml").unwrap();
        let s = n.as_seq().unwrap();
        assert_eq!(s[1].pos, Pos { line: 3, col: 3 });
        let e = load("a: [1, 2\nb: c\n", "bad.yml").unwrap_err();
        assert!(e.to_string().starts_with("bad.yml:"), "{e}");
    }

    #[test]
    fn anchors_and_merge() {
        let v = j("base: &b {x: 1, y: 2}\nd:\n  <<: *b\n  y: 3\nl: *b\n");
        assert_eq!(v["d"], serde_json::json!({"x": 1, "y": 3}));
        assert_eq!(v["l"], serde_json::json!({"x": 1, "y": 2}));
    }

    #[test]
    fn tags() {
        let v = j("a: !!str 0644\nb: !unsafe '{{ x }}'\nc: !!int '12'\n");
        assert_eq!(v["a"], "0644");
        assert_eq!(v["b"], "{{ x }}");
        assert_eq!(v["c"], 12);
    }
}
