//! The `--json` documents (docs/JSON.md). Every command that reports with `--json` prints ONE
//! object on stdout: `schema` (this format's version) and `command` first, then the report's
//! fields. When darkport refuses or fails before a report exists (a wrong key, nothing to roll
//! back, an unreadable inventory) the document is `{schema, command, ok: false, error}`, so a
//! machine reading stdout always gets valid JSON; the text error still goes to stderr.

use serde::Serialize;
use serde_json::{Map, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

/// The version of the documents' shape: bumped when a field changes meaning or goes away
/// (new fields do not bump it).
pub const SCHEMA: &str = "darkport/1";

static COMMAND: OnceLock<&'static str> = OnceLock::new();
static PRINTED: AtomicBool = AtomicBool::new(false);

/// `--json` is on for `command`: documents name it, and an error becomes a document.
pub fn enable(command: &'static str) {
    let _ = COMMAND.set(command);
}

/// The command whose `--json` is on, if any.
pub fn enabled() -> Option<&'static str> {
    COMMAND.get().copied()
}

/// The document for `report` (and the error that stopped the operation after it, if any).
pub fn document(report: &impl Serialize, error: Option<&anyhow::Error>) -> Value {
    // Reports are plain data (no maps with non-string keys): serialising cannot fail.
    let v = serde_json::to_value(report).expect("a report serialises to JSON");
    let mut out = envelope();
    match v {
        Value::Object(m) => out.extend(m),
        other => {
            out.insert("result".into(), other);
        }
    }
    match error {
        Some(e) => {
            out.insert("ok".into(), false.into());
            out.insert("error".into(), error_value(e));
        }
        // A report's own error text takes the one shape `error` has in every document.
        None => {
            if let Some(Value::String(msg)) = out.get("error") {
                let v = serde_json::json!({ "message": msg });
                out.insert("error".into(), v);
            }
        }
    }
    Value::Object(out)
}

fn envelope() -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("schema".into(), SCHEMA.into());
    m.insert("command".into(), enabled().unwrap_or("darkport").into());
    m
}

/// An error as JSON: the message, its causes, the hint if any, and the exit code it gives.
pub fn error_value(e: &anyhow::Error) -> Value {
    let hint = e.downcast_ref::<super::Hint>().map(|h| h.0.clone());
    let causes: Vec<String> = e
        .chain()
        .skip(1)
        .map(|c| c.to_string())
        .filter(|c| Some(c) != hint.as_ref())
        .collect();
    serde_json::json!({
        "message": e.to_string(),
        "causes": causes,
        "hint": hint,
        "exit_code": crate::report::exit_code(e),
    })
}

/// Print `report`'s document (pretty, one object) on stdout.
pub fn print(report: &impl Serialize, error: Option<&anyhow::Error>) {
    let text =
        serde_json::to_string_pretty(&document(report, error)).expect("a JSON value serialises");
    println!("{text}");
    PRINTED.store(true, Ordering::SeqCst);
}

/// With `--json` on and no document printed yet, print `{schema, command, ok: false, error}`.
pub fn print_error(e: &anyhow::Error) {
    if enabled().is_none() || PRINTED.load(Ordering::SeqCst) {
        return;
    }
    let mut m = envelope();
    m.insert("ok".into(), false.into());
    m.insert("error".into(), error_value(e));
    let text = serde_json::to_string_pretty(&Value::Object(m)).expect("a JSON value serialises");
    println!("{text}");
    PRINTED.store(true, Ordering::SeqCst);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct R {
        ok: bool,
        nodes: Vec<&'static str>,
    }

    #[test]
    fn a_document_leads_with_schema_and_command_and_carries_the_error() {
        let d = document(
            &R {
                ok: true,
                nodes: vec!["n1"],
            },
            None,
        );
        let keys: Vec<&String> = d.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["schema", "command", "ok", "nodes"]);
        assert_eq!(d["schema"], SCHEMA);
        let e = anyhow::anyhow!("node2 unreachable")
            .context(super::super::Hint("start it".into()))
            .context("install stopped");
        let d = document(
            &R {
                ok: true,
                nodes: vec![],
            },
            Some(&e),
        );
        assert_eq!(d["ok"], false);
        assert_eq!(d["error"]["message"], "install stopped");
        assert_eq!(
            d["error"]["causes"],
            serde_json::json!(["node2 unreachable"])
        );
        assert_eq!(d["error"]["hint"], "start it");
        assert_eq!(d["error"]["exit_code"], 1);
    }
}
