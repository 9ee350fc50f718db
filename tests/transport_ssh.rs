//! SSH transport against real OpenSSH sshd test nodes (tests/common).
mod support;
use support::nodes as common;

use common::{keygen, Nodes, DPPASS_PASSWORD, PASS_USER, SUDO_USER};
use darkport::transport::{
    connect, for_each_host, Become, ConnSpec, ConnectOpts, ExecOpts, Transport, TransportError,
    UploadOpts,
};
use serde_json::Value;
use std::io::{Cursor, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::{Duration, Instant};

fn opts(nodes: &Nodes) -> ConnectOpts {
    ConnectOpts {
        known_hosts: nodes.known_hosts_path().to_path_buf(),
        accept_new_host_keys: false,
        connect_timeout: Duration::from_secs(5),
        agent_socket: None,
        stall_timeout: Duration::from_secs(60),
    }
}

fn spec(nodes: &Nodes, i: usize, extra: &[(&str, Value)]) -> ConnSpec {
    let mut v = nodes.vars(i);
    for (k, val) in extra {
        if val.is_null() {
            v.remove(*k);
        } else {
            v.insert(k.to_string(), val.clone());
        }
    }
    darkport::inventory::connvars::conn_spec(&format!("node{}", i + 1), &v).unwrap()
}

fn run(t: &mut dyn Transport, cmd: &str) -> String {
    let o = t.exec(cmd, &ExecOpts::default()).unwrap();
    assert!(o.success(), "{cmd}: {o:?}");
    o.stdout_str()
}

#[test]
fn key_auth_exec_streams_and_exit_codes() {
    let nodes = Nodes::sshd(1);
    let mut t = connect(&spec(&nodes, 0, &[]), &opts(&nodes)).unwrap();
    assert_eq!(t.host(), "node1");
    let o = t
        .exec(
            "echo out; echo err >&2; cat; exit 3",
            &ExecOpts {
                stdin: Some(b"in".to_vec()),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(
        (o.exit_code, o.stdout.as_slice(), o.stderr.as_slice()),
        (3, &b"out\nin"[..], &b"err\n"[..])
    );
    // Environment, large stdout and large stderr at once (no deadlock on the shared window).
    let o = t
        .exec(
            "echo $A; head -c 3000000 /dev/zero; head -c 2000000 /dev/zero >&2",
            &ExecOpts {
                env: vec![("A".into(), "it's".into())],
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(o.stdout.len(), 5 + 3_000_000);
    assert!(o.stdout.starts_with(b"it's\n"));
    assert_eq!(o.stderr.len(), 2_000_000);
    // 1 MB of stdin is passed through.
    let data: Vec<u8> = (0..1_000_000u32).map(|i| (i % 253) as u8).collect();
    let o = t
        .exec(
            "sha256sum",
            &ExecOpts {
                stdin: Some(data.clone()),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(
        o.stdout_str().split_whitespace().next().unwrap(),
        darkport::digest::Digest::of(&data).hex()
    );
    // Killed by a signal → 128 + n.
    assert_eq!(
        t.exec("kill -9 $$", &ExecOpts::default())
            .unwrap()
            .exit_code,
        137
    );
    // One session: many commands reuse it.
    let start = Instant::now();
    for _ in 0..50 {
        run(t.as_mut(), "true");
    }
    eprintln!("50 round trips: {:?}", start.elapsed());
}

#[test]
fn encrypted_key_with_passphrase() {
    let nodes = Nodes::sshd(1);
    let key = nodes.base_dir().join("enc_key");
    keygen(&key, "s3cret phrase", "ed25519");
    let pubkey = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    let mut ak = std::fs::OpenOptions::new()
        .append(true)
        .open(nodes.base_dir().join("authorized_keys"))
        .unwrap();
    ak.write_all(pubkey.as_bytes()).unwrap();
    let keyp = Value::from(key.display().to_string());
    let s = spec(
        &nodes,
        0,
        &[
            ("ansible_ssh_private_key_file", keyp.clone()),
            ("darkport_ssh_key_passphrase", "s3cret phrase".into()),
        ],
    );
    let mut t = connect(&s, &opts(&nodes)).unwrap();
    assert_eq!(run(t.as_mut(), "id -un"), "root\n");
    // Without / with a wrong passphrase: an auth error that says what to set.
    let s = spec(&nodes, 0, &[("ansible_ssh_private_key_file", keyp.clone())]);
    let e = connect(&s, &opts(&nodes)).err().unwrap();
    assert!(matches!(e, TransportError::Auth { .. }), "{e}");
    assert!(e.to_string().contains("darkport_ssh_key_passphrase"), "{e}");
    let s = spec(
        &nodes,
        0,
        &[
            ("ansible_ssh_private_key_file", keyp),
            ("darkport_ssh_key_passphrase", "wrong".into()),
        ],
    );
    let e = connect(&s, &opts(&nodes)).err().unwrap();
    assert!(matches!(e, TransportError::Auth { .. }), "{e}");
}

#[test]
fn ssh_agent_auth() {
    let nodes = Nodes::sshd(1);
    let sock = nodes.base_dir().join("agent.sock");
    let out = std::process::Command::new("ssh-agent")
        .arg("-a")
        .arg(&sock)
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let pid: i32 = text
        .split("SSH_AGENT_PID=")
        .nth(1)
        .and_then(|s| s.split(';').next())
        .and_then(|s| s.parse().ok())
        .expect("agent pid");
    struct KillAgent(i32);
    impl Drop for KillAgent {
        fn drop(&mut self) {
            unsafe { libc::kill(self.0, libc::SIGTERM) };
        }
    }
    let _agent = KillAgent(pid);
    let mut o = opts(&nodes);
    o.agent_socket = Some(sock.clone());
    let s = spec(&nodes, 0, &[("ansible_ssh_private_key_file", Value::Null)]);
    // Empty agent: refused, and the error names the agent.
    let e = connect(&s, &o).err().unwrap();
    assert!(e.to_string().contains("ssh-agent"), "{e}");
    let st = std::process::Command::new("ssh-add")
        .arg(nodes.key_path())
        .env("SSH_AUTH_SOCK", &sock)
        .output()
        .unwrap();
    assert!(st.status.success(), "{st:?}");
    let mut t = connect(&s, &o).unwrap();
    assert_eq!(run(t.as_mut(), "id -un"), "root\n");
}

#[test]
fn password_auth_and_wrong_password() {
    let nodes = Nodes::sshd(1);
    let s = spec(
        &nodes,
        0,
        &[
            ("ansible_ssh_private_key_file", Value::Null),
            ("ansible_user", PASS_USER.into()),
            ("ansible_password", DPPASS_PASSWORD.into()),
        ],
    );
    let mut t = connect(&s, &opts(&nodes)).unwrap();
    assert_eq!(run(t.as_mut(), "id -un"), "dppass\n");
    let s = spec(
        &nodes,
        0,
        &[
            ("ansible_ssh_private_key_file", Value::Null),
            ("ansible_user", PASS_USER.into()),
            ("ansible_ssh_pass", "not-the-password".into()),
        ],
    );
    let e = connect(&s, &opts(&nodes)).err().unwrap();
    assert!(matches!(e, TransportError::Auth { .. }), "{e}");
    assert!(
        e.to_string().contains("node1") && e.to_string().contains("password"),
        "{e}"
    );
    assert!(e.is_unreachable());
}

#[test]
fn unknown_host_key_refused_then_accepted_and_recorded() {
    let nodes = Nodes::sshd(1);
    let kh = nodes.base_dir().join("kh_empty");
    let mut o = opts(&nodes);
    o.known_hosts = kh.clone();
    let s = spec(&nodes, 0, &[]);
    let e = connect(&s, &o).err().unwrap();
    assert!(matches!(e, TransportError::HostKey { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("--accept-new-host-keys") && msg.contains("SHA256:"),
        "{msg}"
    );
    assert!(!kh.exists());
    o.accept_new_host_keys = true;
    connect(&s, &o).unwrap();
    let recorded = std::fs::read_to_string(&kh).unwrap();
    let a = nodes.addr(0);
    assert_eq!(
        recorded,
        format!("[{}]:{} {}\n", a.ip, a.port, nodes.host_pubkey(0))
    );
    // Now known: accepted without the flag; OpenSSH's ssh agrees with the recorded line.
    o.accept_new_host_keys = false;
    connect(&s, &o).unwrap();
    let st = nodes
        .ssh_command(&a)
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", kh.display()))
        .arg(format!("root@{}", a.ip))
        .arg("true")
        .status()
        .unwrap();
    assert!(st.success());
}

#[test]
fn changed_host_key_always_refused_with_both_fingerprints() {
    let nodes = Nodes::sshd(1);
    let other = nodes.base_dir().join("other_host_key");
    keygen(&other, "", "ed25519");
    let other_pub = std::fs::read_to_string(other.with_extension("pub")).unwrap();
    let other_pub: Vec<&str> = other_pub.split_whitespace().collect();
    let a = nodes.addr(0);
    let kh = nodes.base_dir().join("kh_changed");
    std::fs::write(
        &kh,
        format!(
            "# old key\n[{}]:{} {} {}\n",
            a.ip, a.port, other_pub[0], other_pub[1]
        ),
    )
    .unwrap();
    let fp = |line: &str| {
        let out = std::process::Command::new("ssh-keygen")
            .args(["-l", "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                c.stdin.take().unwrap().write_all(line.as_bytes())?;
                c.wait_with_output()
            })
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .nth(1)
            .unwrap()
            .to_string()
    };
    let old_fp = fp(&format!("{} {}\n", other_pub[0], other_pub[1]));
    let new_fp = fp(&format!("{}\n", nodes.host_pubkey(0)));
    for accept in [false, true] {
        let mut o = opts(&nodes);
        o.known_hosts = kh.clone();
        o.accept_new_host_keys = accept;
        let e = connect(&spec(&nodes, 0, &[]), &o).err().unwrap();
        let msg = e.to_string();
        assert!(matches!(e, TransportError::HostKey { .. }), "{msg}");
        assert!(msg.contains("CHANGED"), "{msg}");
        assert!(
            msg.contains(&old_fp) && msg.contains(&new_fp),
            "{msg}\n{old_fp} {new_fp}"
        );
        assert!(msg.contains(&format!("{}:2", kh.display())), "{msg}");
    }
    // The file was not touched.
    assert_eq!(std::fs::read_to_string(&kh).unwrap().lines().count(), 2);
}

#[test]
fn hashed_known_hosts_are_understood() {
    let nodes = Nodes::sshd(2);
    let kh = nodes.base_dir().join("kh_hashed");
    std::fs::copy(nodes.known_hosts_path(), &kh).unwrap();
    let st = std::process::Command::new("ssh-keygen")
        .args(["-H", "-f"])
        .arg(&kh)
        .output()
        .unwrap();
    assert!(st.status.success());
    let text = std::fs::read_to_string(&kh).unwrap();
    assert!(text.starts_with("|1|") && !text.contains("127."), "{text}");
    let mut o = opts(&nodes);
    o.known_hosts = kh;
    for i in 0..2 {
        let mut t = connect(&spec(&nodes, i, &[]), &o).unwrap();
        assert_eq!(run(t.as_mut(), "hostname"), format!("node{}\n", i + 1));
    }
}

#[test]
fn node_down_is_unreachable_and_others_carry_on() {
    let nodes = Nodes::sshd(4);
    nodes.stop(1);
    let specs: Vec<ConnSpec> = (0..4).map(|i| spec(&nodes, i, &[])).collect();
    let o = opts(&nodes);
    let results = for_each_host(&specs, 8, |s| {
        let mut t = connect(s, &o)?;
        let out = t.exec("hostname", &ExecOpts::default())?;
        Ok(out.stdout_str().trim().to_string())
    });
    let names: Vec<_> = results.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["node1", "node2", "node3", "node4"]);
    for (i, (_, r)) in results.iter().enumerate() {
        if i == 1 {
            let e = r.as_ref().unwrap_err();
            assert!(matches!(e, TransportError::Unreachable { .. }), "{e}");
            assert!(e.to_string().contains("node2"), "{e}");
        } else {
            assert_eq!(r.as_ref().unwrap(), &format!("node{}", i + 1));
        }
    }
    // A node dying under an open session: the next command reports it unreachable.
    let mut t = connect(&specs[2], &o).unwrap();
    run(t.as_mut(), "true");
    nodes.stop(2);
    let e = t.exec("true", &ExecOpts::default()).unwrap_err();
    assert!(e.is_unreachable(), "{e}");
    let e = t.exec("true", &ExecOpts::default()).unwrap_err();
    assert!(e.is_unreachable(), "{e}");
    // A frozen node: connect bounded by the connect timeout.
    nodes.pause(3);
    let mut o2 = opts(&nodes);
    o2.connect_timeout = Duration::from_millis(800);
    let start = Instant::now();
    let e = connect(&specs[3], &o2).err().unwrap();
    assert!(matches!(e, TransportError::Unreachable { .. }), "{e}");
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "{:?}",
        start.elapsed()
    );
    nodes.resume(3);
}

#[test]
fn command_timeout_kills_the_command_and_keeps_the_session() {
    let nodes = Nodes::sshd(1);
    let mut t = connect(&spec(&nodes, 0, &[]), &opts(&nodes)).unwrap();
    let start = Instant::now();
    let e = t
        .exec(
            "sleep 2 && touch /srv/late",
            &ExecOpts {
                timeout: Some(Duration::from_millis(500)),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert!(matches!(e, TransportError::Timeout { .. }), "{e}");
    assert!(e.to_string().contains("sleep 2"), "{e}");
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    // Same session still works, output of a command with a timeout is clean.
    let o = t
        .exec(
            "echo fine",
            &ExecOpts {
                timeout: Some(Duration::from_secs(5)),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(o.stdout_str(), "fine\n");
    // The timed-out command was killed on the node: it never touches the file.
    std::thread::sleep(Duration::from_millis(2500));
    assert!(!nodes.node_root(0).join("srv/late").exists());
}

#[test]
fn become_with_and_without_password() {
    let nodes = Nodes::sshd(1);
    // dpuser: passwordless sudo.
    let s = spec(&nodes, 0, &[("ansible_user", SUDO_USER.into())]);
    let mut t = connect(&s, &opts(&nodes)).unwrap();
    let b = ExecOpts {
        become_: Some(Become::default()),
        stdin: Some(b"data".to_vec()),
        ..Default::default()
    };
    let o = t.exec("id -u; cat", &b).unwrap();
    assert_eq!(o.stdout_str(), "0\ndata", "{o:?}");
    let o = t.exec("id -un", &ExecOpts::default()).unwrap();
    assert_eq!(o.stdout_str(), "dpuser\n");
    // Becoming another user.
    let o = t
        .exec(
            "id -un",
            &ExecOpts {
                become_: Some(Become {
                    user: Some(PASS_USER.into()),
                    password: None,
                }),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(o.stdout_str(), "dppass\n");

    // dppass: sudo needs the password; stdin still reaches the command intact.
    let s = spec(&nodes, 0, &[("ansible_user", PASS_USER.into())]);
    let mut t = connect(&s, &opts(&nodes)).unwrap();
    let with_pw = |pw: &str| ExecOpts {
        become_: Some(Become {
            user: None,
            password: Some(pw.into()),
        }),
        stdin: Some(b"payload".to_vec()),
        timeout: Some(Duration::from_secs(20)),
        ..Default::default()
    };
    let o = t.exec("id -u; cat", &with_pw(DPPASS_PASSWORD)).unwrap();
    assert_eq!(o.stdout_str(), "0\npayload", "{o:?}");
    assert!(!o.stderr_str().contains("darkport-sudo"), "{o:?}");
    let e = t.exec("id -u", &with_pw("wrong")).unwrap_err();
    assert!(e.to_string().contains("become password"), "{e}");
    // Without a password sudo refuses (non-interactive), as an ordinary failed command.
    let o = t
        .exec(
            "id -u",
            &ExecOpts {
                become_: Some(Become::default()),
                ..Default::default()
            },
        )
        .unwrap();
    assert_ne!(o.exit_code, 0);
    // Upload as root through sudo with a password into a root-only directory.
    run(t.as_mut(), "true");
    let data = b"root only\n".to_vec();
    let mut up = UploadOpts {
        mode: Some(0o600),
        ..Default::default()
    };
    up.become_ = Some(Become {
        user: None,
        password: Some(DPPASS_PASSWORD.into()),
    });
    nodes.exec_ok(0, "mkdir -p /opt/secret && chmod 700 /opt/secret");
    t.upload(
        &mut Cursor::new(data.clone()),
        data.len() as u64,
        "/opt/secret/f",
        &up,
    )
    .unwrap();
    let p = nodes.node_root(0).join("opt/secret/f");
    assert_eq!(std::fs::read(&p).unwrap(), data);
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(&p).unwrap();
    assert_eq!((m.uid(), m.mode() & 0o777), (0, 0o600));
}

/// A 1 GiB sparse file whose every 64 KiB block starts with its own offset, so a resume at a
/// wrong offset cannot go unnoticed. Created in well under a second.
fn big_file(path: &Path, size: u64) {
    let mut f = std::fs::File::create(path).unwrap();
    f.set_len(size).unwrap();
    let mut off = 0u64;
    while off < size {
        f.seek(SeekFrom::Start(off)).unwrap();
        f.write_all(&off.to_le_bytes()).unwrap();
        off += 64 * 1024;
    }
}

#[test]
fn one_gib_upload_interrupted_then_resumed() {
    const SIZE: u64 = 1 << 30;
    let nodes = Nodes::sshd(1);
    let src = nodes.base_dir().join("big.bin");
    big_file(&src, SIZE);
    let expected = darkport::digest::Digest::of_file(&src).unwrap().0;
    let s = spec(&nodes, 0, &[]);
    let o = opts(&nodes);
    let part = nodes.node_root(0).join("srv/big.bin.part");
    // Interrupt: the node dies once ~300 MB have arrived.
    let killer = {
        let part = part.clone();
        std::thread::spawn(move || {
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(60) {
                if std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0) > 300_000_000 {
                    return true;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            false
        })
    };
    let mut t = connect(&s, &o).unwrap();
    let uploader = std::thread::spawn(move || {
        let mut f = std::fs::File::open(src).unwrap();
        let r = t.upload(&mut f, SIZE, "/srv/big.bin", &UploadOpts::default());
        (r, t)
    });
    assert!(killer.join().unwrap(), "upload never reached 300 MB");
    nodes.stop(0);
    let (r, _t) = uploader.join().unwrap();
    let e = r.unwrap_err();
    assert!(e.is_unreachable(), "{e}");
    let have = std::fs::metadata(&part).unwrap().len();
    assert!(have > 300_000_000 && have < SIZE, "{have}");
    assert!(!nodes.node_root(0).join("srv/big.bin").exists());
    // Node back: the upload continues from what is there and is verified on the node.
    nodes.start(0);
    let mut t = connect(&s, &o).unwrap();
    let mut f = std::fs::File::open(nodes.base_dir().join("big.bin")).unwrap();
    let start = Instant::now();
    let r = t
        .upload(
            &mut f,
            SIZE,
            "/srv/big.bin",
            &UploadOpts {
                sha256: Some(expected),
                ..Default::default()
            },
        )
        .unwrap();
    eprintln!("resumed {} bytes in {:?}", r.bytes_sent, start.elapsed());
    assert_eq!(r.resumed_from, have);
    assert_eq!(r.bytes_sent, SIZE - have);
    let landed = nodes.node_root(0).join("srv/big.bin");
    assert_eq!(std::fs::metadata(&landed).unwrap().len(), SIZE);
    assert!(!part.exists());
    let check = nodes.exec_ok(0, "sha256sum /srv/big.bin");
    assert_eq!(check.split_whitespace().next().unwrap(), expected.hex());
}

#[test]
fn corrupted_upload_is_detected_and_not_renamed() {
    let nodes = Nodes::sshd(1);
    let mut t = connect(&spec(&nodes, 0, &[]), &opts(&nodes)).unwrap();
    let data: Vec<u8> = (0..5_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    // A partial upload whose bytes were damaged on the node (bit rot, a bad earlier writer).
    let mut bad = data[..2_000_000].to_vec();
    bad[1_234_567] ^= 0xff;
    std::fs::write(nodes.node_root(0).join("srv/blob.part"), &bad).unwrap();
    let e = t
        .upload(
            &mut Cursor::new(data.clone()),
            data.len() as u64,
            "/srv/blob",
            &UploadOpts::default(),
        )
        .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("content check failed") && msg.contains("/srv/blob"),
        "{msg}"
    );
    assert!(!nodes.node_root(0).join("srv/blob").exists());
    assert!(!nodes.node_root(0).join("srv/blob.part").exists());
    // A wrong expected digest is caught too.
    let e = t
        .upload(
            &mut Cursor::new(data.clone()),
            data.len() as u64,
            "/srv/blob",
            &UploadOpts {
                sha256: Some(darkport::digest::Digest::of(b"something else")),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert!(e.to_string().contains("content check failed"), "{e}");
    // The retry succeeds, then download returns the same bytes.
    let r = t
        .upload(
            &mut Cursor::new(data.clone()),
            data.len() as u64,
            "/srv/blob",
            &UploadOpts::default(),
        )
        .unwrap();
    assert_eq!((r.resumed_from, r.bytes_sent), (0, data.len() as u64));
    let mut back = Vec::new();
    assert_eq!(
        t.download("/srv/blob", &mut back).unwrap(),
        data.len() as u64
    );
    assert_eq!(back, data);
    let e = t.download("/srv/missing", &mut Vec::new()).unwrap_err();
    assert!(e.to_string().contains("/srv/missing"), "{e}");
}

#[test]
fn frozen_node_mid_upload_fails_after_the_stall_timeout() {
    let nodes = Nodes::sshd(1);
    let mut o = opts(&nodes);
    o.stall_timeout = Duration::from_secs(2);
    let mut t = connect(&spec(&nodes, 0, &[]), &o).unwrap();
    // Unread stdin does not break the session.
    let o1 = t
        .exec(
            "true",
            &ExecOpts {
                stdin: Some(vec![7u8; 5_000_000]),
                ..Default::default()
            },
        )
        .unwrap();
    assert!(o1.success());
    run(t.as_mut(), "true");
    // Freeze the node once the transfer is under way.
    let part = nodes.node_root(0).join("srv/frozen.bin.part");
    let data = vec![1u8; 400_000_000];
    let (r, elapsed) = std::thread::scope(|s| {
        s.spawn(|| {
            let start = Instant::now();
            while std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0) < 20_000_000 {
                assert!(
                    start.elapsed() < Duration::from_secs(60),
                    "upload did not start"
                );
                std::thread::sleep(Duration::from_millis(2));
            }
            nodes.pause(0);
        });
        let start = Instant::now();
        let r = t.upload(
            &mut Cursor::new(data),
            400_000_000,
            "/srv/frozen.bin",
            &UploadOpts::default(),
        );
        (r, start.elapsed())
    });
    let e = r.unwrap_err();
    assert!(e.is_unreachable(), "{e}");
    assert!(e.to_string().contains("no data moved"), "{e}");
    assert!(elapsed < Duration::from_secs(15), "{elapsed:?}");
    nodes.resume(0);
}

/// Restart fast node `i` with `line` first in its sshd_config (sshd uses the first value of a
/// keyword). The node's private /etc is fresh after the restart.
fn restart_with_sshd_option(nodes: &Nodes, i: usize, line: &str) {
    let cfg = nodes.base_dir().join(format!("node{}/sshd_config", i + 1));
    nodes.stop(i);
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, format!("{line}\n{text}")).unwrap();
    nodes.start(i);
}

fn sshd_log(nodes: &Nodes, i: usize) -> String {
    std::fs::read_to_string(nodes.base_dir().join(format!("node{}/sshd.log", i + 1))).unwrap()
}

/// node2 and node3 are reachable only through node1 (the jump host): they are addressed by
/// names that only node1 resolves (in its private /etc/hosts), node1's sshd logs each
/// forwarding and one login for both, and data flows both ways in bulk.
#[test]
fn jump_host_reaches_nodes_behind_it_over_one_session() {
    use std::net::ToSocketAddrs;
    let nodes = Nodes::sshd(3);
    let (a, b, c) = (nodes.addr(0), nodes.addr(1), nodes.addr(2));
    restart_with_sshd_option(&nodes, 0, "LogLevel DEBUG1");
    let mounts = nodes.exec_ok(0, "cat /proc/mounts");
    assert!(
        mounts
            .lines()
            .any(|l| l.split_whitespace().nth(1) == Some("/etc") && l.contains("overlay")),
        "node1 needs its private /etc (overlayfs) for this test:\n{mounts}"
    );
    nodes.exec_ok(
        0,
        &format!(
            "printf '{} behind-b\\n{} behind-c\\n' >> /etc/hosts",
            b.ip, c.ip
        ),
    );
    assert!(
        ("behind-b", b.port).to_socket_addrs().is_err(),
        "behind-b must resolve on node1 only"
    );
    let log_start = sshd_log(&nodes, 0).len();

    let kh = nodes.base_dir().join("known_hosts_jump");
    let mut text = std::fs::read_to_string(nodes.known_hosts_path()).unwrap();
    text.push_str(&format!(
        "[behind-b]:{} {}\n[behind-c]:{} {}\n",
        b.port,
        nodes.host_pubkey(1),
        c.port,
        nodes.host_pubkey(2)
    ));
    std::fs::write(&kh, text).unwrap();
    let o = ConnectOpts {
        known_hosts: kh.clone(),
        ..opts(&nodes)
    };
    let proxy_jump = format!(
        "-o StrictHostKeyChecking=yes -o ProxyJump=root@{}:{}",
        a.ip, a.port
    );
    let specs = vec![
        spec(
            &nodes,
            1,
            &[
                ("ansible_host", "behind-b".into()),
                ("ansible_ssh_common_args", proxy_jump.clone().into()),
            ],
        ),
        spec(
            &nodes,
            2,
            &[
                ("ansible_host", "behind-c".into()),
                ("darkport_jump_host", format!("{}:{}", a.ip, a.port).into()),
            ],
        ),
    ];
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let want_sum = darkport::digest::Digest::of(&data).hex();
    let results = for_each_host(&specs, 8, |s| {
        let mut t = connect(s, &o)?;
        let name = run(t.as_mut(), "hostname");
        let o1 = t.exec(
            "sha256sum; head -c 4000000 /dev/zero",
            &ExecOpts {
                stdin: Some(data.clone()),
                ..Default::default()
            },
        )?;
        let mut f = Cursor::new(data.clone());
        t.upload(
            &mut f,
            data.len() as u64,
            "/srv/up.bin",
            &UploadOpts::default(),
        )?;
        let up = run(t.as_mut(), "sha256sum /srv/up.bin");
        Ok((name, o1, up))
    });
    for (host, r) in &results {
        let (name, o1, up) = r.as_ref().unwrap_or_else(|e| panic!("{host}: {e}"));
        assert_eq!(name.trim(), host.as_str());
        assert!(o1.success(), "{o1:?}");
        assert!(o1.stdout.starts_with(want_sum.as_bytes()));
        assert_eq!(o1.stdout.len(), want_sum.len() + 4 + 4_000_000);
        assert!(up.starts_with(&want_sum), "{up}");
    }
    // The jump host saw both forwardings, over one login.
    let log = sshd_log(&nodes, 0)[log_start..].to_string();
    for (name, port) in [("behind-b", b.port), ("behind-c", c.port)] {
        assert!(
            log.contains(&format!("target {name} port {port}")),
            "no forwarding to {name} in node1's log:\n{log}"
        );
    }
    assert_eq!(
        log.matches("Accepted publickey for root").count(),
        1,
        "one jump host session for both targets:\n{log}"
    );

    // The jump session ends (disconnect sent) once no session runs over it any more.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !sshd_log(&nodes, 0)[log_start..].contains("darkport done") {
        assert!(
            Instant::now() < deadline,
            "jump host session not closed after its targets:\n{}",
            &sshd_log(&nodes, 0)[log_start..]
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // The same from an Ansible inventory, with `darkport run`.
    let dir = nodes.base_dir();
    std::fs::write(
        dir.join("jump.ini"),
        format!(
            "[nodes]\nnode2 ansible_host=behind-b ansible_port={} ansible_user=root \
             ansible_ssh_private_key_file={} ansible_ssh_common_args='{proxy_jump}'\n",
            b.port,
            nodes.key_path().display()
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("jump.yml"),
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - copy: content=via-jump dest=/srv/jumped\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_darkport"))
        .arg("run")
        .arg("-i")
        .arg(dir.join("jump.ini"))
        .arg("--known-hosts")
        .arg(&kh)
        .arg(dir.join("jump.yml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(nodes.node_root(1).join("srv/jumped")).unwrap(),
        "via-jump"
    );

    // A wrong host key of the jump host is refused, naming the jump host.
    let bad = nodes.base_dir().join("bad_jump_key");
    keygen(&bad, "", "ed25519");
    let wrong = std::fs::read_to_string(&kh)
        .unwrap()
        .replace(&nodes.host_pubkey(0), {
            let p = std::fs::read_to_string(bad.with_extension("pub")).unwrap();
            &p.split_whitespace().take(2).collect::<Vec<_>>().join(" ")
        });
    let kh_wrong = nodes.base_dir().join("known_hosts_wrong");
    std::fs::write(&kh_wrong, wrong).unwrap();
    let o_wrong = ConnectOpts {
        known_hosts: kh_wrong,
        ..o.clone()
    };
    let e = connect(&specs[0], &o_wrong)
        .err()
        .expect("wrong jump host key accepted");
    let msg = e.to_string();
    assert!(matches!(e, TransportError::HostKey { .. }), "{msg}");
    assert!(
        msg.contains(&format!("jump host root@{}:{}", a.ip, a.port))
            && msg.contains("HOST KEY CHANGED"),
        "{msg}"
    );

    // With forwarding off on node1, node2 cannot be reached through it (though it is up).
    restart_with_sshd_option(&nodes, 0, "AllowTcpForwarding no");
    let direct = spec(&nodes, 1, &[]);
    let via = spec(&nodes, 1, &[("ansible_ssh_common_args", proxy_jump.into())]);
    connect(&direct, &opts(&nodes)).expect("node2 directly");
    let e = connect(&via, &opts(&nodes))
        .err()
        .expect("forwarding refused");
    let msg = e.to_string();
    assert!(
        e.is_unreachable() && msg.contains("jump host") && msg.contains("prohibited"),
        "{msg}"
    );
}

/// An unreachable jump host fails every host behind it, naming the jump host.
#[test]
fn unreachable_jump_host_fails_the_hosts_behind_it() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let specs: Vec<ConnSpec> = (1..=3)
        .map(|i| {
            let mut v = serde_json::Map::new();
            v.insert("ansible_user".into(), "root".into());
            v.insert("ansible_password".into(), "x".into());
            v.insert(
                "darkport_jump_host".into(),
                format!("127.0.0.1:{port}").into(),
            );
            darkport::inventory::connvars::conn_spec(&format!("n{i}"), &v).unwrap()
        })
        .collect();
    let o = ConnectOpts {
        known_hosts: std::env::temp_dir().join("darkport-no-known-hosts"),
        accept_new_host_keys: false,
        connect_timeout: Duration::from_secs(5),
        agent_socket: None,
        stall_timeout: Duration::from_secs(60),
    };
    for (host, r) in for_each_host(&specs, 8, |s| connect(s, &o).map(|_| ())) {
        let e = r.expect_err("connected through a closed port");
        let msg = e.to_string();
        assert!(
            e.is_unreachable()
                && msg.contains(&host)
                && msg.contains(&format!("jump host root@127.0.0.1:{port}")),
            "{msg}"
        );
    }
}

/// A burst of connections to one host whose sshd drops every unauthenticated connection
/// beyond 2 (OpenSSH's `MaxStartups`, here at its harshest): every one gets through, by
/// retrying with backoff, and none takes more than a few seconds.
#[test]
fn a_connection_burst_refused_by_max_startups_is_retried() {
    let nodes = Nodes::sshd(1);
    nodes.set_sshd_limits(0, "2:100:2", 10);
    let o = opts(&nodes);
    let s = spec(&nodes, 0, &[]);
    let started = std::time::Instant::now();
    let results: Vec<Result<String, String>> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..24)
            .map(|_| {
                sc.spawn(|| {
                    darkport::transport::connect(&s, &o)
                        .map_err(|e| e.to_string())
                        .map(|mut t| run(&mut *t, "echo in"))
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let failed: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(
        failed.is_empty(),
        "{} of 24 failed: {failed:?}",
        failed.len()
    );
    assert!(results.iter().all(|r| r.as_deref() == Ok("in\n")));
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
}

/// A server that always drops the connection as OpenSSH does past `MaxStartups`: the tries
/// are bounded (in count and in time) and the error says what the server did.
#[test]
fn a_host_that_always_drops_the_connection_fails_with_the_reason() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = accepted.clone();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { break };
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let _ = std::io::Write::write_all(&mut c, b"Exceeded MaxStartups\r\n");
        }
    });
    let nodes = Nodes::sshd(1);
    let mut o = opts(&nodes);
    o.connect_timeout = Duration::from_secs(1);
    let s = spec(
        &nodes,
        0,
        &[
            ("ansible_host", Value::from("127.0.0.1")),
            ("ansible_port", Value::from(port)),
        ],
    );
    let started = std::time::Instant::now();
    let e = darkport::transport::connect(&s, &o)
        .err()
        .expect("must fail")
        .to_string();
    assert!(e.contains("see MaxStartups"), "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let n = accepted.load(std::sync::atomic::Ordering::SeqCst);
    assert!((2..=10).contains(&n), "{n} tries");
}
