//! Faults during `darkport install` on real sshd nodes: the controller killed in the middle of
//! pushing a large blob (the re-run resumes the partial upload and sends only the rest), and a
//! node stopped in the middle of an install (reported, the others finish, a re-run completes it).

mod support;
use support::install as install_support;
use support::nodes as common;

use install_support::{bin, json_of};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIG: usize = 256 << 20;

/// The example product plus one image with a large incompressible layer (zstd layers).
fn build_big(dir: &Path) -> (PathBuf, PathBuf) {
    let (_, pubkey) = install_support::build_example(dir);
    let big = dir.join("bundle/images/big");
    std::fs::create_dir_all(&big).unwrap();
    let mut f = std::fs::File::create(big.join("blob.bin")).unwrap();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut buf = vec![0u8; 1 << 20];
    for _ in 0..(BIG >> 20) {
        for c in buf.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            c.copy_from_slice(&x.to_le_bytes());
        }
        f.write_all(&buf).unwrap();
    }
    drop(f);
    let spec = dir.join("bundle/darkport.yaml");
    let mut s = std::fs::read_to_string(&spec).unwrap();
    s = s.replace("layer_compression: gzip", "layer_compression: zstd");
    s = s.replace(
        "playbooks: ../playbooks",
        "  - name: dockercoins/big:1.0.0\n    source: dir:build/base,images/big\n    config:\n      Entrypoint: [\"/bin/true\"]\nplaybooks: ../playbooks",
    );
    std::fs::write(&spec, s).unwrap();
    let out = dir.join("dist-big");
    install_support::build_bundle(dir, &spec, &out, &[]);
    (out.join("dockercoins-1.0.0.darkport"), pubkey)
}

fn install_cmd(nodes: &common::Nodes, inv: &Path, pubkey: &Path, ca: &Path, b: &Path) -> Command {
    let mut c = Command::new(bin());
    c.args(["install", "--json", "--progress", "plain", "-i"])
        .arg(inv)
        .arg("--known-hosts")
        .arg(nodes.known_hosts_path())
        .arg("--pubkey")
        .arg(pubkey)
        .arg("--ca-dir")
        .arg(ca)
        .arg(b)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// Bytes of the partial uploads in node1's CAS.
fn partial_bytes(nodes: &common::Nodes) -> u64 {
    let dir = nodes.node_root(0).join("var/lib/darkport/blobs/sha256");
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(".part"))
                .map(|e| e.metadata().map(|m| m.len()).unwrap_or(0))
                .sum()
        })
        .unwrap_or(0)
}

fn wait_partial(nodes: &common::Nodes, at_least: u64) {
    let t0 = Instant::now();
    while partial_bytes(nodes) < at_least {
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "no partial upload appeared on node1"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn out_of(o: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn killed_controller_and_stopped_node_resume_on_rerun() {
    let tmp = tempfile::tempdir().unwrap();
    let (bundle, pubkey) = build_big(tmp.path());
    let nodes = common::Nodes::sshd(3);
    let inv = install_support::site_inventory(nodes.inventory_path(), tmp.path());
    // zstd keeps building the 256 MiB layer fast; these nodes run no container
    // (dockercoins_run=false), so their Docker's age (zstd needs 23.0) does not matter here.
    let mut s = std::fs::read_to_string(&inv).unwrap();
    s.push_str("darkport_runtime=none\n");
    std::fs::write(&inv, s).unwrap();
    let ca = tmp.path().join("site-ca");

    // 1. Kill the controller (SIGKILL) while it pushes the large blob.
    let mut child = install_cmd(&nodes, &inv, &pubkey, &ca, &bundle)
        .spawn()
        .unwrap();
    wait_partial(&nodes, 32 << 20);
    child.kill().unwrap();
    let _ = child.wait();
    let left = partial_bytes(&nodes);
    assert!(left >= 32 << 20, "partial upload left: {left}");

    // 2. Re-run; while it pushes the rest, stop node3: it is reported, the others finish.
    let child = install_cmd(&nodes, &inv, &pubkey, &ca, &bundle)
        .spawn()
        .unwrap();
    wait_partial(&nodes, left + (16 << 20));
    nodes.stop(2);
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", out_of(&o));
    let j = json_of(&o);
    let n1 = &j["nodes"][0];
    assert_eq!(n1["ok"], true, "{}", out_of(&o));
    assert!(
        n1["push"]["bytes_resumed"].as_u64().unwrap() >= left,
        "the re-run resumed the partial upload: {n1}"
    );
    assert!(
        n1["push"]["bytes_sent"].as_u64().unwrap() < BIG as u64,
        "the re-run sent only the rest: {n1}"
    );
    assert_eq!(j["nodes"][1]["ok"], true, "{}", out_of(&o));
    assert_eq!(j["nodes"][2]["ok"], false);
    let err = j["nodes"][2]["error"].as_str().unwrap();
    assert!(err.contains("node3"), "{err}");
    for i in 0..2 {
        let st: serde_json::Value = serde_json::from_slice(
            &std::fs::read(nodes.node_root(i).join("var/lib/darkport/state.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(st["version"], "1.0.0", "node{}", i + 1);
    }

    // 3. node3 back: the same command completes it and sends no blob.
    nodes.start(2);
    let o = install_cmd(&nodes, &inv, &pubkey, &ca, &bundle)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", out_of(&o));
    let j = json_of(&o);
    assert_eq!(j["nodes"][0]["push"]["blobs_sent"], 0);
    let st: serde_json::Value = serde_json::from_slice(
        &std::fs::read(nodes.node_root(2).join("var/lib/darkport/state.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(st["version"], "1.0.0");
    assert_eq!(partial_bytes(&nodes), 0);
}

/// A darkport binary that does not run on the registry host (here: the file at its path is a
/// script that fails like a loader missing a C library version) stops the install at the push
/// with the host and the loader's words, before any blob is sent.
#[test]
fn a_binary_that_does_not_run_on_the_registry_host_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let (bundle, pubkey) = install_support::build_example(tmp.path());
    let nodes = common::Nodes::sshd(1);
    let inv = install_support::site_inventory(nodes.inventory_path(), tmp.path());
    let hex = darkport::digest::Digest::of_file(&bin()).unwrap().0.hex();
    let placed = nodes
        .node_root(0)
        .join(format!("var/lib/darkport/bin/darkport-{}", &hex[..16]));
    std::fs::create_dir_all(placed.parent().unwrap()).unwrap();
    std::fs::write(
        &placed,
        "#!/bin/sh\necho \"darkport: version 'GLIBC_2.99' not found\" >&2\nexit 1\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&placed, std::fs::Permissions::from_mode(0o755)).unwrap();
    let o = install_cmd(&nodes, &inv, &pubkey, &tmp.path().join("ca"), &bundle)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", out_of(&o));
    let all = out_of(&o);
    assert!(
        all.contains("does not run on node1") && all.contains("GLIBC_2.99"),
        "{all}"
    );
    let cas = nodes.node_root(0).join("var/lib/darkport/blobs/sha256");
    let stored = std::fs::read_dir(&cas).map(|d| d.count()).unwrap_or(0);
    assert_eq!(stored, 0, "no blob was sent");
}
