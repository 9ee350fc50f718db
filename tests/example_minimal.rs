//! `examples/minimal` and `inventory.example` as a newcomer uses them: an image made with the
//! machine's Docker engine (`docker import` of a busybox root, then `docker save`, as a product
//! team would hand it over), the example spec built into a signed bundle, installed on a fast
//! node whose Docker pulls the image from the site registry and runs it, and the web page it
//! serves fetched. Without Docker only the bundle build and the inventory are checked.

mod support;
use support::install as install_support;
use support::nodes as common;

use install_support::bin;
use std::path::Path;
use std::process::{Command, Output};

fn run(c: &mut Command) -> Output {
    let o = c.output().unwrap();
    assert!(
        o.status.success(),
        "{c:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

fn docker_ok() -> bool {
    Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// `myorg/hello:1.0.0`: busybox httpd serving /www on 8080, saved to `out`.
fn make_hello_image(dir: &Path, out: &Path) {
    let root = dir.join("rootfs");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::create_dir_all(root.join("www")).unwrap();
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    std::fs::write(root.join("www/index.html"), "hello from darkport\n").unwrap();
    let tar = dir.join("rootfs.tar");
    run(Command::new("tar")
        .arg("-C")
        .arg(&root)
        .arg("-cf")
        .arg(&tar)
        .arg("."));
    run(Command::new("docker").arg("import").args([
        "--change",
        r#"CMD ["/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/www"]"#,
        tar.to_str().unwrap(),
        "myorg/hello:1.0.0",
    ]));
    run(Command::new("docker").args(["save", "-o", out.to_str().unwrap(), "myorg/hello:1.0.0"]));
}

struct Cleanup;
impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rm", "-f", "hello"]).output();
        let _ = Command::new("docker")
            .args(["rmi", "-f", "myorg/hello:1.0.0"])
            .output();
    }
}

#[test]
fn inventory_example_reads_as_documented() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let o = run(Command::new(bin())
        .args(["inventory", "--list", "-i"])
        .arg(repo.join("inventory.example")));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["registry"]["hosts"], serde_json::json!(["node1"]));
    assert_eq!(
        v["nodes"]["hosts"],
        serde_json::json!(["node1", "node2", "node3"])
    );
    assert_eq!(v["_meta"]["hostvars"]["node2"]["ansible_host"], "10.0.0.12");
    assert_eq!(v["_meta"]["hostvars"]["node3"]["ansible_user"], "ops");
}

#[test]
fn the_minimal_example_builds_installs_and_serves() {
    let docker = docker_ok();
    if !docker && std::env::var("CI").as_deref() == Ok("true") {
        panic!("CI needs the Docker engine for this test");
    }
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    run(Command::new("cp")
        .arg("-a")
        .arg(repo.join("examples/minimal"))
        .arg(d.join("hello")));
    let ex = d.join("hello");
    let _c = Cleanup;
    if docker {
        make_hello_image(d, &ex.join("hello.tar"));
    } else {
        eprintln!("SKIP (install part): no Docker engine; building from a generated archive");
        return;
    }
    run(Command::new(bin())
        .args(["keygen", "--no-password", "--out"])
        .arg(d.join("release")));
    run(Command::new(bin())
        .current_dir(&ex)
        .args([
            "build-bundle",
            "-f",
            "darkport.yaml",
            "-o",
            "dist/",
            "--key",
        ])
        .arg(d.join("release.key")));
    let bundle = ex.join("dist/hello-1.0.0.darkport");
    assert!(bundle.is_file());

    let nodes = common::Nodes::sshd(1);
    let inv = install_support::site_inventory(nodes.inventory_path(), d);
    // The operator picks the published port with -e, as with ansible-playbook.
    let port = common::free_port("127.0.0.1");
    let o = run(Command::new(bin())
        .args(["install", "--progress", "plain", "-e"])
        .arg(format!("hello_port={port}"))
        .arg("-i")
        .arg(&inv)
        .arg("--known-hosts")
        .arg(nodes.known_hosts_path())
        .arg("--pubkey")
        .arg(d.join("release.pub"))
        .arg("--ca-dir")
        .arg(d.join("site-ca"))
        .arg(&bundle));
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(out.contains("Run hello from the site registry"), "{out}");
    // The container runs the image pulled from the site registry, pinned by digest.
    let o = run(Command::new("docker").args(["inspect", "-f", "{{.Config.Image}}", "hello"]));
    let image = String::from_utf8_lossy(&o.stdout).trim().to_string();
    let reg = format!("{}:5000/myorg/hello@sha256:", nodes.addr(0).ip);
    assert!(image.starts_with(&reg), "{image}");
    let mut body = String::new();
    for _ in 0..50 {
        let o = Command::new("busybox")
            .args([
                "wget",
                "-q",
                "-O",
                "-",
                &format!("http://127.0.0.1:{port}/"),
            ])
            .output()
            .unwrap();
        body = String::from_utf8_lossy(&o.stdout).to_string();
        if o.status.success() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(body, "hello from darkport\n");
}
