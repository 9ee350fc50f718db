//! Fast nodes: one real sshd per node in its own mount + PID namespace.

use super::*;
use std::io::Read;
use std::process::Child;
use std::sync::Mutex;

static NET_COUNTER: AtomicUsize = AtomicUsize::new(0);

const DPUSER_UID: u32 = 47001;
const DPPASS_UID: u32 = 47002;

pub struct FastNode {
    pub ip: String,
    pub port: u16,
    /// Node directory: sshd_config, host key, log, and `root/` (the private filesystem).
    pub dir: PathBuf,
    base: PathBuf,
    child: Mutex<Option<Child>>,
    detached: bool,
}

impl FastNode {
    pub fn root(&self) -> PathBuf {
        self.dir.join("root")
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.lock().unwrap().as_ref().map(|c| c.id())
    }

    fn spawn(&self) -> Child {
        let d = self.dir.display().to_string();
        let b = self.base.display().to_string();
        let name = self.dir.file_name().unwrap().to_string_lossy().into_owned();
        let mut script = format!("set -e\nhostname {name}\n");
        for rc in ["/root/.bashrc", "/etc/bash.bashrc", "/root/.profile"] {
            script.push_str(&format!(
                "if [ -e {rc} ]; then mount --bind {b}/empty {rc}; fi\n"
            ));
        }
        for m in ["srv", "opt", "tmp", "home", "var/lib/darkport"] {
            script.push_str(&format!("mount --bind {d}/root/{m} /{m}\n"));
        }
        // A private /etc per node: an overlay (upper layer on a tmpfs that only this mount
        // namespace sees) over the host's /etc, so useradd/groupadd/init scripts written by a
        // playbook (lock files, `passwd+` renames, gshadow, backups) never reach the host and
        // nodes of one set do not share users. Falls back to bind-mounting the three account
        // files when overlayfs is unavailable (then account changes are not isolated per node).
        script.push_str(&format!(
            "mkdir -p {d}/etc-ovl\n\
             if mount -t tmpfs -o mode=0755 dp-etc {d}/etc-ovl && mkdir {d}/etc-ovl/u {d}/etc-ovl/w \\\n\
                && mount -t overlay dp-etc -o lowerdir=/etc,upperdir={d}/etc-ovl/u,workdir={d}/etc-ovl/w /etc; then\n\
               for f in passwd group shadow; do cat {b}/etc/$f > /etc/$f; done\n\
             else\n\
               for f in passwd group shadow; do mount --bind {b}/etc/$f /etc/$f; done\n\
             fi\n"
        ));
        script.push_str(&format!("mount --bind {b}/etc/sudoers.d /etc/sudoers.d\n"));
        script.push_str(&format!("exec /usr/sbin/sshd -D -e -f {d}/sshd_config\n"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("sshd.log"))
            .unwrap();
        Command::new("unshare")
            .args([
                "--fork",
                "--pid",
                "--kill-child=SIGKILL",
                "--mount-proc",
                "--mount",
                "--uts",
                "--propagation",
                "private",
                "/bin/sh",
                "-c",
                &script,
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("cannot run unshare (util-linux)")
    }

    /// Start sshd and wait until it answers; returns false when it died (log explains).
    fn try_start(&self) -> bool {
        let mut child = self.spawn();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(_)) = child.try_wait() {
                return false;
            }
            if wait_ssh(&self.ip, self.port, Duration::from_millis(50)) {
                *self.child.lock().unwrap() = Some(child);
                return true;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
        }
    }

    pub fn start(&self) {
        assert!(
            self.child.lock().unwrap().is_none(),
            "node {} is already running",
            self.ip
        );
        if !self.try_start() {
            panic!(
                "sshd of test node {}:{} did not start; log:\n{}",
                self.ip,
                self.port,
                read_log(&self.dir)
            );
        }
    }

    /// Kill the node: unshare dies, its child (PID 1 of the node's namespace) gets SIGKILL,
    /// and with it every process of the node (sessions included).
    pub fn stop(&self) {
        if let Some(mut c) = self.child.lock().unwrap().take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        // Wait until the port is closed, so a following connect fails for sure.
        let addr: std::net::SocketAddr = format!("{}:{}", self.ip, self.port).parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline
            && std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok()
        {
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Send `sig` to every process in the node's PID namespace.
    pub fn signal_all(&self, sig: i32) {
        let Some(pid) = self.pid() else { return };
        let children =
            std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        let Some(init) = children.split_whitespace().next() else {
            return;
        };
        let Ok(ns) = std::fs::read_link(format!("/proc/{init}/ns/pid")) else {
            return;
        };
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            let name = e.file_name();
            let Some(p) = name.to_str().and_then(|s| s.parse::<i32>().ok()) else {
                continue;
            };
            if std::fs::read_link(format!("/proc/{p}/ns/pid"))
                .ok()
                .as_ref()
                == Some(&ns)
            {
                unsafe { libc::kill(p, sig) };
            }
        }
    }

    pub fn detach(&mut self) {
        self.detached = true;
    }
}

impl Drop for FastNode {
    fn drop(&mut self) {
        if !self.detached {
            self.stop();
        }
    }
}

fn read_log(dir: &Path) -> String {
    let mut s = String::new();
    if let Ok(mut f) = std::fs::File::open(dir.join("sshd.log")) {
        let _ = f.read_to_string(&mut s);
    }
    s
}

/// Private `/etc/passwd`, `/etc/group`, `/etc/shadow` and `/etc/sudoers.d` shared by the nodes
/// of one set: the host's entries plus the test users.
fn write_etc(base: &Path) {
    let etc = base.join("etc");
    std::fs::create_dir_all(etc.join("sudoers.d")).unwrap();
    let keep = |file: &str| -> String {
        std::fs::read_to_string(file)
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.starts_with("dpuser:") && !l.starts_with("dppass:"))
            .map(|l| format!("{l}\n"))
            .collect()
    };
    let mut passwd = keep("/etc/passwd");
    passwd.push_str(&format!(
        "{SUDO_USER}:x:{DPUSER_UID}:{DPUSER_UID}:darkport test:/home/{SUDO_USER}:/bin/bash\n\
         {PASS_USER}:x:{DPPASS_UID}:{DPPASS_UID}:darkport test:/home/{PASS_USER}:/bin/bash\n"
    ));
    let mut group = keep("/etc/group");
    group.push_str(&format!(
        "{SUDO_USER}:x:{DPUSER_UID}:\n{PASS_USER}:x:{DPPASS_UID}:\n"
    ));
    let hash = run_ok(Command::new("openssl").args([
        "passwd",
        "-6",
        "-salt",
        "darkporttest",
        DPPASS_PASSWORD,
    ]));
    let mut shadow = keep("/etc/shadow");
    shadow.push_str(&format!(
        "{SUDO_USER}:*:19000:0:99999:7:::\n{PASS_USER}:{}:19000:0:99999:7:::\n",
        hash.trim()
    ));
    std::fs::write(etc.join("passwd"), passwd).unwrap();
    std::fs::write(etc.join("group"), group).unwrap();
    std::fs::write(etc.join("shadow"), shadow).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(etc.join("shadow"), std::fs::Permissions::from_mode(0o640)).unwrap();
    let sudoers = etc.join("sudoers.d/darkport-test");
    std::fs::write(
        &sudoers,
        format!(
            "Defaults lecture=never\n\
             Defaults:{PASS_USER} timestamp_timeout=0\n\
             {SUDO_USER} ALL=(ALL) NOPASSWD: ALL\n\
             {PASS_USER} ALL=(ALL) ALL\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&sudoers, std::fs::Permissions::from_mode(0o440)).unwrap();
    std::fs::set_permissions(
        etc.join("sudoers.d"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    std::fs::write(base.join("empty"), "").unwrap();
}

pub fn start_all(base: &Path, n: usize, client_key: &Path) -> Vec<FastNode> {
    assert!((1..=250).contains(&n), "1..=250 fast nodes per set");
    for d in base.ancestors() {
        for bad in ["/tmp", "/srv", "/opt", "/home"] {
            assert!(
                d != Path::new(bad),
                "node directory {} must not be below {bad} (nodes get a private {bad})",
                base.display()
            );
        }
    }
    // Mount points the nodes need (harmless empty directories on the host).
    for d in ["/srv", "/opt", "/home", "/var/lib/darkport", "/run/sshd"] {
        std::fs::create_dir_all(d).unwrap();
    }
    write_etc(base);
    let auth = base.join("authorized_keys");
    std::fs::copy(client_key.with_extension("pub"), &auth).unwrap();

    let set = NET_COUNTER.fetch_add(1, Ordering::SeqCst);
    let b1 = 100 + (std::process::id() % 100) as usize;
    let b2 = 1 + (set % 250);
    let mut nodes = Vec::with_capacity(n);
    for i in 0..n {
        let ip = format!("127.{b1}.{b2}.{}", i + 1);
        let dir = base.join(format!("node{}", i + 1));
        let root = dir.join("root");
        for m in ["srv", "opt", "tmp", "var/lib/darkport"] {
            std::fs::create_dir_all(root.join(m)).unwrap();
        }
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(root.join("tmp"), std::fs::Permissions::from_mode(0o1777))
            .unwrap();
        for (u, uid) in [(SUDO_USER, DPUSER_UID), (PASS_USER, DPPASS_UID)] {
            let h = root.join("home").join(u);
            std::fs::create_dir_all(&h).unwrap();
            std::os::unix::fs::chown(&h, Some(uid), Some(uid)).unwrap();
        }
        keygen(&dir.join("ssh_host_ed25519_key"), "", "ed25519");
        nodes.push(FastNode {
            ip,
            port: 0,
            dir,
            base: base.to_path_buf(),
            child: Mutex::new(None),
            detached: false,
        });
    }
    // Start all nodes, then wait for them together (each retries on a port race).
    for attempt in 0..5 {
        let mut pending = Vec::new();
        for (i, node) in nodes.iter_mut().enumerate() {
            if node.child.lock().unwrap().is_some() {
                continue;
            }
            node.port = free_port(&node.ip);
            write_sshd_config(node, &auth);
            let _ = std::fs::write(node.dir.join("sshd.log"), "");
            pending.push((i, node.spawn()));
        }
        if pending.is_empty() {
            break;
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        for (i, mut child) in pending {
            let node = &nodes[i];
            loop {
                if let Ok(Some(_)) = child.try_wait() {
                    if attempt == 4 {
                        panic!(
                            "sshd of test node {}:{} did not start; log:\n{}",
                            node.ip,
                            node.port,
                            read_log(&node.dir)
                        );
                    }
                    break;
                }
                if wait_ssh(&node.ip, node.port, Duration::from_millis(50)) {
                    *node.child.lock().unwrap() = Some(child);
                    break;
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "sshd of test node {}:{} did not answer in 10 s; log:\n{}",
                        node.ip,
                        node.port,
                        read_log(&node.dir)
                    );
                }
            }
        }
    }
    nodes
}

/// The connection limits of the nodes' sshd: generous by default (tests open many sessions);
/// `DARKPORT_NODES_SSHD_DEFAULTS=1` keeps OpenSSH's own (`MaxStartups 10:30:100`,
/// `MaxSessions 10`), what a customer's hosts have (the scale benchmark uses it).
fn sshd_limits() -> &'static str {
    if std::env::var_os("DARKPORT_NODES_SSHD_DEFAULTS").is_some_and(|v| v == "1") {
        ""
    } else {
        "MaxSessions 64\nMaxStartups 200\n"
    }
}

fn write_sshd_config(node: &FastNode, auth: &Path) {
    let d = node.dir.display();
    let cfg = format!(
        "ListenAddress {ip}:{port}\n\
         HostKey {d}/ssh_host_ed25519_key\n\
         PidFile none\n\
         UsePAM no\n\
         PermitRootLogin yes\n\
         StrictModes no\n\
         PubkeyAuthentication yes\n\
         PasswordAuthentication yes\n\
         KbdInteractiveAuthentication no\n\
         AuthorizedKeysFile {auth}\n\
         {limits}\
         UseDNS no\n\
         PrintMotd no\n\
         PrintLastLog no\n\
         LogLevel ERROR\n\
         Subsystem sftp /usr/lib/openssh/sftp-server\n",
        ip = node.ip,
        port = node.port,
        auth = auth.display(),
        limits = sshd_limits(),
    );
    std::fs::write(node.dir.join("sshd_config"), cfg).unwrap();
}
