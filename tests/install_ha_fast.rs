//! Two registry hosts on fast sshd nodes: the second copies the blobs from the first inside
//! the site (`registry fetch`), and when that copy cannot run the installer falls back to
//! sending them from the controller; either way both hosts end up serving every image.

mod support;
use support::install as install_support;
use support::nodes as common;

use install_support::{bin, build_example, json_of, text};
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

fn ha_inventory(nodes: &common::Nodes, dir: &Path) -> std::path::PathBuf {
    let inv = install_support::site_inventory(nodes.inventory_path(), dir);
    let mut s = std::fs::read_to_string(&inv).unwrap();
    s.push_str("\n[registry]\nnode1\nnode2\n");
    std::fs::write(&inv, s).unwrap();
    inv
}

fn install(nodes: &common::Nodes, inv: &Path, dir: &Path, bundle: &Path) -> Output {
    install_support::site_cmd(nodes, inv, dir, &["install", "--json"], Some(bundle))
        .output()
        .unwrap()
}

/// Every blob of the bundle is in node `i`'s CAS (read-only, no partial copies left).
fn assert_cas_complete(nodes: &common::Nodes, i: usize, blobs: &[String]) {
    let cas = nodes.node_root(i).join("var/lib/darkport/blobs/sha256");
    for hex in blobs {
        assert!(cas.join(hex).is_file(), "node{} lacks {hex}", i + 1);
    }
    for e in std::fs::read_dir(&cas).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        assert!(
            !name.ends_with(".part") && !name.ends_with(".fetch"),
            "node{} kept {name}",
            i + 1
        );
    }
}

/// The blobs in node `i`'s CAS (names only, sorted).
fn cas_blobs(nodes: &common::Nodes, i: usize) -> Vec<String> {
    let cas = nodes.node_root(i).join("var/lib/darkport/blobs/sha256");
    let mut v: Vec<String> = std::fs::read_dir(cas)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.len() == 64)
        .collect();
    v.sort();
    v
}

#[test]
fn second_registry_host_copies_from_the_first_or_falls_back_to_a_push() {
    let tmp = tempfile::tempdir().unwrap();
    let (bundle, pubkey) = build_example(tmp.path());
    let o = Command::new(bin())
        .args(["inspect", "--json", "--pubkey"])
        .arg(&pubkey)
        .arg(&bundle)
        .output()
        .unwrap();
    let blob_count = json_of(&o)["blob_count"].as_u64().unwrap();

    // 1. Site A: node2 copies every blob from node1's registry.
    let nodes = common::Nodes::sshd(2);
    let dir_a = tmp.path().join("a");
    std::fs::create_dir_all(&dir_a).unwrap();
    let inv = ha_inventory(&nodes, &dir_a);
    let o = install(&nodes, &inv, tmp.path(), &bundle);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let j = json_of(&o);
    let (p1, p2) = (&j["nodes"][0]["push"], &j["nodes"][1]["push"]);
    assert_eq!(p1["blobs_sent"].as_u64(), Some(blob_count), "{p1}");
    let blobs = cas_blobs(&nodes, 0);
    assert_eq!(blobs.len() as u64, blob_count, "{blobs:?}");
    // The image blobs are copied from node1's registry; the bundle's SBOM documents are no
    // image's blobs (the registry does not serve them), so they are sent from here.
    let (_, sboms) = support::bundle::stored_sboms(&bundle);
    assert!(sboms > 0);
    assert_eq!(p2["blobs_sent"], sboms as u64, "{p2}");
    assert_eq!(
        p2["blobs_fetched"].as_u64().unwrap() + sboms as u64,
        p1["blobs_sent"].as_u64().unwrap(),
        "{p2}"
    );
    assert!(p2.get("fetch_error").is_none(), "{p2}");
    assert_eq!(
        p2["fetched_from"],
        Value::from(format!("{}:5000", nodes.addr(0).ip)),
        "{p2}"
    );
    assert_cas_complete(&nodes, 0, &blobs);
    assert_cas_complete(&nodes, 1, &blobs);
    drop(nodes);

    // 2. Site B: the copy cannot run on node2 (the path of the CA file it is given is taken by
    //    a directory), so the installer sends node2 the blobs itself.
    let nodes = common::Nodes::sshd(2);
    let dir_b = tmp.path().join("b");
    std::fs::create_dir_all(&dir_b).unwrap();
    let inv = ha_inventory(&nodes, &dir_b);
    let blocker = nodes
        .node_root(1)
        .join("var/lib/darkport/registry/fetch-ca.crt/keep");
    std::fs::create_dir_all(&blocker).unwrap();
    let o = install(&nodes, &inv, tmp.path(), &bundle);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let j = json_of(&o);
    let (p1, p2) = (&j["nodes"][0]["push"], &j["nodes"][1]["push"]);
    assert_eq!(p2["blobs_fetched"], 0, "{p2}");
    assert!(p2.get("fetched_from").is_none_or(|v| v.is_null()), "{p2}");
    // The report says why the copy inside the site did not happen.
    assert!(
        p2["fetch_error"]
            .as_str()
            .unwrap_or("")
            .contains("fetch-ca.crt"),
        "{p2}"
    );
    assert_eq!(p2["blobs_sent"], p1["blobs_sent"], "{p2}");
    assert_eq!(p2["bytes_sent"], p1["bytes_sent"], "{p2}");
    assert_cas_complete(&nodes, 1, &blobs);
    assert_eq!(cas_blobs(&nodes, 0), blobs);
    // Both registries answer over TLS with the site CA, both nodes are at 1.0.0.
    let s = Command::new(bin())
        .args(["status", "--json", "-i"])
        .arg(&inv)
        .arg("--known-hosts")
        .arg(nodes.known_hosts_path())
        .arg("--ca-dir")
        .arg(tmp.path().join("ca"))
        .output()
        .unwrap();
    let s = json_of(&s);
    for n in s["nodes"].as_array().unwrap() {
        assert_eq!(n["version"], "1.0.0", "{n}");
        assert!(
            n["registry"].as_str().unwrap_or("").starts_with("up at "),
            "{n}"
        );
    }
}

/// With two registry hosts each node pulls from one of them: a registry host from itself,
/// the other nodes in turn (node3 from node1, node4 from node2). The playbook's image
/// references, containerd's hosts.toml and podman's mirrors all put that registry first, and
/// the pull check of the install playbook passed against it.
#[test]
fn an_ha_site_spreads_its_pulls_over_the_registry_hosts() {
    let tmp = tempfile::tempdir().unwrap();
    let (bundle, _) = build_example(tmp.path());
    let nodes = common::Nodes::sshd(4);
    let dir = tmp.path().join("site");
    std::fs::create_dir_all(&dir).unwrap();
    let inv = ha_inventory(&nodes, &dir);
    let o = install(&nodes, &inv, tmp.path(), &bundle);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let reg = |i: usize| format!("{}:5000", nodes.addr(i).ip);
    // node i (0-based) pulls from registry host `want[i]`.
    let want = [0, 1, 0, 1];
    for (i, w) in want.iter().enumerate() {
        let root = nodes.node_root(i);
        let first = reg(*w);
        let other = reg(1 - *w);
        let imgs = std::fs::read_to_string(root.join("srv/dockercoins/etc/images.json")).unwrap();
        let imgs: Value = serde_json::from_str(&imgs).unwrap();
        for (name, r) in imgs.as_object().unwrap() {
            assert!(
                r.as_str().unwrap().starts_with(&format!("{first}/")),
                "node{} {name}: {r}",
                i + 1
            );
        }
        // Whichever registry an image names, containerd tries `first` before the other.
        for named in [&first, &other] {
            let hosts = std::fs::read_to_string(root.join(format!(
                "srv/trust/etc/containerd/certs.d/{named}/hosts.toml"
            )))
            .unwrap();
            let a = hosts.find(&format!("[host.\"https://{first}\"]")).unwrap();
            let b = hosts.find(&format!("[host.\"https://{other}\"]")).unwrap();
            assert!(a < b, "node{}: {hosts}", i + 1);
        }
        let conf = std::fs::read_to_string(
            root.join("srv/trust/etc/containers/registries.conf.d/50-darkport.conf"),
        )
        .unwrap();
        for block in conf.split("[[registry]]").skip(1) {
            let m = block.split("[[registry.mirror]]").nth(1).unwrap_or("");
            assert!(m.contains(&format!("\"{first}\"")), "node{}: {conf}", i + 1);
        }
    }
}
