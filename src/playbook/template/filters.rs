//! The Ansible filter plugins, Jinja tests and lookup functions playbooks use, registered
//! on the environment by `build_env`.

use super::args::{j, jerr, split_kwargs};
use super::functions::*;
use super::regex::*;
use super::*;

/// Ansible's `bool`: yes/on/1/true (any case) are True, everything else False.
pub fn ansible_bool(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() == Some(1.0),
        Value::String(s) => matches!(
            s.trim().to_ascii_lowercase().as_str(),
            "yes" | "on" | "1" | "true" | "y" | "t"
        ),
        _ => false,
    }
}

fn f_bool(v: JValue) -> Result<JValue, JError> {
    if v.is_undefined() {
        return Err(JError::new(
            ErrorKind::UndefinedError,
            "bool of an undefined value",
        ));
    }
    Ok(JValue::from(ansible_bool(&j(&v)?)))
}

fn f_int(v: JValue, args: Rest<JValue>) -> Result<JValue, JError> {
    if v.is_undefined() {
        return Err(JError::new(
            ErrorKind::UndefinedError,
            "int of an undefined value",
        ));
    }
    let default = args.first().and_then(|d| d.as_i64()).unwrap_or(0);
    let base = args.get(1).and_then(|b| b.as_i64()).unwrap_or(10) as u32;
    Ok(JValue::from(match j(&v)? {
        Value::Bool(b) => b as i64,
        Value::Number(n) => n
            .as_i64()
            .unwrap_or_else(|| n.as_f64().unwrap_or(0.0) as i64),
        Value::String(s) => {
            let t = s.trim().replace('_', "");
            let digits = if base == 16 {
                t.trim_start_matches("0x")
                    .trim_start_matches("0X")
                    .to_string()
            } else if base == 8 {
                t.trim_start_matches("0o").to_string()
            } else if base == 2 {
                t.trim_start_matches("0b").to_string()
            } else {
                t.clone()
            };
            i64::from_str_radix(&digits, base)
                .ok()
                .or_else(|| t.parse::<f64>().ok().map(|f| f as i64))
                .unwrap_or(default)
        }
        _ => default,
    }))
}

fn f_float(v: JValue, args: Rest<JValue>) -> Result<JValue, JError> {
    let default = args
        .first()
        .and_then(|d| j(d).ok())
        .and_then(|d| d.as_f64())
        .unwrap_or(0.0);
    Ok(JValue::from(match j(&v)? {
        Value::Bool(b) => b as i64 as f64,
        Value::Number(n) => n.as_f64().unwrap_or(default),
        Value::String(s) => s.trim().parse::<f64>().unwrap_or(default),
        _ => default,
    }))
}

fn f_string(v: JValue) -> Result<JValue, JError> {
    Ok(JValue::from(py_str(&j(&v)?)))
}

fn f_to_json(v: JValue, kw: Kwargs) -> Result<JValue, JError> {
    let indent: Option<usize> = kw.get("indent")?;
    let sort: Option<bool> = kw.get("sort_keys")?;
    let _: Option<bool> = kw.get("ensure_ascii").ok().flatten();
    kw.assert_all_used().ok();
    Ok(JValue::from(py_json(
        &j(&v)?,
        indent,
        sort.unwrap_or(false),
        true,
    )))
}

fn f_to_nice_json(v: JValue, kw: Kwargs) -> Result<JValue, JError> {
    let indent: Option<usize> = kw.get("indent")?;
    let sort: Option<bool> = kw.get("sort_keys")?;
    Ok(JValue::from(py_json(
        &j(&v)?,
        Some(indent.unwrap_or(4)),
        sort.unwrap_or(true),
        false,
    )))
}

fn f_from_json(v: String) -> Result<JValue, JError> {
    let x: Value = serde_json::from_str(&v).map_err(|e| jerr(format!("from_json: {e}")))?;
    Ok(from_json(&x))
}

fn f_to_yaml(v: JValue, kw: Kwargs) -> Result<JValue, JError> {
    let _: Option<usize> = kw.get("indent")?;
    Ok(JValue::from(py_yaml(&j(&v)?, false, 2)))
}

fn f_to_nice_yaml(v: JValue, kw: Kwargs) -> Result<JValue, JError> {
    let indent: Option<usize> = kw.get("indent")?;
    Ok(JValue::from(py_yaml(&j(&v)?, true, indent.unwrap_or(4))))
}

fn f_from_yaml(v: String) -> Result<JValue, JError> {
    let n = crate::playbook::yaml::load(&v, "<from_yaml>")
        .map_err(|e| jerr(format!("from_yaml: {e}")))?;
    Ok(from_json(&n.to_json()))
}

fn f_b64encode(v: JValue) -> Result<JValue, JError> {
    use base64::Engine;
    Ok(JValue::from(
        base64::engine::general_purpose::STANDARD.encode(py_str(&j(&v)?)),
    ))
}

fn f_b64decode(s: String) -> Result<JValue, JError> {
    use base64::Engine;
    let b = base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .map_err(|e| jerr(format!("b64decode: {e}")))?;
    Ok(JValue::from(String::from_utf8_lossy(&b).into_owned()))
}

fn merge_recursive(a: &mut Map<String, Value>, b: &Map<String, Value>, list_merge: &str) {
    for (k, v) in b {
        match (a.get_mut(k), v) {
            (Some(Value::Object(x)), Value::Object(y)) => merge_recursive(x, y, list_merge),
            (Some(Value::Array(x)), Value::Array(y)) if list_merge != "replace" => match list_merge
            {
                "append" => x.extend(y.iter().cloned()),
                "prepend" => {
                    let mut n = y.clone();
                    n.append(x);
                    *x = n;
                }
                "append_rp" | "prepend_rp" => {
                    let keep: Vec<Value> = x.iter().filter(|i| !y.contains(i)).cloned().collect();
                    *x = if list_merge == "append_rp" {
                        keep.into_iter().chain(y.iter().cloned()).collect()
                    } else {
                        y.iter().cloned().chain(keep).collect()
                    };
                }
                _ => {
                    a.insert(k.clone(), v.clone());
                }
            },
            _ => {
                a.insert(k.clone(), v.clone());
            }
        }
    }
}

fn f_combine(v: JValue, args: Rest<ValueOrKwargs>) -> Result<JValue, JError> {
    let (dicts, kw) = split_kwargs(&args.into_values());
    let recursive: bool = kw.get::<Option<bool>>("recursive")?.unwrap_or(false);
    let list_merge: String = kw
        .get::<Option<String>>("list_merge")?
        .unwrap_or("replace".into());
    let mut acc = match j(&v)? {
        Value::Object(m) => m,
        Value::Array(items) => {
            // `[a, b] | combine` merges the list.
            let mut m = Map::new();
            for it in items {
                if let Value::Object(o) = it {
                    m.extend(o);
                }
            }
            m
        }
        other => {
            return Err(jerr(format!(
                "combine expects dictionaries, got {}",
                py_repr(&other)
            )))
        }
    };
    let mut all = Vec::new();
    for d in dicts {
        match j(&d)? {
            Value::Object(m) => all.push(m),
            Value::Array(items) => {
                for it in items {
                    if let Value::Object(m) = it {
                        all.push(m)
                    }
                }
            }
            other => {
                return Err(jerr(format!(
                    "combine expects dictionaries, got {}",
                    py_repr(&other)
                )))
            }
        }
    }
    for m in all {
        if recursive {
            merge_recursive(&mut acc, &m, &list_merge);
        } else {
            acc.extend(m);
        }
    }
    Ok(from_json(&Value::Object(acc)))
}

fn f_ternary(v: JValue, t: JValue, f: JValue, none: Option<JValue>) -> JValue {
    if v.is_none() {
        if let Some(n) = none {
            return n;
        }
    }
    if v.is_true() {
        t
    } else {
        f
    }
}

fn f_dict2items(v: JValue, kw: Kwargs) -> Result<JValue, JError> {
    let kn: String = kw
        .get::<Option<String>>("key_name")?
        .unwrap_or("key".into());
    let vn: String = kw
        .get::<Option<String>>("value_name")?
        .unwrap_or("value".into());
    let Value::Object(m) = j(&v)? else {
        return Err(jerr("dict2items requires a dictionary"));
    };
    let out: Vec<Value> = m
        .into_iter()
        .map(|(k, v)| {
            let mut o = Map::new();
            o.insert(kn.clone(), Value::String(k));
            o.insert(vn.clone(), v);
            Value::Object(o)
        })
        .collect();
    Ok(from_json(&Value::Array(out)))
}

fn f_items2dict(v: JValue, kw: Kwargs) -> Result<JValue, JError> {
    let kn: String = kw
        .get::<Option<String>>("key_name")?
        .unwrap_or("key".into());
    let vn: String = kw
        .get::<Option<String>>("value_name")?
        .unwrap_or("value".into());
    let Value::Array(a) = j(&v)? else {
        return Err(jerr("items2dict requires a list"));
    };
    let mut m = Map::new();
    for it in a {
        let k = it
            .get(&kn)
            .ok_or_else(|| jerr(format!("items2dict: item has no {kn:?}")))?;
        m.insert(py_str(k), it.get(&vn).cloned().unwrap_or(Value::Null));
    }
    Ok(from_json(&Value::Object(m)))
}

fn f_basename(s: String) -> String {
    match s.rfind('/') {
        Some(i) => s[i + 1..].to_string(),
        None => s,
    }
}

fn f_dirname(s: String) -> String {
    match s.rfind('/') {
        Some(0) => "/".into(),
        Some(i) => s[..i].trim_end_matches('/').to_string().max(String::new()),
        None => String::new(),
    }
}

fn f_quote(v: JValue) -> Result<JValue, JError> {
    let s = py_str(&j(&v)?);
    // Python's shlex.quote
    let safe = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "@%+=:,./-_".contains(c));
    Ok(JValue::from(if safe {
        s
    } else {
        format!("'{}'", s.replace('\'', "'\"'\"'"))
    }))
}

fn f_mandatory(v: JValue, msg: Option<String>) -> Result<JValue, JError> {
    if v.is_undefined() {
        return Err(JError::new(
            ErrorKind::UndefinedError,
            msg.unwrap_or_else(|| "Mandatory variable not defined.".into()),
        ));
    }
    Ok(v)
}

fn f_flatten(v: JValue, levels: Option<usize>) -> Result<JValue, JError> {
    fn go(a: &[Value], lvl: Option<usize>, out: &mut Vec<Value>) {
        for x in a {
            match x {
                Value::Array(inner) if lvl != Some(0) => go(inner, lvl.map(|l| l - 1), out),
                Value::Null => {}
                other => out.push(other.clone()),
            }
        }
    }
    let Value::Array(a) = j(&v)? else {
        return Err(jerr("flatten requires a list"));
    };
    let mut out = Vec::new();
    go(&a, levels, &mut out);
    Ok(from_json(&Value::Array(out)))
}

fn list_of(v: &JValue) -> Result<Vec<Value>, JError> {
    match j(v)? {
        Value::Array(a) => Ok(a),
        other => Err(jerr(format!("expected a list, got {}", py_repr(&other)))),
    }
}

fn f_difference(a: JValue, b: JValue) -> Result<JValue, JError> {
    let (a, b) = (list_of(&a)?, list_of(&b)?);
    let mut out: Vec<Value> = Vec::new();
    for x in a {
        if !b.contains(&x) && !out.contains(&x) {
            out.push(x)
        }
    }
    Ok(from_json(&Value::Array(out)))
}

fn f_intersect(a: JValue, b: JValue) -> Result<JValue, JError> {
    let (a, b) = (list_of(&a)?, list_of(&b)?);
    let mut out: Vec<Value> = Vec::new();
    for x in a {
        if b.contains(&x) && !out.contains(&x) {
            out.push(x)
        }
    }
    Ok(from_json(&Value::Array(out)))
}

fn f_union(a: JValue, b: JValue) -> Result<JValue, JError> {
    let mut out: Vec<Value> = Vec::new();
    for x in list_of(&a)?.into_iter().chain(list_of(&b)?) {
        if !out.contains(&x) {
            out.push(x)
        }
    }
    Ok(from_json(&Value::Array(out)))
}

fn f_zip(a: JValue, rest: Rest<JValue>) -> Result<JValue, JError> {
    let mut lists = vec![list_of(&a)?];
    for r in rest.iter() {
        lists.push(list_of(r)?);
    }
    let n = lists.iter().map(|l| l.len()).min().unwrap_or(0);
    let out: Vec<Value> = (0..n)
        .map(|i| Value::Array(lists.iter().map(|l| l[i].clone()).collect()))
        .collect();
    Ok(from_json(&Value::Array(out)))
}

/// `zip_longest(b, …, fillvalue=x)`: as `zip`, to the longest list, missing values filled.
fn f_zip_longest(a: JValue, args: Rest<ValueOrKwargs>) -> Result<JValue, JError> {
    let (rest, kw) = split_kwargs(&args.into_values());
    let fill: Value = match kw.get::<Option<JValue>>("fillvalue")? {
        Some(v) => j(&v)?,
        None => Value::Null,
    };
    let mut lists = vec![list_of(&a)?];
    for r in &rest {
        lists.push(list_of(r)?);
    }
    let n = lists.iter().map(|l| l.len()).max().unwrap_or(0);
    let out: Vec<Value> = (0..n)
        .map(|i| {
            Value::Array(
                lists
                    .iter()
                    .map(|l| l.get(i).cloned().unwrap_or_else(|| fill.clone()))
                    .collect(),
            )
        })
        .collect();
    Ok(from_json(&Value::Array(out)))
}

/// `product(b, …)`: the cartesian product (Python's itertools.product), as lists.
fn f_product(a: JValue, rest: Rest<JValue>) -> Result<JValue, JError> {
    let mut acc: Vec<Vec<Value>> = vec![Vec::new()];
    let mut lists = vec![list_of(&a)?];
    for r in rest.iter() {
        lists.push(list_of(r)?);
    }
    for l in lists {
        acc = acc
            .into_iter()
            .flat_map(|p| {
                l.iter().map(move |x| {
                    let mut q = p.clone();
                    q.push(x.clone());
                    q
                })
            })
            .collect();
    }
    Ok(from_json(&Value::Array(
        acc.into_iter().map(Value::Array).collect(),
    )))
}

fn f_hash(v: JValue, algo: Option<String>) -> Result<String, JError> {
    let s = py_str(&j(&v)?);
    let md = match algo.as_deref().unwrap_or("sha1") {
        "sha1" => openssl::hash::MessageDigest::sha1(),
        "sha256" => openssl::hash::MessageDigest::sha256(),
        "sha512" => openssl::hash::MessageDigest::sha512(),
        "md5" => openssl::hash::MessageDigest::md5(),
        other => return Err(jerr(format!("hash: unsupported algorithm {other}"))),
    };
    let h = openssl::hash::hash(md, s.as_bytes()).map_err(|e| jerr(e.to_string()))?;
    Ok(hex::encode(h))
}

fn f_type_debug(v: JValue) -> &'static str {
    if v.downcast_object_ref::<super::PyDateTime>().is_some() {
        return "datetime";
    }
    match v.kind() {
        ValueKind::None | ValueKind::Undefined => "NoneType",
        ValueKind::Bool => "bool",
        ValueKind::Number if v.is_integer() => "int",
        ValueKind::Number => "float",
        ValueKind::String => "str",
        ValueKind::Seq => "list",
        ValueKind::Map => "dict",
        _ => "object",
    }
}

// ---------------------------------------------------------------------------------------
// Tests

fn status_of(v: &JValue) -> Result<Map<String, Value>, JError> {
    match j(v)? {
        Value::Object(m) => Ok(m),
        _ => Err(jerr("the test expects a registered task result")),
    }
}

fn t_failed(v: JValue) -> Result<bool, JError> {
    let m = status_of(&v)?;
    Ok(m.get("failed").map(truthy).unwrap_or(false))
}
fn t_succeeded(v: JValue) -> Result<bool, JError> {
    Ok(!t_failed(v)?)
}
fn t_changed(v: JValue) -> Result<bool, JError> {
    let m = status_of(&v)?;
    Ok(m.get("changed").map(truthy).unwrap_or(false))
}
fn t_skipped(v: JValue) -> Result<bool, JError> {
    let m = status_of(&v)?;
    Ok(m.get("skipped").map(truthy).unwrap_or(false))
}

fn version_key(s: &str) -> Vec<(u64, String)> {
    s.split(['.', '-', '+'])
        .map(|p| {
            let digits: String = p.chars().take_while(|c| c.is_ascii_digit()).collect();
            (digits.parse().unwrap_or(0), p[digits.len()..].to_string())
        })
        .collect()
}

fn t_version(v: JValue, other: JValue, op: Option<String>) -> Result<bool, JError> {
    let a = version_key(&py_str(&j(&v)?));
    let b = version_key(&py_str(&j(&other)?));
    let n = a.len().max(b.len());
    let pad = |x: &Vec<(u64, String)>| {
        let mut x = x.clone();
        x.resize(n, (0, String::new()));
        x
    };
    let ord = pad(&a).cmp(&pad(&b));
    use std::cmp::Ordering::*;
    Ok(match op.as_deref().unwrap_or("eq") {
        "<" | "lt" => ord == Less,
        "<=" | "le" => ord != Greater,
        ">" | "gt" => ord == Greater,
        ">=" | "ge" => ord != Less,
        "==" | "=" | "eq" => ord == Equal,
        "!=" | "<>" | "ne" => ord != Equal,
        other => return Err(jerr(format!("version: unknown operator {other}"))),
    })
}

fn t_truthy(v: JValue) -> bool {
    v.is_true()
}

fn t_subset(a: JValue, b: JValue) -> Result<bool, JError> {
    let (a, b) = (list_of(&a)?, list_of(&b)?);
    Ok(a.iter().all(|x| b.contains(x)))
}

fn t_superset(a: JValue, b: JValue) -> Result<bool, JError> {
    t_subset(b, a)
}

fn t_contains(a: JValue, b: JValue) -> Result<bool, JError> {
    let b = j(&b)?;
    Ok(list_of(&a)?.contains(&b))
}

fn path_test(v: String, f: fn(&std::fs::Metadata) -> bool) -> bool {
    std::fs::metadata(&v).map(|m| f(&m)).unwrap_or(false)
}

/// The environment with Ansible's settings and every filter, test and function here.
/// How `{{ v }}` prints a value: Python's `str()`, `None` as empty, an undefined value fails.
pub(super) fn print_value(v: &JValue) -> Result<String, JError> {
    Ok(match v.kind() {
        ValueKind::None => String::new(),
        ValueKind::Undefined => {
            return Err(JError::new(
                ErrorKind::UndefinedError,
                "undefined value printed",
            ))
        }
        ValueKind::String => v.as_str().unwrap_or("").to_string(),
        ValueKind::Plain => v.to_string(),
        _ => py_str(&to_json(v).map_err(jerr)?),
    })
}

/// The environment: no trailing newline kept (Jinja's default; [`render_str`] puts back
/// what the source ended with, as Ansible does), `trim_blocks` on.
pub(super) fn build_env(undefined: UndefinedBehavior) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(undefined);
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_syntax(
        minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .build()
            .expect("syntax config"),
    );
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.set_formatter(|out, _state, v| {
        out.write_str(&print_value(v)?)
            .map_err(|_| JError::new(ErrorKind::WriteFailure, "write failed"))
    });
    minijinja_contrib::add_to_environment(&mut env);
    env.add_global("omit", OMIT);
    env.add_filter("bool", f_bool);
    env.add_filter("int", f_int);
    env.add_filter("float", f_float);
    env.add_filter("string", f_string);
    env.add_filter("to_json", f_to_json);
    env.add_filter("to_nice_json", f_to_nice_json);
    env.add_filter("from_json", f_from_json);
    env.add_filter("to_yaml", f_to_yaml);
    env.add_filter("to_nice_yaml", f_to_nice_yaml);
    env.add_filter("from_yaml", f_from_yaml);
    env.add_filter("comment", super::comment::f_comment);
    env.add_filter("regex_replace", f_regex_replace);
    env.add_filter("regex_search", f_regex_search);
    env.add_filter("regex_findall", f_regex_findall);
    env.add_filter("regex_escape", f_regex_escape);
    env.add_filter("b64encode", f_b64encode);
    env.add_filter("b64decode", f_b64decode);
    env.add_filter("combine", f_combine);
    env.add_filter("ternary", f_ternary);
    env.add_filter("dict2items", f_dict2items);
    env.add_filter("items2dict", f_items2dict);
    env.add_filter("basename", f_basename);
    env.add_filter("dirname", f_dirname);
    env.add_filter("quote", f_quote);
    env.add_filter("mandatory", f_mandatory);
    env.add_filter("flatten", f_flatten);
    env.add_filter("difference", f_difference);
    env.add_filter("intersect", f_intersect);
    env.add_filter("union", f_union);
    env.add_filter("zip", f_zip);
    env.add_filter("zip_longest", f_zip_longest);
    env.add_filter("product", f_product);
    env.add_filter("hash", f_hash);
    env.add_filter("md5", |v: JValue| f_hash(v, Some("md5".into())));
    env.add_filter("sha1", |v: JValue| f_hash(v, Some("sha1".into())));
    env.add_filter("checksum", |v: JValue| f_hash(v, Some("sha1".into())));
    env.add_filter("type_debug", f_type_debug);
    super::datafilters::register(&mut env);
    env.add_test("failed", t_failed);
    env.add_test("failure", t_failed);
    env.add_test("succeeded", t_succeeded);
    env.add_test("success", t_succeeded);
    env.add_test("successful", t_succeeded);
    env.add_test("changed", t_changed);
    env.add_test("change", t_changed);
    env.add_test("skipped", t_skipped);
    env.add_test("skip", t_skipped);
    env.add_test("match", t_match);
    env.add_test("search", t_search);
    env.add_test("regex", t_search);
    env.add_test("version", t_version);
    env.add_test("version_compare", t_version);
    env.add_test("truthy", t_truthy);
    env.add_test("falsy", |v: JValue| !v.is_true());
    env.add_test("subset", t_subset);
    env.add_test("superset", t_superset);
    env.add_test("contains", t_contains);
    env.add_test("file", |v: String| path_test(v, |m| m.is_file()));
    env.add_test("directory", |v: String| path_test(v, |m| m.is_dir()));
    env.add_test("exists", |v: String| std::path::Path::new(&v).exists());
    env.add_test("abs", |v: String| v.starts_with('/'));
    env.add_function("dict", fn_dict);
    env.add_function("lookup", fn_lookup);
    env.add_function("query", fn_query);
    env.add_function("q", fn_query);
    env
}
