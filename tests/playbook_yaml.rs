//! Golden test: the playbook YAML loader against PyYAML's `safe_load` (what Ansible uses),
//! on scalars where YAML 1.1 and 1.2 (and various Rust crates) disagree.

use darkport::playbook::yaml;
use std::process::Command;

const DOC: &str = r#"
bools: [yes, Yes, YES, no, No, NO, on, On, ON, off, Off, OFF, true, True, TRUE, false, False, FALSE, y, Y, n, N, yEs, oN]
octal: [0644, 0755, 017, 00, 0, 08, 09, 0o17, 0_644]
ints: [1, -1, +1, 1_000, 0x1F, 0xff, -0x1, 0b101, 1:30, 190:20:30, 12345678901234]
floats: [1.5, -1.5, 1., .5, 1.0e+3, 1e3, 1.0e3, 6.8523015e+5, 1_000.5, 1:30.5, .inf, -.inf, .NaN]
nulls: [~, null, Null, NULL, nUll]
empty:
strings: ['0644', "yes", 0644a, 1.2.3, 10.0.0.1, "1:30", 08:30, 1e-3, ., ..., "~", 2024-01-01, 2024-01-01 10:00:00]
mode: 0644
become: yes
port: 8080
version: 1.10
tricky: {key with spaces: value, 'quoted key': v, 1: one, null: n, false: f}
multi: |
  line one
    indented
  line three
folded: >
  a
  b

  c
plain_multi: a
  b
anchors:
  base: &b {x: 1, y: [1, 2]}
  copy: *b
  merged:
    <<: *b
    y: 3
tagged: [!!str 123, !!int "42", !!float "1", !!bool "yes"]
"#;

const PY: &str = r#"
import json, sys, yaml, math, datetime
def conv(v):
    if isinstance(v, float) and (math.isinf(v) or math.isnan(v)): return None
    if isinstance(v, (datetime.date, datetime.datetime)): return str(v)
    if isinstance(v, dict): return {str(k) if not isinstance(k, bool) and k is not None else {True:'True',False:'False',None:'None'}[k]: conv(x) for k, x in v.items()}
    if isinstance(v, list): return [conv(x) for x in v]
    return v
print(json.dumps(conv(yaml.safe_load(sys.stdin.read()))))
"#;

fn pyyaml_available() -> bool {
    Command::new("python3")
        .args(["-c", "import yaml"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

#[test]
fn loader_matches_pyyaml() {
    if !pyyaml_available() {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("python3 with PyYAML is required in CI (scripts/deps.sh installs it)");
        }
        eprintln!("SKIP: python3 with PyYAML not available");
        return;
    }
    let out = Command::new("python3")
        .args(["-c", PY])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(DOC.as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(out.status.success());
    let py: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ours = yaml::load(DOC, "golden.yml").unwrap().to_json();
    let (serde_json::Value::Object(p), serde_json::Value::Object(o)) = (&py, &ours) else {
        panic!("not mappings")
    };
    let mut diffs = vec![];
    for (k, v) in p {
        if o.get(k) != Some(v) {
            diffs.push(format!(
                "{k}:\n  PyYAML: {v}\n  ours:   {}",
                o.get(k).cloned().unwrap_or_default()
            ));
        }
    }
    assert_eq!(p.len(), o.len());
    assert!(
        diffs.is_empty(),
        "differences from PyYAML:\n{}",
        diffs.join("\n")
    );
}
