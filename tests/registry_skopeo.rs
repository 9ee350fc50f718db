//! `darkport registry serve` with a real client: skopeo (containers/image) over plain HTTP,
//! over TLS with a certificate from the site CA (`registry ca init` + `registry cert`), and with
//! basic auth. Manifest digests must survive the round trip byte for byte.

mod support;
use support::registry as registry_support;

use darkport::digest::Digest;
use registry_support::*;
use std::path::Path;
use std::process::{Command, Output};

fn skopeo(args: &[&str]) -> Output {
    let out = Command::new("skopeo")
        .arg("--insecure-policy")
        .args(args)
        .output()
        .expect("run skopeo");
    out
}

fn ok(out: Output, what: &str) -> Vec<u8> {
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// The digest of the top manifest in an OCI layout written by `skopeo copy`.
fn layout_digest(dir: &Path) -> Digest {
    let idx: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    idx["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

fn layout_has(dir: &Path, d: &Digest) -> bool {
    dir.join("blobs/sha256").join(d.hex()).is_file()
}

#[test]
fn skopeo_inspects_and_copies_over_plain_http() {
    if !require_tool("skopeo", &["--version"]) {
        return;
    }
    let f = fixture();
    let s = Serve::start(f.root(), &[]);
    let h = s.host();
    let tls = "--tls-verify=false";

    let raw = ok(
        skopeo(&[
            "inspect",
            tls,
            "--raw",
            &format!("docker://{h}/test/app:1.0"),
        ]),
        "inspect --raw",
    );
    assert_eq!(raw, f.app.manifest_bytes);
    let info: serde_json::Value = serde_json::from_slice(&ok(
        skopeo(&["inspect", tls, &format!("docker://{h}/test/app:latest")]),
        "inspect",
    ))
    .unwrap();
    assert_eq!(
        info["Digest"].as_str(),
        Some(f.app.manifest.to_string().as_str())
    );
    assert_eq!(info["Architecture"].as_str(), Some("amd64"));

    let tags: serde_json::Value = serde_json::from_slice(&ok(
        skopeo(&["list-tags", tls, &format!("docker://{h}/test/app")]),
        "list-tags",
    ))
    .unwrap();
    assert_eq!(tags["Tags"], serde_json::json!(["1.0", "latest"]));

    let out = tempfile::tempdir().unwrap();
    let dst = out.path().join("app");
    ok(
        skopeo(&[
            "copy",
            "--src-tls-verify=false",
            &format!("docker://{h}/test/app:1.0"),
            &format!("oci:{}:app", dst.display()),
        ]),
        "copy app",
    );
    assert_eq!(layout_digest(&dst), f.app.manifest);
    for (l, _) in &f.app.layers {
        assert!(layout_has(&dst, l), "layer {l} copied");
    }

    // The multi-platform index, all platforms, by tag with a 3-segment name.
    let dst = out.path().join("multi");
    ok(
        skopeo(&[
            "copy",
            "--all",
            "--src-tls-verify=false",
            &format!("docker://{h}/org/team/multi:2.0"),
            &format!("oci:{}:multi", dst.display()),
        ]),
        "copy --all multi",
    );
    assert_eq!(layout_digest(&dst), f.multi.0);
    for img in [&f.amd64, &f.arm64] {
        assert!(layout_has(&dst, &img.manifest));
        assert!(layout_has(&dst, &img.layers[0].0));
    }
    // By digest.
    let dst = out.path().join("bydigest");
    ok(
        skopeo(&[
            "copy",
            "--src-tls-verify=false",
            &format!("docker://{h}/org/team/multi@{}", f.arm64.manifest),
            &format!("oci:{}:x", dst.display()),
        ]),
        "copy by digest",
    );
    assert_eq!(layout_digest(&dst), f.arm64.manifest);
}

#[test]
fn skopeo_over_tls_from_the_site_ca_with_basic_auth() {
    if !require_tool("skopeo", &["--version"]) {
        return;
    }
    let f = fixture();
    let work = tempfile::tempdir().unwrap();
    let ca = work.path().join("ca");
    let srv = work.path().join("srv");
    let run = |args: &[&str]| {
        let o = Command::new(bin()).args(args).output().unwrap();
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    };
    let first = run(&[
        "registry",
        "ca",
        "init",
        "--dir",
        ca.to_str().unwrap(),
        "--json",
    ]);
    let first: serde_json::Value = serde_json::from_str(&first).unwrap();
    assert_eq!(first["created"], true);
    // The CA is kept on a second init.
    let again: serde_json::Value = serde_json::from_str(&run(&[
        "registry",
        "ca",
        "init",
        "--dir",
        ca.to_str().unwrap(),
        "--json",
    ]))
    .unwrap();
    assert_eq!(again["created"], false);
    assert_eq!(again["fingerprint"], first["fingerprint"]);
    run(&[
        "registry",
        "cert",
        "--ca",
        ca.to_str().unwrap(),
        "--host",
        "localhost,127.0.0.1",
        "--out",
        srv.to_str().unwrap(),
    ]);
    // What a runtime gets: certs.d/<host:port>/ca.crt only.
    let certs = work.path().join("certs.d");
    std::fs::create_dir_all(&certs).unwrap();
    std::fs::copy(srv.join("ca.crt"), certs.join("ca.crt")).unwrap();

    let pw = work.path().join("htpasswd");
    let mut c = Command::new(bin())
        .args([
            "registry",
            "passwd",
            "--password-stdin",
            "--user",
            "puller",
            "--file",
        ])
        .arg(&pw)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    writeln!(c.stdin.take().unwrap(), "p4ss").unwrap();
    assert!(c.wait().unwrap().success());

    let s = Serve::start(
        f.root(),
        &[
            "--tls-cert",
            srv.join("server.crt").to_str().unwrap(),
            "--tls-key",
            srv.join("server.key").to_str().unwrap(),
            "--auth",
            pw.to_str().unwrap(),
        ],
    );
    assert!(s.url.starts_with("https://"), "{}", s.url);
    let reference = format!("docker://{}/test/app:1.0", s.host());
    let certdir = format!("--cert-dir={}", certs.display());

    // Without the CA: refused by TLS verification.
    let o = skopeo(&["inspect", "--raw", "--creds", "puller:p4ss", &reference]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("certificate"), "{err}");
    // With the CA but no credentials: 401.
    let o = skopeo(&["inspect", "--raw", &certdir, &reference]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr).to_lowercase();
    assert!(
        err.contains("unauthorized") || err.contains("authentication"),
        "{err}"
    );
    // With both.
    let raw = ok(
        skopeo(&[
            "inspect",
            "--raw",
            &certdir,
            "--creds",
            "puller:p4ss",
            &reference,
        ]),
        "inspect over TLS",
    );
    assert_eq!(raw, f.app.manifest_bytes);
    let out = tempfile::tempdir().unwrap();
    let dst = out.path().join("app");
    ok(
        skopeo(&[
            "copy",
            &format!("--src-cert-dir={}", certs.display()),
            "--src-creds",
            "puller:p4ss",
            &reference,
            &format!("oci:{}:app", dst.display()),
        ]),
        "copy over TLS",
    );
    assert_eq!(layout_digest(&dst), f.app.manifest);
    // By host name too (the SAN list has localhost).
    let by_name = format!("docker://localhost:{}/org/team/multi:2.0", s.addr.port());
    let raw = ok(
        skopeo(&[
            "inspect",
            "--raw",
            &certdir,
            "--creds",
            "puller:p4ss",
            &by_name,
        ]),
        "inspect by name",
    );
    assert_eq!(Digest::of(&raw), f.multi.0);
}
