//! Shared test support: real SSH test nodes.
//!
//! * [`Nodes::sshd`] — fast nodes: real `/usr/sbin/sshd` processes on `127.X.Y.i:port`, each in
//!   its own mount + PID namespace (`unshare`), with its own host key, and private directories
//!   bind-mounted over `/srv`, `/opt`, `/tmp`, `/home` and `/var/lib/darkport`, so a file a
//!   playbook writes at `/srv/app/x` on node 2 is visible from the host at
//!   `node_root(1).join("srv/app/x")`. `/root/.bashrc` and `/etc/bash.bashrc` are bind-mounted to
//!   an empty file (no `pyenv init` per command). Test users exist only inside the namespaces
//!   (private `/etc/passwd`, `/etc/shadow`, `/etc/group`, `/etc/sudoers.d`): the host is not changed.
//! * [`Nodes::cluster`] — Docker containers on a private internal network, each a real Debian host
//!   with sshd, its own IP and filesystem; image built offline by `scripts/node-image.sh`.
//!
//! Users on every node: `root` (key), `dpuser` (key, passwordless sudo), `dppass` (key or the
//! password [`DPPASS_PASSWORD`], sudo asks for that password). Node indices are 0-based:
//! index `i` is inventory host `node{i+1}`.
//!
//! Use from an integration test with `mod support;` (`support::nodes`), or from an example
//! with `#[path]` (it needs nothing else of the support tree). Everything started is stopped on drop
//! (set `DARKPORT_KEEP_NODES=1` to keep the node directories for debugging).
#![allow(dead_code)]

mod cluster;
#[allow(unused_imports)]
pub use cluster::docker_usable;
mod fast;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// A free TCP port on `ip` (bound and released: another process may take it, rarely).
pub fn free_port(ip: &str) -> u16 {
    let l = std::net::TcpListener::bind((ip, 0)).unwrap_or_else(|e| panic!("bind {ip}:0: {e}"));
    l.local_addr().unwrap().port()
}

/// Password of the test user `dppass` (also its sudo password).
pub const DPPASS_PASSWORD: &str = "dppass-pw";
/// Test user with key login and passwordless sudo.
pub const SUDO_USER: &str = "dpuser";
/// Test user with key or password login whose sudo requires [`DPPASS_PASSWORD`].
pub const PASS_USER: &str = "dppass";

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A set of running test nodes. Drop stops everything it started.
pub struct Nodes {
    base: PathBuf,
    inventory: PathBuf,
    known_hosts: PathBuf,
    key: PathBuf,
    kind: Kind,
    keep: bool,
}

enum Kind {
    Fast(Vec<fast::FastNode>),
    Cluster(cluster::Cluster),
}

/// Address of one node as the controller sees it.
#[derive(Clone, Debug)]
pub struct NodeAddr {
    pub ip: String,
    pub port: u16,
}

impl Nodes {
    /// Start `n` fast local sshd nodes (< 1 s per node). Panics with the sshd log on failure.
    pub fn sshd(n: usize) -> Nodes {
        let base = new_base_dir("sshd");
        Self::sshd_in(n, base)
    }

    /// Like [`Nodes::sshd`] but in a given (empty or absent) directory; used by `make nodes`.
    pub fn sshd_in(n: usize, base: PathBuf) -> Nodes {
        std::fs::create_dir_all(&base).unwrap();
        let key = make_client_key(&base);
        let nodes = fast::start_all(&base, n, &key);
        let mut me = Nodes {
            inventory: base.join("inventory.ini"),
            known_hosts: base.join("known_hosts"),
            key,
            base,
            kind: Kind::Fast(nodes),
            keep: std::env::var_os("DARKPORT_KEEP_NODES").is_some(),
        };
        me.write_files();
        me
    }

    /// Start `n` Docker nodes. Panics with a clear message if Docker is unusable.
    pub fn cluster(n: usize) -> Nodes {
        if let Err(why) = cluster::docker_usable() {
            panic!("cluster test nodes need Docker: {why}");
        }
        Self::cluster_in(n, new_base_dir("cluster"))
    }

    /// Docker nodes, or `None` (with the reason printed) when Docker is unusable and `CI` is
    /// not `true`. With `CI=true` a missing Docker is a test failure (panic).
    pub fn cluster_or_skip(n: usize) -> Option<Nodes> {
        if let Err(why) = cluster::docker_usable() {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("CI=true and Docker is not usable, cluster tests cannot run: {why}");
            }
            eprintln!("SKIPPED: cluster test needs Docker: {why}");
            return None;
        }
        Some(Self::cluster_in(n, new_base_dir("cluster")))
    }

    pub fn cluster_in(n: usize, base: PathBuf) -> Nodes {
        std::fs::create_dir_all(&base).unwrap();
        let key = make_client_key(&base);
        let c = cluster::Cluster::launch(&base, n, &key);
        let mut me = Nodes {
            inventory: base.join("inventory.ini"),
            known_hosts: base.join("known_hosts"),
            key,
            base,
            kind: Kind::Cluster(c),
            keep: std::env::var_os("DARKPORT_KEEP_NODES").is_some(),
        };
        me.write_files();
        me
    }

    /// INI inventory: group `[nodes]`, hosts `node1..nodeN` with `ansible_host`, `ansible_port`,
    /// `ansible_user=root` and `ansible_ssh_private_key_file` set.
    pub fn inventory_path(&self) -> &Path {
        &self.inventory
    }

    /// OpenSSH known_hosts file holding every node's host key (`[ip]:port ssh-ed25519 …`).
    pub fn known_hosts_path(&self) -> &Path {
        &self.known_hosts
    }

    /// Unencrypted ed25519 client key authorized for every user on every node.
    pub fn key_path(&self) -> &Path {
        &self.key
    }

    /// Directory holding everything of this node set.
    pub fn base_dir(&self) -> &Path {
        &self.base
    }

    pub fn len(&self) -> usize {
        match &self.kind {
            Kind::Fast(v) => v.len(),
            Kind::Cluster(c) => c.len(),
        }
    }

    pub fn is_cluster(&self) -> bool {
        matches!(self.kind, Kind::Cluster(_))
    }

    /// Inventory names: `node1..nodeN`.
    pub fn names(&self) -> Vec<String> {
        (1..=self.len()).map(|i| format!("node{i}")).collect()
    }

    pub fn addr(&self, i: usize) -> NodeAddr {
        match &self.kind {
            Kind::Fast(v) => NodeAddr {
                ip: v[i].ip.clone(),
                port: v[i].port,
            },
            Kind::Cluster(c) => NodeAddr {
                ip: c.ip(i),
                port: 22,
            },
        }
    }

    /// Public host key line (`ssh-ed25519 AAAA…`) of node `i`.
    pub fn host_pubkey(&self, i: usize) -> String {
        let p = match &self.kind {
            Kind::Fast(v) => v[i].dir.join("ssh_host_ed25519_key.pub"),
            Kind::Cluster(c) => c.hostkey_pub(i),
        };
        let s = std::fs::read_to_string(p).unwrap();
        s.split_whitespace().take(2).collect::<Vec<_>>().join(" ")
    }

    /// Inventory variables of node `i` (as the inventory file sets them).
    pub fn vars(&self, i: usize) -> serde_json::Map<String, serde_json::Value> {
        let a = self.addr(i);
        let mut m = serde_json::Map::new();
        m.insert("ansible_host".into(), a.ip.into());
        m.insert("ansible_port".into(), a.port.into());
        m.insert("ansible_user".into(), "root".into());
        m.insert(
            "ansible_ssh_private_key_file".into(),
            self.key.display().to_string().into(),
        );
        m
    }

    /// Host-side path of node `i`'s private filesystem (fast nodes): `/srv`, `/opt`, `/tmp`,
    /// `/home` and `/var/lib/darkport` of the node are the same-named directories below it.
    pub fn node_root(&self, i: usize) -> PathBuf {
        match &self.kind {
            Kind::Fast(v) => v[i].root(),
            Kind::Cluster(_) => {
                panic!("node_root is only available for fast nodes; use exec() on cluster nodes")
            }
        }
    }

    /// Run `cmd` (a shell command line) as root on node `i`: over ssh with the system OpenSSH
    /// client for fast nodes, `docker exec` for cluster nodes.
    pub fn exec(&self, i: usize, cmd: &str) -> Output {
        match &self.kind {
            Kind::Fast(_) => {
                let a = self.addr(i);
                self.ssh_command(&a)
                    .arg(format!("root@{}", a.ip))
                    .arg(cmd)
                    .stdin(Stdio::null())
                    .output()
                    .unwrap()
            }
            Kind::Cluster(c) => c.exec(i, cmd),
        }
    }

    /// Like [`Nodes::exec`] but panics unless the command succeeds; returns stdout.
    pub fn exec_ok(&self, i: usize, cmd: &str) -> String {
        let o = self.exec(i, cmd);
        assert!(
            o.status.success(),
            "command `{cmd}` on node{} failed: {}\n{}",
            i + 1,
            o.status,
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// A `ssh` command preset for these nodes (key, known_hosts, batch mode, port); add
    /// `user@ip` and the command.
    pub fn ssh_command(&self, a: &NodeAddr) -> Command {
        let mut c = Command::new("ssh");
        c.args(["-F", "/dev/null", "-o", "BatchMode=yes", "-o"])
            .arg(format!("UserKnownHostsFile={}", self.known_hosts.display()))
            .args(["-o", "StrictHostKeyChecking=yes", "-o", "ConnectTimeout=5"])
            .arg("-i")
            .arg(&self.key)
            .arg("-p")
            .arg(a.port.to_string());
        c
    }

    /// Stop node `i` hard (all its processes / its container die).
    pub fn stop(&self, i: usize) {
        match &self.kind {
            Kind::Fast(v) => v[i].stop(),
            Kind::Cluster(c) => c.stop(i),
        }
    }

    /// Restart fast node `i`'s sshd with `MaxStartups` and `MaxSessions` set to these values.
    pub fn set_sshd_limits(&self, i: usize, max_startups: &str, max_sessions: u32) {
        let Kind::Fast(v) = &self.kind else {
            panic!("set_sshd_limits works on fast nodes only");
        };
        let p = v[i].dir.join("sshd_config");
        let cfg: String = std::fs::read_to_string(&p)
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with("MaxStartups") && !l.starts_with("MaxSessions"))
            .map(|l| format!("{l}\n"))
            .collect();
        std::fs::write(
            &p,
            format!("MaxStartups {max_startups}\nMaxSessions {max_sessions}\n{cfg}"),
        )
        .unwrap();
        v[i].stop();
        v[i].start();
    }

    /// Start a stopped node again (same address, same host key).
    pub fn start(&self, i: usize) {
        match &self.kind {
            Kind::Fast(v) => v[i].start(),
            Kind::Cluster(c) => c.start(i),
        }
    }

    /// Freeze node `i`: TCP connects may still complete (fast nodes) but nothing answers.
    pub fn pause(&self, i: usize) {
        match &self.kind {
            Kind::Fast(v) => v[i].signal_all(libc::SIGSTOP),
            Kind::Cluster(c) => c.pause(i),
        }
    }

    pub fn resume(&self, i: usize) {
        match &self.kind {
            Kind::Fast(v) => v[i].signal_all(libc::SIGCONT),
            Kind::Cluster(c) => c.unpause(i),
        }
    }

    /// Cut node `i` off the network (cluster: `docker network disconnect`; fast nodes have no
    /// network of their own, so this is the same as [`Nodes::pause`]).
    pub fn disconnect(&self, i: usize) {
        match &self.kind {
            Kind::Fast(_) => self.pause(i),
            Kind::Cluster(c) => c.disconnect(i),
        }
    }

    pub fn reconnect(&self, i: usize) {
        match &self.kind {
            Kind::Fast(_) => self.resume(i),
            Kind::Cluster(c) => c.reconnect(i),
        }
    }

    /// Keep everything running after this value is dropped (for `make nodes`); stop later with
    /// [`Nodes::down`] on the same directory.
    pub fn detach(mut self) {
        self.keep = true;
        match &mut self.kind {
            Kind::Fast(v) => v.iter_mut().for_each(|n| n.detach()),
            Kind::Cluster(c) => c.detach(),
        }
    }

    /// Stop whatever a detached node set in `base` left running (reads `base/state`).
    pub fn down(base: &Path) {
        let Ok(state) = std::fs::read_to_string(base.join("state")) else {
            return;
        };
        for line in state.lines() {
            let mut it = line.splitn(2, ' ');
            match (it.next(), it.next()) {
                (Some("pid"), Some(p)) => {
                    if let Ok(pid) = p.trim().parse::<i32>() {
                        unsafe { libc::kill(pid, libc::SIGKILL) };
                    }
                }
                (Some("container"), Some(name)) => {
                    let _ = Command::new("docker")
                        .args(["rm", "-f", name.trim()])
                        .output();
                }
                (Some("network"), Some(name)) => {
                    let _ = Command::new("docker")
                        .args(["network", "rm", name.trim()])
                        .output();
                }
                _ => {}
            }
        }
        let _ = std::fs::remove_file(base.join("state"));
    }

    fn write_files(&mut self) {
        let n = self.len();
        let mut kh = String::new();
        let mut inv = String::from("[nodes]\n");
        for i in 0..n {
            let a = self.addr(i);
            let host = if a.port == 22 {
                a.ip.clone()
            } else {
                format!("[{}]:{}", a.ip, a.port)
            };
            kh.push_str(&format!("{host} {}\n", self.host_pubkey(i)));
            inv.push_str(&format!(
                "node{} ansible_host={} ansible_port={} ansible_user=root ansible_ssh_private_key_file={}\n",
                i + 1,
                a.ip,
                a.port,
                self.key.display()
            ));
        }
        std::fs::write(&self.known_hosts, kh).unwrap();
        std::fs::write(&self.inventory, inv).unwrap();
        let mut state = String::new();
        match &self.kind {
            Kind::Fast(v) => {
                for node in v {
                    if let Some(pid) = node.pid() {
                        state.push_str(&format!("pid {pid}\n"));
                    }
                }
            }
            Kind::Cluster(c) => state.push_str(&c.state_lines()),
        }
        std::fs::write(self.base.join("state"), state).unwrap();
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        if let Kind::Cluster(c) = &mut self.kind {
            if !self.keep {
                c.remove_all();
            }
        }
        // Fast nodes stop in FastNode::drop (unless detached).
        if !self.keep {
            if let Kind::Fast(v) = &mut self.kind {
                v.clear();
            }
            let _ = std::fs::remove_dir_all(&self.base);
        }
    }
}

/// A fresh directory for one node set, outside `/tmp` (nodes get a private `/tmp`, and their
/// sshd must still see its own config and keys).
fn new_base_dir(kind: &str) -> PathBuf {
    let root = option_env!("CARGO_TARGET_TMPDIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp"));
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let d = root.join(format!("dpnodes-{kind}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// `ssh-keygen` an unencrypted ed25519 key `base/id_ed25519`.
fn make_client_key(base: &Path) -> PathBuf {
    let key = base.join("id_ed25519");
    if !key.exists() {
        keygen(&key, "", "ed25519");
    }
    key
}

/// Generate a key pair at `path` (`path.pub` too) with a passphrase (may be empty).
pub fn keygen(path: &Path, passphrase: &str, kind: &str) {
    let _ = std::fs::remove_file(path);
    let _ = std::fs::remove_file(path.with_extension("pub"));
    let o = Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            kind,
            "-N",
            passphrase,
            "-C",
            "darkport-test",
            "-f",
        ])
        .arg(path)
        .output()
        .expect("ssh-keygen must be installed (openssh-client)");
    assert!(
        o.status.success(),
        "ssh-keygen failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Poll until `ip:port` accepts TCP and sends an SSH banner, or the deadline passes.
pub fn wait_ssh(ip: &str, port: u16, timeout: Duration) -> bool {
    use std::io::Read;
    let deadline = Instant::now() + timeout;
    let addr: std::net::SocketAddr = format!("{ip}:{port}").parse().unwrap();
    while Instant::now() < deadline {
        if let Ok(mut s) = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            let _ = s.set_read_timeout(Some(Duration::from_millis(1000)));
            let mut buf = [0u8; 4];
            if s.read_exact(&mut buf).is_ok() && &buf == b"SSH-" {
                return true;
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

fn run_ok(cmd: &mut Command) -> String {
    let o = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        o.status.success(),
        "{cmd:?} failed: {}\n{}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}
