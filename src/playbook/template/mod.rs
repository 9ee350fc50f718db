//! Jinja2 templating the way Ansible configures it, on minijinja 3: strict undefined, no
//! auto-escaping, `trim_blocks`, the source's trailing newlines put back after rendering,
//! backslashes in `{{ … }}` string literals of YAML values kept as written (see [`escape`]),
//! template files with `#jinja2:` headers and includes (see [`file`]), Python-style printing of values
//! (`True`, `None` as empty, `['a', 1]`), Ansible's `bool`/`int` semantics and the Ansible
//! filter plugins playbooks use.

use minijinja::value::{Kwargs, Rest, Value as JValue, ValueKind, ValueOrKwargs};
use minijinja::{AutoEscape, Environment, Error as JError, ErrorKind, State, UndefinedBehavior};
use serde_json::{Map, Value};
use std::sync::OnceLock;

mod args;
mod comment;
mod datafilters;
mod escape;
pub mod file;
mod filters;
mod functions;
mod pydatetime;
mod pyfmt;
mod regex;

pub(crate) use datafilters::{normpath, percent_decode};
pub use filters::ansible_bool;
use filters::build_env;
pub(crate) use functions::fileglob;
pub use pydatetime::PyDateTime;
pub use pyfmt::{py_json, py_repr, py_str, py_yaml};
pub use regex::py_repl;

/// The placeholder `omit` renders to; modules drop parameters equal to it.
pub const OMIT: &str = "__omit_place_holder__d4rkp0rt";

#[derive(Debug, thiserror::Error)]
#[error("{msg}")]
pub struct TemplateError {
    pub msg: String,
}

fn terr(msg: impl Into<String>) -> TemplateError {
    TemplateError { msg: msg.into() }
}

/// The shared Jinja environment (strict undefined).
pub fn env() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| build_env(UndefinedBehavior::Strict))
}

/// The same environment with chainable undefined: an attribute or item of an undefined value
/// is again undefined. Printing an undefined still fails (the formatter is strict), but `if`,
/// `for`, comparisons and builtin filters are lenient with undefined here, so it is used only
/// to re-run a template whose strict run failed on such a chained lookup (see [`run`]).
fn chain_env() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| build_env(UndefinedBehavior::Chainable))
}

/// Ansible's undefined is strict except that `undefined.attr` and `undefined[key]` are
/// undefined again (so `d.missing.attr | default(x)` and `d.missing.attr is defined` work).
/// minijinja has no such mode: run strict, and only when that failed on an attribute or item
/// lookup on an undefined value, run again with chainable undefined.
fn run<T>(src: &str, f: impl Fn(&Environment<'static>) -> Result<T, JError>) -> Result<T, JError> {
    match f(env()) {
        Err(e) if chained_lookup(&e, src) => f(chain_env()),
        other => other,
    }
}

/// Did the strict run fail on `undefined.attr` / `undefined[key]`? Its error points at the
/// lookup (`.missing.attr`, `nope.attr`, `[5].x`) and names the undefined value (`d.missing`,
/// `nope`, `l[5]`); printing or testing an undefined points at the value itself.
fn chained_lookup(e: &JError, src: &str) -> bool {
    if e.kind() != ErrorKind::UndefinedError {
        return false;
    }
    let (Some(range), Some(detail)) = (e.range(), e.detail()) else {
        return false;
    };
    let Some(origin) = detail
        .strip_prefix('`')
        .and_then(|d| d.strip_suffix("` is undefined"))
    else {
        return false;
    };
    let Some(at) = src.get(range) else {
        return false;
    };
    let at = at.trim_end();
    last_access(at).is_some_and(|a| Some(a) != last_access(origin))
}

/// The last `.name` or `[...]` of an expression such as `d.x['y']`.
fn last_access(expr: &str) -> Option<&str> {
    if expr.ends_with(']') {
        let mut depth = 0;
        for (i, c) in expr.char_indices().rev() {
            match c {
                ']' => depth += 1,
                '[' => {
                    depth -= 1;
                    if depth == 0 {
                        return Some(&expr[i..]);
                    }
                }
                _ => {}
            }
        }
        return None;
    }
    let name_start = expr
        .trim_end_matches(|c: char| c.is_alphanumeric() || c == '_')
        .len();
    expr[..name_start]
        .ends_with('.')
        .then(|| &expr[name_start - 1..])
}

/// True when a string needs templating.
pub fn is_template(s: &str) -> bool {
    s.contains("{{") || s.contains("{%") || s.contains("{#")
}

fn describe(e: &JError, src: &str, ctx: &JValue) -> String {
    // `nope + 1` fails as an invalid operation that names the undefined operand
    let undefined = e.kind() == ErrorKind::UndefinedError
        || e.detail().is_some_and(|d| d.contains("` is undefined"));
    let mut msg = match e.kind() {
        _ if undefined => {
            let missing = undefined_names(src, ctx);
            if missing.is_empty() {
                format!("undefined variable or attribute in {src:?}")
            } else {
                format!(
                    "{} is undefined (in {src:?})",
                    missing
                        .iter()
                        .map(|m| format!("'{m}'"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        }
        ErrorKind::SyntaxError => format!(
            "template syntax error in {src:?}: {}",
            e.detail().unwrap_or("")
        ),
        _ => format!("template error in {src:?}: {e}"),
    };
    if let Some(d) = e.detail() {
        if undefined && !msg.contains(d) {
            msg.push_str(&format!(": {d}"));
        }
    }
    let mut src_err = std::error::Error::source(e);
    while let Some(s) = src_err {
        msg.push_str(&format!(": {s}"));
        src_err = s.source();
    }
    msg
}

fn undefined_names(src: &str, ctx: &JValue) -> Vec<String> {
    let tmpl = if src.contains("{{") || src.contains("{%") {
        src.to_string()
    } else {
        format!("{{{{ {src} }}}}")
    };
    let Ok(t) = env().template_from_str(&tmpl) else {
        return vec![];
    };
    let mut names: Vec<String> = t
        .undeclared_variables(true)
        .into_iter()
        .filter(|name| {
            let mut cur = ctx.clone();
            for part in name.split('.') {
                match cur.get_attr(part) {
                    Ok(v) if !v.is_undefined() => cur = v,
                    _ => return true,
                }
            }
            false
        })
        .collect();
    names.sort();
    names
}

/// Check template syntax without rendering (used by the loader before any host is touched).
pub fn check_syntax(s: &str) -> Result<(), TemplateError> {
    if !is_template(s) {
        return Ok(());
    }
    env().template_from_str(s).map(|_| ()).map_err(|e| {
        terr(format!(
            "template syntax error in {s:?}: {}",
            e.detail().unwrap_or(&e.to_string())
        ))
    })
}

/// Check the syntax of a whole template file; on error, the line (1-based) and the reason.
pub fn check_file_syntax(src: &str) -> Result<(), (usize, String)> {
    env().template_from_str(src).map(|_| ()).map_err(|e| {
        let why = e
            .detail()
            .map(String::from)
            .unwrap_or_else(|| e.to_string());
        (
            e.line().unwrap_or(1),
            format!("template syntax error: {why}"),
        )
    })
}

/// Check the syntax of a bare expression (`when:`, `that:`).
pub fn check_expr(s: &str) -> Result<(), TemplateError> {
    env().compile_expression(s).map(|_| ()).map_err(|e| {
        terr(format!(
            "bad expression {s:?}: {}",
            e.detail().unwrap_or(&e.to_string())
        ))
    })
}

/// Render a string template (a YAML value) to text, as Ansible templates strings: string
/// literals in `{{ … }}` keep their backslashes, and the newlines the source ends with that
/// rendering dropped (Jinja strips one; `trim_blocks` or `-}}` may take more) are put back.
pub fn render_str(s: &str, ctx: &JValue) -> Result<String, TemplateError> {
    if !is_template(s) {
        return Ok(s.to_string());
    }
    let src = escape::template(s);
    let out = run(&src, |env| env.render_str(&src, ctx))
        .map_err(|e| describe(&e, s, ctx))
        .map_err(terr)?;
    Ok(restore_trailing_newlines(s, out, "\n"))
}

/// Ansible's `preserve_trailing_newlines`: append `newline` for each `\n` the end of `src`
/// has more than the end of `out`.
pub(crate) fn restore_trailing_newlines(src: &str, mut out: String, newline: &str) -> String {
    let count = |t: &str| t.len() - t.trim_end_matches('\n').len();
    let (want, have) = (count(src), count(&out));
    if want > have {
        out.push_str(&newline.repeat(want - have));
    }
    out
}

/// Single `{{ expr }}` with nothing around it: returns the expression (native types).
fn single_expr(s: &str) -> Option<&str> {
    let inner = s.strip_prefix("{{")?.strip_suffix("}}")?;
    if inner.contains("{{") || inner.contains("}}") || inner.contains("{%") || inner.contains("{#")
    {
        return None;
    }
    let inner = inner.strip_prefix('-').unwrap_or(inner);
    let inner = inner.strip_suffix('-').unwrap_or(inner);
    Some(inner)
}

/// Evaluate a bare expression to a JSON value (as a condition: string literals unescaped
/// the Jinja way).
pub fn eval_expr(expr: &str, ctx: &JValue) -> Result<Value, TemplateError> {
    eval_source(expr, expr, ctx)
}

/// Evaluate `expr` as written in `src`: the message of an error names `src`.
fn eval_source(src: &str, expr: &str, ctx: &JValue) -> Result<Value, TemplateError> {
    let v = run(expr, |env| env.compile_expression(expr)?.eval(ctx))
        .map_err(|e| terr(describe(&e, src, ctx)))?;
    if v.is_undefined() {
        let missing = undefined_names(src, ctx);
        return Err(terr(if missing.is_empty() {
            format!("{src:?} is undefined")
        } else {
            format!("'{}' is undefined", missing.join("', '"))
        }));
    }
    to_json(&v).map_err(terr)
}

/// Evaluate a condition (`when`, `failed_when`, `that`): a bare expression, or a bool.
pub fn eval_cond(cond: &Value, ctx: &JValue) -> Result<bool, TemplateError> {
    match cond {
        Value::Bool(b) => Ok(*b),
        Value::Null => Ok(false),
        Value::Number(n) => Ok(n.as_f64().unwrap_or(0.0) != 0.0),
        Value::String(s) => {
            let s = s.trim();
            // `when: "{{ x }}"` is accepted (with a warning in Ansible).
            let expr = single_expr(s).unwrap_or(s);
            let v = eval_expr(expr, ctx)?;
            Ok(truthy(&v))
        }
        Value::Array(items) => {
            for c in items {
                if !eval_cond(c, ctx)? {
                    return Ok(false);
                }
            }
            Ok(true)
        }
        Value::Object(_) => Err(terr("a condition cannot be a mapping")),
    }
}

/// Python truthiness of a JSON value (strings are truthy when non-empty, as in Jinja).
pub fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().unwrap_or(0.0) != 0.0,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// Template every string inside a value. A string that is exactly one `{{ expr }}` keeps the
/// expression's native type (list, dict, int…), as ansible-core 2.19 does.
pub fn template_value(v: &Value, ctx: &JValue) -> Result<Value, TemplateError> {
    Ok(match v {
        Value::String(s) if is_template(s) => {
            if let Some(expr) = single_expr(s) {
                eval_source(expr, &escape::expression_only(expr), ctx)?
            } else {
                Value::String(render_str(s, ctx)?)
            }
        }
        Value::Array(a) => Value::Array(
            a.iter()
                .map(|x| template_value(x, ctx))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(o) => {
            let mut m = Map::new();
            for (k, x) in o {
                let k = if is_template(k) {
                    render_str(k, ctx)?
                } else {
                    k.clone()
                };
                m.insert(k, template_value(x, ctx)?);
            }
            Value::Object(m)
        }
        other => other.clone(),
    })
}

/// Convert a minijinja value to JSON.
pub fn to_json(v: &JValue) -> Result<Value, String> {
    if v.is_undefined() {
        return Ok(Value::Null);
    }
    serde_json::to_value(v).map_err(|e| format!("cannot convert template value: {e}"))
}

pub fn from_json(v: &Value) -> JValue {
    JValue::from(minijinja::value::Serde(v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx(v: Value) -> JValue {
        from_json(&v)
    }

    fn r(s: &str, v: Value) -> String {
        render_str(s, &ctx(v)).unwrap()
    }

    #[test]
    fn python_printing() {
        assert_eq!(r("{{ x }}", json!({"x": true})), "True");
        assert_eq!(r("{{ x }}", json!({"x": null})), "");
        assert_eq!(r("{{ x }}", json!({"x": ["a", 1, null]})), "['a', 1, None]");
        assert_eq!(r("{{ x }}", json!({"x": {"k": "it's"}})), "{'k': \"it's\"}");
        assert_eq!(
            r("a\n{% if 1 %}\nb\n{% endif %}\nc\n", json!({})),
            "a\nb\nc\n"
        );
    }

    #[test]
    fn ansible_bool_and_int() {
        assert_eq!(r("{{ 'no'|bool }}", json!({})), "False");
        assert_eq!(r("{{ 'Yes'|bool }}", json!({})), "True");
        assert_eq!(r("{{ 'abc'|int }}", json!({})), "0");
        assert_eq!(r("{{ '42'|int + 1 }}", json!({})), "43");
        assert_eq!(r("{{ '0x1F'|int(0, 16) }}", json!({})), "31");
    }

    #[test]
    fn strict_undefined_names_variable() {
        let e = render_str("x={{ nope }}", &ctx(json!({}))).unwrap_err();
        assert!(e.msg.contains("'nope' is undefined"), "{}", e.msg);
        assert_eq!(r("{{ nope | default('d') }}", json!({})), "d");
        assert_eq!(r("{{ nope is defined }}", json!({})), "False");
        assert!(eval_cond(&json!("nope == 1"), &ctx(json!({}))).is_err());
    }

    #[test]
    fn undefined_chains_into_default_and_defined() {
        let c = json!({"d": {"a": 1, "l": [{"k": 2}]}, "users": [{"n": "u"}]});
        assert_eq!(r("{{ d.missing.attr | default('x') }}", c.clone()), "x");
        assert_eq!(r("{{ nope.attr | default('x') }}", c.clone()), "x");
        assert_eq!(r("{{ nope.a.b['c'].d | d('x') }}", c.clone()), "x");
        assert_eq!(r("{{ d.l[5].k | default(3) }}", c.clone()), "3");
        assert_eq!(r("{{ d.missing['attr'] is defined }}", c.clone()), "False");
        assert_eq!(r("{{ d.missing.attr is undefined }}", c.clone()), "True");
        assert_eq!(
            r("{{ d.l[0].k }} {{ d.a.real | default('y') }}", c.clone()),
            "2 y"
        );
        assert_eq!(
            r(
                "{% for u in users %}{{ u.opts.shell | default('/bin/sh') }}{% endfor %}",
                c.clone()
            ),
            "/bin/sh"
        );
        let cx = ctx(c.clone());
        assert!(eval_cond(&json!("d.missing.attr is not defined"), &cx).unwrap());
        assert_eq!(
            template_value(&json!("{{ d.missing.x | default([1]) }}"), &cx).unwrap(),
            json!([1])
        );
        // what Ansible refuses stays refused, naming the value
        for (t, name) in [
            ("{{ d.missing.attr }}", "d.missing.attr"),
            ("{{ nope.attr }}", "nope.attr"),
            ("{{ d.missing }}", "d.missing"),
            ("{% if nope %}y{% endif %}", "nope"),
            ("{% for x in nope %}{% endfor %}", "nope"),
            ("{{ nope + 1 }}", "nope"),
            ("{{ nope | upper }}", "nope"),
            ("{{ d.missing.x | bool }}", "d.missing.x"),
        ] {
            let e = render_str(t, &cx).unwrap_err();
            assert!(
                e.msg.contains(&format!("'{name}' is undefined")),
                "{t}: {}",
                e.msg
            );
        }
        for cond in ["d.missing.attr", "nope == 1", "nope.x | int > 1"] {
            let e = eval_cond(&json!(cond), &cx).unwrap_err();
            assert!(e.msg.contains("is undefined"), "{cond}: {}", e.msg);
        }
        let e = template_value(&json!("{{ d.missing.attr }}"), &cx).unwrap_err();
        assert!(e.msg.contains("'d.missing.attr' is undefined"), "{}", e.msg);
    }

    #[test]
    fn filters() {
        let c = json!({"d": {"b": 1, "a": [1, 2]}, "s": "hello world"});
        assert_eq!(
            r("{{ d | to_json }}", c.clone()),
            "{\"b\": 1, \"a\": [1, 2]}"
        );
        assert_eq!(
            r("{{ d | to_nice_json }}", c.clone()),
            "{\n    \"a\": [\n        1,\n        2\n    ],\n    \"b\": 1\n}"
        );
        assert_eq!(
            r(
                "{{ s | regex_replace('(\\w+) (\\w+)', '\\2 \\1') }}",
                c.clone()
            ),
            "world hello"
        );
        assert_eq!(r("{{ s | regex_search('w.r') }}", c.clone()), "wor");
        assert_eq!(
            r("{{ s | b64encode | b64decode }}", c.clone()),
            "hello world"
        );
        assert_eq!(
            r("{{ d | combine({'b': 2}) | to_json }}", c.clone()),
            "{\"b\": 2, \"a\": [1, 2]}"
        );
        assert_eq!(r("{{ (1 == 1) | ternary('y', 'n') }}", c.clone()), "y");
        assert_eq!(
            r(
                "{{ {'a': 1} | dict2items | items2dict | to_json }}",
                c.clone()
            ),
            "{\"a\": 1}"
        );
        assert_eq!(
            r(
                "{{ '/a/b/c.txt' | basename }} {{ '/a/b/c.txt' | dirname }}",
                c.clone()
            ),
            "c.txt /a/b"
        );
        assert_eq!(r("{{ \"it's\" | quote }}", c.clone()), "'it'\"'\"'s'");
        assert_eq!(
            r(
                "{{ d.items() | list | length }} {{ d.get('zz', 5) }} {{ s.split() | first }}",
                c.clone()
            ),
            "2 5 hello"
        );
        assert_eq!(r("{{ d | to_yaml }}", c.clone()), "a: [1, 2]\nb: 1\n");
        assert_eq!(
            r("{{ d | to_nice_yaml }}", c.clone()),
            "a:\n- 1\n- 2\nb: 1\n"
        );
        let n = json!({"c": {"x": [{"k": 1, "j": [1]}]}});
        assert_eq!(
            r("{{ c | to_nice_yaml }}", n.clone()),
            "x:\n-   j:\n    - 1\n    k: 1\n"
        );
        assert_eq!(r("{{ c | to_yaml }}", n), "x:\n- j: [1]\n  k: 1\n");
        assert!(render_str("{{ nope | mandatory }}", &ctx(c.clone())).is_err());
    }

    #[test]
    fn native_single_expression() {
        let c = ctx(json!({"l": [1, 2], "n": 3}));
        assert_eq!(
            template_value(&json!("{{ l }}"), &c).unwrap(),
            json!([1, 2])
        );
        assert_eq!(template_value(&json!("{{ n + 1 }}"), &c).unwrap(), json!(4));
        assert_eq!(
            template_value(&json!("n={{ n }}"), &c).unwrap(),
            json!("n=3")
        );
        assert!(eval_cond(&json!(["n > 2", "l | length == 2"]), &c).unwrap());
    }

    #[test]
    fn syntax_check() {
        assert!(check_syntax("{{ a }").is_err());
        assert!(check_syntax("{% if %}").is_err());
        assert!(check_expr("a ==").is_err());
        assert!(check_expr("a is defined and b|bool").is_ok());
    }
}
