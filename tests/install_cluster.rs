//! `darkport install` on three Docker container nodes (each a real Debian host with sshd, its
//! own IP and filesystem): the site registry runs in node1's container, every node's `skopeo`
//! (trusting the site CA through /etc/containers/certs.d, written by install) copies every image
//! with the digest the bundle signed, and this machine's Docker engine pulls one image from the
//! site registry and runs it. Fails in CI when Docker is missing.

mod support;
use support::nodes as common;

use support::install as install_support;

use install_support as fast;

use std::process::Command;

#[test]
fn install_on_container_nodes_every_node_pulls_every_image() {
    let Some(nodes) = common::Nodes::cluster_or_skip(3) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (bundle, pubkey) = fast::build_example(tmp.path());
    let ca = tmp.path().join("site-ca");
    // Two registry hosts (HA): both receive every blob and serve every image.
    let inv = tmp.path().join("inventory.ini");
    let mut text = std::fs::read_to_string(nodes.inventory_path()).unwrap();
    text.push_str("\n[registry]\nnode1\nnode2\n");
    std::fs::write(&inv, text).unwrap();
    let o = Command::new(fast::bin())
        .args(["install", "--json", "--progress", "plain", "-i"])
        .arg(&inv)
        .arg("--known-hosts")
        .arg(nodes.known_hosts_path())
        .arg("--pubkey")
        .arg(&pubkey)
        .arg("--ca-dir")
        .arg(&ca)
        .arg(&bundle)
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let inspect = Command::new(fast::bin())
        .args(["inspect", "--json", "--pubkey"])
        .arg(&pubkey)
        .arg(&bundle)
        .output()
        .unwrap();
    let m = fast::json_of(&inspect);
    let j = fast::json_of(&o);
    let total = m["images"].as_array().unwrap().len();
    assert!(total == 5);
    // The blobs crossed the operator's link once: node1 got them from here, node2 copied
    // them from node1's registry inside the site.
    let p1 = &j["nodes"][0]["push"];
    let p2 = &j["nodes"][1]["push"];
    assert!(p1["blobs_sent"].as_u64().unwrap() > 0, "{p1}");
    // (all but the bundle's SBOM documents, which are no image's blobs: sent from here)
    let (sbom_bytes, sboms) = support::bundle::stored_sboms(&bundle);
    let u = |v: &serde_json::Value| v.as_u64().unwrap();
    assert_eq!(u(&p2["blobs_sent"]), sboms as u64, "{p2}");
    assert_eq!(u(&p2["bytes_sent"]), sbom_bytes, "{p2}");
    assert_eq!(
        u(&p2["blobs_fetched"]) + sboms as u64,
        u(&p1["blobs_sent"]),
        "{p2}"
    );
    assert_eq!(
        u(&p2["bytes_fetched"]) + sbom_bytes,
        u(&p1["bytes_sent"]),
        "{p2}"
    );
    assert_eq!(
        p2["fetched_from"],
        format!("{}:5000", nodes.addr(0).ip),
        "{p2}"
    );
    assert!(j["nodes"][2]["push"].is_null());
    let reg = format!("{}:5000", nodes.addr(0).ip);
    let reg2 = format!("{}:5000", nodes.addr(1).ip);
    for i in 0..3 {
        for img in m["images"].as_array().unwrap() {
            let name = img["name"].as_str().unwrap();
            let digest = img["digest"].as_str().unwrap();
            // Default trust paths: no --cert-dir, the node's /etc/containers/certs.d is used.
            let out = nodes.exec_ok(
                i,
                &format!(
                    "set -e; rm -rf /tmp/pull; skopeo copy -q docker://{reg}/{name} oci:/tmp/pull:x >/dev/null; \
                     test \"$(skopeo inspect --raw docker://{reg2}/{name} | sha256sum)\" = \"$(skopeo inspect --raw docker://{reg}/{name} | sha256sum)\"; \
                     skopeo inspect --raw docker://{reg}/{name} | sha256sum | cut -d' ' -f1"
                ),
            );
            assert_eq!(
                format!("sha256:{}", out.trim()),
                digest,
                "node{} {name}",
                i + 1
            );
        }
    }
    // HA: node1 (the first registry) frozen, node3's podman/skopeo still resolve its names
    // through node2 (registries.conf.d mirror written by install); without that file they
    // cannot.
    let probe = format!(
        "skopeo inspect --no-tags --format '{{{{.Digest}}}}' docker://{reg}/dockercoins/rng:1.0.0"
    );
    let rng_digest = m["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "dockercoins/rng:1.0.0")
        .unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_string();
    nodes.pause(0);
    let via_mirror = nodes.exec(2, &format!("timeout 60 {probe}"));
    let without = nodes.exec(
        2,
        &format!(
            "mv /etc/containers/registries.conf.d/50-darkport.conf /tmp/; timeout 60 {probe}; rc=$?; \
             mv /tmp/50-darkport.conf /etc/containers/registries.conf.d/; exit $rc"
        ),
    );
    nodes.resume(0);
    assert_eq!(
        String::from_utf8_lossy(&via_mirror.stdout).trim(),
        rng_digest,
        "{}",
        String::from_utf8_lossy(&via_mirror.stderr)
    );
    assert!(!without.status.success(), "the mirror made the difference");

    // This machine's Docker engine pulls from the site registry (trusting the site CA through
    // certs.d, no daemon restart) and runs the image.
    let certs = format!("/etc/docker/certs.d/{reg}");
    std::fs::create_dir_all(&certs).unwrap();
    std::fs::copy(ca.join("ca.crt"), format!("{certs}/ca.crt")).unwrap();
    let image = format!("{reg}/dockercoins/rng:1.0.0");
    let pull = Command::new("docker")
        .args(["pull", "-q", &image])
        .output()
        .unwrap();
    let run = Command::new("docker")
        .args([
            "run",
            "--rm",
            "--entrypoint",
            "/bin/sh",
            &image,
            "-c",
            "cat /app/rng.sh",
        ])
        .output()
        .unwrap();
    let _ = Command::new("docker").args(["rmi", "-f", &image]).output();
    let _ = std::fs::remove_dir_all(&certs);
    assert!(
        pull.status.success(),
        "{}",
        String::from_utf8_lossy(&pull.stderr)
    );
    assert!(
        String::from_utf8_lossy(&run.stdout).contains("httpd"),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
}
