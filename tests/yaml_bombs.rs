//! Hostile YAML on the real binary: an alias bomb ("billion laughs"), aliases copying a big
//! scalar, and an oversized file are refused with file:line by every loader (playbook, role,
//! vars files, group_vars next to the playbook and the inventory's, the bundle spec) instead
//! of growing until the machine runs out of memory. Each run is capped at 3 GiB of address
//! space and 20 s, so a regression fails the test instead of the machine.

mod support;

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn write(dir: &Path, name: &str, body: &str) {
    let p = dir.join(name);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, body).unwrap();
}

/// The nine-level chain: `a` holds 9 scalars, `b` 9 copies of `a`, ... `i` stands for 9^9.
/// `indent` is the indentation of the keys.
fn laughs(indent: &str) -> String {
    let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i"];
    let mut s = format!("{indent}a: &a [x,x,x,x,x,x,x,x,x]\n");
    for w in names.windows(2) {
        let refs = vec![format!("*{}", w[0]); 9].join(",");
        s.push_str(&format!("{indent}{}: &{} [{refs}]\n", w[1], w[1]));
    }
    s
}

/// darkport in `dir`, with a memory cap and a deadline.
fn run_capped(dir: &Path, args: &[&str]) -> Output {
    let mut c = Command::new(support::bin());
    c.current_dir(dir)
        .args(args)
        .env("HOME", "/nonexistent-darkport-test-home")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    unsafe {
        c.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 3 << 30,
                rlim_max: 3 << 30,
            };
            libc::setrlimit(libc::RLIMIT_AS, &lim);
            Ok(())
        });
    }
    let mut child = c.spawn().unwrap();
    let t0 = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t0.elapsed() > Duration::from_secs(20) {
            child.kill().unwrap();
            panic!("darkport {args:?} still running after 20 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// Exit 1 with `loc` and `what` on stderr.
fn refused(o: &Output, loc: &str, what: &str) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(
        o.status.code(),
        Some(1),
        "expected exit 1, got {:?}\nstderr:\n{err}\nstdout:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout)
    );
    assert!(
        err.contains(loc) && err.contains(what),
        "want {loc} / {what}:\n{err}"
    );
}

const INV: &str = "[local]\nhere ansible_connection=local\n";
const BOMB: &str = "alias bomb";

#[test]
fn billion_laughs_in_play_vars_is_refused_by_syntax_check() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "inv", INV);
    let pb = format!(
        "- hosts: all\n  vars:\n{}  tasks:\n    - debug: msg=x\n",
        laughs("    ")
    );
    assert!(pb.len() < 500, "{}", pb.len());
    write(d.path(), "pb.yml", &pb);
    let o = run_capped(d.path(), &["run", "-i", "inv", "--syntax-check", "pb.yml"]);
    // a5 stands for ~600,000 nodes; its copies on g's line (line 9) go past a million.
    refused(&o, "pb.yml:9:", BOMB);
    let o = run_capped(d.path(), &["run", "-i", "inv", "pb.yml"]);
    refused(&o, "pb.yml:9:", BOMB);
}

#[test]
fn alias_bombs_in_roles_and_vars_next_to_the_playbook_are_refused() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "inv", INV);
    // A role's tasks file and a role's defaults.
    write(
        d.path(),
        "roles/r1/tasks/main.yml",
        &format!("- debug: msg=x\n  vars:\n{}", laughs("    ")),
    );
    write(d.path(), "roles/r2/tasks/main.yml", "- debug: msg=x\n");
    write(d.path(), "roles/r2/defaults/main.yml", &laughs(""));
    for (role, loc) in [
        ("r1", "roles/r1/tasks/main.yml:9:"),
        ("r2", "roles/r2/defaults/main.yml:7:"),
    ] {
        let pb = format!("{role}.yml");
        write(d.path(), &pb, &format!("- hosts: all\n  roles: [{role}]\n"));
        let o = run_capped(d.path(), &["run", "-i", "inv", "--syntax-check", &pb]);
        refused(&o, loc, BOMB);
    }
    // group_vars/ beside the playbook, and -e @file.
    let g = tempfile::tempdir().unwrap();
    write(g.path(), "inv", INV);
    write(
        g.path(),
        "pb.yml",
        "- hosts: all\n  tasks:\n    - debug: msg=x\n",
    );
    write(g.path(), "group_vars/all.yml", &laughs(""));
    let o = run_capped(g.path(), &["run", "-i", "inv", "pb.yml"]);
    refused(&o, "group_vars/all.yml:7:", BOMB);
    write(
        d.path(),
        "ok.yml",
        "- hosts: all\n  tasks:\n    - debug: msg=x\n",
    );
    write(d.path(), "extra.yml", &laughs(""));
    let o = run_capped(
        d.path(),
        &["run", "-i", "inv", "-e", "@extra.yml", "ok.yml"],
    );
    refused(&o, "extra.yml:7:", BOMB);
}

/// A vars file named as it is (no template) is read before any host is touched: the run is
/// refused with exit 1 and its file:line, as ansible-playbook stops on a parser error. A
/// templated name is read per host when the play starts: that host fails with the same
/// file:line.
#[test]
fn alias_bomb_in_vars_files_is_refused_naming_the_file() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "inv", INV);
    write(d.path(), "bomb.yml", &laughs(""));
    write(
        d.path(),
        "pb.yml",
        "- hosts: all\n  gather_facts: false\n  vars_files: [missing.yml, [nope.yml, bomb.yml]]\n  tasks:\n    - debug: msg=x\n",
    );
    let o = run_capped(d.path(), &["run", "-i", "inv", "pb.yml"]);
    refused(&o, "bomb.yml:7:", BOMB);
    assert!(
        String::from_utf8_lossy(&o.stdout).is_empty(),
        "no play started"
    );
    write(
        d.path(),
        "pb.yml",
        "- hosts: all\n  gather_facts: false\n  vars:\n    f: bomb\n  vars_files: [\"{{ f }}.yml\"]\n  tasks:\n    - debug: msg=x\n",
    );
    let o = run_capped(d.path(), &["run", "-i", "inv", "pb.yml"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(2), "{out}");
    assert!(out.contains("bomb.yml:7:") && out.contains(BOMB), "{out}");
}

#[test]
fn alias_bombs_in_inventories_and_bundle_specs_are_refused() {
    let d = tempfile::tempdir().unwrap();
    // The inventory's own loader, and its group_vars/.
    write(
        d.path(),
        "inv.yml",
        &format!("all:\n  vars:\n{}  hosts:\n    h1:\n", laughs("    ")),
    );
    let o = run_capped(d.path(), &["inventory", "-i", "inv.yml", "--list"]);
    refused(&o, "inv.yml:", "alias");
    write(d.path(), "ini/hosts", "[g]\nh1\n");
    write(d.path(), "ini/group_vars/g.yml", &laughs(""));
    let o = run_capped(d.path(), &["inventory", "-i", "ini/hosts", "--list"]);
    refused(&o, "ini/group_vars/g.yml:", "alias");
    // The bundle spec: the chain where a spec takes lists, and under an unknown key.
    let spec = format!(
        "product: p\nversion: 1.0.0\nimages:\n  - name: a/b:1\n    source: dir:x\n    config:\n      Labels:\n{}",
        laughs("        ")
    );
    write(d.path(), "spec.yaml", &spec);
    let o = run_capped(
        d.path(),
        &["build-bundle", "--unsigned", "-f", "spec.yaml", "-o", "out"],
    );
    refused(&o, "spec.yaml:14:", BOMB);
}

#[test]
fn aliases_copying_a_big_scalar_are_refused() {
    // 1 MiB once in the file, 200 MiB after expansion.
    let big = "x".repeat(1 << 20);
    let refs = vec!["*big"; 200].join(",");
    let vars = format!("    big: &big {big}\n    l: [{refs}]\n");
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "inv", INV);
    write(
        d.path(),
        "pb.yml",
        &format!("- hosts: all\n  vars:\n{vars}  tasks:\n    - debug: msg=x\n"),
    );
    let o = run_capped(d.path(), &["run", "-i", "inv", "--syntax-check", "pb.yml"]);
    refused(&o, "pb.yml:4:", "MiB of text");
    write(
        d.path(),
        "inv.yml",
        &format!("all:\n  vars:\n{vars}  hosts:\n    h1:\n"),
    );
    let o = run_capped(d.path(), &["inventory", "-i", "inv.yml", "--list"]);
    refused(&o, "inv.yml:4:", "MiB of text");
    let spec = format!(
        "product: p\nversion: 1.0.0\nimages:\n  - name: a/b:1\n    source: dir:x\n    config:\n      User: &big {big}\n      Env: [{refs}]\n"
    );
    write(d.path(), "spec.yaml", &spec);
    let o = run_capped(
        d.path(),
        &["build-bundle", "--unsigned", "-f", "spec.yaml", "-o", "out"],
    );
    refused(&o, "spec.yaml:8:", "MiB of text");
}

#[test]
fn oversized_yaml_files_are_refused_before_they_are_read_whole() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "inv", INV);
    // Sparse: 65 MiB on paper, nothing on disk.
    let f = std::fs::File::create(d.path().join("huge.yml")).unwrap();
    f.set_len(65 << 20).unwrap();
    let o = run_capped(
        d.path(),
        &["run", "-i", "inv", "--syntax-check", "huge.yml"],
    );
    refused(&o, "huge.yml", "larger than the 64 MiB");
    let f = std::fs::File::create(d.path().join("spec.yaml")).unwrap();
    f.set_len(65 << 20).unwrap();
    let o = run_capped(
        d.path(),
        &["build-bundle", "--unsigned", "-f", "spec.yaml", "-o", "out"],
    );
    refused(&o, "spec.yaml", "larger than the 64 MiB");
}
