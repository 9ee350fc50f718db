//! `darkport rollback` and `darkport prune` on real sshd nodes: 1.0.0 installed, data written,
//! 1.1.0 upgrades it with a node migration that rewrites the data (backup + rollback
//! playbook); the rollback brings the 1.0 bytes back and re-points the site at the 1.0 images.
//! A 1.1.0 whose migration declares no rollback is refused with nothing changed. After
//! 1.0 → 1.1 → 1.2, prune removes exactly the blobs only 1.0 needed.

mod support;
use support::install as install_support;
use support::nodes as common;

use install_support::{build_version, json_of, lines, site_cmd, text};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The 1.1.0 migration: the coin counter as JSON; `rollback` names its undo playbook.
fn migration(rollback: bool) -> String {
    format!(
        r#"- name: counter to the 1.1 format
  hosts: all
  gather_facts: false
  vars:
    darkport_migration: {{version: 1.1.0, scope: node, backup: [/srv/dockercoins/data]{}}}
  tasks:
    - shell: |
        set -e
        f=/srv/dockercoins/data/coins
        printf '{{"coins": %s}}\n' "$(cat $f)" > $f.new
        mv $f.new $f
"#,
        if rollback {
            ", rollback: rollback/0001-counter-json.yml"
        } else {
            ""
        }
    )
}

const UNDO: &str = r#"- name: undo the counter migration (the data itself comes back from the backup)
  hosts: all
  gather_facts: false
  tasks:
    - shell: |
        set -e
        test ! -e /srv/dockercoins/fail-rollback
        echo "{{ darkport_migration_id }} -> {{ darkport_rollback_to }}" >> /srv/dockercoins/rollback.log
"#;

fn site(nodes: &common::Nodes, inv: &Path, t: &Path, args: &[&str], b: Option<&Path>) -> Output {
    site_cmd(nodes, inv, t, args, b).output().unwrap()
}

fn ok(o: Output) -> Output {
    assert!(o.status.success(), "{}", text(&o));
    o
}

/// The manifest of the bundle a node's state names as current (read from its bundle dir).
fn manifest_of(root: &Path, digest: &Value) -> Value {
    let hex = digest.as_str().unwrap().trim_start_matches("sha256:");
    let p = root.join(format!("var/lib/darkport/bundles/{hex}/darkport.json"));
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

/// Every digest a manifest needs on the registry: blobs, image manifests, their blobs.
fn needed(m: &Value) -> BTreeSet<String> {
    let mut s = BTreeSet::new();
    for b in m["blobs"].as_array().unwrap() {
        s.insert(b["digest"].as_str().unwrap().to_string());
    }
    for i in m["images"].as_array().unwrap() {
        s.insert(i["digest"].as_str().unwrap().to_string());
        for b in i["blobs"].as_array().unwrap() {
            s.insert(b.as_str().unwrap().to_string());
        }
    }
    s
}

fn cas(root: &Path) -> PathBuf {
    root.join("var/lib/darkport/blobs/sha256")
}

/// Bytes of the regular files below `p`.
fn file_bytes(p: &Path) -> u64 {
    let mut n = 0;
    for e in std::fs::read_dir(p).into_iter().flatten().flatten() {
        let md = e.metadata().unwrap();
        if md.is_dir() {
            n += file_bytes(&e.path());
        } else if md.is_file() {
            n += md.len();
        }
    }
    n
}

/// `skopeo inspect` of an image on the site registry: its digest, or None when not served.
fn served_digest(nodes: &common::Nodes, certs: &Path, image: &str) -> Option<String> {
    let o = Command::new("skopeo")
        .args(["inspect", "--format", "{{.Digest}}", "--cert-dir"])
        .arg(certs)
        .arg(format!("docker://{}:5000/{image}", nodes.addr(0).ip))
        .output()
        .unwrap();
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).trim().to_string())
}

fn images(m: &Value) -> Vec<(String, String)> {
    m["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["name"].as_str().unwrap().to_string(),
                i["digest"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "kills the controller: needs --features fault-injection (make test)"
)]
fn rollback_restores_data_and_images_and_prune_keeps_what_is_needed() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let (b10, _) = install_support::build_example(t);
    std::fs::create_dir_all(t.join("playbooks/rollback")).unwrap();
    std::fs::write(t.join("playbooks/rollback/0001-counter-json.yml"), UNDO).unwrap();
    build_version(
        t,
        "1.1.0",
        ">=1.0.0, <1.1.0",
        &[("0001-counter-json.yml", &migration(true))],
    );
    std::fs::rename(t.join("dist-1.1.0"), t.join("dist-1.1.0-undoable")).unwrap();
    let b11 = t.join("dist-1.1.0-undoable/dockercoins-1.1.0.darkport");
    let b11_norb = build_version(
        t,
        "1.1.0",
        ">=1.0.0, <1.1.0",
        &[("0001-counter-json.yml", &migration(false))],
    );
    let b12 = build_version(t, "1.2.0", ">=1.1.0, <1.2.0", &[]);
    let nodes = common::Nodes::sshd(2);
    let inv = install_support::site_inventory(nodes.inventory_path(), t);
    let certs = t.join("certs");
    std::fs::create_dir_all(&certs).unwrap();

    ok(site(&nodes, &inv, t, &["install"], Some(&b10)));
    std::fs::copy(t.join("ca/ca.crt"), certs.join("ca.crt")).unwrap();
    let data = |i: usize| nodes.node_root(i).join("srv/dockercoins/data/coins");
    for i in 0..2 {
        std::fs::write(data(i), format!("{}\n", 40 + i)).unwrap();
    }
    let st10 = install_support::node_state(&nodes.node_root(0));
    let m10 = manifest_of(&nodes.node_root(0), &st10["bundle_digest"]);
    ok(site(&nodes, &inv, t, &["upgrade"], Some(&b11)));
    assert_eq!(
        std::fs::read_to_string(data(1)).unwrap(),
        "{\"coins\": 41}\n"
    );

    // As if the upgrade had re-pointed a tag both versions use: rng:1.0.0 names 1.1's rng.
    let idx_path = nodes
        .node_root(0)
        .join("var/lib/darkport/registry/repositories.json");
    let mut idx: Value = serde_json::from_slice(&std::fs::read(&idx_path).unwrap()).unwrap();
    let rng = &mut idx["repositories"]["dockercoins/rng"]["tags"];
    rng["1.0.0"] = rng["1.1.0"].clone();
    std::fs::write(&idx_path, serde_json::to_vec_pretty(&idx).unwrap()).unwrap();
    let rng10 = images(&m10)
        .into_iter()
        .find(|(n, _)| n == "dockercoins/rng:1.0.0");
    let rng10 = rng10.unwrap().1;
    assert_ne!(
        served_digest(&nodes, &certs, "dockercoins/rng:1.0.0"),
        Some(rng10.clone())
    );

    // --plan names the migration undone and changes nothing.
    let states = |n: usize| -> Vec<Vec<u8>> {
        (0..n)
            .map(|i| std::fs::read(nodes.node_root(i).join("var/lib/darkport/state.json")).unwrap())
            .collect()
    };
    let before = states(2);
    let o = ok(site(
        &nodes,
        &inv,
        t,
        &["rollback", "--plan", "--json"],
        None,
    ));
    let p = json_of(&o);
    assert_eq!(
        (p["from"].as_str(), p["to"].as_str()),
        (Some("1.1.0"), Some("1.0.0"))
    );
    assert_eq!(p["migrations"][0]["id"], "0001-counter-json", "{p}");
    assert_eq!(states(2), before);

    // The playbooks kept on the node are checked against the manifest before anything runs.
    let st11 = install_support::node_state(&nodes.node_root(0));
    let hex = st11["bundle_digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:");
    let undo_on_node = nodes.node_root(0).join(format!(
        "var/lib/darkport/bundles/{hex}/playbooks/rollback/0001-counter-json.yml"
    ));
    std::fs::write(&undo_on_node, UNDO.replace("rollback.log", "x.log")).unwrap();
    let o = site(&nodes, &inv, t, &["rollback"], None);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains("playbooks/rollback/0001-counter-json.yml does not match its manifest"),
        "{}",
        text(&o)
    );
    assert_eq!(states(2), before);
    std::fs::write(&undo_on_node, UNDO).unwrap();

    // The rollback playbook fails on node2: the run stops naming it, node1's part is done
    // and journaled, nothing is recorded as rolled back.
    let fail = nodes.node_root(1).join("srv/dockercoins/fail-rollback");
    std::fs::write(&fail, "").unwrap();
    let o = site(&nodes, &inv, t, &["rollback"], None);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains("the rollback of migration 0001-counter-json did not finish on node2"),
        "{}",
        text(&o)
    );
    assert_eq!(
        lines(&nodes.node_root(0).join("srv/dockercoins/rollback.log")),
        1
    );
    assert_eq!(
        lines(&nodes.node_root(1).join("srv/dockercoins/rollback.log")),
        0
    );
    for i in 0..2 {
        assert_eq!(
            install_support::node_state(&nodes.node_root(i))["version"],
            "1.1.0"
        );
    }
    std::fs::remove_file(&fail).unwrap();

    // The controller dies right after node1 restored the backups: the journal shows an
    // unfinished rollback (prune refuses to touch the site meanwhile) and a re-run resumes
    // after the steps already done.
    let o = site_cmd(&nodes, &inv, t, &["rollback"], None)
        .env("DARKPORT_CRASH_AT", "restore:0001-counter-json:finished")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(137), "{}", text(&o));
    let st = install_support::node_state(&nodes.node_root(0));
    assert_eq!(st["version"], "1.1.0");
    assert_eq!(st["operation"]["action"], "rollback", "{st}");
    let o = site(&nodes, &inv, t, &["prune"], None);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains("unfinished rollback to 1.0.0"),
        "{}",
        text(&o)
    );
    let o = ok(site(&nodes, &inv, t, &["rollback", "--plan"], None));
    assert!(text(&o).contains("(resuming)"), "{}", text(&o));

    // The rollback.
    let o = ok(site(&nodes, &inv, t, &["rollback", "--json"], None));
    assert_eq!(json_of(&o)["migrations_undone"][0], "0001-counter-json");
    for i in 0..2 {
        let r = nodes.node_root(i);
        assert_eq!(
            std::fs::read(data(i)).unwrap(),
            format!("{}\n", 40 + i).into_bytes(),
            "node{}: the 1.0 data, byte for byte",
            i + 1
        );
        assert!(!r
            .join("srv/dockercoins/data.darkport-backup-0001-counter-json")
            .exists());
        assert!(!r
            .join("srv/dockercoins/data.darkport-rollback-0001-counter-json")
            .exists());
        assert_eq!(
            std::fs::read_to_string(r.join("srv/dockercoins/rollback.log")).unwrap(),
            "0001-counter-json -> 1.0.0\n",
            "the rollback playbook ran once per node"
        );
        let st = install_support::node_state(&r);
        assert_eq!(st["version"], "1.0.0");
        assert_eq!(st["bundle_digest"], st10["bundle_digest"]);
        assert!(st["previous"].is_null(), "{st}");
        assert!(st["operation"].is_null(), "{st}");
        assert_eq!(st["migrations"].as_array().unwrap().len(), 0, "{st}");
        let h = st["history"].as_array().unwrap();
        assert_eq!(h.len(), 3);
        assert_eq!(h[2]["action"], "rollback");
        assert_eq!(
            (h[2]["from"].as_str(), h[2]["to"].as_str()),
            (Some("1.1.0"), Some("1.0.0"))
        );
        // 1.0's install.yml ran again: the services point at the 1.0 images.
        let imgs = std::fs::read_to_string(r.join("srv/dockercoins/etc/images.json")).unwrap();
        assert!(
            imgs.contains(":1.0.0\"") && !imgs.contains("1.1.0"),
            "{imgs}"
        );
    }
    let o = ok(site(&nodes, &inv, t, &["status", "--json"], None));
    for r in json_of(&o)["nodes"].as_array().unwrap() {
        assert_eq!(r["version"], "1.0.0", "{r}");
    }
    for (name, digest) in images(&m10) {
        assert_eq!(served_digest(&nodes, &certs, &name), Some(digest), "{name}");
    }
    // Nothing left to roll back to.
    let o = site(&nodes, &inv, t, &["rollback"], None);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains("records no previous version"),
        "{}",
        text(&o)
    );

    // A 1.1.0 whose migration declares no rollback: refused, nothing changed.
    ok(site(&nodes, &inv, t, &["upgrade"], Some(&b11_norb)));
    let before = states(2);
    let data_before = std::fs::read(data(0)).unwrap();
    let o = site(&nodes, &inv, t, &["rollback"], None);
    assert_eq!(o.status.code(), Some(1));
    let msg = text(&o);
    assert!(
        msg.contains("migration 0001-counter-json")
            && msg.contains("declares no rollback playbook"),
        "{msg}"
    );
    assert_eq!(states(2), before);
    assert_eq!(std::fs::read(data(0)).unwrap(), data_before);
    assert!(!nodes.node_root(0).join("var/lib/darkport/lock").exists());

    // 1.2.0, then prune: 1.1 (previous) and 1.2 (current) stay whole, 1.0's own blobs go.
    ok(site(&nodes, &inv, t, &["upgrade"], Some(&b12)));
    let r0 = nodes.node_root(0);
    let st = install_support::node_state(&r0);
    let m12 = manifest_of(&r0, &st["bundle_digest"]);
    let m11 = manifest_of(&r0, &st["previous"]["bundle_digest"]);
    let keep: BTreeSet<String> = needed(&m11).union(&needed(&m12)).cloned().collect();
    let only10: Vec<String> = needed(&m10).difference(&keep).cloned().collect();
    assert!(
        !only10.is_empty(),
        "1.0 has blobs of its own (the rng app layer)"
    );
    let on_disk = |d: &str| cas(&r0).join(d.trim_start_matches("sha256:")).exists();
    assert!(only10.iter().all(|d| on_disk(d)));
    // A stale partial upload goes too.
    std::fs::write(cas(&r0).join(format!("{}.part", "0".repeat(64))), b"half").unwrap();
    let dr = r0.join("var/lib/darkport");
    let bytes_before = file_bytes(&dr.join("blobs")) + file_bytes(&dr.join("bundles"));
    let bundles = |r: &Path| {
        std::fs::read_dir(r.join("var/lib/darkport/bundles"))
            .unwrap()
            .count()
    };
    assert_eq!(bundles(&r0), 4, "1.0, two 1.1 and 1.2");

    let o = ok(site(
        &nodes,
        &inv,
        t,
        &["prune", "--dry-run", "--json"],
        None,
    ));
    let dry = json_of(&o);
    assert_eq!(
        dry["nodes"][0]["blobs"].as_u64().unwrap(),
        only10.len() as u64,
        "{dry}"
    );
    assert!(
        only10.iter().all(|d| on_disk(d)),
        "--dry-run removes nothing"
    );

    // Another controller holds the site lock: prune refuses and removes nothing.
    let lock = dr.join("lock");
    std::fs::create_dir(&lock).unwrap();
    std::fs::write(
        lock.join("owner"),
        r#"{"controller":"elsewhere","pid":1,"operation":"upgrade","since":"2026-01-01T00:00:00Z"}"#,
    )
    .unwrap();
    let o = site(&nodes, &inv, t, &["prune"], None);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains("held by upgrade (pid 1 on elsewhere"),
        "{}",
        text(&o)
    );
    assert!(only10.iter().all(|d| on_disk(d)));
    std::fs::remove_dir_all(&lock).unwrap();

    let o = ok(site(&nodes, &inv, t, &["prune", "--json"], None));
    let j = json_of(&o);
    let n0 = &j["nodes"][0];
    assert_eq!(n0["blobs"].as_u64().unwrap(), only10.len() as u64, "{j}");
    assert_eq!(n0["partial_uploads"], 1, "{j}");
    assert_eq!(n0["bundle_dirs"], 2, "{j}");
    assert_eq!(
        n0["tags"].as_u64().unwrap(),
        images(&m10).len() as u64,
        "1.0's tags: {j}"
    );
    let bytes_after = file_bytes(&dr.join("blobs")) + file_bytes(&dr.join("bundles"));
    assert_eq!(
        n0["bytes"].as_u64().unwrap(),
        bytes_before - bytes_after,
        "{j}"
    );
    assert_eq!(
        n0["bytes"], dry["nodes"][0]["bytes"],
        "the dry run's figure"
    );
    assert_eq!(j["nodes"][1]["bundle_dirs"], 2, "{j}");
    assert_eq!(bundles(&r0), 2);
    assert!(
        only10.iter().all(|d| !on_disk(d)),
        "1.0's own blobs are gone"
    );
    assert!(
        keep.iter().all(|d| on_disk(d)),
        "nothing 1.1 or 1.2 needs is gone"
    );
    for (name, digest) in images(&m11).into_iter().chain(images(&m12)) {
        assert_eq!(served_digest(&nodes, &certs, &name), Some(digest), "{name}");
    }
    for (name, _) in images(&m10) {
        assert_eq!(
            served_digest(&nodes, &certs, &name),
            None,
            "{name}: 1.0's tags are gone"
        );
    }
    assert_eq!(lines(&r0.join("srv/dockercoins/rollback.log")), 1);
}
