//! Template files as ansible-core's template module renders them: the task's options and the
//! file's `#jinja2:` header (`trim_blocks`, `lstrip_blocks`, `keep_trailing_newline`,
//! `newline_sequence`, delimiters) choose the Jinja settings; `include`, `import` and `from`
//! find templates in the module's search path; string literals keep Jinja's escapes (no
//! `escape_backslashes` for files); newlines the file ends with are put back as the task's
//! `newline_sequence`.

use super::filters::print_value;
use super::{chained_lookup, restore_trailing_newlines, undefined_names};
use minijinja::syntax::SyntaxConfig;
use minijinja::value::Value as JValue;
use minijinja::{AutoEscape, Environment, Error as JError, ErrorKind, UndefinedBehavior};
use std::path::{Path, PathBuf};

/// The Jinja settings a template is rendered with (ansible-core's `TemplateOverrides`).
#[derive(Clone, Debug, PartialEq)]
pub struct Overrides {
    pub block: (String, String),
    pub variable: (String, String),
    pub comment: (String, String),
    pub line_statement_prefix: Option<String>,
    pub line_comment_prefix: Option<String>,
    pub trim_blocks: bool,
    pub lstrip_blocks: bool,
    pub keep_trailing_newline: bool,
    pub newline_sequence: String,
}

impl Default for Overrides {
    fn default() -> Self {
        let pair = |a: &str, b: &str| (a.to_string(), b.to_string());
        Overrides {
            block: pair("{%", "%}"),
            variable: pair("{{", "}}"),
            comment: pair("{#", "#}"),
            line_statement_prefix: None,
            line_comment_prefix: None,
            trim_blocks: true,
            lstrip_blocks: false,
            keep_trailing_newline: false,
            newline_sequence: "\n".into(),
        }
    }
}

/// A Python literal as `ast.literal_eval` reads the values of a `#jinja2:` header.
#[derive(Debug, PartialEq)]
enum Lit {
    Bool(bool),
    None,
    Str(String),
    Other(String),
}

fn literal(v: &str) -> Lit {
    let v = v.trim();
    match v {
        "True" => return Lit::Bool(true),
        "False" => return Lit::Bool(false),
        "None" => return Lit::None,
        _ => {}
    }
    let quoted = v.len() >= 2
        && (v.starts_with('\'') && v.ends_with('\'') || v.starts_with('"') && v.ends_with('"'));
    if !quoted {
        return Lit::Other(v.to_string());
    }
    let mut out = String::new();
    let mut it = v[1..v.len() - 1].chars();
    while let Some(c) = it.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match it.next() {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some(o) => out.push(o),
            None => out.push('\\'),
        }
    }
    Lit::Str(out)
}

fn type_name(l: &Lit) -> &'static str {
    match l {
        Lit::Bool(_) => "bool",
        Lit::None => "NoneType",
        Lit::Str(_) => "str",
        Lit::Other(_) => "int",
    }
}

impl Overrides {
    /// Set one field by its ansible-core name from a Python literal.
    fn set(&mut self, key: &str, raw: &str) -> Result<(), String> {
        let v = literal(raw);
        let wrong = |want: &str| {
            format!(
                "TemplateOverrides.{key} must be <class '{want}'> instead of <class '{}'>",
                type_name(&v)
            )
        };
        let flag = |f: &mut bool| match v {
            Lit::Bool(b) => {
                *f = b;
                Ok(())
            }
            _ => Err(wrong("bool")),
        };
        let text = || match &v {
            Lit::Str(s) => Ok(s.clone()),
            _ => Err(wrong("str")),
        };
        match key {
            "trim_blocks" => flag(&mut self.trim_blocks)?,
            "lstrip_blocks" => flag(&mut self.lstrip_blocks)?,
            "keep_trailing_newline" => flag(&mut self.keep_trailing_newline)?,
            "newline_sequence" => {
                let s = text()?;
                if !matches!(s.as_str(), "\n" | "\r\n" | "\r") {
                    return Err(format!(
                        "TemplateOverrides.newline_sequence must be one of '\\n', '\\r\\n', '\\r', not {s:?}"
                    ));
                }
                self.newline_sequence = s;
            }
            "block_start_string" => self.block.0 = text()?,
            "block_end_string" => self.block.1 = text()?,
            "variable_start_string" => self.variable.0 = text()?,
            "variable_end_string" => self.variable.1 = text()?,
            "comment_start_string" => self.comment.0 = text()?,
            "comment_end_string" => self.comment.1 = text()?,
            "line_statement_prefix" | "line_comment_prefix" => {
                let s = match &v {
                    Lit::None => None,
                    _ => Some(text().map_err(|_| wrong("str"))?),
                };
                if key == "line_statement_prefix" {
                    self.line_statement_prefix = s;
                } else {
                    self.line_comment_prefix = s;
                }
            }
            _ => return Err(format!("Invalid '#jinja2:' override key {key:?}.")),
        }
        Ok(())
    }

    /// Split a template's `#jinja2: key: value, …` first line off and apply it. The
    /// template without that line.
    pub fn apply_header<'a>(&mut self, text: &'a str) -> Result<&'a str, String> {
        let Some(rest) = text.strip_prefix("#jinja2:") else {
            return Ok(text);
        };
        let Some(eol) = rest.find('\n') else {
            return Err("Missing newline after '#jinja2:' override.".into());
        };
        for pair in rest[..eol].split(',') {
            if pair.trim().is_empty() {
                return Err("Empty '#jinja2:' override pair not allowed.".into());
            }
            let Some((k, v)) = pair.split_once(':') else {
                return Err(format!(
                    "Missing key-value separator `:` in '#jinja2:' override pair {pair:?}."
                ));
            };
            self.set(k.trim(), v)?;
        }
        Ok(&rest[eol + 1..])
    }

    fn syntax(&self) -> Result<SyntaxConfig, JError> {
        let mut b = SyntaxConfig::builder();
        b.block_delimiters(self.block.0.clone(), self.block.1.clone())
            .variable_delimiters(self.variable.0.clone(), self.variable.1.clone())
            .comment_delimiters(self.comment.0.clone(), self.comment.1.clone())
            .trim_blocks(self.trim_blocks)
            .lstrip_blocks(self.lstrip_blocks)
            .keep_trailing_newline(self.keep_trailing_newline);
        if let Some(p) = &self.line_statement_prefix {
            b.line_statement_prefix(p.clone());
        }
        if let Some(p) = &self.line_comment_prefix {
            b.line_comment_prefix(p.clone());
        }
        b.build()
    }
}

/// Jinja's newline handling: every line break of the source (`\r\n`, `\r`, `\n`) is `\n`.
fn normalize_newlines(s: &str) -> String {
    s.replace("\r\n", "\n").replace('\r', "\n")
}

/// Where a template named in `include`/`import`/`from` is looked for, in order: like
/// Jinja's file system loader, the name's `/`-separated parts under each directory; a name
/// with a `..` part is never found.
fn load(search: &[PathBuf], name: &str) -> Result<Option<String>, JError> {
    let parts: Vec<&str> = name
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    if parts.contains(&"..") {
        return Ok(None);
    }
    for dir in search {
        let p = parts.iter().fold(dir.clone(), |p, part| p.join(part));
        if p.is_file() {
            return std::fs::read_to_string(&p)
                .map(|s| Some(normalize_newlines(&s)))
                .map_err(|e| {
                    JError::new(
                        ErrorKind::InvalidOperation,
                        format!("cannot read {}: {e}", p.display()),
                    )
                });
        }
    }
    Ok(None)
}

/// Marks a line break printed by `{{ … }}` so that only the template's own line breaks
/// become the `newline_sequence` (Jinja converts template data, not values).
const VALUE_NL: char = '\u{FDD0}';

fn environment(o: &Overrides, search: &[PathBuf]) -> Result<Environment<'static>, JError> {
    let mut env = super::env().clone();
    env.set_syntax(o.syntax()?);
    let search = search.to_vec();
    env.set_loader(move |name| load(&search, name));
    if o.newline_sequence != "\n" {
        // a custom auto-escape mode makes macro and block-set output "safe": its line
        // breaks are template data, printed as they are
        env.set_auto_escape_callback(|_| AutoEscape::Custom("ansible-newlines".into()));
        env.set_formatter(|out, _state, v| {
            let s = print_value(v)?;
            let s = if v.is_safe() {
                s
            } else {
                s.replace('\n', &VALUE_NL.to_string())
            };
            out.write_str(&s)
                .map_err(|_| JError::new(ErrorKind::WriteFailure, "write failed"))
        });
    }
    Ok(env)
}

/// What the template module renders: its options, where includes are looked up.
pub struct FileTemplate<'a> {
    /// Named in error messages (the template's path).
    pub name: &'a str,
    pub text: &'a str,
    pub search: &'a [PathBuf],
    /// The task's options (`trim_blocks`, `lstrip_blocks`, `newline_sequence`, delimiters).
    pub options: Overrides,
}

impl FileTemplate<'_> {
    /// Render with `ctx`. An error names the template (or the included one) and its line.
    pub fn render(&self, ctx: &JValue) -> Result<String, String> {
        let mut o = self.options.clone();
        let body = o
            .apply_header(self.text)
            .map_err(|e| format!("{}:1: syntax error in template: {e}", self.name))?;
        let header_lines = usize::from(body.len() != self.text.len());
        let body = normalize_newlines(body);
        let env = environment(&o, self.search).map_err(|e| format!("{}: {e}", self.name))?;
        let render = |env: &Environment<'static>| env.render_named_str(self.name, &body, ctx);
        let out = match render(&env) {
            Err(e) if chained_lookup(&e, &body) => {
                let mut chain = env.clone();
                chain.set_undefined_behavior(UndefinedBehavior::Chainable);
                render(&chain)
            }
            other => other,
        }
        .map_err(|e| self.describe(&e, &body, header_lines, ctx))?;
        let out = if o.newline_sequence == "\n" {
            out
        } else {
            out.replace('\n', &o.newline_sequence)
                .replace(VALUE_NL, "\n")
        };
        Ok(restore_trailing_newlines(
            self.text,
            out,
            &self.options.newline_sequence,
        ))
    }

    fn describe(&self, e: &JError, body: &str, header_lines: usize, ctx: &JValue) -> String {
        let in_main = !matches!(e.name(), Some(n) if n != self.name);
        let line = e.line().unwrap_or(1) + if in_main { header_lines } else { 0 };
        let file = if in_main {
            self.name.to_string()
        } else {
            e.name().unwrap_or("?").to_string()
        };
        let undefined = e.kind() == ErrorKind::UndefinedError
            || e.detail().is_some_and(|d| d.contains("` is undefined"));
        let mut msg = match e.kind() {
            _ if undefined => {
                let missing = if in_main {
                    undefined_names(body, ctx)
                } else {
                    vec![]
                };
                if missing.is_empty() {
                    format!(
                        "undefined variable or attribute: {}",
                        e.detail().unwrap_or("")
                    )
                } else {
                    let names: Vec<String> = missing.iter().map(|m| format!("'{m}'")).collect();
                    format!("{} is undefined", names.join(", "))
                }
            }
            ErrorKind::SyntaxError => {
                format!("template syntax error: {}", e.detail().unwrap_or(""))
            }
            ErrorKind::TemplateNotFound => {
                format!("template not found: {}", e.detail().unwrap_or(""))
            }
            _ => format!("template error: {}", e.detail().unwrap_or(&e.to_string())),
        };
        let mut src = std::error::Error::source(e);
        while let Some(s) = src {
            msg.push_str(&format!(": {s}"));
            src = s.source();
        }
        format!("{file}:{line}: {msg}")
    }
}

/// The template module's search path for includes, as ansible-core builds it: each
/// directory of the task's search path (role, then playbook directory), then the
/// template's own directory, each preceded by its `templates/` subdirectory.
pub fn search_path(task_search: &[PathBuf], template: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = task_search.to_vec();
    if let Some(d) = template.parent() {
        dirs.push(d.to_path_buf());
    }
    dirs.into_iter()
        .flat_map(|d| [d.join("templates"), d])
        .collect()
}
