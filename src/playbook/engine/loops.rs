//! `loop:` and the `with_<lookup>` forms: the item lists they produce.

use super::*;

pub(super) fn loop_items(task: &Task, l: &Value, ctx: &JValue) -> Result<Vec<Value>, String> {
    let v = match l {
        Value::String(s) if !template::is_template(s) && task.with.is_none() => {
            return Err(format!(
                "Invalid data passed to 'loop', it requires a list, got this instead: {s}"
            ))
        }
        Value::String(s) if !template::is_template(s) && task.with.is_some() => {
            // `with_items: x` with a bare variable name (old style).
            template::eval_expr(s, ctx).unwrap_or(Value::String(s.clone()))
        }
        other => template_value(other, ctx).map_err(|e| e.msg)?,
    };
    let with = task.with.as_deref();
    Ok(match (with, v) {
        (Some("items"), Value::Array(a)) => a
            .into_iter()
            .flat_map(|x| match x {
                Value::Array(inner) => inner,
                o => vec![o],
            })
            .collect(),
        (Some("flattened"), Value::Array(a)) => {
            fn fl(a: Vec<Value>, out: &mut Vec<Value>) {
                for x in a {
                    match x {
                        Value::Array(i) => fl(i, out),
                        o => out.push(o),
                    }
                }
            }
            let mut out = vec![];
            fl(a, &mut out);
            out
        }
        (Some("dict"), Value::Object(m)) => m
            .into_iter()
            .map(|(k, v)| json!({"key": k, "value": v}))
            .collect(),
        (Some("indexed_items"), Value::Array(a)) => a
            .into_iter()
            .enumerate()
            .map(|(i, x)| json!([i, x]))
            .collect(),
        (Some("together"), Value::Array(a)) => {
            let lists: Vec<Vec<Value>> = a
                .into_iter()
                .map(|x| match x {
                    Value::Array(i) => i,
                    o => vec![o],
                })
                .collect();
            let n = lists.iter().map(|l| l.len()).max().unwrap_or(0);
            (0..n)
                .map(|i| Value::Array(lists.iter().map(|l| l.get(i).cloned().unwrap_or(Value::Null)).collect()))
                .collect()
        }
        (Some("nested"), Value::Array(a)) => {
            let mut acc: Vec<Vec<Value>> = vec![vec![]];
            for l in a {
                let l = match l {
                    Value::Array(i) => i,
                    o => vec![o],
                };
                acc = acc
                    .into_iter()
                    .flat_map(|p| {
                        l.iter().map(move |x| {
                            let mut p2 = p.clone();
                            p2.push(x.clone());
                            p2
                        })
                    })
                    .collect();
            }
            acc.into_iter().map(Value::Array).collect()
        }
        (Some("sequence"), v) => {
            let s = py_str(&v);
            let kv = crate::playbook::model::parse_kv(&s, false);
            let start: i64 = kv.get("start").map(py_str).and_then(|x| x.parse().ok()).unwrap_or(1);
            let end: i64 = kv.get("end").map(py_str).and_then(|x| x.parse().ok())
                .or_else(|| kv.get("count").map(py_str).and_then(|x| x.parse::<i64>().ok()).map(|c| start + c - 1))
                .unwrap_or(start);
            let stride: i64 = kv.get("stride").map(py_str).and_then(|x| x.parse().ok()).unwrap_or(1);
            let fmt = kv.get("format").map(py_str);
            let mut out = vec![];
            let mut i = start;
            while (stride > 0 && i <= end) || (stride < 0 && i >= end) {
                out.push(match &fmt {
                    Some(f) => Value::String(f.replace("%d", &i.to_string()).replace("%02d", &format!("{i:02}")).replace("%03d", &format!("{i:03}"))),
                    None => Value::String(i.to_string()),
                });
                i += stride;
                if stride == 0 {
                    break;
                }
            }
            out
        }
        (Some("fileglob"), v) => {
            let patterns = match v {
                Value::Array(a) => a,
                o => vec![o],
            };
            let var = |k: &str| {
                ctx.get_attr(k)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
            };
            let (role, pb) = (var("role_path"), var("playbook_dir"));
            patterns
                .iter()
                .flat_map(|p| {
                    crate::playbook::template::fileglob(&py_str(p), role.as_deref(), pb.as_deref())
                })
                .map(Value::String)
                .collect()
        }
        (_, Value::Array(a)) => a,
        (Some(_), Value::Null) => vec![],
        (Some(_), o) => vec![o],
        (None, o) => {
            return Err(format!(
                "Invalid data passed to 'loop', it requires a list, got this instead: {}. Hint: If you passed a list/dict of just one element, try adding wantlist=True to your lookup invocation or use q/query instead of lookup.",
                py_str(&o)
            ))
        }
    })
}
