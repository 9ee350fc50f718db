//! Printing playbook runs: Ansible's default callback look (`TASK [x] ***`, `ok: [host]`,
//! `PLAY RECAP`), or one JSON object per event with `--json`.

use crate::playbook::engine::{Event, HostResult, Reporter, Stats, Status};
use crate::playbook::modules::unified_diff;
use serde_json::{json, Value};
use std::io::Write;
use std::sync::Mutex;

pub struct PlaybookPrinter {
    json: bool,
    color: bool,
    /// `-v` count: from 1 every result shows its body, as `ansible-playbook -v` does.
    verbosity: u8,
    /// Ad hoc (`run -m MODULE`): `ansible`'s own output, `host | STATE => {…}`, no banners
    /// and no recap.
    adhoc: Option<String>,
    out: Mutex<Box<dyn Write + Send>>,
}

impl PlaybookPrinter {
    pub fn new(json: bool, out: Box<dyn Write + Send>) -> Self {
        let color = !json
            && std::env::var_os("NO_COLOR").is_none()
            && std::io::IsTerminal::is_terminal(&std::io::stdout());
        PlaybookPrinter {
            json,
            color,
            verbosity: 0,
            adhoc: None,
            out: Mutex::new(out),
        }
    }

    /// Print as `ansible HOSTS -m MODULE` does (see the `adhoc` field).
    pub fn adhoc(mut self, module: &str) -> Self {
        self.adhoc = Some(module.to_string());
        self
    }

    /// One host's result as `ansible` prints it (its "minimal" output): command-like modules
    /// as `host | CHANGED | rc=0 >>` and their output, the others `host | SUCCESS => {…}`.
    fn adhoc_text(&self, module: &str, r: &HostResult) -> String {
        let host = &r.host;
        let m = r.result.as_map();
        let body = || {
            let mut m = m.clone();
            m.retain(|k, v| {
                !k.starts_with("_ansible") && k != "invocation" && !(k == "failed" && v == false)
            });
            pretty(&Value::Object(m))
        };
        // The module's own name, as the engine resolves `ansible.builtin.shell` and the like.
        let name = crate::playbook::modules::registry::lookup(module).map_or(module, |d| d.name);
        let command_like =
            ["command", "shell", "raw"].contains(&name) && !m.contains_key("ansible_job_id");
        let text = |k: &str| m.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string();
        let generic = |caption: &str| {
            let rc = m
                .get("rc")
                .map(|v| v.to_string())
                .unwrap_or_else(|| "-1".into());
            format!(
                "{host} | {caption} | rc={rc} >>\n{}{}{}\n",
                text("stdout"),
                text("stderr"),
                text("msg")
            )
        };
        let (s, code) = match r.status {
            Status::Unreachable => (format!("{host} | UNREACHABLE! => {}\n", body()), "31"),
            Status::Failed if command_like && m.contains_key("rc") => (generic("FAILED"), "31"),
            Status::Failed => (format!("{host} | FAILED! => {}\n", body()), "31"),
            Status::Skipped => (format!("{host} | SKIPPED\n"), "36"),
            Status::Ok | Status::Changed => {
                let state = if r.status == Status::Changed {
                    "CHANGED"
                } else {
                    "SUCCESS"
                };
                let code = if r.status == Status::Changed {
                    "33"
                } else {
                    "32"
                };
                if command_like {
                    (generic(state), code)
                } else {
                    (format!("{host} | {state} => {}\n", body()), code)
                }
            }
        };
        self.paint(code, s.trim_end_matches('\n')) + "\n"
    }

    /// Show results and detail as `-v`, `-vv`, `-vvv` do for ansible-playbook.
    pub fn with_verbosity(mut self, verbosity: u8) -> Self {
        self.verbosity = verbosity;
        self
    }

    fn paint(&self, code: &str, s: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }

    fn banner(title: &str) -> String {
        let width: usize = 80;
        let stars = width.saturating_sub(title.len() + 1).max(3);
        format!("\n{title} {}", "*".repeat(stars))
    }

    fn line(&self, s: &str) {
        let mut o = self.out.lock().unwrap();
        let _ = writeln!(o, "{s}");
        let _ = o.flush();
    }

    fn result_text(&self, r: &HostResult) -> String {
        let mut out = String::new();
        // Under no_log the result is already censored, so showing it hides nothing less.
        let verbose = r.verbose || self.verbosity >= 1;
        let host = match &r.delegated_to {
            Some(d) => format!("[{} -> {d}]", r.host),
            None => format!("[{}]", r.host),
        };
        for it in &r.items {
            let (word, code) = word(it.status, false);
            let mut l = format!("{word}: {host} => (item={})", it.label);
            if it.status == Status::Failed {
                l = format!(
                    "failed: {host} (item={}) => {}",
                    it.label,
                    pretty(&it.result.to_value())
                );
            } else if verbose {
                let mut m = it.result.as_map().clone();
                m.retain(|k, _| {
                    k != "changed" && !k.starts_with("ansible_") && k != "item" && k != "failed"
                });
                l.push_str(&format!(" => {}", pretty(&Value::Object(m))));
            }
            out.push_str(&self.paint(code, &l));
            out.push('\n');
            if let Some(d) = it.result.get("diff") {
                out.push_str(&render_diff(d));
            }
        }
        if let Some(d) = r.result.get("diff") {
            out.push_str(&render_diff(d));
        }
        let (w, code) = word(r.status, r.ignored);
        let summary = if r.status == Status::Failed || r.status == Status::Unreachable {
            let label = if r.status == Status::Unreachable {
                "UNREACHABLE!"
            } else {
                "FAILED!"
            };
            let mut m = r.result.as_map().clone();
            if !r.items.is_empty() {
                m.remove("results");
            }
            format!("{w}: {host}: {label} => {}", pretty(&Value::Object(m)))
        } else if verbose && r.items.is_empty() {
            let mut m = r.result.as_map().clone();
            if !r.verbose {
                // -v: the module's whole result, as ansible-playbook -v prints it.
                m.retain(|k, _| !k.starts_with("_ansible"));
            } else {
                m.remove("changed");
            }
            format!("{w}: {host} => {}", pretty(&Value::Object(m)))
        } else if !r.items.is_empty() {
            // Per-item lines already printed; Ansible prints no summary line for loops
            // except on failure.
            String::new()
        } else {
            format!("{w}: {host}")
        };
        if !summary.is_empty() {
            out.push_str(&self.paint(code, &summary));
            out.push('\n');
        }
        if r.ignored {
            out.push_str(&self.paint("36", "...ignoring"));
            out.push('\n');
        }
        out
    }
}

fn word(s: Status, ignored: bool) -> (&'static str, &'static str) {
    match s {
        Status::Ok => ("ok", "32"),
        Status::Changed => ("changed", "33"),
        Status::Skipped => ("skipping", "36"),
        Status::Failed if ignored => ("fatal", "31"),
        Status::Failed => ("fatal", "31"),
        Status::Unreachable => ("fatal", "31"),
    }
}

fn pretty(v: &Value) -> String {
    crate::playbook::template::py_json(v, Some(4), false, false)
}

fn render_diff(d: &Value) -> String {
    let before = d.get("before").and_then(|v| v.as_str()).unwrap_or("");
    let after = d.get("after").and_then(|v| v.as_str()).unwrap_or("");
    let bh = d
        .get("before_header")
        .and_then(|v| v.as_str())
        .unwrap_or("before");
    let ah = d
        .get("after_header")
        .and_then(|v| v.as_str())
        .unwrap_or("after");
    unified_diff(
        before,
        after,
        &format!("before: {bh}"),
        &format!("after: {ah}"),
    )
}

impl Reporter for PlaybookPrinter {
    fn event(&self, ev: Event<'_>) {
        if self.json {
            let v = match ev {
                Event::PlayStart { name } => json!({"event": "play_start", "play": name}),
                Event::NoHosts { pattern } => json!({"event": "no_hosts", "pattern": pattern}),
                Event::TaskStart { name, handler } => {
                    json!({"event": "task_start", "task": name, "handler": handler})
                }
                Event::Result(r) => {
                    let mut v = serde_json::to_value(r).unwrap_or(Value::Null);
                    v["event"] = json!("result");
                    v
                }
                Event::Warning(w) => json!({"event": "warning", "msg": w}),
                Event::Verbose { host, msg } => {
                    json!({"event": "verbose", "host": host, "msg": msg})
                }
                Event::Recap(stats) => json!({"event": "recap", "stats": stats}),
            };
            self.line(&v.to_string());
            return;
        }
        if let Some(module) = &self.adhoc {
            match ev {
                Event::Result(r) => {
                    let t = self.adhoc_text(module, r);
                    let mut o = self.out.lock().unwrap();
                    let _ = write!(o, "{t}");
                    let _ = o.flush();
                }
                Event::NoHosts { .. } => {
                    self.line(&self.paint("35", "[WARNING]: No hosts matched, nothing to do"))
                }
                Event::PlayStart { .. } | Event::TaskStart { .. } | Event::Recap(_) => {}
                Event::Verbose { host: "", .. } => {}
                ev => self.text_event(ev),
            }
            return;
        }
        self.text_event(ev);
    }
}

impl PlaybookPrinter {
    fn text_event(&self, ev: Event<'_>) {
        match ev {
            Event::PlayStart { name } => self.line(&Self::banner(&format!("PLAY [{name}]"))),
            Event::NoHosts { .. } => self.line("skipping: no hosts matched"),
            Event::TaskStart { name, handler } => {
                let kind = if handler { "RUNNING HANDLER" } else { "TASK" };
                self.line(&Self::banner(&format!("{kind} [{name}]")));
            }
            Event::Result(r) => {
                let t = self.result_text(r);
                let mut o = self.out.lock().unwrap();
                let _ = write!(o, "{t}");
                let _ = o.flush();
            }
            Event::Warning(w) => self.line(&self.paint("35", &format!("[WARNING]: {w}"))),
            Event::Verbose { host: "", msg } => self.line(msg),
            Event::Verbose { host, msg } => {
                self.line(&self.paint("34", &format!("<{host}> {msg}")))
            }
            Event::Recap(stats) => {
                self.line(&Self::banner("PLAY RECAP"));
                for l in recap_lines(stats, self.verbosity) {
                    self.line(&l);
                }
                self.line("");
            }
        }
    }
}

/// Hosts above which the recap is compact unless `-v` is given.
pub const COMPACT_RECAP_ABOVE: usize = 20;

/// The recap: one line per host as Ansible prints it; for more than [`COMPACT_RECAP_ABOVE`]
/// hosts (and no `-v`) the totals, then only the hosts that failed or were unreachable, so a
/// 250-host run ends with what needs attention.
pub fn recap_lines(
    stats: &std::collections::BTreeMap<String, Stats>,
    verbosity: u8,
) -> Vec<String> {
    if stats.len() <= COMPACT_RECAP_ABOVE || verbosity > 0 {
        return stats.iter().map(|(h, s)| recap_line(h, s)).collect();
    }
    let mut total = Stats::default();
    for s in stats.values() {
        total.ok += s.ok;
        total.changed += s.changed;
        total.unreachable += s.unreachable;
        total.failed += s.failed;
        total.skipped += s.skipped;
        total.rescued += s.rescued;
        total.ignored += s.ignored;
    }
    let bad: Vec<(&String, &Stats)> = stats
        .iter()
        .filter(|(_, s)| s.failed > 0 || s.unreachable > 0)
        .collect();
    let mut out = vec![recap_line(
        &format!("{} hosts (total)", stats.len()),
        &total,
    )];
    out.push(format!(
        "{} host(s) without failures not listed (-v or --json lists every host)",
        stats.len() - bad.len()
    ));
    out.extend(bad.into_iter().map(|(h, s)| recap_line(h, s)));
    out
}

/// `host : ok=1    changed=0 …` as Ansible prints it.
pub fn recap_line(h: &str, s: &Stats) -> String {
    format!(
        "{:<26} : {:<14} {:<14} {:<18} {:<14} {:<14} {:<14} {:<14}",
        h,
        format!("ok={}", s.ok),
        format!("changed={}", s.changed),
        format!("unreachable={}", s.unreachable),
        format!("failed={}", s.failed),
        format!("skipped={}", s.skipped),
        format!("rescued={}", s.rescued),
        format!("ignored={}", s.ignored),
    )
    .trim_end()
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recap_lines_read_like_ansible() {
        let hosts = [
            (
                "node1",
                Stats {
                    ok: 12,
                    changed: 3,
                    ..Default::default()
                },
            ),
            (
                "node2",
                Stats {
                    ok: 4,
                    failed: 1,
                    ignored: 1,
                    ..Default::default()
                },
            ),
            (
                "node3",
                Stats {
                    unreachable: 1,
                    ..Default::default()
                },
            ),
        ];
        let text: String = hosts.iter().map(|(h, s)| recap_line(h, s) + "\n").collect();
        insta::assert_snapshot!(text);
    }

    #[test]
    fn a_big_recap_is_compact_and_lists_only_the_failures() {
        let mut stats = std::collections::BTreeMap::new();
        for i in 1..=250 {
            let s = Stats {
                ok: 60,
                failed: u32::from(i == 17),
                unreachable: u32::from(i == 203),
                ..Default::default()
            };
            stats.insert(format!("node{i:03}"), s);
        }
        let lines = recap_lines(&stats, 0);
        assert_eq!(lines.len(), 4, "{lines:#?}");
        assert!(lines[0].starts_with("250 hosts (total)") && lines[0].contains("ok=15000"));
        assert!(lines[0].contains("failed=1") && lines[0].contains("unreachable=1"));
        assert!(lines[1].starts_with("248 host(s) without failures not listed"));
        assert!(lines[2].starts_with("node017") && lines[3].starts_with("node203"));
        // -v, or a small site: every host, as Ansible prints it.
        assert_eq!(recap_lines(&stats, 1).len(), 250);
        let small: std::collections::BTreeMap<_, _> = stats.into_iter().take(20).collect();
        assert_eq!(recap_lines(&small, 0).len(), 20);
    }
}
