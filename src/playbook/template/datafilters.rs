//! More of Ansible's data filters (ansible.builtin's core, mathstuff and urls plugins): path
//! helpers as Python's `os.path` computes them, set theory on lists, itertools, math, sizes,
//! URL parts and `extract`. Results are shaped as Ansible returns them (tuples as lists).

use super::args::{j, jerr};
use super::*;

pub(super) fn register(env: &mut Environment<'static>) {
    env.add_filter("extract", f_extract);
    env.add_filter("path_join", f_path_join);
    env.add_filter("splitext", |s: String| {
        let (root, ext) = splitext(&s);
        JValue::from(vec![root, ext])
    });
    env.add_filter("normpath", |s: String| normpath(&s));
    env.add_filter("relpath", f_relpath);
    env.add_filter("realpath", |s: String| {
        std::fs::canonicalize(&s)
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| normpath(&s))
    });
    env.add_filter("expanduser", |s: String| expanduser(&s));
    env.add_filter("expandvars", |s: String| expandvars(&s));
    env.add_filter("symmetric_difference", f_symmetric_difference);
    env.add_filter("permutations", |v: JValue, a: Rest<ValueOrKwargs>| {
        let r = opt_f64(&named(&a.into_values(), &["r"])?[0])?.map(|r| r as usize);
        f_choose(v, r, true)
    });
    env.add_filter("combinations", |v: JValue, a: Rest<ValueOrKwargs>| {
        let r = opt_f64(&named(&a.into_values(), &["r"])?[0])?
            .ok_or_else(|| jerr("combinations() needs r"))?;
        f_choose(v, Some(r as usize), false)
    });
    env.add_filter(
        "log",
        |x: f64, a: Rest<ValueOrKwargs>| -> Result<f64, JError> {
            Ok(match opt_f64(&named(&a.into_values(), &["base"])?[0])? {
                Some(b) => x.ln() / b.ln(),
                None => x.ln(),
            })
        },
    );
    env.add_filter("pow", |x: f64, y: f64| x.powf(y));
    env.add_filter(
        "root",
        |x: f64, a: Rest<ValueOrKwargs>| -> Result<f64, JError> {
            let b = opt_f64(&named(&a.into_values(), &["base"])?[0])?.unwrap_or(2.0);
            Ok(if b == 2.0 { x.sqrt() } else { x.powf(1.0 / b) })
        },
    );
    env.add_filter("human_readable", f_human_readable);
    env.add_filter("human_to_bytes", f_human_to_bytes);
    env.add_filter("subelements", f_subelements);
    env.add_filter("urlsplit", f_urlsplit);
    env.add_filter("urldecode", |s: String| urldecode(&s));
    env.add_filter("fileglob", |s: String| {
        let mut v: Vec<String> = glob::glob(&s)
            .map(|it| {
                it.flatten()
                    .filter(|p| p.is_file())
                    .map(|p| p.display().to_string())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        JValue::from(v)
    });
}

/// The optional arguments of a filter, by position or by Python keyword, in `names` order.
fn named(args: &[JValue], names: &[&str]) -> Result<Vec<Option<JValue>>, JError> {
    let mut out: Vec<Option<JValue>> = vec![None; names.len()];
    let mut pos = 0;
    for a in args {
        if a.is_kwargs() {
            let kw = Kwargs::try_from(a.clone())?;
            for (i, n) in names.iter().enumerate() {
                if let Some(v) = kw.get::<Option<JValue>>(n)? {
                    out[i] = Some(v);
                }
            }
            kw.assert_all_used()?;
        } else if pos < names.len() {
            out[pos] = Some(a.clone());
            pos += 1;
        } else {
            return Err(jerr("too many arguments"));
        }
    }
    Ok(out)
}

fn opt_str(v: &Option<JValue>) -> Option<String> {
    v.as_ref()
        .filter(|x| !x.is_none() && !x.is_undefined())
        .map(|x| {
            x.as_str()
                .map(String::from)
                .unwrap_or_else(|| x.to_string())
        })
}

fn opt_f64(v: &Option<JValue>) -> Result<Option<f64>, JError> {
    match v.as_ref().filter(|x| !x.is_none()) {
        None => Ok(None),
        Some(x) => match j(x)? {
            Value::Number(n) => Ok(n.as_f64()),
            Value::String(s) => s
                .parse()
                .map(Some)
                .map_err(|_| jerr(format!("not a number: {s}"))),
            o => Err(jerr(format!("not a number: {o}"))),
        },
    }
}

/// `item | extract(container, morekeys)`: `container[item]`, then each of `morekeys`.
fn f_extract(item: JValue, container: JValue, a: Rest<ValueOrKwargs>) -> Result<JValue, JError> {
    let morekeys = named(&a.into_values(), &["morekeys"])?
        .pop()
        .flatten()
        .filter(|m| !m.is_none());
    let mut v = container.get_item(&item)?;
    if let Some(mk) = morekeys {
        let keys: Vec<JValue> = match mk.kind() {
            ValueKind::Seq => mk.try_iter()?.collect(),
            _ => vec![mk],
        };
        for k in keys {
            v = v.get_item(&k)?;
        }
    }
    Ok(v)
}

/// Python's `os.path.join` over a list (or one string): an absolute part restarts the path.
fn f_path_join(v: JValue) -> Result<String, JError> {
    let parts: Vec<String> = match v.kind() {
        ValueKind::Seq => v
            .try_iter()?
            .map(|p| {
                p.as_str()
                    .map(String::from)
                    .unwrap_or_else(|| p.to_string())
            })
            .collect(),
        _ => vec![v
            .as_str()
            .map(String::from)
            .unwrap_or_else(|| v.to_string())],
    };
    let mut out = String::new();
    for p in parts {
        if p.starts_with('/') || out.is_empty() {
            out = p;
        } else if out.ends_with('/') {
            out.push_str(&p);
        } else {
            out.push('/');
            out.push_str(&p);
        }
    }
    Ok(out)
}

/// Python's `os.path.splitext`: the last dot of the last component, leading dots not counted.
fn splitext(s: &str) -> (String, String) {
    let name_start = s.rfind('/').map_or(0, |i| i + 1);
    let name = &s[name_start..];
    let lead = name.len() - name.trim_start_matches('.').len();
    match name.rfind('.') {
        Some(i) if i >= lead && i > 0 => (
            s[..name_start + i].to_string(),
            s[name_start + i..].to_string(),
        ),
        _ => (s.to_string(), String::new()),
    }
}

/// Python's `os.path.relpath(path, start)` (start: the current directory).
fn f_relpath(path: String, a: Rest<ValueOrKwargs>) -> Result<String, JError> {
    let start = opt_str(&named(&a.into_values(), &["start"])?[0]);
    Ok(relpath(&path, start.as_deref()))
}

fn relpath(path: &str, start: Option<&str>) -> String {
    let cwd = std::env::current_dir()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "/".into());
    let abs = |p: &str| {
        normpath(&if p.starts_with('/') {
            p.to_string()
        } else {
            format!("{cwd}/{p}")
        })
    };
    let (p, s) = (abs(path), abs(start.unwrap_or(".")));
    let pc: Vec<&str> = p.split('/').filter(|x| !x.is_empty()).collect();
    let sc: Vec<&str> = s.split('/').filter(|x| !x.is_empty()).collect();
    let common = pc.iter().zip(&sc).take_while(|(a, b)| a == b).count();
    let mut out: Vec<&str> = vec![".."; sc.len() - common];
    out.extend(&pc[common..]);
    if out.is_empty() {
        ".".into()
    } else {
        out.join("/")
    }
}

/// Python's `os.path.normpath` for absolute and relative POSIX paths.
pub(crate) fn normpath(p: &str) -> String {
    let abs = p.starts_with('/');
    let mut parts: Vec<&str> = vec![];
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." if parts.last().is_some_and(|l| *l != "..") => {
                parts.pop();
            }
            ".." if abs => {}
            other => parts.push(other),
        }
    }
    let body = parts.join("/");
    match (abs, body.is_empty()) {
        (true, _) => format!("/{body}"),
        (false, true) => ".".into(),
        (false, false) => body,
    }
}

fn expanduser(s: &str) -> String {
    match s.strip_prefix('~') {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => {
            format!("{}{rest}", std::env::var("HOME").unwrap_or_default())
        }
        _ => s.to_string(),
    }
}

/// Python's `os.path.expandvars`: `$name` and `${name}` of set variables; others stay.
fn expandvars(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'$' {
            let (name, end) = if b.get(i + 1) == Some(&b'{') {
                match s[i + 2..].find('}') {
                    Some(e) => (&s[i + 2..i + 2 + e], i + 3 + e),
                    None => ("", i),
                }
            } else {
                let n = s[i + 1..]
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(s.len() - i - 1);
                (&s[i + 1..i + 1 + n], i + 1 + n)
            };
            if let (false, Ok(v)) = (name.is_empty(), std::env::var(name)) {
                out.push_str(&v);
                i = end;
                continue;
            }
        }
        let ch = s[i..].chars().next().unwrap_or(' ');
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

fn seq(v: &JValue) -> Result<Vec<Value>, JError> {
    match j(v)? {
        Value::Array(a) => Ok(a),
        Value::String(s) => Ok(s.chars().map(|c| Value::String(c.to_string())).collect()),
        Value::Object(m) => Ok(m.keys().map(|k| Value::String(k.clone())).collect()),
        other => Err(jerr(format!("{} is not iterable", super::py_str(&other)))),
    }
}

/// Ansible's `symmetric_difference` of lists: the union without the intersection.
fn f_symmetric_difference(a: JValue, b: JValue) -> Result<JValue, JError> {
    let (a, b) = (seq(&a)?, seq(&b)?);
    let mut union: Vec<Value> = vec![];
    for x in a.iter().chain(&b) {
        if !union.contains(x) {
            union.push(x.clone());
        }
    }
    let out: Vec<Value> = union
        .into_iter()
        .filter(|x| !(a.contains(x) && b.contains(x)))
        .collect();
    Ok(from_json(&Value::Array(out)))
}

/// itertools.permutations (`ordered`) or combinations of `r` items, as lists.
fn f_choose(v: JValue, r: Option<usize>, ordered: bool) -> Result<JValue, JError> {
    let items = seq(&v)?;
    let r = r.unwrap_or(items.len());
    let mut out = vec![];
    fn rec(
        items: &[Value],
        r: usize,
        ordered: bool,
        start: usize,
        used: &mut Vec<usize>,
        out: &mut Vec<Value>,
    ) {
        if used.len() == r {
            out.push(Value::Array(
                used.iter().map(|&i| items[i].clone()).collect(),
            ));
            return;
        }
        let from = if ordered { 0 } else { start };
        for i in from..items.len() {
            if used.contains(&i) {
                continue;
            }
            used.push(i);
            rec(items, r, ordered, i + 1, used, out);
            used.pop();
        }
    }
    if r <= items.len() {
        rec(&items, r, ordered, 0, &mut vec![], &mut out);
    }
    Ok(from_json(&Value::Array(out)))
}

const SIZE_UNITS: [char; 9] = ['B', 'K', 'M', 'G', 'T', 'P', 'E', 'Z', 'Y'];

/// Ansible's `human_readable(isbits=False, unit=None)`: `1.00 KB`, `2.00 Mb`.
fn f_human_readable(v: JValue, a: Rest<ValueOrKwargs>) -> Result<String, JError> {
    let o = named(&a.into_values(), &["isbits", "unit"])?;
    let isbits = o[0].as_ref().map(|x| x.is_true());
    let unit = opt_str(&o[1]);
    let n: f64 = match j(&v)? {
        Value::Number(x) => x.as_f64().unwrap_or(0.0),
        Value::String(s) => s.trim().parse().map_err(|_| {
            jerr(format!(
                "human_readable() can't interpret following string: {s}"
            ))
        })?,
        other => return Err(jerr(format!("human_readable() can't interpret {other}"))),
    };
    let (base, suffix) = if isbits.unwrap_or(false) {
        ("bits", "b")
    } else {
        ("Bytes", "B")
    };
    let want = unit
        .as_deref()
        .and_then(|u| u.chars().next())
        .map(|c| c.to_ascii_uppercase());
    // From the largest unit down: the first the size reaches (or the one asked for).
    let pick = (0..SIZE_UNITS.len())
        .rev()
        .map(|i| (SIZE_UNITS[i], 1u128 << (10 * i as u32)))
        .find(|(u, lim)| match want {
            Some(w) => w == *u,
            None => n >= *lim as f64,
        })
        .unwrap_or(('B', 1));
    let val = n / pick.1 as f64;
    let unit_name = if pick.0 == 'B' {
        base.to_string()
    } else {
        format!("{}{suffix}", pick.0)
    };
    Ok(format!("{val:.2} {unit_name}"))
}

/// Ansible's `human_to_bytes(default_unit=None, isbits=False)`: `10M` → 10485760.
fn f_human_to_bytes(v: JValue, a: Rest<ValueOrKwargs>) -> Result<i64, JError> {
    let o = named(&a.into_values(), &["default_unit", "isbits"])?;
    let default_unit = opt_str(&o[0]);
    let isbits = o[1].as_ref().map(|x| x.is_true());
    let s = v
        .as_str()
        .map(String::from)
        .unwrap_or_else(|| v.to_string());
    let bad = || {
        jerr(format!(
            "human_to_bytes() can't interpret following string: {s}"
        ))
    };
    let t = s.trim_end();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = (&t[..split], t[split..].trim_start());
    if num.is_empty() || num.ends_with('.') || num.matches('.').count() > 1 {
        return Err(bad());
    }
    if !unit.chars().all(|c| c.is_ascii_alphabetic()) {
        return Err(bad());
    }
    let n: f64 = num.parse().map_err(|_| bad())?;
    let unit = if unit.is_empty() {
        default_unit.unwrap_or_default()
    } else {
        unit.to_string()
    };
    let Some(first) = unit.chars().next() else {
        return Ok(n.round() as i64);
    };
    let key = first.to_ascii_uppercase();
    let Some(i) = SIZE_UNITS.iter().position(|u| *u == key) else {
        return Err(jerr(format!(
            "human_to_bytes() failed to convert {s} (unit = {unit}). The suffix must be one of Y, Z, E, P, T, G, M, K, B"
        )));
    };
    let (class, class_name) = if isbits.unwrap_or(false) {
        ('b', "bit")
    } else {
        ('B', "byte")
    };
    if unit.len() > 1
        && !unit.to_lowercase().contains(class_name)
        && unit.chars().nth(1) != Some(class)
    {
        let expect = if key == 'B' {
            format!("expect {class} or {class_name}")
        } else {
            format!("expect {key}{class} or {key}")
        };
        return Err(jerr(format!(
            "human_to_bytes() failed to convert {s}. Value is not a valid string ({expect})"
        )));
    }
    Ok((n * (1u128 << (10 * i as u32)) as f64).round() as i64)
}

/// `list | subelements('key', skip_missing=False)`: [item, element] for each element of
/// each item's list under `key` (a dotted path).
fn f_subelements(v: JValue, a: Rest<ValueOrKwargs>) -> Result<JValue, JError> {
    let o = named(&a.into_values(), &["subelements", "skip_missing"])?;
    let key = opt_str(&o[0]).ok_or_else(|| jerr("subelements() needs the key"))?;
    let skip = o[1].clone().is_some_and(|s| {
        if s.kind() == ValueKind::Map {
            s.get_attr("skip_missing")
                .map(|x| x.is_true())
                .unwrap_or(false)
        } else {
            s.is_true()
        }
    });
    let items = match j(&v)? {
        Value::Array(a) => a,
        Value::Object(m) => m.into_values().collect(),
        _ => return Err(jerr("subelements lookup expects a list or a dictionary")),
    };
    let mut out = vec![];
    for it in items {
        let mut cur = Some(&it);
        for k in key.split('.') {
            cur = cur.and_then(|c| c.get(k));
        }
        match cur {
            Some(Value::Array(subs)) => {
                for s in subs {
                    out.push(Value::Array(vec![it.clone(), s.clone()]));
                }
            }
            Some(_) => return Err(jerr(format!("the key {key} should point to a list"))),
            None if skip => {}
            None => return Err(jerr(format!("could not find '{key}' key in iterated item"))),
        }
    }
    Ok(from_json(&Value::Array(out)))
}

/// Python's `urllib.parse.urlsplit` as Ansible's `urlsplit` filter returns it.
fn f_urlsplit(url: String, a: Rest<ValueOrKwargs>) -> Result<JValue, JError> {
    let query = opt_str(&named(&a.into_values(), &["query"])?[0]);
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r))
            if !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) =>
        {
            (s.to_lowercase(), format!("//{r}"))
        }
        _ => (String::new(), url.clone()),
    };
    let (rest, fragment) = rest
        .split_once('#')
        .map_or((rest.as_str(), ""), |(a, b)| (a, b));
    let (rest, q) = rest.split_once('?').map_or((rest, ""), |(a, b)| (a, b));
    let (netloc, path) = match rest.strip_prefix("//") {
        Some(r) => r.find('/').map_or((r, ""), |i| (&r[..i], &r[i..])),
        None => ("", rest),
    };
    let (userinfo, hostport) = netloc
        .rsplit_once('@')
        .map_or((None, netloc), |(u, h)| (Some(u), h));
    let (user, pass) = match userinfo {
        Some(u) => match u.split_once(':') {
            Some((a, b)) => (Some(a), Some(b)),
            None => (Some(u), None),
        },
        None => (None, None),
    };
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || hostport.starts_with('[') => {
            (h, p.parse::<u16>().ok())
        }
        _ => (hostport, None),
    };
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_lowercase();
    let all = serde_json::json!({
        "fragment": fragment, "hostname": if host.is_empty() { Value::Null } else { Value::String(host) },
        "netloc": netloc, "password": pass, "path": path, "port": port, "query": q,
        "scheme": scheme, "username": user,
    });
    match query {
        None => Ok(from_json(&all)),
        Some(k) => all
            .get(&k)
            .map(from_json)
            .ok_or_else(|| jerr(format!("urlsplit: unknown URL component: {k}"))),
    }
}

/// Python's `unquote_plus`.
fn urldecode(s: &str) -> String {
    percent_decode(s, true)
}

/// `%XX` escapes decoded (a `%` not followed by two hex digits stays), `+` as a space when
/// `plus_is_space` (Python's `unquote_plus`; `unquote` otherwise); invalid UTF-8 replaced.
pub(crate) fn percent_decode(s: &str, plus_is_space: bool) -> String {
    let b = s.as_bytes();
    let mut out = vec![];
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' if plus_is_space => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                match std::str::from_utf8(&b[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(v) => {
                        out.push(v);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_path_helpers() {
        assert_eq!(splitext("a/b.tar.gz"), ("a/b.tar".into(), ".gz".into()));
        assert_eq!(splitext(".bashrc"), (".bashrc".into(), "".into()));
        assert_eq!(splitext("x/.a.b"), ("x/.a".into(), ".b".into()));
        assert_eq!(relpath("/a/b/c", Some("/a/d")), "../b/c");
        assert_eq!(
            f_path_join(JValue::from(vec!["/etc", "x", "/abs", "y"])).unwrap(),
            "/abs/y"
        );
        std::env::set_var("DP_TEST_EXPAND", "v");
        assert_eq!(
            expandvars("$DP_TEST_EXPAND/${DP_TEST_EXPAND}/$NOPE_X_Y"),
            "v/v/$NOPE_X_Y"
        );
        assert_eq!(urldecode("a%20b+c%2"), "a b c%2");
    }

    #[test]
    fn sizes() {
        let hr = |n: i64| f_human_readable(JValue::from(n), Rest(vec![])).unwrap();
        assert_eq!(hr(10), "10.00 Bytes");
        assert_eq!(hr(1024), "1.00 KB");
        assert_eq!(hr(1536 * 1024), "1.50 MB");
        let hb = |s: &str| f_human_to_bytes(JValue::from(s), Rest(vec![]));
        assert_eq!(hb("10M").unwrap(), 10 << 20);
        assert_eq!(hb("1.5 KB").unwrap(), 1536);
        assert!(hb("1 XB").is_err());
    }
}
