//! The host's Docker engine pulls from `darkport registry serve` (loopback is an insecure-allowed
//! registry for Docker) an image whose layer holds Debian's static busybox, and runs it.
//! Needs Docker: fails when CI=true and Docker is missing, skips with a reason otherwise.

mod support;
use support::registry as registry_support;

use darkport::registry::index::OCI_MANIFEST;
use darkport::registry::RepoIndex;
use registry_support::*;
use std::process::Command;

fn docker(args: &[&str]) -> std::process::Output {
    Command::new("docker")
        .args(args)
        .output()
        .expect("run docker")
}

#[test]
fn docker_pulls_and_runs_a_busybox_image() {
    if !require_tool("docker", &["info"]) {
        return;
    }
    let busybox = match std::fs::read("/bin/busybox") {
        Ok(b) => b,
        Err(e) => {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("/bin/busybox (Debian busybox-static) is required in CI: {e}");
            }
            eprintln!("SKIP: /bin/busybox missing ({e}); install busybox-static");
            return;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let img = image(
        root,
        "amd64",
        &[
            vec![("bin/busybox", &busybox[..], 0o755)],
            vec![("etc/motd", b"hello from a darkport registry\n", 0o644)],
        ],
        &["/bin/busybox", "cat", "/etc/motd"],
    );
    let repo = format!("darkport-test/busybox{}", std::process::id());
    let mut idx = RepoIndex::default();
    idx.set_tag(&repo, "1", img.manifest, OCI_MANIFEST);
    idx.save_atomic(root).unwrap();
    let s = Serve::start(root, &[]);
    let reference = format!("{}/{repo}:1", s.host());

    struct Cleanup(String);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = Command::new("docker").args(["rmi", "-f", &self.0]).output();
        }
    }
    let _c = Cleanup(reference.clone());

    let o = docker(&["pull", &reference]);
    assert!(
        o.status.success(),
        "docker pull failed: {}\nserver log:\n{}",
        String::from_utf8_lossy(&o.stderr),
        s.log_text()
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains(&img.manifest.to_string()),
        "pull output names the digest: {out}"
    );
    let o = docker(&["run", "--rm", "--network", "none", &reference]);
    assert!(
        o.status.success(),
        "docker run: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "hello from a darkport registry\n"
    );
    let o = docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        &reference,
        "/bin/busybox",
        "echo",
        "busybox",
        "runs",
    ]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "busybox runs\n");
    // The engine fetched the layers from us.
    let log = s.log_text();
    for (l, _) in &img.layers {
        assert!(
            log.contains(&format!("GET /v2/{repo}/blobs/{l} 200")),
            "{log}"
        );
    }
}

/// containerd (the engine's own, via `ctr`) fetches over TLS, trusting the site CA through a
/// `hosts.toml` in a hosts directory (what the install flow writes to
/// `/etc/containerd/certs.d/<host:port>/`), with basic auth; by tag (an index) and by digest.
#[test]
fn containerd_fetches_over_tls_trusting_the_ca_via_hosts_toml() {
    // The system containerd (Debian's containerd service) or the one dockerd runs itself.
    let sock = [
        "/run/containerd/containerd.sock",
        "/var/run/docker/containerd/containerd.sock",
    ]
    .into_iter()
    .find(|p| std::path::Path::new(p).exists())
    .unwrap_or("/run/containerd/containerd.sock");
    if !require_tool("ctr", &["--address", sock, "version"]) {
        return;
    }
    let f = fixture();
    let work = tempfile::tempdir().unwrap();
    let (ca, srv) = (work.path().join("ca"), work.path().join("srv"));
    let run = |args: &[&str]| {
        let o = Command::new(bin()).args(args).output().unwrap();
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    run(&["registry", "ca", "init", "--dir", ca.to_str().unwrap()]);
    run(&[
        "registry",
        "cert",
        "--ca",
        ca.to_str().unwrap(),
        "--host",
        "127.0.0.1",
        "--out",
        srv.to_str().unwrap(),
    ]);
    let pw = work.path().join("htpasswd");
    let mut c = Command::new(bin())
        .args([
            "registry",
            "passwd",
            "--password-stdin",
            "--user",
            "node",
            "--file",
        ])
        .arg(&pw)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    writeln!(c.stdin.take().unwrap(), "n0de").unwrap();
    assert!(c.wait().unwrap().success());
    let s = Serve::start(
        f.root(),
        &[
            "--tls-cert",
            srv.join("server.crt").to_str().unwrap(),
            "--tls-key",
            srv.join("server.key").to_str().unwrap(),
            "--auth",
            pw.to_str().unwrap(),
        ],
    );
    let host = s.host();
    let hosts_dir = work.path().join("certs.d");
    let hd = hosts_dir.join(&host);
    std::fs::create_dir_all(&hd).unwrap();
    std::fs::copy(srv.join("ca.crt"), hd.join("ca.crt")).unwrap();
    std::fs::write(
        hd.join("hosts.toml"),
        format!(
            "server = \"https://{host}\"\n\n[host.\"https://{host}\"]\n  capabilities = [\"pull\", \"resolve\"]\n  ca = \"{}\"\n",
            hd.join("ca.crt").display()
        ),
    )
    .unwrap();
    let ns = format!("darkport-test-{}", std::process::id());
    let ctr = |args: &[&str]| {
        Command::new("ctr")
            .args(["--address", sock, "--namespace", &ns])
            .args(args)
            .output()
            .unwrap()
    };
    struct Cleanup(Vec<String>, String, String);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let base = ["--address", &self.2, "--namespace"];
            for r in &self.0 {
                let _ = Command::new("ctr")
                    .args(base)
                    .arg(&self.1)
                    .args(["images", "rm", "--sync", r])
                    .output();
            }
            let _ = Command::new("ctr")
                .args(["--address", &self.2, "namespaces", "rm", &self.1])
                .output();
        }
    }
    let by_tag = format!("{host}/org/team/multi:2.0");
    let by_digest = format!("{host}/test/app@{}", f.app.manifest);
    let _c = Cleanup(
        vec![by_tag.clone(), by_digest.clone()],
        ns.clone(),
        sock.to_string(),
    );
    let hd_arg = hosts_dir.to_str().unwrap();

    // Without credentials: refused.
    let o = ctr(&["content", "fetch", "--hosts-dir", hd_arg, &by_tag]);
    let err = String::from_utf8_lossy(&o.stderr).to_lowercase();
    assert!(!o.status.success(), "fetch without credentials must fail");
    assert!(err.contains("401") || err.contains("unauthorized"), "{err}");
    for r in [&by_tag, &by_digest] {
        let o = ctr(&[
            "content",
            "fetch",
            "--hosts-dir",
            hd_arg,
            "--user",
            "node:n0de",
            r,
        ]);
        assert!(
            o.status.success(),
            "ctr fetch {r}: {}\n{}\nserver log:\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr),
            s.log_text()
        );
    }
    let ls = String::from_utf8_lossy(&ctr(&["images", "ls"]).stdout).to_string();
    assert!(ls.contains(&f.multi.0.to_string()), "{ls}");
    assert!(ls.contains(&f.app.manifest.to_string()), "{ls}");
    // The layers of the host platform's image and of test/app came from us.
    let log = s.log_text();
    assert!(
        log.contains(&format!("/blobs/{} 200", f.amd64.layers[0].0)),
        "{log}"
    );
    assert!(
        log.contains(&format!("/blobs/{} 200", f.app.layers[1].0)),
        "{log}"
    );
}
