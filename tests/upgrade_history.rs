//! The example product's history on real sshd nodes, as an operator lives it: install 1.0.0,
//! data written, a `--since 1.0.0` delta bundle to 1.1.0 (only the new blobs travel, the data
//! untouched), then 2.0.0 (a service added, one removed, the store's data converted by
//! `playbooks/migrations/0001-store-v2.yml`) with the controller killed at every phase of the
//! upgrade in turn: each re-run resumes, the data ends converted exactly once, the site at
//! 2.0.0. Also: an interrupted migration that is not re-runnable stops the run until the
//! operator says `--mark-done` or `--rerun`; a second upgrade while one runs is refused by the
//! site lock.

mod support;
use support::install as install_support;
use support::nodes as common;

use install_support::{build_release, json_of, lines, node_state, site_cmd, text};
use std::path::{Path, PathBuf};
use std::process::Output;

struct Site {
    nodes: common::Nodes,
    inv: PathBuf,
}

impl Site {
    fn new(n: usize, dir: &Path) -> Site {
        let nodes = common::Nodes::sshd(n);
        let inv = install_support::site_inventory(nodes.inventory_path(), dir);
        Site { nodes, inv }
    }

    fn run(&self, dir: &Path, args: &[&str], b: Option<&Path>) -> Output {
        site_cmd(&self.nodes, &self.inv, dir, args, b)
            .output()
            .unwrap()
    }

    fn ok(&self, dir: &Path, args: &[&str], b: Option<&Path>) -> Output {
        let o = self.run(dir, args, b);
        assert!(o.status.success(), "darkport {args:?}: {}", text(&o));
        o
    }

    fn data(&self, i: usize) -> PathBuf {
        self.nodes.node_root(i).join("srv/dockercoins/data")
    }

    /// What the 1.x store writes: one file per counter.
    fn write_1x_data(&self) {
        for i in 0..self.nodes.len() {
            std::fs::write(self.data(i).join("coins"), format!("{}\n", 10 + i)).unwrap();
            std::fs::write(self.data(i).join("hashes"), format!("{}\n", 100 + i)).unwrap();
        }
    }

    fn images(&self, i: usize) -> serde_json::Value {
        let p = self
            .nodes
            .node_root(i)
            .join("srv/dockercoins/etc/images.json");
        serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
    }
}

/// Blobs a bundle carries and their bytes (for a delta: exactly what its base lacks).
fn carried(dir: &Path, b: &Path) -> (u64, u64) {
    let o = std::process::Command::new(install_support::bin())
        .args(["inspect", "--json", "--pubkey"])
        .arg(dir.join("k.pub"))
        .arg(b)
        .output()
        .unwrap();
    let j = json_of(&o);
    (
        j["blobs_in_bundle"].as_u64().unwrap(),
        j["stored_blob_bytes"].as_u64().unwrap(),
    )
}

#[test]
#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "kills the controller: needs --features fault-injection (make test)"
)]
fn history_1_0_delta_1_1_then_2_0_with_the_controller_killed_at_every_phase() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let (b10, _) = install_support::build_example(t);
    let b11 = build_release(t, "darkport-1.1.yaml", Some(&b10));
    let b20 = build_release(t, "darkport-2.0.yaml", None);
    let site = Site::new(3, t);
    site.ok(t, &["install"], Some(&b10));
    site.write_1x_data();

    // 2.0.0 upgrades only from 1.1.x: refused from 1.0.0, nothing changed.
    let o = site.run(t, &["upgrade"], Some(&b20));
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains(">=1.1.0, <2.0.0"), "{}", text(&o));
    assert!(node_state(&site.nodes.node_root(0))["operation"].is_null());

    // 1.0.0 -> 1.1.0 from the delta bundle: exactly the new blobs travel.
    let (count, bytes) = carried(t, &b11);
    assert!(count >= 1 && bytes > 0);
    let o = site.ok(t, &["upgrade", "--json"], Some(&b11));
    let j = json_of(&o);
    let push = &j["nodes"][0]["push"];
    assert_eq!(push["blobs_sent"].as_u64().unwrap(), count, "{push}");
    assert_eq!(push["bytes_sent"].as_u64().unwrap(), bytes, "{push}");
    for i in 0..3 {
        assert_eq!(
            std::fs::read_to_string(site.data(i).join("coins")).unwrap(),
            format!("{}\n", 10 + i),
            "1.1.0 leaves the data alone"
        );
        let imgs = site.images(i);
        assert!(imgs["dockercoins/rng:1.1.0"].is_string(), "{imgs}");
        assert!(imgs.get("dockercoins/rng:1.0.0").is_none(), "{imgs}");
    }

    // A stored blob 2.0.0 reuses (the biggest: the base layer) is corrupted on the registry
    // host's disk: the registry refuses to serve it, and the upgrade sends it again.
    let cas = site
        .nodes
        .node_root(0)
        .join("var/lib/darkport/blobs/sha256");
    let victim = std::fs::read_dir(&cas)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_none())
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap();
    let good = std::fs::read(&victim).unwrap();
    let mut bad = good.clone();
    bad[good.len() / 2] ^= 0xff;
    std::fs::write(&victim, &bad).unwrap();
    let hex = victim.file_name().unwrap().to_str().unwrap().to_string();
    let got = t.join("got");
    let get = std::process::Command::new("curl")
        .args(["-s", "-o"])
        .arg(&got)
        .arg("--cacert")
        .arg(t.join("ca/ca.crt"))
        .arg(format!(
            "https://{}:5000/v2/dockercoins/rng/blobs/sha256:{hex}",
            site.nodes.addr(0).ip
        ))
        .status()
        .unwrap();
    // The registry hashes while it streams and cuts the connection before the last chunk.
    assert!(!get.success(), "a corrupt blob is never served whole");
    assert!(std::fs::metadata(&got).map(|m| m.len()).unwrap_or(0) < bad.len() as u64);

    // 1.1.0 -> 2.0.0, the controller killed at each phase in turn; every run resumes the last.
    let plan = json_of(&site.ok(t, &["upgrade", "--plan", "--json"], Some(&b20)));
    assert_eq!(plan["from"], "1.1.0");
    assert_eq!(plan["nodes"][0]["corrupt_blobs"], 1, "{plan}");
    assert_eq!(plan["migrations"][0]["id"], "0001-store-v2");
    let points = [
        "push:started",
        "push:finished",
        "seed:finished",
        "trust:finished",
        "migration:0001-store-v2:started",
        // Inside the migration: its playbook finished everywhere, its journal entry did not.
        "migration-run:finished",
        "migration:0001-store-v2:finished",
        "playbook:started",
        // upgrade.yml ran on a node, the version is not recorded yet.
        "playbook:finished",
    ];
    for p in points {
        let o = site_cmd(&site.nodes, &site.inv, t, &["upgrade"], Some(&b20))
            .env("DARKPORT_CRASH_AT", p)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(137), "crash at {p}: {}", text(&o));
        for i in 0..3 {
            let st = node_state(&site.nodes.node_root(i));
            assert_eq!(st["version"], "1.1.0", "crash at {p}: not recorded yet");
        }
    }
    site.ok(t, &["upgrade"], Some(&b20));

    assert!(
        std::fs::read(&victim).unwrap() == good,
        "the corrupt blob was sent again"
    );
    for i in 0..3 {
        let d = site.data(i);
        assert_eq!(
            std::fs::read_to_string(d.join("counters")).unwrap(),
            format!("coins {}\nhashes {}\n", 10 + i, 100 + i),
            "node{}: data in the 2.0 format",
            i + 1
        );
        assert!(!d.join("coins").exists(), "the 1.x files are gone");
        let backup = d
            .parent()
            .unwrap()
            .join("data.darkport-backup-0001-store-v2/coins");
        assert_eq!(
            std::fs::read_to_string(backup).unwrap(),
            format!("{}\n", 10 + i)
        );
        // Converted once; the re-run after the crash inside the migration found nothing left
        // to convert (it is declared re-runnable, so it ran again).
        let log = std::fs::read_to_string(d.parent().unwrap().join("etc/migrations.log")).unwrap();
        let runs: Vec<&str> = log.lines().map(|l| l.split_once(' ').unwrap().1).collect();
        assert_eq!(
            runs,
            [
                "0001-store-v2 converted 2 key(s)",
                "0001-store-v2 converted 0 key(s)"
            ]
        );
        let imgs = site.images(i);
        assert!(imgs["dockercoins/exporter:2.0.0"].is_string(), "{imgs}");
        assert!(imgs.get("dockercoins/hasher:2.0.0").is_none(), "{imgs}");
        let st = node_state(&site.nodes.node_root(i));
        assert_eq!(st["version"], "2.0.0");
        assert_eq!(st["previous"]["version"], "1.1.0");
        assert!(st["operation"].is_null());
        let hist: Vec<&str> = st["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["to"].as_str().unwrap())
            .collect();
        assert_eq!(hist, ["1.0.0", "1.1.0", "2.0.0"]);
    }
    let status = json_of(&site.ok(t, &["status", "--json"], None));
    for r in status["nodes"].as_array().unwrap() {
        assert_eq!(r["version"], "2.0.0", "{r}");
        assert_eq!(r["migrations"], serde_json::json!(["0001-store-v2"]), "{r}");
    }
    // Nothing left to do, nothing runs again.
    let o = site.ok(t, &["upgrade"], Some(&b20));
    assert!(text(&o).contains("nothing to do"), "{}", text(&o));
    assert_eq!(
        lines(
            &site
                .nodes
                .node_root(0)
                .join("srv/dockercoins/etc/migrations.log")
        ),
        2
    );
}

/// The example's 2.0.0 with its migration edited in the test's copy of the repository.
fn build_2_0_with(dir: &Path, edit: impl Fn(String) -> String) -> PathBuf {
    let p = dir.join("playbooks/migrations/0001-store-v2.yml");
    let s = std::fs::read_to_string(&p).unwrap();
    std::fs::write(&p, edit(s)).unwrap();
    build_release(dir, "darkport-2.0.yaml", None)
}

/// 1.0.0 installed with data, upgraded to 1.1.0, then the upgrade to a 2.0.0 whose migration
/// is not re-runnable interrupted inside the migration: the re-run stops and says what to do.
fn stopped_in_a_migration(t: &Path) -> (Site, PathBuf) {
    let (b10, _) = install_support::build_example(t);
    let b11 = build_release(t, "darkport-1.1.yaml", None);
    let b20 = build_2_0_with(t, |s| s.replace("rerunnable: true", "rerunnable: false"));
    let site = Site::new(2, t);
    site.ok(t, &["install"], Some(&b10));
    site.write_1x_data();
    site.ok(t, &["upgrade"], Some(&b11));
    let o = site_cmd(&site.nodes, &site.inv, t, &["upgrade"], Some(&b20))
        .env("DARKPORT_CRASH_AT", "migration-run:finished")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(137), "{}", text(&o));
    let o = site.run(t, &["upgrade"], Some(&b20));
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let msg = text(&o);
    assert!(
        msg.contains("0001-store-v2")
            && msg.contains("not declared rerunnable")
            && msg.contains("--mark-done 0001-store-v2"),
        "{msg}"
    );
    for i in 0..2 {
        assert_eq!(node_state(&site.nodes.node_root(i))["version"], "1.1.0");
        assert_eq!(site.migration_runs(i), 1, "not run a second time");
    }
    (site, b20)
}

impl Site {
    fn migration_runs(&self, i: usize) -> usize {
        lines(
            &self
                .nodes
                .node_root(i)
                .join("srv/dockercoins/etc/migrations.log"),
        )
    }
}

#[test]
#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "kills the controller: needs --features fault-injection (make test)"
)]
fn an_interrupted_migration_that_is_not_rerunnable_stops_until_marked_done() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let (site, b20) = stopped_in_a_migration(t);
    // The operator checked: the conversion completed. Recorded, not run again.
    let o = site.ok(t, &["upgrade", "--mark-done", "0001-store-v2"], Some(&b20));
    assert!(text(&o).contains("recorded as done"), "{}", text(&o));
    for i in 0..2 {
        let st = node_state(&site.nodes.node_root(i));
        assert_eq!(st["version"], "2.0.0");
        assert_eq!(st["migrations"][0]["marked_done"], true, "{st}");
        assert_eq!(site.migration_runs(i), 1);
        assert_eq!(
            std::fs::read_to_string(site.data(i).join("counters")).unwrap(),
            format!("coins {}\nhashes {}\n", 10 + i, 100 + i)
        );
    }
}

#[test]
#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "kills the controller: needs --features fault-injection (make test)"
)]
fn an_interrupted_migration_reruns_from_the_restored_backup_on_request() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let (site, b20) = stopped_in_a_migration(t);
    // A migration name that is not part of this upgrade changes nothing.
    let o = site.run(t, &["upgrade", "--rerun", "0009-nope"], Some(&b20));
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("not a migration of this upgrade"),
        "{}",
        text(&o)
    );
    // The operator restores the data from the backup by hand, then asks for a re-run.
    for i in 0..2 {
        let d = site.data(i);
        std::fs::remove_dir_all(&d).unwrap();
        let st = std::process::Command::new("cp")
            .arg("-a")
            .arg(d.with_file_name("data.darkport-backup-0001-store-v2"))
            .arg(&d)
            .status()
            .unwrap();
        assert!(st.success());
    }
    site.ok(t, &["upgrade", "--rerun", "0001-store-v2"], Some(&b20));
    for i in 0..2 {
        let st = node_state(&site.nodes.node_root(i));
        assert_eq!(st["version"], "2.0.0");
        assert!(st["migrations"][0].get("marked_done").is_none(), "{st}");
        let log = std::fs::read_to_string(
            site.nodes
                .node_root(i)
                .join("srv/dockercoins/etc/migrations.log"),
        )
        .unwrap();
        assert_eq!(log.matches("converted 2 key(s)").count(), 2, "{log}");
        assert_eq!(
            std::fs::read_to_string(site.data(i).join("counters")).unwrap(),
            format!("coins {}\nhashes {}\n", 10 + i, 100 + i)
        );
    }
}

#[test]
fn a_second_upgrade_while_one_runs_is_refused_by_the_site_lock() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let (b10, _) = install_support::build_example(t);
    let b11 = build_release(t, "darkport-1.1.yaml", None);
    // The migration waits (up to 60 s) while /srv/dockercoins/hold exists.
    let b20 = build_2_0_with(t, |s| {
        s.replace(
            "        set -e\n        cd {{ dockercoins_dir }}/data\n",
            "        set -e\n        touch {{ dockercoins_dir }}/waiting\n        \
             n=0; while [ -e {{ dockercoins_dir }}/hold ] && [ $n -lt 600 ]; do sleep 0.1; n=$((n + 1)); done\n        \
             cd {{ dockercoins_dir }}/data\n",
        )
    });
    let site = Site::new(2, t);
    site.ok(t, &["install"], Some(&b10));
    site.write_1x_data();
    site.ok(t, &["upgrade"], Some(&b11));
    let hold = site.nodes.node_root(0).join("srv/dockercoins/hold");
    std::fs::write(&hold, "").unwrap();
    let mut first = site_cmd(&site.nodes, &site.inv, t, &["upgrade"], Some(&b20))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let waiting = site.nodes.node_root(0).join("srv/dockercoins/waiting");
    let t0 = std::time::Instant::now();
    while !waiting.exists() {
        assert!(
            t0.elapsed().as_secs() < 90,
            "the first upgrade never reached the migration"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let o = site.run(t, &["upgrade"], Some(&b20));
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("lock"), "{}", text(&o));
    std::fs::remove_file(&hold).unwrap();
    assert!(first.wait().unwrap().success());
    for i in 0..2 {
        assert_eq!(node_state(&site.nodes.node_root(i))["version"], "2.0.0");
        assert_eq!(site.migration_runs(i), 1);
    }
}

#[test]
fn a_node_stopped_mid_upgrade_is_reported_and_a_rerun_completes_it() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let (b10, _) = install_support::build_example(t);
    // upgrade.yml runs one node at a time (serial: 1); the test holds node1's batch while it
    // stops node3.
    let up = t.join("playbooks/upgrade.yml");
    let s = std::fs::read_to_string(&up).unwrap().replace(
        "  tasks:\n",
        "  pre_tasks:\n    - name: hold (test)\n      shell: touch /srv/dockercoins/waiting; n=0; while [ -e /srv/dockercoins/hold ] && [ $n -lt 600 ]; do sleep 0.1; n=$((n + 1)); done\n  tasks:\n",
    );
    std::fs::write(&up, s).unwrap();
    let b11 = build_release(t, "darkport-1.1.yaml", None);
    let site = Site::new(3, t);
    site.ok(t, &["install"], Some(&b10));
    site.write_1x_data();
    let hold = site.nodes.node_root(0).join("srv/dockercoins/hold");
    std::fs::write(&hold, "").unwrap();
    let run = site_cmd(&site.nodes, &site.inv, t, &["upgrade"], Some(&b11))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let waiting = site.nodes.node_root(0).join("srv/dockercoins/waiting");
    let t0 = std::time::Instant::now();
    while !waiting.exists() {
        assert!(t0.elapsed().as_secs() < 90, "node1's batch never started");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    site.nodes.stop(2);
    std::fs::remove_file(&hold).unwrap();
    let o = run.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("node3"), "{}", text(&o));
    for i in 0..2 {
        assert_eq!(
            node_state(&site.nodes.node_root(i))["version"],
            "1.1.0",
            "node{}: its batch finished",
            i + 1
        );
        assert!(site.images(i)["dockercoins/rng:1.1.0"].is_string());
    }
    assert_eq!(node_state(&site.nodes.node_root(2))["version"], "1.0.0");
    // node3 is back: the same command completes it (the others have nothing left to do).
    site.nodes.start(2);
    site.ok(t, &["upgrade"], Some(&b11));
    for i in 0..3 {
        let st = node_state(&site.nodes.node_root(i));
        assert_eq!(st["version"], "1.1.0", "node{}", i + 1);
        assert!(st["operation"].is_null());
        assert!(site.images(i)["dockercoins/rng:1.1.0"].is_string());
        assert_eq!(
            std::fs::read_to_string(site.data(i).join("coins")).unwrap(),
            format!("{}\n", 10 + i)
        );
    }
}
