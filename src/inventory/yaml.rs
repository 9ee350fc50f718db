//! YAML as Ansible (PyYAML, YAML 1.1) reads it, with line/column kept for error messages.
//!
//! Parsed with `saphyr` without early scalar resolution; plain scalars are then typed with
//! PyYAML's implicit resolvers (`yes`/`on` are booleans, `0644` is octal, `1:30` is 90, `1e3`
//! is a string, `~` is null); quoted scalars stay strings. `!unsafe`, `!!str` force strings.
//! Merge keys (`<<`) are applied. Duplicate keys are an error (Ansible only warns).

use std::sync::OnceLock;

use regex::Regex;
use saphyr::{MarkedYaml, ScalarStyle, YamlData, YamlLoader};
use serde_json::{Map, Number, Value};

/// A YAML node with its 1-based line and column.
#[derive(Debug, Clone)]
pub struct Node {
    pub line: usize,
    pub col: usize,
    pub kind: Kind,
}

#[derive(Debug, Clone)]
pub enum Kind {
    Scalar(Value),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

/// A YAML syntax or structure error with its position.
#[derive(Debug, Clone)]
pub struct YamlError {
    pub line: usize,
    pub col: usize,
    pub msg: String,
}

impl Node {
    pub fn is_null(&self) -> bool {
        matches!(self.kind, Kind::Scalar(Value::Null))
    }
    /// The node as a plain JSON value (maps keep their order; keys become strings).
    pub fn to_json(&self) -> Value {
        match &self.kind {
            Kind::Scalar(v) => v.clone(),
            Kind::Seq(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            Kind::Map(kv) => {
                let mut m = Map::new();
                for (k, v) in kv {
                    m.insert(key_string(&k.to_json()), v.to_json());
                }
                Value::Object(m)
            }
        }
    }
    pub fn type_name(&self) -> &'static str {
        match &self.kind {
            Kind::Scalar(Value::Null) => "null",
            Kind::Scalar(Value::Bool(_)) => "bool",
            Kind::Scalar(Value::Number(n)) if n.is_f64() => "float",
            Kind::Scalar(Value::Number(_)) => "int",
            Kind::Scalar(Value::String(_)) => "str",
            Kind::Scalar(_) => "scalar",
            Kind::Seq(_) => "list",
            Kind::Map(_) => "dict",
        }
    }
}

/// How a JSON dump (Python's json module) writes a non-string key.
pub fn key_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "null".into(),
        other => other.to_string(),
    }
}

/// Parse one YAML document; an empty stream gives `None`.
pub fn parse(src: &str) -> Result<Option<Node>, YamlError> {
    // saphyr's own alias limit counts nodes, not the text a copied scalar holds.
    crate::yaml_limits::check(src).map_err(|e| YamlError {
        line: e.line,
        col: e.col,
        msg: e.msg,
    })?;
    let mut parser = saphyr_parser::Parser::new_from_str(src);
    let mut loader: YamlLoader<MarkedYaml> = YamlLoader::default();
    loader.early_parse(false);
    loader.alias_limit(10_000);
    let res = parser.load(&mut loader, true);
    let err = match res {
        Err(e) => Some(e),
        Ok(()) => loader.error().cloned(),
    };
    if let Some(e) = err {
        let m = e.marker();
        return Err(YamlError {
            line: m.line(),
            col: m.col() + 1,
            msg: e.info().to_string(),
        });
    }
    let docs = loader.into_documents();
    if docs.len() > 1 {
        let m = docs[1].span.start;
        return Err(YamlError {
            line: m.line(),
            col: m.col() + 1,
            msg: "expected a single document in the stream, found another one".into(),
        });
    }
    match docs.into_iter().next() {
        None => Ok(None),
        Some(d) => convert(&d, 0).map(Some),
    }
}

fn convert(n: &MarkedYaml, depth: usize) -> Result<Node, YamlError> {
    let line = n.span.start.line();
    let col = n.span.start.col() + 1;
    let err = |msg: String| YamlError { line, col, msg };
    if depth > 200 {
        return Err(err("YAML nested too deeply".into()));
    }
    let kind = match &n.data {
        YamlData::Representation(raw, style, tag) => {
            let forced = tag.as_ref().map(|t| (t.handle.as_str(), t.suffix.as_str()));
            Kind::Scalar(resolve_scalar(raw, *style, forced).map_err(err)?)
        }
        YamlData::Value(s) => Kind::Scalar(scalar_json(s)),
        YamlData::Sequence(items) => Kind::Seq(
            items
                .iter()
                .map(|i| convert(i, depth + 1))
                .collect::<Result<_, _>>()?,
        ),
        YamlData::Mapping(m) => {
            let mut out: Vec<(Node, Node)> = Vec::new();
            let mut merges: Vec<Node> = Vec::new();
            for (k, v) in m.iter() {
                let kn = convert(k, depth + 1)?;
                let vn = convert(v, depth + 1)?;
                let is_merge = matches!(&k.data, YamlData::Representation(r, ScalarStyle::Plain, None) if r == "<<");
                if is_merge {
                    merges.push(vn);
                } else {
                    out.push((kn, vn));
                }
            }
            for mn in merges {
                let sources: Vec<Node> = match mn.kind {
                    Kind::Map(_) => vec![mn],
                    Kind::Seq(items) => items,
                    _ => {
                        return Err(YamlError {
                            line: mn.line,
                            col: mn.col,
                            msg: "a merge key (<<) needs a mapping or a list of mappings".into(),
                        })
                    }
                };
                for s in sources {
                    if let Kind::Map(kv) = s.kind {
                        for (k, v) in kv {
                            let ks = key_string(&k.to_json());
                            if !out.iter().any(|(ek, _)| key_string(&ek.to_json()) == ks) {
                                out.push((k, v));
                            }
                        }
                    } else {
                        return Err(YamlError {
                            line: s.line,
                            col: s.col,
                            msg: "a merge key (<<) needs a mapping or a list of mappings".into(),
                        });
                    }
                }
            }
            Kind::Map(out)
        }
        YamlData::Tagged(_, inner) => return convert(inner, depth + 1),
        YamlData::Alias(_) => return Err(err("unresolved YAML alias".into())),
        YamlData::BadValue => return Err(err("invalid YAML value".into())),
    };
    Ok(Node { line, col, kind })
}

fn scalar_json(s: &saphyr::Scalar) -> Value {
    match s {
        saphyr::Scalar::Null => Value::Null,
        saphyr::Scalar::Boolean(b) => Value::Bool(*b),
        saphyr::Scalar::Integer(i) => Value::from(*i),
        saphyr::Scalar::FloatingPoint(f) => float_json(f.into_inner()),
        saphyr::Scalar::String(s) => Value::String(s.to_string()),
    }
}

fn float_json(f: f64) -> Value {
    Number::from_f64(f)
        .map(Value::Number)
        .unwrap_or_else(|| Value::String(crate::inventory::pylit::py_float_repr(f)))
}

fn rx(cell: &'static OnceLock<Regex>, pat: &str) -> &'static Regex {
    cell.get_or_init(|| Regex::new(pat).expect("static regex"))
}

/// Type a scalar like PyYAML's SafeLoader (YAML 1.1 implicit resolvers).
pub fn resolve_scalar(
    raw: &str,
    style: ScalarStyle,
    tag: Option<(&str, &str)>,
) -> Result<Value, String> {
    if let Some((handle, suffix)) = tag {
        let core = handle == "tag:yaml.org,2002:" || handle == "!!";
        return match (core, suffix) {
            (true, "str") | (false, "unsafe") => Ok(Value::String(raw.to_string())),
            (true, "int") => yaml11_int(raw).ok_or_else(|| format!("invalid !!int {raw:?}")),
            (true, "float") => yaml11_float(raw)
                .or_else(|| yaml11_int(raw).and_then(|v| v.as_f64()).map(float_json))
                .ok_or_else(|| format!("invalid !!float {raw:?}")),
            (true, "bool") => yaml11_bool(raw)
                .map(Value::Bool)
                .ok_or_else(|| format!("invalid !!bool {raw:?}")),
            (true, "null") => Ok(Value::Null),
            // !vault and other local tags: keep the text (darkport does not decrypt vault)
            _ => Ok(Value::String(raw.to_string())),
        };
    }
    if style != ScalarStyle::Plain {
        return Ok(Value::String(raw.to_string()));
    }
    if matches!(raw, "" | "~" | "null" | "Null" | "NULL") {
        return Ok(Value::Null);
    }
    if let Some(b) = yaml11_bool(raw) {
        return Ok(Value::Bool(b));
    }
    if let Some(v) = yaml11_int(raw) {
        return Ok(v);
    }
    if let Some(v) = yaml11_float(raw) {
        return Ok(v);
    }
    Ok(Value::String(raw.to_string()))
}

fn yaml11_bool(s: &str) -> Option<bool> {
    match s {
        "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => Some(true),
        "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => Some(false),
        _ => None,
    }
}

fn yaml11_int(s: &str) -> Option<Value> {
    static INT: OnceLock<Regex> = OnceLock::new();
    let r = rx(
        &INT,
        r"^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$",
    );
    if !r.is_match(s) {
        return None;
    }
    let t = s.replace('_', "");
    let (neg, body) = match t.strip_prefix('-') {
        Some(b) => (true, b.to_string()),
        None => (false, t.strip_prefix('+').unwrap_or(&t).to_string()),
    };
    let v: i128 = if body == "0" {
        0
    } else if let Some(b) = body.strip_prefix("0b") {
        i128::from_str_radix(b, 2).ok()?
    } else if let Some(h) = body.strip_prefix("0x") {
        i128::from_str_radix(h, 16).ok()?
    } else if body.starts_with('0') {
        i128::from_str_radix(&body, 8).ok()?
    } else if body.contains(':') {
        let mut acc: i128 = 0;
        for part in body.split(':') {
            acc = acc
                .checked_mul(60)?
                .checked_add(part.parse::<i128>().ok()?)?;
        }
        acc
    } else {
        body.parse().ok()?
    };
    let v = if neg { -v } else { v };
    Some(
        i64::try_from(v)
            .map(Value::from)
            .or_else(|_| u64::try_from(v).map(Value::from))
            .unwrap_or_else(|_| Value::String(s.to_string())),
    )
}

fn yaml11_float(s: &str) -> Option<Value> {
    static FLOAT: OnceLock<Regex> = OnceLock::new();
    let r = rx(
        &FLOAT,
        r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
    );
    if !r.is_match(s) {
        return None;
    }
    let t = s.replace('_', "").to_ascii_lowercase();
    let (neg, body) = match t.strip_prefix('-') {
        Some(b) => (true, b.to_string()),
        None => (false, t.strip_prefix('+').unwrap_or(&t).to_string()),
    };
    let v: f64 = if body == ".inf" {
        f64::INFINITY
    } else if body == ".nan" {
        f64::NAN
    } else if body.contains(':') {
        let mut acc = 0.0;
        for part in body.split(':') {
            acc = acc * 60.0 + part.parse::<f64>().ok()?;
        }
        acc
    } else {
        body.parse().ok()?
    };
    Some(float_json(if neg { -v } else { v }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pyyaml_typing() {
        let n = parse(
            "a: yes\nb: 0644\nc: 1:30\nd: 1e3\ne: 1.0e+3\nf: '1'\ng: ~\nh: 0x1f\ni: y\nj: !!str 12\nk: .5\nl: !unsafe '{{ x }}'\nm:\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            n.to_json(),
            json!({"a": true, "b": 420, "c": 90, "d": "1e3", "e": 1000.0, "f": "1", "g": null,
                   "h": 31, "i": "y", "j": "12", "k": 0.5, "l": "{{ x }}", "m": null})
        );
    }

    #[test]
    fn merge_keys_and_positions() {
        let n = parse("base: &b {x: 1, y: 2}\nc:\n  <<: *b\n  y: 3\n")
            .unwrap()
            .unwrap();
        assert_eq!(n.to_json()["c"], json!({"y": 3, "x": 1}));
        let e = parse("a: 1\nb: [1\n").unwrap_err();
        assert!(e.line >= 2, "{e:?}");
        let e = parse("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(e.line, 3, "{e:?}");
    }
}
