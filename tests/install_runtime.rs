//! Layer compression against the node's real container runtime. Fast nodes share this
//! machine's Docker engine, so the preflight reads its real version: zstd layers need
//! Docker 23.0 or later, and an older engine (Debian 12's 20.10) gets a zstd bundle refused
//! before anything changes, while the default gzip bundle installs and that engine pulls and runs
//! its images from the site registry. Without Docker the test says so and checks only what it can.

mod support;
use support::install as install_support;
use support::nodes as common;

use install_support::{bin, build_bundle, build_example, json_of};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The engine's version (the server's, as the preflight reads it), if a daemon answers.
fn docker_server_version() -> Option<String> {
    let o = Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .output()
        .ok()?;
    let v = String::from_utf8_lossy(&o.stdout).trim().to_string();
    (o.status.success() && !v.is_empty()).then_some(v)
}

fn site_cmd(nodes: &common::Nodes, inv: &Path, dir: &Path, args: &[&str], b: &Path) -> Output {
    Command::new(bin())
        .args(args)
        .arg("-i")
        .arg(inv)
        .arg("--known-hosts")
        .arg(nodes.known_hosts_path())
        .arg("--pubkey")
        .arg(dir.join("k.pub"))
        .args(if args[0] == "install" {
            vec!["--ca-dir".into(), dir.join("site-ca").into_os_string()]
        } else {
            vec![]
        })
        .args(["--progress", "plain"])
        .arg(b)
        .output()
        .unwrap()
}

fn docker(args: &[&str]) -> Output {
    Command::new("docker").args(args).output().unwrap()
}

/// Removes the pulled images when the test ends.
struct Rmi(Vec<String>);
impl Drop for Rmi {
    fn drop(&mut self) {
        for r in &self.0 {
            let _ = docker(&["rmi", "-f", r]);
        }
    }
}

/// A one-node site (node1 is the registry host) for `bundle`; returns the registry address.
fn one_node_site(dir: &Path) -> (common::Nodes, PathBuf, String) {
    let nodes = common::Nodes::sshd(1);
    let inv = install_support::site_inventory(nodes.inventory_path(), dir);
    let reg = format!("{}:5000", nodes.addr(0).ip);
    (nodes, inv, reg)
}

#[test]
fn zstd_layers_are_refused_where_docker_cannot_pull_them_and_gzip_runs() {
    let Some(ver) = docker_server_version() else {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("CI needs the Docker engine for this test");
        }
        eprintln!("SKIP: no Docker engine answers `docker version`");
        return;
    };
    let major: u32 = ver
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    // A zstd image whose layers the engine already holds (the same content pulled as gzip by
    // `make demo` or another test) would "pull" without the engine reading zstd at all.
    install_support::remove_product_images();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // The default build: gzip layers.
    let (gz_bundle, _) = build_example(dir);
    let zst_out = dir.join("dist-zstd");
    build_bundle(
        dir,
        &dir.join("bundle/darkport.yaml"),
        &zst_out,
        &["--layer-compression".as_ref(), "zstd".as_ref()],
    );
    let zst_bundle = zst_out.join("dockercoins-1.0.0.darkport");

    // 1. zstd: refused by preflight (and install) on an engine older than 23.0, naming it.
    let site_dir = dir.join("zstd-site");
    std::fs::create_dir_all(&site_dir).unwrap();
    let (nodes, inv, reg) = one_node_site(&site_dir);
    std::fs::copy(dir.join("k.pub"), site_dir.join("k.pub")).unwrap();
    let o = site_cmd(
        &nodes,
        &inv,
        &site_dir,
        &["preflight", "--json"],
        &zst_bundle,
    );
    let j = json_of(&o);
    let problems = j["nodes"][0]["problems"].to_string();
    if major < 23 {
        assert_eq!(o.status.code(), Some(1), "{j}");
        let want = format!("docker {ver} cannot pull zstd layers (needs docker >= 23.0)");
        assert!(problems.contains(&want), "{problems}");
        let o = site_cmd(&nodes, &inv, &site_dir, &["install"], &zst_bundle);
        assert_eq!(o.status.code(), Some(1));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("preflight failed: nothing was changed"),
            "{err}"
        );
        assert!(!nodes
            .node_root(0)
            .join("var/lib/darkport/state.json")
            .exists());

        // The refusal is right: installed anyway (the operator says docker does not run the
        // product here), this engine really cannot pull the image.
        let mut s = std::fs::read_to_string(&inv).unwrap();
        s.push_str("darkport_runtime=none\n");
        std::fs::write(&inv, s).unwrap();
        let o = site_cmd(&nodes, &inv, &site_dir, &["install"], &zst_bundle);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let r = format!("{reg}/dockercoins/rng:1.0.0");
        let _rm = Rmi(vec![r.clone()]);
        let o = docker(&["pull", &r]);
        assert!(!o.status.success(), "docker {ver} pulled a zstd image");
    } else {
        assert!(o.status.success(), "docker {ver} pulls zstd: {j}");
    }
    drop(nodes);

    // 2. gzip (the default): the same engine pulls from the site registry and runs the image.
    let site_dir = dir.join("gzip-site");
    std::fs::create_dir_all(&site_dir).unwrap();
    let (nodes, inv, reg) = one_node_site(&site_dir);
    std::fs::copy(dir.join("k.pub"), site_dir.join("k.pub")).unwrap();
    let o = site_cmd(&nodes, &inv, &site_dir, &["install"], &gz_bundle);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r = format!("{reg}/dockercoins/rng:1.0.0");
    let _rm = Rmi(vec![r.clone()]);
    let o = docker(&["pull", &r]);
    assert!(
        o.status.success(),
        "docker {ver} pull {r}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--entrypoint",
        "/bin/sh",
        &r,
        "-c",
        "test -s /app/rng.sh && echo ran",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "ran",
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}
