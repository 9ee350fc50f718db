//! The host's Docker engine pulls from `darkport registry serve` (loopback is an insecure-allowed
//! registry for Docker) an image whose layer holds Debian's static busybox, and runs it.
//! Needs Docker: fails when CI=true and Docker is missing, skips with a reason otherwise.

mod registry_support;

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
