//! Compose variable substitution, as the Compose specification describes it, with variables
//! from a `.env` file only.

use std::collections::BTreeMap;

/// `KEY=VALUE` lines; `#` comments, blank lines, an `export ` prefix and one level of single
/// or double quotes around the value are understood.
pub fn parse_env_file(text: &str) -> BTreeMap<String, String> {
    let mut vars = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let v = v.trim();
        let v = if v.len() >= 2
            && ((v.starts_with('"') && v.ends_with('"'))
                || (v.starts_with('\'') && v.ends_with('\'')))
        {
            &v[1..v.len() - 1]
        } else {
            // An unquoted value ends at ` #` (an inline comment).
            v.split(" #").next().unwrap_or(v).trim_end()
        };
        vars.insert(k.trim().to_string(), v.to_string());
    }
    vars
}

/// `s` with every variable replaced; an unset variable without a default is an error (Compose
/// warns and uses ""; for an image name that is never what was meant).
pub fn interpolate(s: &str, vars: &BTreeMap<String, String>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(r) = after.strip_prefix('$') {
            out.push('$');
            rest = r;
        } else if let Some(r) = after.strip_prefix('{') {
            let end = closing_brace(r).ok_or_else(|| format!("unclosed ${{ in {s:?}"))?;
            out.push_str(&braced(&r[..end], vars)?);
            rest = &r[end + 1..];
        } else {
            let n = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            if n == 0 {
                return Err(format!("a lone '$' in {s:?}: write $$ for a literal $"));
            }
            out.push_str(&lookup(&after[..n], vars)?);
            rest = &after[n..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// The index of the `}` that closes an already opened `${` (defaults may nest `${...}`).
fn closing_brace(r: &str) -> Option<usize> {
    let mut depth = 0usize;
    for (i, c) in r.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => return Some(i),
            '}' => depth -= 1,
            _ => {}
        }
    }
    None
}

fn lookup(name: &str, vars: &BTreeMap<String, String>) -> Result<String, String> {
    vars.get(name).cloned().ok_or_else(|| {
        format!("variable {name} is not set (darkport reads variables from the spec's compose_env_file, else the .env file beside the compose file)")
    })
}

fn braced(expr: &str, vars: &BTreeMap<String, String>) -> Result<String, String> {
    let ops = [":-", ":?", "-", "?"];
    let Some((pos, op)) = ops
        .iter()
        .filter_map(|op| expr.find(op).map(|p| (p, *op)))
        .min_by_key(|(p, op)| (*p, std::cmp::Reverse(op.len())))
    else {
        return lookup(expr, vars);
    };
    let (name, arg) = (&expr[..pos], &expr[pos + op.len()..]);
    let val = vars.get(name);
    let set_nonempty = val.is_some_and(|v| !v.is_empty());
    match op {
        ":-" if set_nonempty => Ok(val.unwrap().clone()),
        "-" if val.is_some() => Ok(val.unwrap().clone()),
        ":-" | "-" => interpolate(arg, vars),
        ":?" if set_nonempty => Ok(val.unwrap().clone()),
        "?" if val.is_some() => Ok(val.unwrap().clone()),
        _ => Err(format!("variable {name} is required: {arg}")),
    }
}
