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

/// `-v`, `-vv`, `-vvv` as ansible-playbook shows them, secrets still hidden under `no_log`;
/// a `--limit` part that names no host warns as Ansible does, a limit naming none fails.
#[test]
fn verbosity_and_limit_warnings_read_like_ansible() {
    let nodes = common::Nodes::sshd(2);
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::write(
        d.join("site.yml"),
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - name: say\n      command: echo hello-from-node\n    - name: secret\n      shell: echo topsecret-value\n      no_log: true\n",
    )
    .unwrap();
    let inv = nodes.inventory_path().display().to_string();
    let kh = nodes.known_hosts_path().display().to_string();
    let run = |extra: &[&str]| {
        let mut args = vec!["run", "-i", &inv, "--known-hosts", &kh, "site.yml"];
        args.extend_from_slice(extra);
        darkport(d, &args, &[])
    };

    let o = run(&[]);
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        !out.contains("hello-from-node") && !out.contains("task path"),
        "{out}"
    );

    let o = run(&["-v"]);
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(out.contains("\"stdout\": \"hello-from-node\""), "{out}");
    assert!(!out.contains("task path"), "{out}");

    let o = run(&["-vv"]);
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        out.contains("task path: ") && out.contains("site.yml:4"),
        "{out}"
    );
    assert!(!out.contains("ESTABLISH"), "{out}");

    let o = run(&["-vvv", "-l", "node1"]);
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        out.contains("<node1> ESTABLISH SSH CONNECTION FOR USER: root"),
        "{out}"
    );
    assert!(
        out.contains("<node1> EXEC /bin/sh -c 'echo hello-from-node'"),
        "{out}"
    );
    assert!(!out.contains("<node2>"), "{out}");
    // Neither the result nor the command of a no_log task shows its secret.
    assert!(!out.contains("topsecret-value"), "{out}");
    assert!(out.contains("no_log: true"), "{out}");

    // A limit part that names nothing: Ansible's warning, the rest runs.
    let o = run(&["-l", "node1,nosuch"]);
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        out.contains("[WARNING]: Could not match supplied host pattern, ignoring: nosuch"),
        "{out}"
    );
    assert!(out.contains("node1") && !out.contains("[node2]"), "{out}");
    let o = run(&["-l", "nosuch"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--limit \"nosuch\" matches no host"));

    // The site commands take -v too and warn the same way.
    let o = darkport(
        d,
        &[
            "status",
            "-i",
            &inv,
            "--known-hosts",
            &kh,
            "-l",
            "node2,ghost",
        ],
        &[],
    );
    let all = text(&o);
    assert!(
        all.contains("Could not match supplied host pattern, ignoring: ghost"),
        "{all}"
    );
}

/// `ansible_ssh_common_args` with OpenSSH's host-key options: `UserKnownHostsFile` and
/// `StrictHostKeyChecking` are honoured per host, and a changed key is still refused.
#[test]
fn host_key_options_in_ssh_common_args_are_honoured() {
    let nodes = common::Nodes::sshd(1);
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let base = std::fs::read_to_string(nodes.inventory_path()).unwrap();
    let with_args = |args: &str| {
        let p = d.join("inv.ini");
        let s = base.replace(
            "ansible_user=",
            &format!("ansible_ssh_common_args=\"{args}\" ansible_user="),
        );
        assert_ne!(s, base, "the inventory has host lines with ansible_user");
        std::fs::write(&p, s).unwrap();
        p.display().to_string()
    };
    let adhoc = |inv: &str| darkport(d, &["run", "-i", inv, "-m", "ping", "all"], &[]);

    // No known_hosts at all (HOME is elsewhere): refused as an unknown host key.
    let o = adhoc(nodes.inventory_path().to_str().unwrap());
    assert_ne!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("unknown host key"), "{}", text(&o));

    // The inventory points at the nodes' known_hosts file.
    let kh = nodes.known_hosts_path().display().to_string();
    let o = adhoc(&with_args(&format!("-o UserKnownHostsFile={kh}")));
    assert!(o.status.success(), "{}", text(&o));

    // A file of its own, strict checking off: the key is recorded there.
    let own = d.join("site_known_hosts");
    let inv = with_args(&format!(
        "-o UserKnownHostsFile={} -o StrictHostKeyChecking=accept-new",
        own.display()
    ));
    let o = adhoc(&inv);
    assert!(o.status.success(), "{}", text(&o));
    let recorded = std::fs::read_to_string(&own).unwrap();
    assert!(!recorded.trim().is_empty());

    // A changed key is refused even with strict checking off.
    let forged: String = recorded
        .lines()
        .map(|l| {
            let mut f: Vec<String> = l.split(' ').map(str::to_string).collect();
            // Another valid-looking key: the second node's key file is not at hand, so
            // flip the key type's blob to a different base64 body of the same length.
            if f.len() >= 3 {
                let b = f[2].clone();
                let mid = b.len() / 2;
                let c = if &b[mid..mid + 1] == "A" { "B" } else { "A" };
                f[2] = format!("{}{}{}", &b[..mid], c, &b[mid + 1..]);
            }
            f.join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&own, forged + "\n").unwrap();
    let inv = with_args(&format!(
        "-o UserKnownHostsFile={} -o StrictHostKeyChecking=no",
        own.display()
    ));
    let o = adhoc(&inv);
    assert_ne!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("HOST KEY CHANGED"), "{}", text(&o));
}

/// `darkport run -m MODULE -a ARGS PATTERN` prints what `ansible PATTERN -m MODULE -a ARGS`
/// prints on the same nodes (its one-block-per-host output, no banners, no recap).
#[test]
fn ad_hoc_output_is_ansibles() {
    let nodes = common::Nodes::sshd(1);
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let inv = nodes.inventory_path().display().to_string();
    let kh = nodes.known_hosts_path().display().to_string();
    let ours = |args: &[&str]| {
        let mut a = vec!["run", "-i", &inv, "--known-hosts", &kh];
        a.extend_from_slice(args);
        darkport(d, &a, &[])
    };
    // Drop the lines only one of the tools prints (Python interpreter discovery, the
    // `[ERROR]` preamble ansible-core 2.19 adds on failure).
    let keep = |s: &[u8]| -> Vec<String> {
        String::from_utf8_lossy(s)
            .lines()
            .filter(|l| {
                l.contains(" | ")
                    || l.starts_with(' ')
                    || (l.starts_with('{') && !l.starts_with("{'"))
                    || l.starts_with('}')
                    || l.starts_with("hi")
                    || l.starts_with("non-zero")
            })
            .filter(|l| {
                !l.contains("discovered_interpreter")
                    && !l.starts_with("    \"ansible_facts\"")
                    && *l != "    },"
            })
            .map(str::to_string)
            .collect()
    };
    let cases: [(&[&str], i32); 3] = [
        (&["-m", "ping", "node1"], 0),
        (&["-m", "shell", "-a", "echo hi; echo err >&2", "node1"], 0),
        (&["-m", "shell", "-a", "exit 3", "node1"], 2),
    ];
    let have_ansible = Command::new("ansible").arg("--version").output().is_ok();
    for (args, ansible_rc) in cases {
        let o = ours(args);
        let mine = keep(&o.stdout);
        assert!(!mine.is_empty(), "{}", text(&o));
        assert!(
            !String::from_utf8_lossy(&o.stdout).contains("PLAY"),
            "{}",
            text(&o)
        );
        assert_eq!(o.status.code(), Some(ansible_rc), "{}", text(&o));
        if have_ansible {
            let a = Command::new("ansible")
                .current_dir(d)
                .args(["-i", &inv])
                .args(args)
                .env("ANSIBLE_HOST_KEY_CHECKING", "False")
                .env("ANSIBLE_NOCOLOR", "1")
                .output()
                .unwrap();
            assert_eq!(a.status.code(), Some(ansible_rc), "ansible {args:?}");
            assert_eq!(mine, keep(&a.stdout), "darkport vs ansible for {args:?}");
        }
    }
    let o = ours(&["-m", "shell", "-a", "echo hi; echo err >&2", "node1"]);
    assert!(
        String::from_utf8_lossy(&o.stdout).starts_with("node1 | CHANGED | rc=0 >>\nhierr\n"),
        "{}",
        text(&o)
    );
    let o = ours(&["-m", "ping", "node1,nosuch"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("[WARNING]: Could not match supplied host pattern, ignoring: nosuch"),
        "{out}"
    );
    assert!(out.contains("node1 | SUCCESS => {"), "{out}");
}
