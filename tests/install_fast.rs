//! `darkport install / preflight / status` end to end on real sshd nodes (fast nodes): the
//! example product's signed bundle, the site registry seeded on node1 and read by the real
//! `skopeo` client with the digests the bundle signed.

mod support;
use support::install as install_support;
use support::nodes as common;

use install_support::{bin, build_example, json_of};

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

struct Site<'a> {
    nodes: &'a common::Nodes,
    inv: PathBuf,
    pubkey: PathBuf,
    ca: PathBuf,
}

impl Site<'_> {
    fn cmd(&self, args: &[&str], bundle: Option<&Path>) -> Output {
        let mut c = Command::new(bin());
        c.args(args)
            .arg("-i")
            .arg(&self.inv)
            .arg("--known-hosts")
            .arg(self.nodes.known_hosts_path())
            .arg("--progress")
            .arg("plain");
        if args[0] != "status" {
            c.arg("--pubkey").arg(&self.pubkey);
        }
        if args[0] != "preflight" {
            c.arg("--ca-dir").arg(&self.ca);
        }
        if let Some(b) = bundle {
            c.arg(b);
        }
        c.output().unwrap()
    }
}

/// A JSON document's shape: its keys and the type of each value (an array by its first
/// element), so a snapshot catches a renamed, dropped or retyped field but not a new timing.
fn shape(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), shape(v))).collect()),
        Value::Array(a) => Value::Array(a.first().map(shape).into_iter().collect()),
        Value::String(_) => "string".into(),
        Value::Number(_) => "number".into(),
        Value::Bool(_) => "bool".into(),
        Value::Null => "null".into(),
    }
}

fn shape_text(v: &Value) -> String {
    serde_json::to_string_pretty(&shape(v)).unwrap()
}

fn state_exists(nodes: &common::Nodes, i: usize) -> bool {
    nodes
        .node_root(i)
        .join("var/lib/darkport/state.json")
        .exists()
}

#[test]
fn install_seeds_the_site_registry_and_is_idempotent() {
    let tmp = tempfile::tempdir().unwrap();
    let (bundle, pubkey) = build_example(tmp.path());
    let nodes = common::Nodes::sshd(3);
    // Runtime trust goes to a private directory of each node (fast nodes share the host's /etc);
    // no container runtime is used on fast nodes: the playbook checks every image with skopeo.
    let inv = install_support::site_inventory(nodes.inventory_path(), tmp.path());
    let site = Site {
        nodes: &nodes,
        inv,
        pubkey,
        ca: tmp.path().join("site-ca"),
    };

    // 1. A tampered bundle is refused before any node is touched.
    let mut bad = std::fs::read(&bundle).unwrap();
    let n = bad.len();
    bad[n - 2048] ^= 0x55;
    let bad_path = tmp.path().join("tampered.darkport");
    std::fs::write(&bad_path, &bad).unwrap();
    let o = site.cmd(&["install"], Some(&bad_path));
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("refused: nothing was changed"), "{err}");
    for i in 0..3 {
        assert!(!state_exists(&nodes, i), "node{} was touched", i + 1);
    }

    // 2. A full disk on node3 is caught by preflight, and install changes nothing anywhere.
    nodes.exec_ok(2, "mount -t tmpfs -o size=1m tmpfs /var/lib/darkport");
    let o = site.cmd(&["preflight", "--json"], Some(&bundle));
    assert_eq!(o.status.code(), Some(1));
    let j = json_of(&o);
    let row = &j["nodes"][2];
    assert!(
        row["problems"][0]
            .as_str()
            .unwrap()
            .contains("not enough free space"),
        "{row}"
    );
    assert!(j["nodes"][0]["problems"].as_array().unwrap().is_empty());
    let o = site.cmd(&["install"], Some(&bundle));
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("preflight failed"));
    assert!(!state_exists(&nodes, 0));
    nodes.exec_ok(2, "umount /var/lib/darkport");

    // 3. A stopped node is reported unreachable by preflight.
    nodes.stop(1);
    let o = site.cmd(&["preflight"], Some(&bundle));
    assert_eq!(o.status.code(), Some(1));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.lines()
            .any(|l| l.starts_with("node2") && l.contains("unreachable")),
        "{out}"
    );
    nodes.start(1);

    // 4. Install: every blob goes to the registry host once.
    let o = site.cmd(&["install", "--json"], Some(&bundle));
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let j = json_of(&o);
    // The time of each phase, in order, adding up to at most the whole run.
    let phases: Vec<(&String, f64)> = j["phases"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k, v.as_f64().unwrap()))
        .collect();
    let names: Vec<&str> = phases.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        [
            "verify",
            "preflight",
            "push",
            "seed",
            "trust",
            "playbooks",
            "record"
        ]
    );
    let sum: f64 = phases.iter().map(|(_, v)| v).sum();
    assert!(
        phases.iter().all(|(_, v)| *v >= 0.0) && sum <= j["seconds"].as_f64().unwrap() + 0.01,
        "{phases:?}"
    );
    let manifest: Value = {
        let o = Command::new(bin())
            .args(["inspect", "--json", "--pubkey"])
            .arg(&site.pubkey)
            .arg(&bundle)
            .output()
            .unwrap();
        json_of(&o)
    };
    let n1 = &j["nodes"][0];
    assert_eq!(n1["host"], "node1");
    let sent = n1["push"]["blobs_sent"].as_u64().unwrap();
    assert!(sent > 0, "{n1}");
    assert!(
        j["nodes"][1]["push"].is_null(),
        "only registry hosts get blobs"
    );

    // The real skopeo client reads every image from the site registry, over TLS trusting the
    // site CA, with the manifest digest the bundle signed.
    let certs = tmp.path().join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    std::fs::copy(site.ca.join("ca.crt"), certs.join("ca.crt")).unwrap();
    let reg = format!("{}:5000", nodes.addr(0).ip);
    let images = manifest["images"]
        .as_array()
        .or_else(|| manifest["manifest"]["images"].as_array())
        .unwrap_or_else(|| panic!("no images in inspect output: {manifest}"))
        .clone();
    assert_eq!(images.len(), 5);
    for img in &images {
        let name = img["name"].as_str().unwrap();
        let o = Command::new("skopeo")
            .args(["inspect", "--raw", "--cert-dir"])
            .arg(&certs)
            .arg(format!("docker://{reg}/{name}"))
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let d = format!(
            "sha256:{}",
            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&o.stdout))
        );
        assert_eq!(d, img["digest"].as_str().unwrap(), "{name}");
    }
    let name = images[0]["name"].as_str().unwrap();
    let o = Command::new("skopeo")
        .args(["copy", "--src-cert-dir"])
        .arg(&certs)
        .arg(format!("docker://{reg}/{name}"))
        .arg(format!("oci:{}:x", tmp.path().join("copy").display()))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // An untrusted client (no site CA) is refused by TLS verification.
    let o = Command::new("skopeo")
        .args(["inspect", "--raw"])
        .arg(format!("docker://{reg}/{name}"))
        .output()
        .unwrap();
    assert!(!o.status.success());

    // Every node holds the state, the signed manifest and the runtime trust files.
    for i in 0..3 {
        let st: Value = serde_json::from_slice(
            &std::fs::read(nodes.node_root(i).join("var/lib/darkport/state.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(st["version"], "1.0.0");
        assert!(st["operation"].is_null());
        let trust = nodes
            .node_root(i)
            .join(format!("srv/trust/etc/containerd/certs.d/{reg}/hosts.toml"));
        assert!(trust.exists(), "{}", trust.display());
        assert_eq!(
            std::fs::read(
                nodes
                    .node_root(i)
                    .join(format!("srv/trust/etc/docker/certs.d/{reg}/ca.crt"))
            )
            .unwrap(),
            std::fs::read(site.ca.join("ca.crt")).unwrap()
        );
    }

    // 5. Re-running install sends nothing and changes nothing.
    let o = site.cmd(&["install", "--json"], Some(&bundle));
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let j = json_of(&o);
    // The document's shape (keys and value types) is the contract docs/JSON.md describes.
    insta::assert_snapshot!("install_json_shape", shape_text(&j));
    assert_eq!(j["nodes"][0]["push"]["blobs_sent"], 0);
    assert_eq!(j["nodes"][0]["push"]["bytes_sent"], 0);
    let err = String::from_utf8_lossy(&o.stderr);
    let recap: Vec<&str> = err.lines().filter(|l| l.contains(": ok=")).collect();
    assert_eq!(recap.len(), 3, "one recap line per node: {err}");
    for l in recap {
        assert!(l.contains("changed=0"), "re-run changed something: {l}");
    }

    // 6. status: every node at 1.0.0, the registry up.
    let o = site.cmd(&["status", "--json"], None);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let j = json_of(&o);
    insta::assert_snapshot!("status_json_shape", shape_text(&j));
    for r in j["nodes"].as_array().unwrap() {
        assert_eq!(r["version"], "1.0.0", "{r}");
    }
    assert!(j["nodes"][0]["registry"]
        .as_str()
        .unwrap()
        .starts_with("up at"));

    // Every node holds the signed manifest and the playbooks of the bundle.
    let id = j["nodes"][0]["bundle_digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string();
    for i in 0..3 {
        let d = nodes
            .node_root(i)
            .join(format!("var/lib/darkport/bundles/{id}"));
        assert!(d.join("darkport.json").exists(), "{}", d.display());
        assert!(d.join("darkport.json.minisig").exists());
        assert!(d.join("playbooks/install.yml").exists());
    }

    // A lock held by another live darkport run is refused by preflight and install.
    let lock = nodes.node_root(1).join("var/lib/darkport/lock");
    std::fs::create_dir_all(&lock).unwrap();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    std::fs::write(
        lock.join("owner"),
        format!(
            r#"{{"controller":"{}","pid":1,"operation":"upgrade","since":"2026-01-01T00:00:00Z"}}"#,
            host.trim()
        ),
    )
    .unwrap();
    let o = site.cmd(&["install"], Some(&bundle));
    assert_eq!(o.status.code(), Some(1));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.lines()
            .any(|l| l.starts_with("node2") && l.contains("site lock is held by upgrade")),
        "{out}"
    );
    std::fs::remove_dir_all(&lock).unwrap();

    // Another version installed on a node: install points to upgrade.
    let sp = nodes.node_root(2).join("var/lib/darkport/state.json");
    let orig = std::fs::read_to_string(&sp).unwrap();
    std::fs::write(
        &sp,
        orig.replace("\"version\": \"1.0.0\"", "\"version\": \"0.9.0\""),
    )
    .unwrap();
    let o = site.cmd(&["preflight"], Some(&bundle));
    assert_eq!(o.status.code(), Some(1));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("dockercoins 0.9.0 is installed; use `darkport upgrade`"),
        "{out}"
    );
    std::fs::write(&sp, orig).unwrap();

    // 7. The registry is supervised: killed, it comes back by itself.
    nodes.exec_ok(0, "pkill -f 'regist[r]y serve --root'");
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let o = site.cmd(&["status", "--json"], None);
    let j = json_of(&o);
    assert!(
        j["nodes"][0]["registry"]
            .as_str()
            .unwrap()
            .starts_with("up at"),
        "{}",
        j["nodes"][0]
    );
}
