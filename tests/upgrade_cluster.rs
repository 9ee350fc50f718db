//! The example product's whole history on three Docker container nodes, with the product
//! really running: each node's podman (nested in the node container) pulls the services from
//! the seeded site registry and runs them; the worker mines and the store counts. Install
//! 1.0.0, let it count; upgrade to 1.1.0 with a `--since 1.0.0` delta bundle, then to 2.0.0
//! (full bundle: hasher removed, exporter added, the store's data converted by the migration).
//! After each step the counters kept growing from where they were (the data is intact, and in
//! the 2.0 format after 2.0.0), the containers run the new images, and `status` shows the
//! version and the applied migration. Then `darkport rollback` takes the site back to 1.1.0
//! (data restored from the migration's backup, 1.1.0's services running). Fails in CI when
//! Docker is missing.

mod support;
use support::install as install_support;
use support::nodes as common;

use install_support::{build_release, json_of, site_cmd, text};
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

/// `GET http://127.0.0.1:PORT/PATH` on node `i` (python3 is in the node image).
fn http_get(nodes: &common::Nodes, i: usize, port: u16, path: &str) -> Option<String> {
    let o = nodes.exec(
        i,
        &format!(
            "python3 -c \"import urllib.request,sys; sys.stdout.write(urllib.request.urlopen('http://127.0.0.1:{port}{path}', timeout=5).read().decode())\""
        ),
    );
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).into_owned())
}

/// The webui's stats on node `i` once the worker has counted more than `above` hashes.
fn stats_above(nodes: &common::Nodes, i: usize, above: u64) -> Value {
    let t0 = Instant::now();
    let mut last = String::new();
    while t0.elapsed() < Duration::from_secs(90) {
        if let Some(s) = http_get(nodes, i, 8000, "/cgi-bin/stats") {
            if let Ok(v) = serde_json::from_str::<Value>(&s) {
                if v["hashes"].as_u64().unwrap_or(0) > above {
                    return v;
                }
            }
            last = s;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    panic!(
        "node{}: the product is not counting past {above} hashes (last stats: {last:?}); containers:\n{}",
        i + 1,
        String::from_utf8_lossy(&nodes.exec(i, "podman ps -a; podman logs dockercoins-worker 2>&1 | tail -5").stdout)
    );
}

/// The running dockercoins containers on node `i`: name -> image reference.
fn containers(nodes: &common::Nodes, i: usize) -> Vec<(String, String)> {
    let out = nodes.exec_ok(
        i,
        "podman ps --filter status=running --format '{{.Names}} {{.Image}}' | grep '^dockercoins-' | sort",
    );
    out.lines()
        .map(|l| {
            let (n, img) = l.split_once(' ').unwrap();
            (n.to_string(), img.to_string())
        })
        .collect()
}

fn assert_runs(nodes: &common::Nodes, i: usize, version: &str, services: &[&str]) {
    let c = containers(nodes, i);
    let names: Vec<&str> = c
        .iter()
        .map(|(n, _)| n.trim_start_matches("dockercoins-"))
        .collect();
    let mut want = services.to_vec();
    want.sort();
    assert_eq!(names, want, "node{}: {c:?}", i + 1);
    for (n, img) in &c {
        assert!(
            img.ends_with(&format!(":{version}")),
            "node{} {n} runs {img}",
            i + 1
        );
    }
}

#[test]
fn history_on_container_nodes_with_the_product_running() {
    let Some(nodes) = common::Nodes::cluster_or_skip(3) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let (b10, _) = install_support::build_example(t);
    let b11 = build_release(t, "darkport-1.1.yaml", Some(&b10));
    let b20 = build_release(t, "darkport-2.0.yaml", None);
    let inv = t.join("inventory.ini");
    std::fs::copy(nodes.inventory_path(), &inv).unwrap();
    let ok = |args: &[&str], b: Option<&Path>| {
        let o = site_cmd(&nodes, &inv, t, args, b).output().unwrap();
        assert!(o.status.success(), "darkport {args:?}: {}", text(&o));
        o
    };

    ok(&["install"], Some(&b10));
    let v1 = ["hasher", "rng", "store", "webui", "worker"];
    let mut before = Vec::new();
    for i in 0..3 {
        assert_runs(&nodes, i, "1.0.0", &v1);
        let s = stats_above(&nodes, i, 0);
        assert_eq!(s["version"], "1.0.0");
        before.push(s["hashes"].as_u64().unwrap());
    }

    ok(&["upgrade"], Some(&b11));
    for (i, seen) in before.iter_mut().enumerate() {
        assert_runs(&nodes, i, "1.1.0", &v1);
        let s = stats_above(&nodes, i, *seen);
        assert_eq!(s["version"], "1.1.0", "node{}", i + 1);
        *seen = s["hashes"].as_u64().unwrap();
    }

    ok(&["upgrade"], Some(&b20));
    for (i, seen) in before.iter().enumerate() {
        assert_runs(
            &nodes,
            i,
            "2.0.0",
            &["exporter", "rng", "store", "webui", "worker"],
        );
        // The counters carried on from 1.1.0: the data was converted, not lost.
        let s = stats_above(&nodes, i, *seen);
        assert_eq!(s["version"], "2.0.0");
        let files = nodes.exec_ok(i, "ls /srv/dockercoins/data");
        // The running store writes `counters.tmp.PID` then renames it: a write in flight is
        // not a leftover of the migration.
        assert_eq!(
            files
                .split_whitespace()
                .filter(|f| !f.starts_with("counters.tmp."))
                .collect::<Vec<_>>(),
            ["counters"],
            "node{}",
            i + 1
        );
        let m = http_get(&nodes, i, 9100, "/cgi-bin/metrics").unwrap_or_default();
        assert!(
            m.contains("dockercoins_hashes_total "),
            "node{}: {m:?}",
            i + 1
        );
    }
    let st = json_of(&ok(&["status", "--json"], None));
    for r in st["nodes"].as_array().unwrap() {
        assert_eq!(r["version"], "2.0.0", "{r}");
        assert_eq!(r["migrations"], serde_json::json!(["0001-store-v2"]), "{r}");
    }

    // Back to 1.1.0: the migration's rollback playbook stops the 2.0 writers, the data comes
    // back from the copy taken before the migration, 1.1.0's install.yml runs its services.
    ok(&["rollback"], None);
    for i in 0..3 {
        assert_runs(&nodes, i, "1.1.0", &v1);
        let s = stats_above(&nodes, i, 0);
        assert_eq!(s["version"], "1.1.0");
        let files = nodes.exec_ok(i, "ls /srv/dockercoins/data");
        assert!(
            files.split_whitespace().any(|f| f == "hashes") && !files.contains("counters"),
            "node{}: 1.x data back: {files}",
            i + 1
        );
    }
    let st = json_of(&ok(&["status", "--json"], None));
    for r in st["nodes"].as_array().unwrap() {
        assert_eq!(r["version"], "1.1.0", "{r}");
    }
}
