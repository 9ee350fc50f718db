//! `darkport sbom` / `darkport licenses` on a darkport bundle check its signature first (like
//! `verify`: `--pubkey`, `--allow-unsigned`), and the signed hash of `index.json`, so an SBOM
//! is never produced from images the signature does not cover.

mod bundle_common;
use bundle_common::*;

const STATUS: &str = "Package: foo\nStatus: install ok installed\nPriority: optional\nVersion: 1.2-3\nArchitecture: amd64\nDescription: test package\n\n";
const COPYRIGHT: &str = "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\nFiles: *\nCopyright: 2026 Someone\nLicense: MIT\n";

#[test]
fn sbom_of_a_bundle_requires_a_trusted_signature_and_an_intact_index() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let (key, pubk) = keys(d, "k");
    let (_, other_pub) = keys(d, "other");
    let layer = layer_tar(&[
        ("var/lib/dpkg/status", STATUS.as_bytes().to_vec()),
        ("usr/share/doc/foo/copyright", COPYRIGHT.as_bytes().to_vec()),
    ]);
    write_oci_layout(
        &d.join("layout"),
        &[GenImage {
            tag: "deb".into(),
            layers: vec![layer],
        }],
    );
    let spec = d.join("spec.yaml");
    write_spec(
        &spec,
        "1.0.0",
        &[(
            "testprod/deb:1".into(),
            format!("oci:{}:deb", d.join("layout").display()),
        )],
        "",
    );
    let b = d.join("b.darkport");
    let s = spec.to_str().unwrap();
    let bs = b.to_str().unwrap();
    ok(&run(&[
        "build-bundle",
        "-f",
        s,
        "-o",
        bs,
        "--key",
        key.to_str().unwrap(),
    ]));
    // No default key anywhere: a fresh HOME, no DARKPORT_PUBKEY.
    let home = d.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let env = [
        ("HOME", home.to_str().unwrap()),
        ("XDG_CONFIG_HOME", home.to_str().unwrap()),
        ("DARKPORT_PUBKEY", ""),
    ];
    let p = pubk.to_str().unwrap();

    let out = ok(&run_env(
        &["sbom", bs, "--format", "json", "--pubkey", p],
        &env,
    ));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let pk = &v[0]["packages"][0];
    assert_eq!(
        (pk["name"].as_str(), pk["version"].as_str()),
        (Some("foo"), Some("1.2-3")),
        "{v:#}"
    );
    ok(&run_env(&["licenses", bs, "--pubkey", p], &env));

    // No trusted key, or the wrong one: refused before any image is read.
    for args in [
        vec!["sbom", bs],
        vec!["licenses", bs],
        vec!["sbom", bs, "--pubkey", other_pub.to_str().unwrap()],
    ] {
        let e = fails(&run_env(&args, &env));
        assert!(!e.contains("foo"), "{e}");
    }

    // index.json altered inside the signed bundle (same length): refused.
    let mut bytes = std::fs::read(&b).unwrap();
    let pat = b"\"org.opencontainers.image.ref.name\":\"testprod/deb:1\"";
    let at = bytes
        .windows(pat.len())
        .position(|w| w == pat)
        .expect("index.json annotation in the bundle");
    bytes[at + pat.len() - 2] = b'2';
    let bad = d.join("bad.darkport");
    std::fs::write(&bad, &bytes).unwrap();
    let e = fails(&run_env(
        &["sbom", bad.to_str().unwrap(), "--pubkey", p],
        &env,
    ));
    assert!(e.contains("index.json"), "{e}");

    // An unsigned bundle needs --allow-unsigned.
    let u = d.join("u.darkport");
    let us = u.to_str().unwrap();
    ok(&run(&["build-bundle", "-f", s, "-o", us, "--unsigned"]));
    fails(&run_env(&["sbom", us, "--pubkey", p], &env));
    let out = ok(&run_env(
        &["sbom", us, "--allow-unsigned", "--format", "json"],
        &env,
    ));
    assert!(out.contains("\"foo\""), "{out}");
}
