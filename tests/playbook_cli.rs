//! `darkport run` from the command line: bad input is reported with file:line and exit 1
//! before any host is contacted; runtime errors name the task's file:line; output formats.

use assert_cmd::Command;
use predicates::prelude::*;
use std::path::Path;

fn write(dir: &Path, name: &str, body: &str) {
    let p = dir.join(name);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, body).unwrap();
}

/// An inventory whose only host cannot be reached: any attempt to touch it would show up as
/// an unreachable host instead of the expected load error.
const UNREACHABLE_INV: &str =
    "[nodes]\nghost ansible_host=127.0.0.1 ansible_port=1 ansible_user=root\n";

#[test]
fn bad_playbooks_fail_before_touching_hosts() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "inv", UNREACHABLE_INV);
    let cases = [
        (
            "yaml",
            "- hosts: all\n  tasks:\n    - debug: msg=x\n   - bad indent\n",
            "yaml.yml:4",
            "YAML",
        ),
        (
            "module",
            "- hosts: all\n  tasks:\n    - name: x\n      no_such_module: a=b\n",
            "module.yml:4:7",
            "no_such_module",
        ),
        (
            "keyword",
            "- hosts: all\n  tasks:\n    - debug: msg=x\n      wehn: true\n",
            "keyword.yml:4:7",
            "wehn",
        ),
        (
            "jinja",
            "- hosts: all\n  tasks:\n    - debug:\n        msg: \"{{ x | }}\"\n",
            "jinja.yml:4",
            "syntax",
        ),
        (
            "when",
            "- hosts: all\n  tasks:\n    - debug: msg=x\n      when: x ==\n",
            "when.yml:4",
            "bad expression",
        ),
        (
            "role",
            "- hosts: all\n  roles: [missing_role]\n",
            "role.yml:2",
            "missing_role",
        ),
        (
            "include",
            "- hosts: all\n  tasks:\n    - import_tasks: nope.yml\n",
            "nope.yml",
            "cannot read",
        ),
    ];
    for (name, body, loc, what) in cases {
        let f = format!("{name}.yml");
        write(d.path(), &f, body);
        Command::cargo_bin("darkport")
            .unwrap()
            .current_dir(d.path())
            .args(["run", "-i", "inv", &f])
            .assert()
            .code(1)
            .stderr(predicate::str::contains(loc).and(predicate::str::contains(what)))
            .stderr(predicate::str::contains("unreachable").not())
            .stdout(predicate::str::contains("PLAY").not());
    }
}

#[test]
fn local_run_output_and_runtime_undefined_variable() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "inv", "[local]\nhere ansible_connection=local\n");
    let out = d.path().join("out");
    write(
        d.path(),
        "pb.yml",
        &format!(
            "- hosts: all\n  gather_facts: false\n  tasks:\n    - name: write\n      copy: content=hi dest={}\n    - name: secret\n      command: echo s3cr3t\n      no_log: true\n    - name: broken\n      debug: msg=\"{{{{ nope }}}}\"\n",
            out.display()
        ),
    );
    let a = Command::cargo_bin("darkport")
        .unwrap()
        .current_dir(d.path())
        .args(["run", "-i", "inv", "pb.yml"])
        .assert()
        .code(2); // a task failed: ansible-playbook's exit code
    let o = String::from_utf8_lossy(&a.get_output().stdout).to_string();
    assert!(o.contains("TASK [write] ***"), "{o}");
    assert!(o.contains("changed: [here]"), "{o}");
    assert!(
        o.contains("pb.yml:9") && o.contains("'nope' is undefined"),
        "{o}"
    );
    assert!(!o.contains("s3cr3t"), "no_log output leaked: {o}");
    assert!(o.contains("PLAY RECAP"), "{o}");
    assert!(
        o.contains("here")
            && o.contains("ok=2")
            && o.contains("changed=2")
            && o.contains("failed=1"),
        "{o}"
    );
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "hi");
    // --json: one event per line; the second run of the copy is ok (idempotent).
    let a = Command::cargo_bin("darkport")
        .unwrap()
        .current_dir(d.path())
        .args(["run", "-i", "inv", "pb.yml", "--json", "--skip-tags", "x"])
        .assert()
        .code(2);
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&a.get_output().stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let write_res = lines
        .iter()
        .find(|e| e["event"] == "result" && e["task"] == "write")
        .unwrap();
    assert_eq!(write_res["status"], "ok");
    let recap = lines.iter().find(|e| e["event"] == "recap").unwrap();
    assert_eq!(recap["stats"]["here"]["failed"], 1);
    assert!(!lines.iter().any(|e| e.to_string().contains("s3cr3t")));
}

#[test]
fn extra_vars_forms() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "inv", "here ansible_connection=local\n");
    write(d.path(), "ev.yml", "c: from-file\n");
    let out = d.path().join("out");
    write(
        d.path(),
        "pb.yml",
        &format!(
            "- hosts: all\n  gather_facts: false\n  vars:\n    a: play\n  tasks:\n    - copy: content=\"{{{{ a }}}} {{{{ b.k }}}} {{{{ c }}}}\" dest={}\n",
            out.display()
        ),
    );
    Command::cargo_bin("darkport")
        .unwrap()
        .current_dir(d.path())
        .args([
            "run",
            "-i",
            "inv",
            "pb.yml",
            "-e",
            "a=extra",
            "-e",
            "{\"b\": {\"k\": 1}}",
            "-e",
            "@ev.yml",
        ])
        .assert()
        .code(0);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "extra 1 from-file");
}
