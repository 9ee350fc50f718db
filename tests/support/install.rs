//! Shared by the install tests: the example product's bundle built into a temp directory.
#![allow(dead_code)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub use super::bin;

fn copy_dir(from: &Path, to: &Path) {
    let st = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(st.success());
}

/// Build the example product's bundle (bundle/ + playbooks/ copied to `dir`), signed.
pub fn build_example(dir: &Path) -> (PathBuf, PathBuf) {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    copy_dir(&repo.join("bundle"), &dir.join("bundle"));
    copy_dir(&repo.join("playbooks"), &dir.join("playbooks"));
    let st = Command::new(dir.join("bundle/prepare-base.sh"))
        .status()
        .unwrap();
    assert!(st.success(), "prepare-base.sh failed");
    let key = dir.join("k");
    let o = Command::new(bin())
        .args(["keygen", "--no-password", "--out"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = dir.join("dist");
    build_bundle(dir, &dir.join("bundle/darkport.yaml"), &out, &[]);
    (out.join("dockercoins-1.0.0.darkport"), dir.join("k.pub"))
}

/// `darkport build-bundle -f SPEC -o OUT/ --key DIR/k.key EXTRA...`; panics on failure.
pub fn build_bundle(dir: &Path, spec: &Path, out: &Path, extra: &[&std::ffi::OsStr]) {
    let o = Command::new(bin())
        .arg("build-bundle")
        .arg("-f")
        .arg(spec)
        .arg("-o")
        .arg(format!("{}/", out.display()))
        .arg("--key")
        .arg(dir.join("k.key"))
        .args(extra)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// The nodes' inventory plus the vars local test nodes need (runtime trust below /srv/trust,
/// no product containers on the shared Docker engine), written to `DIR/inventory.ini`.
pub fn site_inventory(inventory: &Path, dir: &Path) -> PathBuf {
    let inv = dir.join("inventory.ini");
    let mut s = std::fs::read_to_string(inventory).unwrap();
    s.push_str("\n[all:vars]\ndarkport_trust_root=/srv/trust\ndockercoins_run=false\n");
    std::fs::write(&inv, s).unwrap();
    inv
}

pub fn json_of(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    })
}

/// Build one of the example product's releases (`bundle/darkport-1.1.yaml`, …) from the copy
/// `build_example` made in `dir`, signed with its key; `since` makes a delta on that bundle.
pub fn build_release(dir: &Path, spec: &str, since: Option<&Path>) -> PathBuf {
    let out = dir.join(format!(
        "dist-{spec}{}",
        if since.is_some() { "-delta" } else { "" }
    ));
    let mut extra: Vec<&std::ffi::OsStr> = Vec::new();
    if let Some(s) = since {
        extra.push("--since".as_ref());
        extra.push(s.as_os_str());
    }
    build_bundle(dir, &dir.join("bundle").join(spec), &out, &extra);
    let mut found: Vec<PathBuf> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "darkport"))
        .collect();
    assert_eq!(found.len(), 1, "{found:?}");
    found.pop().unwrap()
}

/// `darkport ARGS -i INV --known-hosts … --pubkey DIR/k.pub --ca-dir DIR/ca --progress plain
/// [BUNDLE]`: a site command as an operator types it, on the test nodes.
pub fn site_cmd(
    nodes: &super::nodes::Nodes,
    inv: &Path,
    dir: &Path,
    args: &[&str],
    bundle: Option<&Path>,
) -> Command {
    let mut c = Command::new(bin());
    c.args(args)
        .arg("-i")
        .arg(inv)
        .arg("--known-hosts")
        .arg(nodes.known_hosts_path())
        .arg("--ca-dir")
        .arg(dir.join("ca"))
        .arg("--progress")
        .arg("plain");
    if let Some(b) = bundle {
        c.arg("--pubkey").arg(dir.join("k.pub")).arg(b);
    }
    c
}

/// stdout and stderr of a finished command, for assertion messages.
pub fn text(o: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Lines in a file (0 when it does not exist).
pub fn lines(p: &Path) -> usize {
    std::fs::read_to_string(p)
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

/// A node's `state.json` (fast nodes: read from its root on this machine).
pub fn node_state(root: &Path) -> Value {
    let p = root.join("var/lib/darkport/state.json");
    serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap()
}

/// A new version of the example: every tag, a changed rng app layer, migrations
/// (`playbooks/migrations/` replaced by these files).
pub fn build_version(
    dir: &Path,
    version: &str,
    upgrades_from: &str,
    migrations: &[(&str, &str)],
) -> PathBuf {
    let spec = dir.join("bundle/darkport.yaml");
    let s = std::fs::read_to_string(&spec).unwrap();
    let s = s.replace("1.0.0", version).replace(
        &format!("version: {version}\n"),
        &format!("version: {version}\nupgrades_from: \"{upgrades_from}\"\n"),
    );
    let spec_v = dir.join(format!("bundle/darkport-{version}.yaml"));
    std::fs::write(&spec_v, s).unwrap();
    std::fs::write(
        dir.join("bundle/images/rng/app/VERSION"),
        format!("{version}\n"),
    )
    .unwrap();
    let mig = dir.join("playbooks/migrations");
    let _ = std::fs::remove_dir_all(&mig);
    if !migrations.is_empty() {
        std::fs::create_dir_all(&mig).unwrap();
        for (name, body) in migrations {
            std::fs::write(mig.join(name), body).unwrap();
        }
    }
    let out = dir.join(format!("dist-{version}"));
    build_bundle(dir, &spec_v, &out, &[]);
    out.join(format!("dockercoins-{version}.darkport"))
}

/// Remove every image of the example product this machine's Docker engine holds (pulled from
/// test sites' registries). Layers the engine already has are not downloaded again, so a
/// later pull of the same content in another compression would not really be tested.
pub fn remove_product_images() {
    let Ok(o) = Command::new("docker")
        .args(["images", "--format", "{{.Repository}} {{.ID}}"])
        .output()
    else {
        return;
    };
    let all = String::from_utf8_lossy(&o.stdout).into_owned();
    let mut ids: Vec<&str> = all
        .lines()
        .filter(|l| l.contains("/dockercoins/"))
        .filter_map(|l| l.split_whitespace().nth(1))
        .collect();
    ids.sort();
    ids.dedup();
    if !ids.is_empty() {
        let _ = Command::new("docker")
            .args(["rmi", "-f"])
            .args(&ids)
            .output();
    }
}
