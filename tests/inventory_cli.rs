//! `darkport inventory` as a user runs it: bad inventories give `file:line` and exit 1; the
//! other actions (--host, --graph, --limit) behave and exit as documented.

use assert_cmd::Command;
use predicates::prelude::*;
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/inventory")
}

fn darkport(cwd: &Path) -> Command {
    let mut c = Command::cargo_bin("darkport").unwrap();
    c.current_dir(cwd);
    c
}

#[test]
fn bad_inventories_report_file_line_and_exit_1() {
    let bad = fixtures().join("bad");
    // (file, location printed, words in the message)
    let cases = [
        (
            "unknown-section.ini",
            "unknown-section.ini:6",
            "unknown type: varz",
        ),
        (
            "spaced-section.ini",
            "spaced-section.ini:3",
            "invalid section entry",
        ),
        ("bad-range.ini", "bad-range.ini:2", "equal-length"),
        (
            "bad-range-letters.ini",
            "bad-range-letters.ini:3",
            "begin <= end",
        ),
        ("cycle.ini", "cycle.ini:6", "creates a cycle"),
        ("self-child.ini", "self-child.ini:4", "child of itself"),
        (
            "undefined-child.ini",
            "undefined-child.ini:3",
            "undefined group 'dbs'",
        ),
        (
            "undefined-vars.ini",
            "undefined-vars.ini:3",
            "undefined group 'db'",
        ),
        ("bad-hostvar.ini", "bad-hostvar.ini:2", "key=value"),
        (
            "unclosed-quote.ini",
            "unclosed-quote.ini:2",
            "No closing quotation",
        ),
        ("yaml-error.yml", "yaml-error.yml:6:8", "YAML error"),
        (
            "yaml-flow-error.yml",
            "yaml-flow-error.yml:2:24",
            "YAML error",
        ),
        ("cycle.yml", "cycle.yml:5:9", "creates a cycle"),
        (
            "duplicate-key.yml",
            "duplicate-key.yml:5:5",
            "duplicated key",
        ),
        (
            "not-a-mapping.yml",
            "not-a-mapping.yml:1:1",
            "must be a mapping",
        ),
        (
            "yaml-bad-range.yaml",
            "yaml-bad-range.yaml:3:5",
            "bad host range",
        ),
    ];
    let mut listed: Vec<String> = std::fs::read_dir(&bad)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    listed.sort();
    let mut covered: Vec<String> = cases.iter().map(|c| c.0.to_string()).collect();
    covered.sort();
    assert_eq!(listed, covered, "every bad fixture has an expectation here");
    for (file, loc, words) in cases {
        darkport(&bad)
            .args(["inventory", "-i", file, "--list"])
            .assert()
            .code(1)
            .stdout("")
            .stderr(
                predicate::str::contains(format!("{loc}:"))
                    .or(predicate::str::contains(format!("{loc} "))),
            )
            .stderr(predicate::str::contains(words));
    }
}

#[test]
fn list_prints_ansible_json() {
    let dir = fixtures().join("ok/01-ini-basic");
    let out = darkport(&dir)
        .args(["inventory", "-i", "hosts.ini", "--list"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["prod"]["children"], serde_json::json!(["web", "db"]));
    assert_eq!(v["_meta"]["hostvars"]["web2"]["ansible_port"], 2201);
    assert_eq!(v["_meta"]["hostvars"]["db1"]["env"], "prod");
    // same text layout as ansible-inventory: sorted keys, 4-space indent
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.starts_with("{\n    \"_meta\": {\n        \"hostvars\": {"),
        "{text}"
    );
}

#[test]
fn host_graph_and_limit() {
    let dir = fixtures().join("ok/05-vars-files");
    let out = darkport(&dir)
        .args(["inventory", "-i", "hosts", "--host", "w1"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["level"], "host");
    assert_eq!(v["web_list"], serde_json::json!(["c"]));

    darkport(&dir)
        .args(["inventory", "-i", "hosts", "--host", "nobody"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("nobody"));

    darkport(&dir)
        .args(["inventory", "-i", "hosts", "--graph", "app"])
        .assert()
        .success()
        .stdout("@app:\n  |--@web:\n  |  |--w1\n  |  |--w2\n  |--@db:\n  |  |--d1\n");

    darkport(&dir)
        .args(["inventory", "-i", "hosts", "--graph", "--vars", "db"])
        .assert()
        .success()
        .stdout(predicate::str::contains("{octal = 493}"));

    let out = darkport(&dir)
        .args([
            "inventory",
            "-i",
            "hosts",
            "--list",
            "--limit",
            "web:!w2:nope",
        ])
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "Could not match supplied host pattern, ignoring: nope",
        ))
        .get_output()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["web"]["hosts"], serde_json::json!(["w1"]));
    assert!(v["_meta"]["hostvars"].get("w2").is_none());
    assert!(v.get("db").is_none());
}

#[test]
fn missing_source_exits_1() {
    darkport(&fixtures())
        .args(["inventory", "-i", "no/such/inventory.ini", "--list"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("no/such/inventory.ini"));
}

/// `darkport inventory --list | head -c0`: the reader is gone before darkport writes; darkport
/// stops quietly (exit 0, nothing on stderr) instead of panicking with exit 2.
#[test]
fn a_closed_stdout_pipe_is_a_quiet_exit() {
    let dir = fixtures().join("ok/01-ini-basic");
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("darkport"))
        .current_dir(&dir)
        .args(["inventory", "-i", "hosts.ini", "--list"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A generated INI of `n` hosts in two groups (with variables), like a big site's.
fn big_ini(dir: &Path, n: usize) -> PathBuf {
    use std::fmt::Write;
    let mut s = String::from("[web]\n");
    for i in 0..n / 2 {
        let _ = writeln!(
            s,
            "web{i} ansible_host=10.0.{}.{} x={i}",
            (i >> 8) & 255,
            i & 255
        );
    }
    s.push_str("[db]\n");
    for i in 0..n / 2 {
        let _ = writeln!(s, "db{i} ansible_host=10.1.{}.{}", (i >> 8) & 255, i & 255);
    }
    s.push_str("[all:vars]\nansible_user=root\n[prod:children]\nweb\ndb\n");
    let p = dir.join(format!("big{n}.ini"));
    std::fs::write(&p, s).unwrap();
    p
}

fn timed_list(dir: &Path, args: &[&str]) -> (std::time::Duration, Vec<u8>) {
    let t0 = std::time::Instant::now();
    let out = darkport(dir)
        .args(["inventory", "--list"])
        .args(args)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    (t0.elapsed(), out)
}

/// `inventory --list` grows linearly with the hosts (it was quadratic: every host added to a
/// group was looked up among the group's hosts; leaving `ungrouped` and every exact name of a
/// `--limit @file` were linear scans too).
#[test]
fn inventory_list_is_linear_in_the_number_of_hosts() {
    let d = tempfile::tempdir().unwrap();
    let small = big_ini(d.path(), 25_000);
    let large = big_ini(d.path(), 100_000);
    let (ts, _) = timed_list(d.path(), &["-i", small.to_str().unwrap()]);
    let (tl, out) = timed_list(d.path(), &["-i", large.to_str().unwrap()]);
    let j: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(j["web"]["hosts"].as_array().unwrap().len(), 50_000);
    assert_eq!(j["_meta"]["hostvars"]["db49999"]["ansible_user"], "root");
    // 4x the hosts: linear is ~4x the time, quadratic ~16x.
    let ratio = tl.as_secs_f64() / ts.as_secs_f64();
    assert!(
        ratio < 8.0,
        "25k hosts {ts:?}, 100k hosts {tl:?}: x{ratio:.1}"
    );

    // 50,000 hosts listed ungrouped first and then in a group, and a --limit file naming
    // each of them (both took 15 s and 29 s in a debug build before).
    use std::fmt::Write;
    let (mut ini, mut names) = (String::new(), String::new());
    for i in 0..50_000 {
        let _ = writeln!(ini, "h{i}");
        let _ = writeln!(names, "h{i}");
    }
    ini.push_str("[web]\n");
    ini.push_str(&names);
    std::fs::write(d.path().join("ung.ini"), ini).unwrap();
    std::fs::write(d.path().join("limit.txt"), names).unwrap();
    let (t, out) = timed_list(d.path(), &["-i", "ung.ini", "--limit", "@limit.txt"]);
    let j: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(j["web"]["hosts"].as_array().unwrap().len(), 50_000);
    assert!(j.get("ungrouped").is_none(), "{}", j["ungrouped"]);
    assert!(t < std::time::Duration::from_secs(5), "{t:?}");
}
