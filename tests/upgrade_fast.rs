//! `darkport upgrade` on real sshd nodes: 1.0.0 installed, data written, then 1.1.0 (a changed
//! app layer and two migrations: one per node transforming the data, one per site): only new
//! blobs travel, each migration runs exactly once (the data and the logs prove it), a re-run
//! does nothing, and a downgrade is refused.

mod support;
use support::install as install_support;
use support::nodes as common;

use install_support::{bin, build_version, json_of, lines, text};
use std::path::Path;
use std::process::{Command, Output};

const MIG_NODE: &str = r#"# 1.1.0 stores the coin counter as JSON.
- name: counter to the 1.1 format
  hosts: all
  gather_facts: false
  vars:
    darkport_migration: {version: 1.1.0, scope: node, backup: [/srv/dockercoins/data]}
  tasks:
    - name: rewrite the counter
      shell: |
        set -e
        f=/srv/dockercoins/data/coins
        v=$(cat $f)
        printf '{"coins": %s}\n' "$v" > $f.new
        mv $f.new $f
        echo ran >> /srv/dockercoins/migration-0001.log
"#;

const MIG_SITE: &str = r#"- name: one per site
  hosts: all
  gather_facts: false
  vars:
    darkport_migration: {version: 1.1.0, scope: site}
  tasks:
    - shell: echo ran >> /srv/dockercoins/migration-0002.log
"#;

fn run(nodes: &common::Nodes, inv: &Path, tmp: &Path, args: &[&str], b: &Path) -> Output {
    cmd(nodes, inv, tmp, args, b).output().unwrap()
}

/// The site command as an operator types it (`install_support::site_cmd`), for bundle `b`.
fn cmd(nodes: &common::Nodes, inv: &Path, tmp: &Path, args: &[&str], b: &Path) -> Command {
    install_support::site_cmd(nodes, inv, tmp, args, Some(b))
}

#[test]
fn upgrade_runs_each_migration_once_and_ships_only_new_blobs() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let (b10, _) = install_support::build_example(t);
    let b11 = build_version(
        t,
        "1.1.0",
        ">=1.0.0, <1.1.0",
        &[
            ("0001-counter-json.yml", MIG_NODE),
            ("0002-site-once.yml", MIG_SITE),
        ],
    );
    let b09 = build_version(t, "0.9.0", ">=0.1.0", &[]);
    let nodes = common::Nodes::sshd(3);
    let inv = install_support::site_inventory(nodes.inventory_path(), t);
    let ca = t.join("ca");

    let o = run(&nodes, &inv, t, &["install"], &b10);
    assert!(o.status.success(), "{}", text(&o));
    for i in 0..3 {
        std::fs::write(
            nodes.node_root(i).join("srv/dockercoins/data/coins"),
            format!("{}\n", 40 + i),
        )
        .unwrap();
    }

    // --plan: nothing changes; it names the migrations and the blobs to send.
    let o = run(&nodes, &inv, t, &["upgrade", "--plan", "--json"], &b11);
    assert!(o.status.success(), "{}", text(&o));
    let p = json_of(&o);
    assert_eq!(p["from"], "1.0.0");
    let ids: Vec<&str> = p["migrations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["0001-counter-json", "0002-site-once"]);
    let to_send = p["nodes"][0]["blobs_to_send"].as_u64().unwrap();
    assert!(to_send >= 1, "{p}");
    assert_eq!(
        lines(
            &nodes
                .node_root(0)
                .join("srv/dockercoins/migration-0001.log")
        ),
        0
    );

    // The upgrade.
    let o = run(&nodes, &inv, t, &["upgrade", "--json"], &b11);
    assert!(o.status.success(), "{}", text(&o));
    let j = json_of(&o);
    let push = &j["nodes"][0]["push"];
    assert_eq!(push["blobs_sent"].as_u64().unwrap(), to_send, "{push}");
    assert!(
        push["blobs_present"].as_u64().unwrap() > 0,
        "old blobs are not sent again: {push}"
    );
    let mut site_runs = 0;
    for i in 0..3 {
        let r = nodes.node_root(i);
        assert_eq!(
            std::fs::read_to_string(r.join("srv/dockercoins/data/coins")).unwrap(),
            format!("{{\"coins\": {}}}\n", 40 + i),
            "node{}",
            i + 1
        );
        assert_eq!(
            std::fs::read_to_string(
                r.join("srv/dockercoins/data.darkport-backup-0001-counter-json/coins")
            )
            .unwrap(),
            format!("{}\n", 40 + i),
            "backup taken before the migration"
        );
        assert_eq!(lines(&r.join("srv/dockercoins/migration-0001.log")), 1);
        site_runs += lines(&r.join("srv/dockercoins/migration-0002.log"));
        let st: serde_json::Value =
            serde_json::from_slice(&std::fs::read(r.join("var/lib/darkport/state.json")).unwrap())
                .unwrap();
        assert_eq!(st["version"], "1.1.0");
        assert_eq!(st["previous"]["version"], "1.0.0");
        assert_eq!(st["history"].as_array().unwrap().len(), 2);
        let applied: Vec<&str> = st["migrations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap())
            .collect();
        assert_eq!(applied, ["0001-counter-json", "0002-site-once"]);
    }
    assert_eq!(site_runs, 1, "the per-site migration ran once on the site");
    // The new tags are served by the site registry.
    let certs = t.join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    std::fs::copy(ca.join("ca.crt"), certs.join("ca.crt")).unwrap();
    let o = Command::new("skopeo")
        .args(["list-tags", "--cert-dir"])
        .arg(&certs)
        .arg(format!(
            "docker://{}:5000/dockercoins/rng",
            nodes.addr(0).ip
        ))
        .output()
        .unwrap();
    let tags = String::from_utf8_lossy(&o.stdout);
    assert!(tags.contains("1.0.0") && tags.contains("1.1.0"), "{tags}");

    // A re-run does nothing: no migration runs again.
    let o = run(&nodes, &inv, t, &["upgrade"], &b11);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("nothing to do"), "{}", text(&o));
    for i in 0..3 {
        assert_eq!(
            lines(
                &nodes
                    .node_root(i)
                    .join("srv/dockercoins/migration-0001.log")
            ),
            1
        );
    }

    // Refusals: a downgrade, and a bundle that cannot be upgraded to.
    let o = run(&nodes, &inv, t, &["upgrade"], &b09);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).to_lowercase().contains("downgrade"),
        "{}",
        text(&o)
    );
    let o = run(&nodes, &inv, t, &["upgrade"], &b10);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains("declares no upgrades_from"),
        "{}",
        text(&o)
    );
}

const MIG_SLOW: &str = r#"# Rerunnable: safe to start again after a crash.
- name: slow migration
  hosts: all
  gather_facts: false
  vars:
    darkport_migration: {version: 1.1.0, scope: node, rerunnable: true}
  tasks:
    - name: the first attempt stalls (the test kills the controller here)
      shell: |
        if [ ! -e /srv/dockercoins/attempted ]; then
          touch /srv/dockercoins/attempted
          sleep 60
        fi
        echo ran >> /srv/dockercoins/migration-0001.log
"#;

#[test]
fn controller_killed_inside_a_migration_resumes_there() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let (b10, _) = install_support::build_example(t);
    let b11 = build_version(
        t,
        "1.1.0",
        ">=1.0.0, <1.1.0",
        &[("0001-slow.yml", MIG_SLOW)],
    );
    let nodes = common::Nodes::sshd(2);
    let inv = install_support::site_inventory(nodes.inventory_path(), t);
    let o = run(&nodes, &inv, t, &["install"], &b10);
    assert!(o.status.success(), "{}", text(&o));

    let mut child = cmd(&nodes, &inv, t, &["upgrade"], &b11)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let marker = nodes.node_root(0).join("srv/dockercoins/attempted");
    let t0 = std::time::Instant::now();
    while !marker.exists() {
        assert!(t0.elapsed().as_secs() < 60, "the migration never started");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    let _ = child.wait();
    let st: serde_json::Value = serde_json::from_slice(
        &std::fs::read(nodes.node_root(0).join("var/lib/darkport/state.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        st["version"], "1.0.0",
        "not recorded before everything finished"
    );
    let steps = st["operation"]["steps"].as_array().unwrap();
    assert!(
        steps
            .iter()
            .any(|s| s["name"] == "migration:0001-slow" && s["status"] == "started"),
        "{st}"
    );
    // The re-run resumes at the unfinished migration (declared rerunnable) and finishes.
    let o = run(&nodes, &inv, t, &["upgrade"], &b11);
    assert!(o.status.success(), "{}", text(&o));
    for i in 0..2 {
        let r = nodes.node_root(i);
        assert_eq!(
            lines(&r.join("srv/dockercoins/migration-0001.log")),
            1,
            "node{}",
            i + 1
        );
        let st: serde_json::Value =
            serde_json::from_slice(&std::fs::read(r.join("var/lib/darkport/state.json")).unwrap())
                .unwrap();
        assert_eq!(st["version"], "1.1.0");
        assert!(st["operation"].is_null());
    }
}

#[test]
fn delta_bundle_needs_its_base_and_upgrades_with_the_new_blobs_only() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let (b10, _) = install_support::build_example(t);
    let full = build_version(t, "1.1.0", ">=1.0.0, <1.1.0", &[]);
    // The same 1.1.0 as a delta on 1.0.0.
    let out = t.join("dist-delta");
    install_support::build_bundle(
        t,
        &t.join("bundle/darkport-1.1.0.yaml"),
        &out,
        &["--since".as_ref(), b10.as_os_str()],
    );
    let delta = out.join("dockercoins-1.1.0-from-1.0.0.darkport");
    assert!(std::fs::metadata(&delta).unwrap().len() < std::fs::metadata(&full).unwrap().len());
    let nodes = common::Nodes::sshd(2);
    let inv = install_support::site_inventory(nodes.inventory_path(), t);
    let ca = t.join("ca");
    // On a site without the base: refused by preflight, nothing changed.
    let o = run(&nodes, &inv, t, &["install"], &delta);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains("blob(s) of its base bundle are not on this registry host"),
        "{}",
        text(&o)
    );
    assert!(!nodes
        .node_root(0)
        .join("var/lib/darkport/state.json")
        .exists());
    // With the base installed, the delta upgrades the site.
    let o = run(&nodes, &inv, t, &["install"], &b10);
    assert!(o.status.success(), "{}", text(&o));
    // The delta references the SBOMs of the images 1.1.0 did not change (their documents are
    // blobs the base brought to the site): without one on the registry host it is refused.
    let reused = reused_sboms(&delta);
    assert!(
        !reused.is_empty(),
        "the example keeps some images from 1.0.0"
    );
    let cas = nodes.node_root(0).join("var/lib/darkport/blobs/sha256");
    let doc = cas.join(&reused[0][7..]);
    let saved = std::fs::read(&doc).expect("the base's SBOM document is on the registry host");
    std::fs::remove_file(&doc).unwrap();
    let o = run(&nodes, &inv, t, &["upgrade"], &delta);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("blob(s) of its base bundle are not on this registry host"),
        "{}",
        text(&o)
    );
    std::fs::write(&doc, saved).unwrap();
    let o = run(&nodes, &inv, t, &["upgrade", "--json"], &delta);
    assert!(o.status.success(), "{}", text(&o));
    let j = json_of(&o);
    assert!(j["nodes"][0]["push"]["blobs_sent"].as_u64().unwrap() >= 1);
    let o = Command::new(bin())
        .args(["status", "--json", "-i"])
        .arg(&inv)
        .arg("--known-hosts")
        .arg(nodes.known_hosts_path())
        .arg("--ca-dir")
        .arg(&ca)
        .output()
        .unwrap();
    let j = json_of(&o);
    for r in j["nodes"].as_array().unwrap() {
        assert_eq!(r["version"], "1.1.0", "{r}");
    }
}

/// The SBOM documents a delta bundle references from its base (format v2 `sboms` entries
/// with `from_bundle`).
fn reused_sboms(bundle: &Path) -> Vec<String> {
    let mut ar = tar::Archive::new(std::fs::File::open(bundle).unwrap());
    let mut e = ar.entries().unwrap().next().unwrap().unwrap();
    let mut data = Vec::new();
    std::io::Read::read_to_end(&mut e, &mut data).unwrap();
    let m: serde_json::Value = serde_json::from_slice(&data).unwrap();
    m["sboms"]
        .as_array()
        .map(|a| a.as_slice())
        .unwrap_or_default()
        .iter()
        .filter(|s| !s["from_bundle"].is_null())
        .map(|s| s["document"].as_str().unwrap().to_string())
        .collect()
}
