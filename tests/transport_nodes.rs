//! The test-node harness itself (tests/common): fast sshd nodes and Docker cluster nodes.
mod support;
use support::nodes as common;

use common::{Nodes, PASS_USER, SUDO_USER};
use std::time::{Duration, Instant};

#[test]
fn fast_nodes_have_private_filesystems_and_users() {
    let t = Instant::now();
    let nodes = Nodes::sshd(3);
    let started = t.elapsed();
    eprintln!("3 fast nodes started in {started:?}");
    assert!(started < Duration::from_secs(3), "3 nodes took {started:?}");
    assert_eq!(nodes.names(), ["node1", "node2", "node3"]);
    let inv = std::fs::read_to_string(nodes.inventory_path()).unwrap();
    assert!(inv.starts_with("[nodes]\nnode1 ansible_host=127."), "{inv}");
    for i in 0..3 {
        nodes.exec_ok(i, &format!("mkdir -p /srv/app && echo n{i} > /srv/app/x"));
        let got = std::fs::read_to_string(nodes.node_root(i).join("srv/app/x")).unwrap();
        assert_eq!(got, format!("n{i}\n"));
        // /tmp, /opt and /var/lib/darkport are private too.
        nodes.exec_ok(i, "touch /tmp/t /opt/o /var/lib/darkport/d");
        for p in ["tmp/t", "opt/o", "var/lib/darkport/d"] {
            assert!(nodes.node_root(i).join(p).exists(), "{p} on node{i}");
        }
    }
    assert_eq!(nodes.exec_ok(2, "hostname").trim(), "node3");
    // root's rc files are empty inside the nodes (no pyenv init per command).
    assert_eq!(
        nodes
            .exec_ok(0, "wc -c < /root/.bashrc 2>/dev/null || echo 0")
            .trim(),
        "0"
    );
    // Test users: dpuser has passwordless sudo; dppass's sudo needs its password.
    let a = nodes.addr(1);
    let o = nodes
        .ssh_command(&a)
        .arg(format!("{SUDO_USER}@{}", a.ip))
        .arg("id -un; sudo -n id -u")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout), "dpuser\n0\n", "{o:?}");
    let o = nodes
        .ssh_command(&a)
        .arg(format!("{PASS_USER}@{}", a.ip))
        .arg("sudo -n true")
        .output()
        .unwrap();
    assert!(!o.status.success(), "dppass must need a password for sudo");
    let o = nodes
        .ssh_command(&a)
        .arg(format!("{PASS_USER}@{}", a.ip))
        .arg(format!(
            "echo {} | sudo -S -p '' id -u",
            common::DPPASS_PASSWORD
        ))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout), "0\n", "{o:?}");
}

#[test]
fn fast_node_stop_start_pause() {
    let nodes = Nodes::sshd(2);
    let a = nodes.addr(0);
    nodes.stop(0);
    assert!(!nodes.exec(0, "true").status.success());
    assert!(
        nodes.exec(1, "true").status.success(),
        "node2 must carry on"
    );
    nodes.start(0);
    assert_eq!(nodes.addr(0).port, a.port);
    nodes.exec_ok(0, "true");
    nodes.pause(1);
    // A paused node accepts TCP (the kernel does) but never answers: ssh hangs.
    let mut child = nodes
        .ssh_command(&nodes.addr(1))
        .arg(format!("root@{}", nodes.addr(1).ip))
        .arg("true")
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert!(child.try_wait().unwrap().is_none(), "paused node answered");
    child.kill().unwrap();
    let _ = child.wait();
    nodes.resume(1);
    nodes.exec_ok(1, "true");
}

#[test]
fn cluster_nodes_are_real_hosts() {
    let Some(nodes) = Nodes::cluster_or_skip(2) else {
        return;
    };
    let a0 = nodes.addr(0);
    assert_eq!(a0.port, 22);
    assert_eq!(nodes.exec_ok(0, "hostname").trim(), "node1");
    // Reachable over real ssh with the inventory's key and known_hosts.
    let o = nodes
        .ssh_command(&a0)
        .arg(format!("root@{}", a0.ip))
        .arg("python3 -c 'print(1+1)'; command -v skopeo sudo")
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("2\n"));
    // Own filesystems.
    nodes.exec_ok(0, "echo a > /srv/f");
    assert!(!nodes.exec(1, "test -e /srv/f").status.success());
    // Disconnect / reconnect, stop / start keep the same address.
    nodes.disconnect(1);
    let a1 = nodes.addr(1);
    let o = nodes
        .ssh_command(&a1)
        .args(["-o", "ConnectTimeout=1"])
        .arg(format!("root@{}", a1.ip))
        .arg("true")
        .output()
        .unwrap();
    assert!(!o.status.success());
    nodes.reconnect(1);
    nodes.stop(1);
    nodes.start(1);
    let o = nodes
        .ssh_command(&a1)
        .arg(format!("root@{}", a1.ip))
        .arg("true")
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
}
