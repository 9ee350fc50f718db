//! Cluster nodes: Docker containers on a private internal network (own IP, own filesystem).

use super::*;

pub fn docker_usable() -> Result<(), String> {
    match Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .stdin(Stdio::null())
        .output()
    {
        Err(e) => Err(format!("`docker` cannot be run: {e}")),
        Ok(o) if !o.status.success() => Err(format!(
            "`docker info` failed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Ok(_) => Ok(()),
    }
}

/// Build (once per machine, cached by recipe hash) or find the node image; returns its tag.
pub fn node_image() -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/node-image.sh");
    let o = Command::new("bash")
        .arg(&script)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .expect("cannot run scripts/node-image.sh");
    assert!(
        o.status.success(),
        "building the cluster node image failed ({})",
        o.status
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

pub struct Cluster {
    network: String,
    names: Vec<String>,
    ips: Vec<String>,
    base: PathBuf,
    detached: bool,
}

impl Cluster {
    pub fn launch(base: &Path, n: usize, client_key: &Path) -> Cluster {
        assert!((1..=200).contains(&n), "1..=200 cluster nodes per set");
        let image = node_image();
        let id = base
            .file_name()
            .unwrap()
            .to_string_lossy()
            .replace("dpnodes-", "dp-")
            .trim_start_matches('.')
            .to_string();
        let network = format!("{id}-net");
        let subnet = pick_subnet(&network);
        let prefix = subnet_prefix(&subnet);
        run_ok(Command::new("docker").args([
            "network",
            "create",
            "--internal",
            "--subnet",
            &subnet,
            "--label",
            "darkport.test=1",
            &network,
        ]));
        let mut c = Cluster {
            network,
            names: Vec::new(),
            ips: Vec::new(),
            base: base.to_path_buf(),
            detached: false,
        };
        let auth = base.join("authorized_keys");
        std::fs::copy(client_key.with_extension("pub"), &auth).unwrap();
        for i in 0..n {
            let dir = base.join(format!("node{}", i + 1));
            std::fs::create_dir_all(&dir).unwrap();
            keygen(&dir.join("ssh_host_ed25519_key"), "", "ed25519");
            c.names.push(format!("{id}-node{}", i + 1));
            c.ips.push(format!("{prefix}.{}", 10 + i));
        }
        // `docker run` all nodes in parallel (each takes a while on a loaded machine).
        std::thread::scope(|s| {
            let hs: Vec<_> = (0..n)
                .map(|i| {
                    let (name, ip, net) = (&c.names[i], &c.ips[i], &c.network);
                    let dir = base.join(format!("node{}", i + 1));
                    let (auth, image) = (&auth, &image);
                    s.spawn(move || {
                        run_ok(
                            Command::new("docker")
                                .args(["run", "-d", "--name", name, "--hostname"])
                                .arg(format!("node{}", i + 1))
                                .args(["--network", net, "--ip", ip])
                                .args(["--label", "darkport.test=1"])
                                // What podman needs to run the product nested in the node
                                // (no --privileged: it is refused where this runs in a
                                // container itself).
                                .args(["--cap-add", "SYS_ADMIN"])
                                .args(["--security-opt", "seccomp=unconfined"])
                                .args(["--security-opt", "apparmor=unconfined"])
                                .arg("-v")
                                .arg(format!(
                                    "{}:/etc/ssh/ssh_host_ed25519_key:ro",
                                    dir.join("ssh_host_ed25519_key").display()
                                ))
                                .arg("-v")
                                .arg(format!("{}:/etc/ssh/authorized_keys:ro", auth.display()))
                                .arg(image),
                        )
                    })
                })
                .collect();
            for h in hs {
                h.join().unwrap();
            }
        });
        for i in 0..n {
            c.wait_up(i);
        }
        c
    }

    fn wait_up(&self, i: usize) {
        if !wait_ssh(&self.ips[i], 22, Duration::from_secs(30)) {
            let logs = Command::new("docker")
                .args(["logs", &self.names[i]])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
                .unwrap_or_default();
            panic!(
                "cluster node {} ({}) did not answer on port 22 in 30 s; logs:\n{logs}",
                self.names[i], self.ips[i]
            );
        }
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn ip(&self, i: usize) -> String {
        self.ips[i].clone()
    }

    pub fn hostkey_pub(&self, i: usize) -> PathBuf {
        self.base
            .join(format!("node{}", i + 1))
            .join("ssh_host_ed25519_key.pub")
    }

    pub fn exec(&self, i: usize, cmd: &str) -> Output {
        Command::new("docker")
            .args(["exec", &self.names[i], "sh", "-c", cmd])
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn docker(&self, args: &[&str]) {
        run_ok(Command::new("docker").args(args));
    }

    pub fn stop(&self, i: usize) {
        self.docker(&["kill", &self.names[i]]);
    }

    pub fn start(&self, i: usize) {
        self.docker(&["start", &self.names[i]]);
        self.wait_up(i);
    }

    pub fn pause(&self, i: usize) {
        self.docker(&["pause", &self.names[i]]);
    }

    pub fn unpause(&self, i: usize) {
        self.docker(&["unpause", &self.names[i]]);
    }

    pub fn disconnect(&self, i: usize) {
        self.docker(&["network", "disconnect", "-f", &self.network, &self.names[i]]);
    }

    pub fn reconnect(&self, i: usize) {
        self.docker(&[
            "network",
            "connect",
            "--ip",
            &self.ips[i],
            &self.network,
            &self.names[i],
        ]);
    }

    pub fn state_lines(&self) -> String {
        let mut s: String = self
            .names
            .iter()
            .map(|n| format!("container {n}\n"))
            .collect();
        s.push_str(&format!("network {}\n", self.network));
        s
    }

    pub fn detach(&mut self) {
        self.detached = true;
    }

    pub fn remove_all(&mut self) {
        if self.detached {
            return;
        }
        if !self.names.is_empty() {
            let _ = Command::new("docker")
                .args(["rm", "-f"])
                .args(&self.names)
                .output();
        }
        let _ = Command::new("docker")
            .args(["network", "rm", &self.network])
            .output();
        self.names.clear();
    }
}

/// Let Docker choose a free subnet (a throw-away network), then reuse it explicitly: `--ip` needs
/// a network with a user-configured subnet, and fixed IPs survive stop/start and reconnects.
fn pick_subnet(name: &str) -> String {
    let probe = format!("{name}-probe");
    run_ok(Command::new("docker").args(["network", "create", "--internal", &probe]));
    let subnet = run_ok(Command::new("docker").args([
        "network",
        "inspect",
        "-f",
        "{{(index .IPAM.Config 0).Subnet}}",
        &probe,
    ]));
    run_ok(Command::new("docker").args(["network", "rm", &probe]));
    subnet.trim().to_string()
}

/// `172.18.0.0/16` → `172.18.0`.
fn subnet_prefix(subnet: &str) -> String {
    let ip = subnet.split('/').next().unwrap();
    let parts: Vec<&str> = ip.split('.').collect();
    assert_eq!(parts.len(), 4, "unexpected subnet {subnet}");
    parts[..3].join(".")
}
