//! A compose product (the example DockerCoins stack, bundle/stack-*.yaml) installed and
//! upgraded on real engines: the `compose` target with Debian's docker-compose, then the
//! `swarm` target on this machine's Docker engine as a one-node Swarm (the fast test node's
//! sshd runs on the same machine, so its `docker` is that engine). The services pull their
//! images from the darkport site registry by digest and must serve: the webui's counter grows.
//! The rolling upgrade 1.0 -> 1.1 is probed all along and its longest outage is printed; an
//! upgrade whose worker exits at once is rolled back by Swarm and reported with exit 1.
//!
//! One test: both targets use the machine's single engine and port 8000.

mod support;
use support::install as install_support;
use support::nodes as common;

use install_support::{build_example, build_release, json_of, site_cmd, text};
use serde_json::Value;
use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const PROJECT: &str = "dockercoins-stack";

fn docker(args: &[&str]) -> String {
    let o = Command::new("docker").args(args).output().unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The webui's `/cgi-bin/stats` on this machine's port 8000.
fn stats() -> Option<Value> {
    let addr = "127.0.0.1:8000".parse().unwrap();
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"GET /cgi-bin/stats HTTP/1.0\r\n\r\n").ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    serde_json::from_str(body.split_once("\r\n\r\n")?.1).ok()
}

/// Stats once the worker has counted more than `above` hashes (the product really runs).
fn stats_above(above: u64) -> Value {
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(60) {
        if let Some(v) = stats().filter(|v| v["hashes"].as_u64().unwrap_or(0) > above) {
            return v;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    panic!(
        "the webui never counted more than {above} hashes: {:?}",
        stats()
    );
}

/// Remove what the compose target left on the engine (containers, network, volume).
fn compose_down() {
    let label = format!("label=com.docker.compose.project={PROJECT}");
    let ids = docker(&["ps", "-aq", "--filter", &label]);
    let ids: Vec<&str> = ids.split_whitespace().collect();
    if !ids.is_empty() {
        let mut a = vec!["rm", "-f"];
        a.extend(ids);
        docker(&a);
    }
    docker(&["network", "rm", &format!("{PROJECT}_default")]);
    docker(&["volume", "rm", &format!("{PROJECT}_store-data")]);
}

/// Every image of the product the engine holds (pulled from the test sites' registries):
/// removed at the start and the end, so no other test finds their layers already present (a
/// pull of the same layers in another compression would then not download them at all).
struct ProductImages;

impl Drop for ProductImages {
    fn drop(&mut self) {
        compose_down();
        install_support::remove_product_images();
    }
}

/// A Swarm for the test: this engine's own if it is already a manager (left as it was), else
/// one made here and left at the end.
struct Swarm {
    made: bool,
}

impl Swarm {
    fn up() -> Swarm {
        let state = docker(&["info", "--format", "{{.Swarm.LocalNodeState}}"]);
        if state.trim() == "active" {
            return Swarm { made: false };
        }
        let o = Command::new("docker")
            .args(["swarm", "init", "--advertise-addr", "127.0.0.1"])
            .output()
            .unwrap();
        assert!(o.status.success(), "docker swarm init: {}", text(&o));
        Swarm { made: true }
    }
}

impl Drop for Swarm {
    fn drop(&mut self) {
        docker(&["stack", "rm", PROJECT]);
        if self.made {
            docker(&["swarm", "leave", "--force"]);
        }
        // The stack's network and volume go with their last task.
        for _ in 0..20 {
            if docker(&[
                "network",
                "ls",
                "-q",
                "--filter",
                &format!("name={PROJECT}_"),
            ])
            .trim()
            .is_empty()
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        docker(&["volume", "rm", &format!("{PROJECT}_store-data")]);
    }
}

/// 1.2.0 of the stack: the worker's new image exits at once.
fn failing_release(dir: &Path) -> std::path::PathBuf {
    let s = std::fs::read_to_string(dir.join("bundle/stack-1.1.yaml")).unwrap();
    let mut s = s.replace("1.1.0", "1.2.0");
    let i = s.find("dockercoins/worker:1.2.0").unwrap();
    let j = i + s[i..].find("Entrypoint").unwrap();
    let k = j + s[j..].find('\n').unwrap();
    s.replace_range(j..k, "Entrypoint: [\"/bin/sh\", \"-c\", \"exit 3\"]");
    std::fs::write(dir.join("bundle/stack-1.2.yaml"), s).unwrap();
    std::fs::write(dir.join("bundle/compose/1.2.0.env"), "TAG=1.2.0\n").unwrap();
    std::fs::create_dir_all(dir.join("bundle/releases/1.2.0/app")).unwrap();
    std::fs::write(dir.join("bundle/releases/1.2.0/app/VERSION"), "1.2.0\n").unwrap();
    build_release(dir, "stack-1.2.yaml", None)
}

/// Every service converged, running the image the bundle pinned.
fn assert_deployed(report: &Value, target: &str) {
    let d = &report["deploy"];
    assert_eq!(d["target"], target, "{report:#}");
    assert_eq!(d["converged"], true, "{report:#}");
    let services = d["services"].as_array().unwrap();
    assert_eq!(services.len(), 5, "{d:#}");
    for s in services {
        assert_eq!(s["running"], s["desired"], "{s}");
        assert!(
            s["image"].as_str().unwrap().contains("/dockercoins/")
                && s["image"].as_str().unwrap().contains("@sha256:"),
            "{s}"
        );
    }
}

/// `status --json` asks the engine: every service of the deployment, converged.
fn assert_status(nodes: &common::Nodes, inv: &Path, dir: &Path, target: &str) {
    let o = site_cmd(nodes, inv, dir, &["status", "--json"], None)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let st = json_of(&o);
    let d = &st["deploy"];
    assert_eq!(d.as_array().map(Vec::len), Some(1), "{st:#}");
    assert_eq!(d[0]["version"], "1.0.0", "{st:#}");
    assert_deployed(&serde_json::json!({"deploy": d[0]}), target);
    let o = site_cmd(nodes, inv, dir, &["status"], None)
        .output()
        .unwrap();
    let t = text(&o);
    assert!(
        t.contains(&format!(
            "DEPLOY {target} {PROJECT} 1.0.0 on node1 (converged)"
        )),
        "{t}"
    );
}

#[test]
fn compose_and_swarm_targets_run_the_product() {
    if let Err(e) = common::docker_usable() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("Docker is required in CI: {e}");
        }
        eprintln!("skipped: {e}");
        return;
    }
    install_support::remove_product_images();
    let _images = ProductImages;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    build_example(dir);
    let b10 = build_release(dir, "stack-1.0.yaml", None);
    let b11 = build_release(dir, "stack-1.1.yaml", None);
    let b12 = failing_release(dir);
    let nodes = common::Nodes::sshd(1);
    let base = std::fs::read_to_string(nodes.inventory_path()).unwrap();
    let vars = "\n[all:vars]\ndarkport_trust_root=/srv/trust\ndarkport_deploy_timeout=120\n";

    // 1. The compose target: docker-compose on the node, every service up and serving.
    compose_down();
    let inv = dir.join("compose.ini");
    std::fs::write(&inv, format!("{base}{vars}")).unwrap();
    let o = site_cmd(&nodes, &inv, dir, &["install", "--json"], Some(&b10))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert_deployed(&json_of(&o), "compose");
    let v = stats_above(5);
    assert_eq!(v["version"], "1.0.0", "{v}");
    assert_status(&nodes, &inv, dir, "compose");
    compose_down();

    // 2. The swarm target: a fresh site (new node root) whose inventory names a manager.
    let _swarm = Swarm::up();
    let nodes = common::Nodes::sshd(1);
    let base = std::fs::read_to_string(nodes.inventory_path()).unwrap();
    let inv = dir.join("swarm.ini");
    std::fs::write(&inv, format!("{base}\n[swarm_managers]\nnode1\n{vars}")).unwrap();
    let dir2 = dir.join("site2");
    std::fs::create_dir_all(&dir2).unwrap();
    std::fs::copy(dir.join("k.pub"), dir2.join("k.pub")).unwrap();
    let t0 = Instant::now();
    let o = site_cmd(&nodes, &inv, &dir2, &["install", "--json"], Some(&b10))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let r = json_of(&o);
    assert_deployed(&r, "swarm");
    let before = stats_above(5);
    eprintln!(
        "swarm install: {:.1} s to every service running (phases {})",
        t0.elapsed().as_secs_f64(),
        r["phases"]
    );
    let ls = docker(&[
        "service",
        "ls",
        "--format",
        "{{.Name}} {{.Replicas}} {{.Image}}",
    ]);
    assert!(ls.contains(&format!("{PROJECT}_worker 1/1 ")), "{ls}");

    // 3. Rolling upgrade to 1.1.0 while the webui is probed every 100 ms.
    let stop = Arc::new(AtomicBool::new(false));
    let probe = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let (mut worst, mut down_since) = (Duration::ZERO, None::<Instant>);
            while !stop.load(Ordering::Relaxed) {
                match (stats().is_some(), down_since) {
                    (false, None) => down_since = Some(Instant::now()),
                    (true, Some(t)) => {
                        worst = worst.max(t.elapsed());
                        down_since = None;
                    }
                    _ => {}
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            worst.max(down_since.map(|t| t.elapsed()).unwrap_or_default())
        })
    };
    let t0 = Instant::now();
    let o = site_cmd(&nodes, &inv, &dir2, &["upgrade", "--json"], Some(&b11))
        .output()
        .unwrap();
    let took = t0.elapsed();
    let after = stats_above(before["hashes"].as_u64().unwrap());
    stop.store(true, Ordering::Relaxed);
    let worst = probe.join().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert_deployed(&json_of(&o), "swarm");
    assert_eq!(after["version"], "1.1.0", "{after}");
    eprintln!(
        "rolling upgrade 1.0.0 -> 1.1.0: {:.1} s; longest webui outage {:.2} s",
        took.as_secs_f64(),
        worst.as_secs_f64()
    );
    // One task restart of the webui (stop-first on one node: its host port is taken), not
    // the whole stack at once.
    assert!(worst < Duration::from_secs(10), "webui down {worst:?}");

    // 4. Rollback to 1.0.0: the kept 1.0.0 stack file deployed again, served again; then
    //    forward to 1.1.0 once more.
    let o = site_cmd(&nodes, &inv, &dir2, &["rollback", "--json"], None)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let r = json_of(&o);
    assert_eq!(r["deploy"]["converged"], true, "{r:#}");
    assert_eq!(r["deploy"]["version"], "1.0.0", "{r:#}");
    let t0 = Instant::now();
    while stats().map(|v| v["version"] != "1.0.0").unwrap_or(true) {
        assert!(t0.elapsed() < Duration::from_secs(30), "{:?}", stats());
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_status(&nodes, &inv, &dir2, "swarm");
    let o = site_cmd(&nodes, &inv, &dir2, &["upgrade"], Some(&b11))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let after = stats_above(0);
    assert_eq!(after["version"], "1.1.0", "{after}");

    // 5. An upgrade whose worker exits at once: Swarm rolls the worker back, darkport exits 1
    //    naming the service and the task's error, and the site stays recorded at 1.1.0.
    let o = site_cmd(&nodes, &inv, &dir2, &["upgrade"], Some(&b12))
        .output()
        .unwrap();
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains("service worker") && out.contains("rollback"),
        "{out}"
    );
    assert!(out.contains("non-zero exit (3)"), "{out}");
    let st = install_support::node_state(&nodes.node_root(0));
    assert_eq!(st["version"], "1.1.0", "{st:#}");
    // The rolled-back worker runs the 1.1.0 image again (its task may still be starting).
    let t0 = Instant::now();
    loop {
        let ls = docker(&["service", "ls", "--format", "{{.Name}} {{.Replicas}}"]);
        if ls.contains(&format!("{PROJECT}_worker 1/1")) {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "{ls}");
        std::thread::sleep(Duration::from_millis(500));
    }
    stats_above(after["hashes"].as_u64().unwrap());
}
