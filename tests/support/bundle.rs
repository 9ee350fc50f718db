//! Shared helpers for the bundle integration tests: generated images (never downloaded),
//! running the real binary, tool checks that fail under CI=true.
#![allow(dead_code)]

use sha2::{Digest as _, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Output;

pub use super::bin;

/// Run darkport with args; never inherits a terminal.
pub fn run(args: &[&str]) -> Output {
    run_env(args, &[])
}

pub fn run_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = std::process::Command::new(bin());
    c.args(args)
        .env_remove("DARKPORT_PUBKEY")
        .env_remove("DARKPORT_KEY")
        .env_remove("DARKPORT_KEY_PASSWORD");
    c.env("HOME", "/nonexistent-darkport-test-home")
        .env_remove("XDG_CONFIG_HOME");
    for (k, v) in env {
        c.env(k, v);
    }
    c.stdin(std::process::Stdio::null());
    c.output().expect("run darkport")
}

pub fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "darkport failed: {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).to_string()
}

/// Assert exit code 1 and return stderr.
pub fn fails(o: &Output) -> String {
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert_eq!(
        o.status.code(),
        Some(1),
        "expected exit 1; stderr:\n{err}\nstdout:\n{}",
        String::from_utf8_lossy(&o.stdout)
    );
    err
}

/// True if `tool` is on PATH. Missing under CI=true is a test failure; otherwise the test
/// prints why it skips.
pub fn have_tool(tool: &str) -> bool {
    let found = std::process::Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !found {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{tool} is required in CI (scripts/deps.sh installs it)");
        }
        eprintln!("SKIP: {tool} not installed (run scripts/deps.sh)");
    }
    found
}

pub fn sh(cmd: &str) -> Output {
    let o = std::process::Command::new("sh")
        .args(["-c", cmd])
        .output()
        .expect("sh");
    assert!(
        o.status.success(),
        "command failed: {cmd}\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// Deterministic pseudo-random bytes (xorshift64*), half of them runs of a repeated byte so
/// the content is partly compressible.
pub fn rand_bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut v = Vec::with_capacity(n);
    while v.len() < n {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        let r = x.wrapping_mul(0x2545_F491_4F6C_DD1D);
        if r % 4 == 0 {
            let run = (r >> 8) as usize % 64;
            v.extend(std::iter::repeat((r >> 16) as u8).take(run));
        } else {
            v.extend_from_slice(&r.to_le_bytes());
        }
    }
    v.truncate(n);
    v
}

/// An uncompressed, deterministic layer tar holding `files`.
pub fn layer_tar(files: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, name, &data[..]).unwrap();
    }
    b.into_inner().unwrap()
}

pub fn sha(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// Store `data` in the OCI layout `dir` by digest; returns `sha256:<hex>`.
pub fn put_blob(dir: &Path, data: &[u8]) -> String {
    let d = sha(data);
    let p = dir.join("blobs/sha256").join(&d[7..]);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, data).unwrap();
    d
}

/// A generated image: layers are uncompressed tars (gzipped in the layout).
pub struct GenImage {
    pub tag: String,
    pub layers: Vec<Vec<u8>>,
}

/// Write an OCI image layout with `images` (gzip layers) and return each image's
/// (tag, manifest digest, total blob bytes).
pub fn write_oci_layout(dir: &Path, images: &[GenImage]) -> Vec<(String, String, u64)> {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let mut index = Vec::new();
    let mut out = Vec::new();
    for im in images {
        let mut layers = Vec::new();
        let mut diff_ids = Vec::new();
        let mut total = 0u64;
        for l in &im.layers {
            diff_ids.push(sha(l));
            let gz = gzip(l);
            let d = put_blob(dir, &gz);
            total += gz.len() as u64;
            layers.push(serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": gz.len()}));
        }
        let cfg = serde_json::to_vec(&serde_json::json!({
            "architecture": "amd64", "os": "linux",
            "config": {"Cmd": ["/bin/sh"], "Labels": {"tag": im.tag}},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }))
        .unwrap();
        let cd = put_blob(dir, &cfg);
        total += cfg.len() as u64;
        let m = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cfg.len()},
            "layers": layers,
        }))
        .unwrap();
        let md = put_blob(dir, &m);
        total += m.len() as u64;
        index.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": m.len(),
            "annotations": {"org.opencontainers.image.ref.name": im.tag},
        }));
        out.push((im.tag.clone(), md, total));
    }
    std::fs::write(
        dir.join("index.json"),
        serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "manifests": index})).unwrap(),
    )
    .unwrap();
    out
}

/// The product used by most tests: a shared ~1 MiB base layer and `apps` app images on
/// top; `version` changes only the app layers.
pub fn product_images(version: u32, apps: usize) -> Vec<GenImage> {
    let base = layer_tar(&[
        ("bin/base", rand_bytes(1, 1 << 20)),
        ("etc/os-release", b"ID=gen\n".to_vec()),
    ]);
    (0..apps)
        .map(|i| GenImage {
            tag: format!("app{i}-v{version}"),
            layers: vec![
                base.clone(),
                layer_tar(&[(
                    &format!("app/app{i}") as &str,
                    rand_bytes(1000 + 100 * version as u64 + i as u64, 64 << 10),
                )]),
            ],
        })
        .collect()
}

/// Generate a signing key pair (no password) in `dir`; returns (key, pub).
pub fn keys(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let prefix = dir.join(name);
    ok(&run(&[
        "keygen",
        "--out",
        prefix.to_str().unwrap(),
        "--no-password",
    ]));
    (
        dir.join(format!("{name}.key")),
        dir.join(format!("{name}.pub")),
    )
}

/// Write a spec file with `product`, `version` and (name, source) images.
pub fn write_spec(path: &Path, version: &str, images: &[(String, String)], extra: &str) {
    let mut s = format!(
        "product: testprod\nversion: {version}\nplatforms: [linux/amd64]\n{extra}images:\n"
    );
    for (n, src) in images {
        s.push_str(&format!("  - name: {n}\n    source: \"{src}\"\n"));
    }
    std::fs::write(path, s).unwrap();
}

pub fn inspect_json(bundle: &Path, pubkey: &Path) -> serde_json::Value {
    let o = run(&[
        "inspect",
        "--json",
        "--pubkey",
        pubkey.to_str().unwrap(),
        bundle.to_str().unwrap(),
    ]);
    serde_json::from_str(&ok(&o)).unwrap()
}

/// sha256 of each blob file in an OCI layout, by (tag → manifest digest) from index.json.
pub fn layout_refs(dir: &Path) -> Vec<(String, String)> {
    let idx: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    idx["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["annotations"]["org.opencontainers.image.ref.name"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
                m["digest"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Bytes and count of the SBOM documents a bundle stores (format v2: zstd SPDX blobs, not
/// image blobs).
pub fn stored_sboms(bundle: &Path) -> (u64, usize) {
    let mut ar = tar::Archive::new(std::fs::File::open(bundle).unwrap());
    let mut e = ar.entries().unwrap().next().unwrap().unwrap();
    let mut data = Vec::new();
    std::io::Read::read_to_end(&mut e, &mut data).unwrap();
    let m: serde_json::Value = serde_json::from_slice(&data).unwrap();
    let docs: Vec<&serde_json::Value> = m["blobs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["mediaType"] == "application/spdx+json+zstd" && b["present"] == true)
        .collect();
    (
        docs.iter().map(|b| b["size"].as_u64().unwrap()).sum(),
        docs.len(),
    )
}
