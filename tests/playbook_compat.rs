//! Compatibility suite: every playbook under `tests/compat/*/site.yml` is run by
//! `ansible-playbook` (ansible-core, the reference) on one fresh node and by `darkport run` on
//! another fresh, identical node; the files left under `/srv/compat` (paths, types, contents,
//! modes, owners) and the PLAY RECAP counts must be the same. One test, one summary.
//!
//! A case may have an `args` file with extra command-line arguments for both tools
//! (`--check`, `--diff`, `-t`, `-e`, …). `COMPAT_ONLY=35-,37-` runs only the matching cases.
//! Each tool gets its own empty controller directory in `COMPAT_LOCAL` (for `fetch` and other
//! controller-side writes); the two are compared like the node files.

mod support;
use support::nodes as common;

use serde_json::Value;
use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// One file as compared: type, mode, uid, gid, content (or link target).
#[derive(Debug, PartialEq, Eq, Clone)]
pub struct Entry {
    kind: char,
    mode: u32,
    uid: u32,
    gid: u32,
    data: String,
}

pub fn snapshot(root: &Path) -> BTreeMap<String, Entry> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, Entry>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            let md = std::fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(base).unwrap().display().to_string();
            let (kind, data) = if md.file_type().is_symlink() {
                ('l', std::fs::read_link(&p).unwrap().display().to_string())
            } else if md.is_dir() {
                ('d', String::new())
            } else {
                let b = std::fs::read(&p).unwrap();
                ('f', String::from_utf8_lossy(&b).into_owned())
            };
            out.insert(
                rel,
                Entry {
                    kind,
                    mode: if kind == 'l' {
                        0
                    } else {
                        md.permissions().mode() & 0o7777
                    },
                    uid: md.uid(),
                    gid: md.gid(),
                    data,
                },
            );
            if kind == 'd' {
                walk(base, &p, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

pub fn compare(a: &BTreeMap<String, Entry>, b: &BTreeMap<String, Entry>) -> Vec<String> {
    let mut diffs = vec![];
    for (k, va) in a {
        match b.get(k) {
            None => diffs.push(format!("{k}: only after ansible-playbook")),
            Some(vb) if va != vb => diffs.push(format!("{k}: ansible {va:?} vs darkport {vb:?}")),
            _ => {}
        }
    }
    for k in b.keys() {
        if !a.contains_key(k) {
            diffs.push(format!("{k}: only after darkport"));
        }
    }
    diffs
}

/// `target : ok=2 changed=1 …` → counts.
pub fn parse_recap(out: &str, host: &str) -> Option<BTreeMap<String, u64>> {
    let line = out
        .lines()
        .find(|l| l.split_whitespace().next() == Some(host) && l.contains("ok="))?;
    Some(
        line.split_whitespace()
            .filter_map(|w| w.split_once('='))
            .filter_map(|(k, v)| v.parse().ok().map(|n| (k.to_string(), n)))
            .collect(),
    )
}

fn case_dirs() -> Vec<PathBuf> {
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/compat");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&base)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("site.yml").is_file())
        .collect();
    v.sort();
    if let Ok(only) = std::env::var("COMPAT_ONLY") {
        // Comma-separated name fragments: `COMPAT_ONLY=35-,37-`.
        v.retain(|p| {
            let n = p.file_name().unwrap().to_string_lossy().into_owned();
            only.split(',').any(|o| n.contains(o))
        });
    }
    v
}

fn case_args(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("args"))
        .map(|s| s.split_whitespace().map(String::from).collect())
        .unwrap_or_default()
}

fn have_ansible() -> bool {
    Command::new("ansible-playbook")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn ansible_env(cmd: &mut Command) {
    cmd.env("ANSIBLE_NOCOLOR", "1")
        .env("ANSIBLE_FORCE_COLOR", "0")
        .env("ANSIBLE_RETRY_FILES_ENABLED", "0")
        .env("ANSIBLE_PIPELINING", "1")
        .env("ANSIBLE_DEPRECATION_WARNINGS", "0")
        .env("ANSIBLE_LOCALHOST_WARNING", "0")
        .env("ANSIBLE_INVENTORY_UNPARSED_WARNING", "0")
        .env("ANSIBLE_PYTHON_INTERPRETER", "/usr/bin/python3")
        .env("ANSIBLE_STDOUT_CALLBACK", "default");
}

/// Recap of a darkport `--json` run for `host`.
fn darkport_recap(stdout: &str, host: &str) -> Option<BTreeMap<String, u64>> {
    for l in stdout.lines() {
        if let Ok(v) = serde_json::from_str::<Value>(l) {
            if v["event"] == "recap" {
                let s = v["stats"].get(host)?;
                return Some(
                    s.as_object()?
                        .iter()
                        .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
                        .collect(),
                );
            }
        }
    }
    None
}

#[test]
fn compat_with_ansible_playbook() {
    if !have_ansible() {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!(
                "ansible-playbook (ansible-core) is required in CI: scripts/deps.sh installs it"
            );
        }
        eprintln!("SKIP: ansible-playbook not installed");
        return;
    }
    // The user/group cases run useradd & co. on the nodes: the host's account files must stay
    // exactly as they were (the nodes have a private /etc, see tests/common/fast.rs).
    let host_etc = ["/etc/passwd", "/etc/group", "/etc/shadow", "/etc/gshadow"];
    let etc_before: Vec<Option<Vec<u8>>> = host_etc.iter().map(|f| std::fs::read(f).ok()).collect();
    let nodes = common::Nodes::sshd(2);
    let work = tempfile::tempdir().unwrap();
    // Same inventory name on both sides ("target"), different node behind it.
    let inv_for = |i: usize| -> PathBuf {
        let a = nodes.addr(i);
        let p = work.path().join(format!("inv{i}"));
        std::fs::write(
            &p,
            format!(
                "target ansible_host={} ansible_port={} ansible_user=root ansible_ssh_private_key_file={} ansible_ssh_common_args='-o UserKnownHostsFile={} -o StrictHostKeyChecking=yes'\n",
                a.ip,
                a.port,
                nodes.key_path().display(),
                nodes.known_hosts_path().display()
            ),
        )
        .unwrap();
        p
    };
    let (inv_a, inv_d) = (inv_for(0), inv_for(1));
    let bin = env!("CARGO_BIN_EXE_darkport");
    let mut failures = vec![];
    let mut summary = vec![];
    let (mut t_ansible, mut t_darkport) = (0.0, 0.0);
    for dir in case_dirs() {
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        for i in 0..2 {
            nodes.exec_ok(i, "rm -rf /srv/compat");
        }
        let args = case_args(&dir);
        let local = |tool: &str| {
            let p = work.path().join(format!("local-{tool}-{name}"));
            std::fs::create_dir_all(&p).unwrap();
            p
        };
        let (local_a, local_d) = (local("ansible"), local("darkport"));
        let t0 = Instant::now();
        let mut cmd = Command::new("ansible-playbook");
        cmd.env("COMPAT_LOCAL", &local_a)
            .arg("-i")
            .arg(&inv_a)
            .arg("site.yml")
            .args(&args)
            .current_dir(&dir);
        ansible_env(&mut cmd);
        let a_out = cmd.output().unwrap();
        let ta = t0.elapsed().as_secs_f64();
        let t1 = Instant::now();
        let d_out = Command::new(bin)
            .env("COMPAT_LOCAL", &local_d)
            .arg("run")
            .arg("-i")
            .arg(&inv_d)
            .arg("site.yml")
            .arg("--json")
            .arg("--known-hosts")
            .arg(nodes.known_hosts_path())
            .args(&args)
            .current_dir(&dir)
            .output()
            .unwrap();
        let td = t1.elapsed().as_secs_f64();
        t_ansible += ta;
        t_darkport += td;
        let a_stdout = String::from_utf8_lossy(&a_out.stdout).to_string();
        let d_stdout = String::from_utf8_lossy(&d_out.stdout).to_string();
        let mut problems = vec![];
        let ra = parse_recap(&a_stdout, "target");
        let rd = darkport_recap(&d_stdout, "target");
        if ra.is_none() {
            problems.push(format!(
                "no ansible recap:\n{a_stdout}\n{}",
                String::from_utf8_lossy(&a_out.stderr)
            ));
        } else if ra != rd {
            problems.push(format!("recap: ansible {ra:?}\n          darkport {rd:?}"));
        }
        let (ca, cd) = (a_out.status.code(), d_out.status.code());
        if (ca == Some(0)) != (cd == Some(0)) {
            problems.push(format!("exit code: ansible {ca:?} darkport {cd:?}"));
        }
        let sa = snapshot(&nodes.node_root(0).join("srv/compat"));
        let sd = snapshot(&nodes.node_root(1).join("srv/compat"));
        problems.extend(compare(&sa, &sd));
        let (la, ld) = (snapshot(&local_a), snapshot(&local_d));
        problems.extend(
            compare(&la, &ld)
                .into_iter()
                .map(|d| format!("controller {d}")),
        );
        summary.push(format!(
            "{name:<28} ansible {ta:5.2}s  darkport {td:5.2}s  {}",
            if problems.is_empty() {
                "same"
            } else {
                "DIFFERENT"
            }
        ));
        if !problems.is_empty() {
            failures.push(format!(
                "== {name}\n{}\n-- ansible-playbook failures:\n{}\n-- darkport output:\n{}{}",
                problems.join("\n"),
                a_stdout
                    .lines()
                    .filter(|l| l.starts_with("fatal:") || l.contains("FAILED!"))
                    .collect::<Vec<_>>()
                    .join("\n"),
                d_stdout
                    .lines()
                    .filter(|l| l.contains("\"failed\"") || l.contains("recap"))
                    .collect::<Vec<_>>()
                    .join("\n"),
                String::from_utf8_lossy(&d_out.stderr)
            ));
        }
    }
    eprintln!("{}", summary.join("\n"));
    eprintln!(
        "compat: {} cases, ansible-playbook {t_ansible:.1}s total, darkport {t_darkport:.1}s total",
        summary.len()
    );
    for (f, before) in host_etc.iter().zip(&etc_before) {
        assert!(
            std::fs::read(f).ok() == *before,
            "{f} of the host machine was changed by a compat case"
        );
    }
    assert!(summary.len() >= 30 || std::env::var("COMPAT_ONLY").is_ok());
    assert!(
        failures.is_empty(),
        "{} of {} cases differ:\n{}",
        failures.len(),
        summary.len(),
        failures.join("\n\n")
    );
}
