//! `darkport sbom` / `darkport licenses` on a darkport bundle check its signature first (like
//! `verify`: `--pubkey`, `--allow-unsigned`), and the signed hash of `index.json`, so an SBOM
//! is never produced from images the signature does not cover.

mod support;
use bundle_common::*;
use support::bundle as bundle_common;

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

    // The SBOM written at build time is a member listed (with its sha256) in the signed
    // manifest and in SHA256SUMS; `verify` checks it like any member.
    let mut ar = tar::Archive::new(std::fs::File::open(&b).unwrap());
    let mut sboms = Vec::new();
    let mut manifest = serde_json::Value::Null;
    let mut sums = String::new();
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut data).unwrap();
        if name == "darkport.json" {
            manifest = serde_json::from_slice(&data).unwrap();
        } else if name == "SHA256SUMS" {
            sums = String::from_utf8(data).unwrap();
        } else if name.starts_with("sbom/") {
            sboms.push((name, data));
        }
    }
    assert_eq!(sboms.len(), 1, "{sboms:?}");
    let (name, data) = &sboms[0];
    assert!(
        name.starts_with("sbom/testprod_deb_1") && name.ends_with(".spdx.json"),
        "{name}"
    );
    let doc: serde_json::Value = serde_json::from_slice(data).unwrap();
    assert_eq!(doc["spdxVersion"], "SPDX-2.3");
    let foo = doc["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "foo")
        .expect("foo in the stored SBOM");
    assert_eq!(foo["versionInfo"], "1.2-3");
    assert!(foo.to_string().contains("MIT"), "{foo}");
    let listed = manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == name.as_str())
        .expect("SBOM listed in darkport.json files");
    assert_eq!(listed["sha256"].as_str().unwrap(), sha(data));
    assert!(
        sums.contains(&format!("{}  {name}", &sha(data)[7..])),
        "{sums}"
    );
    ok(&run(&["verify", bs, "--pubkey", p]));
    // Same inputs, same bytes (the SBOM has a fixed time without SOURCE_DATE_EPOCH).
    let b2 = d.join("b2.darkport");
    ok(&run(&[
        "build-bundle",
        "-f",
        s,
        "-o",
        b2.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
    ]));
    assert_eq!(std::fs::read(&b).unwrap(), std::fs::read(&b2).unwrap());

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
