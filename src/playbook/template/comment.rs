//! Ansible's `comment` filter (`{{ ansible_managed | comment }}`): the text as a comment
//! block in the style `plain` (`#`), `erlang` (`%`), `c` (`//`), `cblock` (`/* … */`) or
//! `xml` (`<!-- … -->`), each part overridable by keyword as in ansible-core.

use super::args::jerr;
use super::py_str;
use minijinja::value::{Kwargs, Value as JValue};
use minijinja::Error as JError;

pub(super) fn f_comment(text: JValue, style: Option<String>, kw: Kwargs) -> Result<JValue, JError> {
    let text = py_str(&super::args::j(&text)?);
    let style = style.unwrap_or_else(|| "plain".into());
    let (beginning, decoration, end) = match style.as_str() {
        "plain" => ("", "# ", ""),
        "erlang" => ("", "% ", ""),
        "c" => ("", "// ", ""),
        "cblock" => ("/*", " * ", " */"),
        "xml" => ("<!--", " - ", "-->"),
        other => {
            return Err(jerr(format!(
                "Invalid style '{other}'. Available styles: plain, erlang, c, cblock, xml"
            )))
        }
    };
    let text_kw = |k: &str, d: &str| -> Result<String, JError> {
        Ok(kw
            .get::<Option<JValue>>(k)?
            .map(|v| {
                v.as_str()
                    .map(String::from)
                    .unwrap_or_else(|| v.to_string())
            })
            .unwrap_or_else(|| d.to_string()))
    };
    let count_kw =
        |k: &str| -> Result<usize, JError> { Ok(kw.get::<Option<usize>>(k)?.unwrap_or(1)) };
    let decoration = text_kw("decoration", decoration)?;
    let prepostfix = decoration.trim_end().to_string();
    let newline = text_kw("newline", "\n")?;
    let beginning = text_kw("beginning", beginning)?;
    let prefix = text_kw("prefix", &prepostfix)?;
    let postfix = text_kw("postfix", &prepostfix)?;
    let end = text_kw("end", end)?;
    let (prefix_count, postfix_count) = (count_kw("prefix_count")?, count_kw("postfix_count")?);
    kw.assert_all_used()?;

    let mut out = String::new();
    if !beginning.is_empty() {
        out.push_str(&beginning);
        out.push_str(&newline);
    }
    if !prefix.is_empty() {
        let line = if prefix != newline {
            format!("{prefix}{newline}")
        } else {
            newline.clone()
        };
        out.push_str(&line.repeat(prefix_count));
    }
    let body = format!(
        "{decoration}{}",
        text.replace(&newline, &format!("{newline}{decoration}"))
    );
    out.push_str(&body.replace(
        &format!("{decoration}{newline}"),
        &format!("{}{newline}", decoration.trim_end()),
    ));
    for _ in 0..postfix_count {
        out.push_str(&newline);
        out.push_str(&postfix);
    }
    if !end.is_empty() {
        out.push_str(&newline);
        out.push_str(&end);
    }
    Ok(JValue::from(out))
}
