//! Ansible's habits on the site commands, on real sshd nodes: the inventory, forks, user and
//! key from `ansible.cfg` and `ANSIBLE_*`, `-u`/`--private-key` only where the inventory sets
//! nothing, and the cheap checks (a missing inventory, an unreadable key) reported before any
//! bundle is read.

mod support;
use support::bin;
use support::nodes as common;

use std::path::Path;
use std::process::{Command, Output};

fn darkport(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(bin());
    c.current_dir(cwd)
        .args(args)
        .env("HOME", "/nonexistent-darkport-test-home")
        .env_remove("SSH_AUTH_SOCK");
    for k in [
        "ANSIBLE_CONFIG",
        "ANSIBLE_INVENTORY",
        "ANSIBLE_REMOTE_USER",
        "ANSIBLE_PRIVATE_KEY_FILE",
        "ANSIBLE_FORKS",
        "ANSIBLE_HOST_KEY_CHECKING",
    ] {
        c.env_remove(k);
    }
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The nodes' inventory without the user and key: they must come from elsewhere.
fn bare_inventory(nodes: &common::Nodes, dir: &Path) -> std::path::PathBuf {
    let s = std::fs::read_to_string(nodes.inventory_path()).unwrap();
    let re = regex::Regex::new(r" ansible_user=\S+| ansible_ssh_private_key_file=\S+").unwrap();
    let p = dir.join("bare.ini");
    std::fs::write(&p, re.replace_all(&s, "").as_ref()).unwrap();
    p
}

#[test]
fn ansible_cfg_and_environment_fill_what_the_command_line_leaves_out() {
    let nodes = common::Nodes::sshd(2);
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let inv = bare_inventory(&nodes, d);
    let key = nodes.key_path().display().to_string();
    let kh = nodes.known_hosts_path().display().to_string();

    // Without a user and key the nodes refuse the login; status says so and exits 1.
    let o = darkport(
        d,
        &[
            "status",
            "--json",
            "-i",
            inv.to_str().unwrap(),
            "--known-hosts",
            &kh,
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));

    // ansible.cfg in the working directory: inventory, remote_user, private_key_file, forks.
    std::fs::write(
        d.join("ansible.cfg"),
        format!("[defaults]\ninventory = bare.ini\nremote_user = root\nprivate_key_file = {key}\nforks = 1\n"),
    )
    .unwrap();
    let o = darkport(d, &["status", "--json", "--known-hosts", &kh], &[]);
    assert!(o.status.success(), "{}", text(&o));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["command"], "status");
    let reachable: Vec<bool> = j["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["reachable"].as_bool().unwrap())
        .collect();
    assert_eq!(reachable, vec![true, true], "{j}");

    // ANSIBLE_REMOTE_USER overrides the file; -u overrides both; the inventory beats -u.
    let o = darkport(
        d,
        &["status", "--known-hosts", &kh],
        &[("ANSIBLE_REMOTE_USER", "nobody")],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let o = darkport(
        d,
        &["status", "-u", "root", "--known-hosts", &kh],
        &[("ANSIBLE_REMOTE_USER", "nobody")],
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = darkport(
        d,
        &[
            "status",
            "-u",
            "nobody",
            "-i",
            nodes.inventory_path().to_str().unwrap(),
            "--known-hosts",
            &kh,
        ],
        &[],
    );
    assert!(
        o.status.success(),
        "inventory's ansible_user=root must win: {}",
        text(&o)
    );

    // Cheap checks first: the bundle named does not exist either, but the inventory is named.
    let o = darkport(d, &["install", "-i", "nope.ini", "missing.darkport"], &[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("inventory nope.ini does not exist"), "{err}");
    let o = darkport(
        d,
        &[
            "preflight",
            "--private-key",
            "/nonexistent/key",
            "missing.darkport",
        ],
        &[],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("private key /nonexistent/key"), "{err}");

    // A bad value in ansible.cfg names the file and the line.
    std::fs::write(d.join("ansible.cfg"), "[defaults]\n\nforks = lots\n").unwrap();
    let o = darkport(d, &["status", "--known-hosts", &kh], &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("ansible.cfg:3: forks must be a positive number"),
        "{err}"
    );
}
