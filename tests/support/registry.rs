//! Shared helpers of the `registry_*` integration tests: generate small OCI images into a CAS,
//! run `darkport registry serve`, and a raw HTTP/1.1 client that shows exactly what the server
//! sent (headers of HEAD responses included).
#![allow(dead_code)]

use darkport::digest::Digest;
use darkport::registry::index::{OCI_INDEX, OCI_MANIFEST};
use darkport::registry::{blob_path, RepoIndex};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const CONFIG: &str = "application/vnd.oci.image.config.v1+json";

/// A tool a test needs: in CI its absence is a failure, elsewhere the test is skipped.
pub fn require_tool(tool: &str, probe: &[&str]) -> bool {
    let ok = Command::new(tool)
        .args(probe)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!(
                "{tool} is required in CI (CI=true) but `{tool} {}` failed",
                probe.join(" ")
            );
        }
        eprintln!(
            "SKIP: {tool} is not available (`{tool} {}` failed)",
            probe.join(" ")
        );
    }
    ok
}

/// Write bytes into the CAS of `root`; returns the digest.
pub fn put(root: &Path, data: &[u8]) -> Digest {
    let d = Digest::of(data);
    let p = blob_path(root, &d);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, data).unwrap();
    d
}

/// One generated image.
#[derive(Debug, Clone)]
pub struct Image {
    pub manifest: Digest,
    pub manifest_bytes: Vec<u8>,
    pub config: Digest,
    pub layers: Vec<(Digest, u64)>,
}

/// A gzip'd tar layer from (path, content, mode) entries; deterministic. Returns
/// (compressed bytes, diff_id).
pub fn layer(files: &[(&str, &[u8], u32)]) -> (Vec<u8>, Digest) {
    let mut tar = tar::Builder::new(Vec::new());
    let mut dirs = std::collections::BTreeSet::new();
    for (path, _, _) in files {
        let mut p = Path::new(path).parent();
        while let Some(d) = p {
            if !d.as_os_str().is_empty() {
                dirs.insert(d.to_path_buf());
            }
            p = d.parent();
        }
    }
    for d in dirs {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        h.set_mtime(0);
        tar.append_data(&mut h, format!("{}/", d.display()), &[][..])
            .unwrap();
    }
    for (path, data, mode) in files {
        let mut h = tar::Header::new_gnu();
        h.set_mode(*mode);
        h.set_size(data.len() as u64);
        h.set_mtime(0);
        tar.append_data(&mut h, path, *data).unwrap();
    }
    let raw = tar.into_inner().unwrap();
    let diff_id = Digest::of(&raw);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&raw).unwrap();
    (gz.finish().unwrap(), diff_id)
}

/// Build an image from layers (each a list of files) into the CAS.
pub fn image(root: &Path, arch: &str, layers: &[Vec<(&str, &[u8], u32)>], cmd: &[&str]) -> Image {
    let mut descs = Vec::new();
    let mut diff_ids = Vec::new();
    let mut ls = Vec::new();
    for files in layers {
        let (gz, diff) = layer(files);
        let d = put(root, &gz);
        descs.push(
            serde_json::json!({"mediaType": LAYER_GZIP, "digest": d.to_string(), "size": gz.len()}),
        );
        diff_ids.push(diff.to_string());
        ls.push((d, gz.len() as u64));
    }
    let config = serde_json::json!({
        "architecture": arch, "os": "linux",
        "config": {"Cmd": cmd, "Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    let cbytes = serde_json::to_vec(&config).unwrap();
    let cd = put(root, &cbytes);
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": CONFIG, "digest": cd.to_string(), "size": cbytes.len()},
        "layers": descs,
    });
    let mbytes = serde_json::to_vec_pretty(&manifest).unwrap();
    let md = put(root, &mbytes);
    Image {
        manifest: md,
        manifest_bytes: mbytes,
        config: cd,
        layers: ls,
    }
}

/// A multi-platform OCI index over images; returns (digest, bytes).
pub fn index(root: &Path, images: &[(&Image, &str)]) -> (Digest, Vec<u8>) {
    let ms: Vec<_> = images
        .iter()
        .map(|(img, arch)| {
            serde_json::json!({"mediaType": OCI_MANIFEST, "digest": img.manifest.to_string(),
                "size": img.manifest_bytes.len(), "platform": {"architecture": arch, "os": "linux"}})
        })
        .collect();
    let idx = serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": ms});
    let bytes = serde_json::to_vec(&idx).unwrap();
    (put(root, &bytes), bytes)
}

/// Deterministic pseudo-random bytes (incompressible test content).
pub fn noise(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E3779B97F4A7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// The standard test content: `test/app` (an amd64 image with 2 layers, tags 1.0 and latest),
/// `org/team/multi` (an index over amd64 + arm64, tag 2.0), `lonely` (an image whose blobs
/// the other repositories must not serve).
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub app: Image,
    pub amd64: Image,
    pub arm64: Image,
    pub multi: (Digest, Vec<u8>),
    pub lonely: Image,
}

impl Fixture {
    pub fn root(&self) -> &Path {
        self.dir.path()
    }
}

pub fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let big = noise(1, 3 * 1024 * 1024 + 17);
    let app = image(
        root,
        "amd64",
        &[
            vec![("etc/app.conf", b"answer = 42\n", 0o644)],
            vec![
                ("data/blob.bin", &big[..], 0o644),
                ("bin/run", b"#!/bin/sh\necho hi\n", 0o755),
            ],
        ],
        &["/bin/run"],
    );
    let amd64 = image(
        root,
        "amd64",
        &[vec![("arch", b"amd64\n", 0o644)]],
        &["/arch"],
    );
    let arm64 = image(
        root,
        "arm64",
        &[vec![("arch", b"arm64\n", 0o644)]],
        &["/arch"],
    );
    let multi = index(root, &[(&amd64, "amd64"), (&arm64, "arm64")]);
    let lonely = image(
        root,
        "amd64",
        &[vec![("lonely", b"not in app\n", 0o644)]],
        &["/x"],
    );
    let mut idx = RepoIndex::default();
    idx.set_tag("test/app", "1.0", app.manifest, OCI_MANIFEST);
    idx.set_tag("test/app", "latest", app.manifest, OCI_MANIFEST);
    idx.set_tag("org/team/multi", "2.0", multi.0, OCI_INDEX);
    idx.set_tag("lonely", "1", lonely.manifest, OCI_MANIFEST);
    idx.save_atomic(root).unwrap();
    Fixture {
        dir,
        app,
        amd64,
        arm64,
        multi,
        lonely,
    }
}

pub use super::bin;

/// A running `darkport registry serve`, killed on drop.
pub struct Serve {
    pub child: Child,
    pub addr: SocketAddr,
    pub url: String,
    pub log: PathBuf,
    _logdir: tempfile::TempDir,
}

impl Serve {
    /// Start on 127.0.0.1:0 with extra args; waits for the "listening on" line.
    pub fn start(root: &Path, extra: &[&str]) -> Serve {
        let logdir = tempfile::tempdir().unwrap();
        let log = logdir.path().join("serve.log");
        let mut child = Command::new(bin())
            .args([
                "--progress",
                "plain",
                "registry",
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--root",
            ])
            .arg(root)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://") || w.starts_with("https://"))
            .unwrap_or_else(|| {
                panic!(
                    "no URL in {line:?}; log: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                )
            })
            .to_string();
        let addr: SocketAddr = url.split("://").nth(1).unwrap().parse().unwrap();
        // Keep draining stdout so the server never blocks on it.
        std::thread::spawn(move || {
            let mut sink = Vec::new();
            let _ = out.read_to_end(&mut sink);
        });
        Serve {
            child,
            addr,
            url,
            log,
            _logdir: logdir,
        }
    }

    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM and wait; returns the exit status code.
    pub fn terminate(&mut self) -> Option<i32> {
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        for _ in 0..200 {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    pub fn signal(&self, sig: i32) {
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A raw HTTP response.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The connection ended before `Content-Length` bytes arrived.
    pub truncated: bool,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
    /// The first OCI error code of the body.
    pub fn error_code(&self) -> String {
        self.json()["errors"][0]["code"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }
}

/// One request over a fresh plain-HTTP connection (`Connection: close`).
pub fn http(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> Resp {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw); // a reset after a partial body is a result too
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(&raw)));
    let head = String::from_utf8_lossy(&raw[..end]).to_string();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let body = raw[end + 4..].to_vec();
    let mut r = Resp {
        status,
        headers,
        body,
        truncated: false,
    };
    if method != "HEAD" {
        if let Some(n) = r
            .header("content-length")
            .and_then(|v| v.parse::<usize>().ok())
        {
            r.truncated = r.body.len() < n;
        }
    }
    r
}
