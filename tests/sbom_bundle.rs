//! `darkport sbom` / `darkport licenses` on a darkport bundle check its signature first (like
//! `verify`: `--pubkey`, `--allow-unsigned`), and the signed hash of `index.json`, so an SBOM
//! is never produced from images the signature does not cover.

mod support;
use bundle_common::*;
use std::collections::BTreeMap;
use std::path::Path;
use support::bundle as bundle_common;

/// The manifest of a bundle and every member after it (as text where it is SHA256SUMS).
fn bundle_members(b: &Path) -> (serde_json::Value, BTreeMap<String, Vec<u8>>) {
    let mut ar = tar::Archive::new(std::fs::File::open(b).unwrap());
    let mut members = BTreeMap::new();
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut data).unwrap();
        members.insert(name, data);
    }
    let m = serde_json::from_slice(&members["darkport.json"]).unwrap();
    (m, members)
}

trait Text {
    fn contains(&self, s: &str) -> bool;
}
impl Text for Vec<u8> {
    fn contains(&self, s: &str) -> bool {
        String::from_utf8_lossy(self).contains(s)
    }
}

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

    // The SBOM written at build time is a zstd-compressed SPDX blob (format v2) that the
    // signed manifest lists in `blobs` (with its media type) and in `sboms` (for the image
    // manifest it describes), and SHA256SUMS lists like every blob; `verify` checks it.
    let (manifest, members) = bundle_members(&b);
    assert_eq!(manifest["format"], "darkport-bundle/v2", "{manifest:#}");
    assert!(
        !members.keys().any(|n| n.starts_with("sbom/")),
        "no raw SPDX members in v2: {:?}",
        members.keys()
    );
    let sboms = manifest["sboms"].as_array().expect("sboms in the manifest");
    assert_eq!(sboms.len(), 1, "{manifest:#}");
    assert_eq!(sboms[0]["image"], "testprod/deb:1");
    assert_eq!(sboms[0]["manifest"], manifest["images"][0]["digest"]);
    assert!(sboms[0]["from_bundle"].is_null(), "{manifest:#}");
    let doc_digest = sboms[0]["document"].as_str().unwrap();
    let listed = manifest["blobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["digest"] == doc_digest)
        .expect("the SBOM blob listed in blobs");
    assert_eq!(listed["mediaType"], "application/spdx+json+zstd");
    assert_eq!(listed["present"], true);
    let member = format!("blobs/sha256/{}", &doc_digest[7..]);
    let data = &members[&member];
    assert_eq!(sha(data), doc_digest);
    assert_eq!(listed["size"].as_u64(), Some(data.len() as u64));
    assert!(
        members["SHA256SUMS"].contains(&format!("{}  {member}", &doc_digest[7..])),
        "SHA256SUMS lists the SBOM blob"
    );
    let raw = zstd::decode_all(&data[..]).unwrap();
    assert!(raw.len() > data.len(), "stored compressed");
    // The library reads the same document (hash checked, decompressed).
    let trust = darkport::bundle::Trust::key(darkport::bundle::TrustedKey::load(&pubk).unwrap());
    let opened = darkport::bundle::Bundle::open(&b, &trust).unwrap();
    let entry = &opened.manifest().sboms[0];
    assert_eq!(opened.read_sbom(entry).unwrap().as_deref(), Some(&raw[..]));
    let doc: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(doc["spdxVersion"], "SPDX-2.3");
    let foo = doc["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "foo")
        .expect("foo in the stored SBOM");
    assert_eq!(foo["versionInfo"], "1.2-3");
    assert!(foo.to_string().contains("MIT"), "{foo}");
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

/// A delta bundle carries the SBOM of the image whose manifest changed and references the
/// unchanged image's document from its base by digest (`from_bundle`, blob left out);
/// `sbom` on the delta scans what it can and says where the other document is.
#[test]
fn delta_bundle_carries_only_the_changed_images_sboms() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let (key, pubk) = keys(d, "k");
    let base = layer_tar(&[
        ("var/lib/dpkg/status", STATUS.as_bytes().to_vec()),
        ("usr/share/doc/foo/copyright", COPYRIGHT.as_bytes().to_vec()),
    ]);
    let app = |seed: u64| layer_tar(&[("app/bin", rand_bytes(seed, 4096))]);
    let bar = "Package: bar\nStatus: install ok installed\nVersion: 2.0\nArchitecture: amd64\n\n";
    write_oci_layout(
        &d.join("layout"),
        &[
            GenImage {
                tag: "a".into(),
                layers: vec![base.clone(), app(1)],
            },
            GenImage {
                tag: "b-1".into(),
                layers: vec![app(2)],
            },
            // 1.1: b gets a new layer with its own package database.
            GenImage {
                tag: "b-2".into(),
                layers: vec![layer_tar(&[(
                    "var/lib/dpkg/status",
                    bar.as_bytes().to_vec(),
                )])],
            },
        ],
    );
    let src = |tag: &str| format!("oci:{}:{tag}", d.join("layout").display());
    let build = |version: &str, b_tag: &str, out: &Path, since: Option<&Path>| {
        let spec = d.join(format!("spec-{version}.yaml"));
        write_spec(
            &spec,
            version,
            &[
                (format!("testprod/a:{version}"), src("a")),
                (format!("testprod/b:{version}"), src(b_tag)),
            ],
            "",
        );
        let mut args = vec![
            "build-bundle".to_string(),
            "-f".into(),
            spec.display().to_string(),
            "-o".into(),
            out.display().to_string(),
            "--key".into(),
            key.display().to_string(),
        ];
        if let Some(s) = since {
            args.extend(["--since".into(), s.display().to_string()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        ok(&run(&args));
    };
    let full = d.join("full.darkport");
    build("1.0.0", "b-1", &full, None);
    let delta = d.join("delta.darkport");
    build("1.1.0", "b-2", &delta, Some(&full));

    let (m10, _) = bundle_members(&full);
    let (m11, members) = bundle_members(&delta);
    let base_id = sha(&bundle_members(&full).1["darkport.json"]);
    let entry = |m: &serde_json::Value, image: &str| {
        m["sboms"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["image"] == image)
            .unwrap_or_else(|| panic!("no SBOM for {image}: {m:#}"))
            .clone()
    };
    let blob = |m: &serde_json::Value, digest: &serde_json::Value| {
        m["blobs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["digest"] == *digest)
            .unwrap()
            .clone()
    };
    // a: same manifest as in 1.0.0, so the same document, referenced, not carried.
    let (a10, a11) = (
        entry(&m10, "testprod/a:1.0.0"),
        entry(&m11, "testprod/a:1.1.0"),
    );
    assert_eq!(a11["manifest"], a10["manifest"]);
    assert_eq!(a11["document"], a10["document"]);
    assert_eq!(a11["from_bundle"].as_str(), Some(base_id.as_str()));
    assert_eq!(blob(&m11, &a11["document"])["present"], false);
    let a_member = format!("blobs/sha256/{}", &a11["document"].as_str().unwrap()[7..]);
    assert!(
        !members.contains_key(&a_member),
        "a's SBOM is not in the delta"
    );
    // b: a new manifest, a new document in the delta.
    let b11 = entry(&m11, "testprod/b:1.1.0");
    assert_ne!(b11["manifest"], entry(&m10, "testprod/b:1.0.0")["manifest"]);
    assert!(b11["from_bundle"].is_null());
    assert_eq!(blob(&m11, &b11["document"])["present"], true);
    let b_member = format!("blobs/sha256/{}", &b11["document"].as_str().unwrap()[7..]);
    let doc = zstd::decode_all(&members[&b_member][..]).unwrap();
    assert!(String::from_utf8_lossy(&doc).contains("\"bar\""));
    let stored_sboms = m11["blobs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["mediaType"] == "application/spdx+json+zstd" && b["present"] == true)
        .count();
    assert_eq!(stored_sboms, 1, "{m11:#}");
    ok(&run(&[
        "verify",
        delta.to_str().unwrap(),
        "--pubkey",
        pubk.to_str().unwrap(),
    ]));
    // Through the library: b's document is here, a's is its base's.
    let trust = darkport::bundle::Trust::key(darkport::bundle::TrustedKey::load(&pubk).unwrap());
    let opened = darkport::bundle::Bundle::open(&delta, &trust).unwrap();
    for e in &opened.manifest().sboms {
        let doc = opened.read_sbom(e).unwrap();
        assert_eq!(doc.is_some(), e.from_bundle.is_none(), "{e:?}");
    }

    // `sbom` on the delta: b is scanned; a is not, and the note names its document and the
    // base bundle that carries it.
    let p = pubk.to_str().unwrap();
    let o = run(&[
        "sbom",
        delta.to_str().unwrap(),
        "--pubkey",
        p,
        "--format",
        "json",
    ]);
    let out = ok(&o);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1, "{v:#}");
    assert_eq!(v[0]["name"], "testprod/b:1.1.0");
    assert_eq!(v[0]["packages"][0]["name"], "bar");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("image testprod/a:1.1.0 not scanned")
            && err.contains(a11["document"].as_str().unwrap())
            && err.contains("base bundle testprod 1.0.0")
            && err.contains(&base_id),
        "{err}"
    );
    // Only a asked for: nothing to scan, so the explanation is the error.
    let e = fails(&run(&[
        "sbom",
        delta.to_str().unwrap(),
        "--pubkey",
        p,
        "--image",
        "testprod/a:1.1.0",
    ]));
    assert!(
        e.starts_with("error: ")
            && e.lines().next().unwrap().contains("is a delta bundle")
            && e.contains("base bundle testprod 1.0.0")
            && e.contains("hint: scan the full bundle"),
        "{e}"
    );
}
