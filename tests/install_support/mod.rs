//! Shared by the install tests: the example product's bundle built into a temp directory.
#![allow(dead_code)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_darkport"))
}

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
    let o = Command::new(bin())
        .arg("build-bundle")
        .arg("-f")
        .arg(dir.join("bundle/darkport.yaml"))
        .arg("-o")
        .arg(format!("{}/", out.display()))
        .arg("--key")
        .arg(dir.join("k.key"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    (out.join("dockercoins-1.0.0.darkport"), dir.join("k.pub"))
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
