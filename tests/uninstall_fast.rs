//! `darkport uninstall` on real sshd nodes: the example product installed on two nodes, then
//! `--purge-data` refused (the bundle has no uninstall.yml), `--check` changing nothing, and
//! the uninstall: darkport_root, the runtime trust and the registry service gone from every
//! node, `status` saying nothing is installed, and a fresh install working again.

mod support;
use support::install as install_support;
use support::nodes as common;

use install_support::{build_example, json_of, site_cmd, text};
use std::process::Output;

fn ok(o: Output) -> Output {
    assert!(o.status.success(), "{}", text(&o));
    o
}

#[test]
fn uninstall_removes_what_darkport_put_there_and_only_that() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let (bundle, _) = build_example(d);
    let nodes = common::Nodes::sshd(2);
    let inv = install_support::site_inventory(nodes.inventory_path(), d);
    ok(site_cmd(&nodes, &inv, d, &["install"], Some(&bundle))
        .output()
        .unwrap());
    let root = |i: usize| nodes.node_root(i).join("var/lib/darkport");
    let trust = |i: usize| nodes.node_root(i).join("srv/trust/etc/docker/certs.d");
    let reg = format!("{}:5000", nodes.addr(0).ip);
    assert!(root(0).join("state.json").exists() && root(1).join("state.json").exists());
    assert!(trust(1).join(&reg).join("ca.crt").exists());
    // The product's data, which darkport does not own, beside it.
    nodes.exec_ok(
        1,
        "mkdir -p /srv/dockercoins/data && echo 7 > /srv/dockercoins/data/coins",
    );

    // --purge-data without an uninstall.yml: refused, nothing changed.
    let o = site_cmd(&nodes, &inv, d, &["uninstall", "--purge-data"], None)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("needs the bundle's playbooks/uninstall.yml"),
        "{}",
        text(&o)
    );
    assert!(root(0).join("state.json").exists());

    // --check: the plan, nothing changed.
    let o = ok(
        site_cmd(&nodes, &inv, d, &["uninstall", "--check", "--json"], None)
            .output()
            .unwrap(),
    );
    let j = json_of(&o);
    assert_eq!(
        (j["command"].as_str(), j["check"].as_bool()),
        (Some("uninstall"), Some(true))
    );
    assert!(root(1).join("state.json").exists());

    // The uninstall.
    let o = ok(site_cmd(&nodes, &inv, d, &["uninstall", "--json"], None)
        .output()
        .unwrap());
    let j = json_of(&o);
    assert_eq!(j["ok"], true, "{j}");
    for i in 0..2 {
        // The fast nodes mount darkport_root: the directory stays, empty.
        let left: Vec<_> = std::fs::read_dir(root(i))
            .map(|d| d.filter_map(Result::ok).map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(
            left.is_empty(),
            "node{}: {left:?} left in {}",
            i + 1,
            root(i).display()
        );
        assert!(!trust(i).join(&reg).exists(), "node{}: trust left", i + 1);
    }
    // The supervised registry stops (its process group got SIGTERM).
    let stopped = (0..30).any(|_| {
        let gone = std::net::TcpStream::connect(&reg).is_err();
        if !gone {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        gone
    });
    assert!(stopped, "the registry still answers at {reg}");
    assert_eq!(
        std::fs::read_to_string(nodes.node_root(1).join("srv/dockercoins/data/coins")).unwrap(),
        "7\n",
        "the product's data is not darkport's to remove"
    );
    let o = site_cmd(&nodes, &inv, d, &["status", "--json"], None)
        .output()
        .unwrap();
    let j = json_of(&o);
    assert!(j["nodes"][0]["version"].is_null(), "{j}");
    assert_eq!(j["site"]["nodes_at_version"], 0, "{j}");

    // Installing again works from scratch.
    ok(site_cmd(&nodes, &inv, d, &["install"], Some(&bundle))
        .output()
        .unwrap());
}
