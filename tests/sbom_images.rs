//! SBOM on generated images whose layers carry REAL package databases: dpkg `status`
//! stanzas and `usr/share/doc/<pkg>/copyright` files copied from this (Debian) machine, a
//! hand-written Alpine `lib/apk/db/installed`, RPM database markers, and later layers that
//! remove packages (rewritten status + whiteouts, deleted status.d file, opaque directory).
//! Checks the library API, then the `darkport sbom` / `darkport licenses` binary on an OCI
//! layout and an oci-archive tar, and validates the SPDX output with `pyspdxtools` and the
//! CycloneDX output against the official 1.5 JSON schema (shipped by cyclonedx-python-lib).

mod support;

use assert_cmd::Command;
use darkport::digest::Digest;
use darkport::sbom::{self, oci, LicenceSource, PackageKind};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

// ---------- fixture: layers and an OCI image layout ----------

enum E {
    File(&'static str, Vec<u8>),
    Owned(String, Vec<u8>),
    Link(String, &'static str),
    Dir(String),
}

#[derive(Clone, Copy)]
enum Comp {
    Gzip,
    Zstd,
    Plain,
}

struct Blob {
    digest: Digest,
    diff_id: Digest,
    media_type: &'static str,
    bytes: Vec<u8>,
}

fn tar_of(entries: &[E]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    b.mode(tar::HeaderMode::Deterministic);
    for e in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mtime(0);
        let file = match e {
            E::File(p, data) => Some((p.to_string(), data)),
            E::Owned(p, data) => Some((p.clone(), data)),
            _ => None,
        };
        if let Some((p, data)) = file {
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            b.append_data(&mut h, p, &data[..]).unwrap();
            continue;
        }
        match e {
            E::Link(p, target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                h.set_mode(0o777);
                b.append_link(&mut h, p, target).unwrap();
            }
            E::Dir(p) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_size(0);
                h.set_mode(0o755);
                b.append_data(&mut h, p, &[][..]).unwrap();
            }
            _ => unreachable!(),
        }
    }
    b.into_inner().unwrap()
}

fn layer(entries: &[E], comp: Comp) -> Blob {
    let raw = tar_of(entries);
    let diff_id = Digest::of(&raw);
    let (bytes, media_type) = match comp {
        Comp::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(&raw).unwrap();
            (
                e.finish().unwrap(),
                "application/vnd.oci.image.layer.v1.tar+gzip",
            )
        }
        Comp::Zstd => (
            zstd::encode_all(&raw[..], 3).unwrap(),
            "application/vnd.oci.image.layer.v1.tar+zstd",
        ),
        Comp::Plain => (raw, "application/vnd.oci.image.layer.v1.tar"),
    };
    Blob {
        digest: Digest::of(&bytes),
        diff_id,
        media_type,
        bytes,
    }
}

fn put_blob(dir: &Path, data: &[u8]) -> Digest {
    support::bundle::put_blob(dir, data).parse().unwrap()
}

/// Write an OCI image layout holding `images` (name → layers, base first).
fn write_layout(dir: &Path, images: &[(&str, Vec<&Blob>)]) -> BTreeMap<String, Digest> {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let mut index = Vec::new();
    let mut manifests = BTreeMap::new();
    for (name, layers) in images {
        for l in layers {
            put_blob(dir, &l.bytes);
        }
        let config = json!({
            "architecture": "amd64", "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| l.diff_id.to_string()).collect::<Vec<_>>()},
            "config": {},
        });
        let config = serde_json::to_vec(&config).unwrap();
        let cd = put_blob(dir, &config);
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd.to_string(), "size": config.len()},
            "layers": layers.iter().map(|l| json!({"mediaType": l.media_type, "digest": l.digest.to_string(), "size": l.bytes.len()})).collect::<Vec<_>>(),
        });
        let manifest = serde_json::to_vec(&manifest).unwrap();
        let md = put_blob(dir, &manifest);
        manifests.insert(name.to_string(), md);
        index.push(json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": md.to_string(), "size": manifest.len(),
            "platform": {"os": "linux", "architecture": "amd64"},
            "annotations": {"org.opencontainers.image.ref.name": name},
        }));
    }
    let index = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": index});
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    manifests
}

/// The same layout as an uncompressed tar (`oci-archive`).
fn archive_of(dir: &Path, out: &Path) {
    let mut b = tar::Builder::new(std::fs::File::create(out).unwrap());
    b.follow_symlinks(false);
    b.append_dir_all(".", dir).unwrap();
    b.finish().unwrap();
}

// ---------- real package data from this machine ----------

fn host_status() -> String {
    std::fs::read_to_string("/var/lib/dpkg/status")
        .expect("these tests need a Debian host: /var/lib/dpkg/status (real package data)")
}

/// The verbatim status stanzas of `pkgs` (all must be installed here).
fn stanzas(status: &str, pkgs: &[&str]) -> Vec<String> {
    pkgs.iter()
        .map(|p| {
            status
                .split("\n\n")
                .find(|s| s.lines().next() == Some(&format!("Package: {p}")))
                .unwrap_or_else(|| panic!("package {p} is not in /var/lib/dpkg/status"))
                .trim_end()
                .to_string()
        })
        .collect()
}

fn field(stanza: &str, f: &str) -> String {
    stanza
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{f}: ")))
        .unwrap()
        .to_string()
}

fn status_file(st: &[String]) -> Vec<u8> {
    (st.join("\n\n") + "\n").into_bytes()
}

fn copyright(pkg: &str) -> Vec<u8> {
    std::fs::read(format!("/usr/share/doc/{pkg}/copyright")).unwrap()
}

/// Every licence short name in a DEP-5 file, by a deliberately simple independent reading:
/// the first line of every `License:` field, split on and/or/commas.
fn all_licence_names(pkg: &str) -> Vec<String> {
    let text = String::from_utf8(copyright(pkg)).unwrap();
    let mut out = Vec::new();
    for l in text.lines() {
        if let Some(v) = l.strip_prefix("License:") {
            for part in v
                .replace(" and ", ",")
                .replace(" or ", ",")
                .replace(" AND ", ",")
                .replace(" OR ", ",")
                .split(',')
            {
                let p = part
                    .trim()
                    .trim_matches(|c| c == '(' || c == ')')
                    .to_string();
                if !p.is_empty() && !out.contains(&p) {
                    out.push(p);
                }
            }
        }
    }
    out
}

const APK_DB_V1: &str = "C:Q1SBmSY3qXBfPuUhXvUOYAuSdHAo0=\nP:musl\nV:1.2.4-r2\nA:x86_64\nS:383152\nI:622592\nT:the musl c library (libc) implementation\nU:https://musl.libc.org/\nL:MIT\no:musl\nm:Timo Teräs <timo.teras@iki.fi>\nt:1698060402\nc:8c9e0b6dc5a6a4c3c6b7c6a0e9d3b0b0c0e2c3c8\nF:lib\nR:ld-musl-x86_64.so.1\na:0:0:755\nZ:Q1hEy2xRR5nJ7xV3sdTVnV9dL6Aqs=\nR:libc.musl-x86_64.so.1\na:0:0:777\nZ:Q17yJ3JFNypA4mxhJJr0ou6CzsJVI=\n\nC:Q1Xo0pTXs6ZnNgsbCPXkn7v3mj5sQ=\nP:busybox\nV:1.36.1-r5\nA:x86_64\nS:509458\nI:924944\nT:Size optimized toolbox of many common UNIX utilities\nU:https://busybox.net/\nL:GPL-2.0-only\no:busybox\nm:Sören Tempel <soeren+alpine@soeren-tempel.net>\nt:1700000000\nc:0b9a3a5a9c3c2e4e1f1a0f6d8b4c2a1e9f8d7c6b\nD:so:libc.musl-x86_64.so.1\np:/bin/sh cmd:busybox=1.36.1-r5 cmd:sh=1.36.1-r5\nr:busybox-initscripts\nF:bin\nR:busybox\na:0:0:755\nZ:Q1b6jYbS9Kvr8c3Uy7Gm3d6b8f3a2E=\n\nC:Q1l2xnOPZkXVT4cWbKzNH3YcQyR0o=\nP:ca-certificates-bundle\nV:20230506-r0\nA:x86_64\nS:125000\nI:233000\nT:Pre generated bundle of Mozilla certificates\nU:https://www.mozilla.org/en-US/about/governance/policies/security-group/certs/\nL:MPL-2.0 AND MIT\no:ca-certificates\nm:Natanael Copa <ncopa@alpinelinux.org>\nt:1683400000\nc:0d2e4f6a8b0c2e4f6a8b0c2e4f6a8b0c2e4f6a8b\nF:etc\nF:etc/ssl\nF:etc/ssl/certs\nR:ca-certificates.crt\na:0:0:644\nZ:Q1Xq9m8n7b6v5c4x3z2l1k0j9h8g7f=\n\n";

struct Fixture {
    _tmp: tempfile::TempDir,
    layout: PathBuf,
    archive: PathBuf,
    status: Vec<String>,
    deb_layers: Vec<Digest>,
    apk_layers: Vec<Digest>,
    rpm_layers: Vec<Digest>,
    manifests: BTreeMap<String, Digest>,
}

const DEB_PKGS: &[&str] = &["bash", "coreutils", "zlib1g", "tar", "base-files"];

fn fixture() -> Fixture {
    let status = host_status();
    let st = stanzas(&status, DEB_PKGS);
    let gzip = stanzas(&status, &["gzip"]);
    let cpp = stanzas(&status, &["cpp-12"]);

    // Debian base: status with 5 real packages, their real copyright files, os-release via
    // a symlink, a real binary as filler; cpp-12's doc dir is a symlink (as on Debian).
    let mut base = vec![
        E::Dir("var/lib/dpkg".into()),
        E::Owned("var/lib/dpkg/status".into(), status_file(&st)),
        E::Owned(
            "usr/lib/os-release".into(),
            std::fs::read("/usr/lib/os-release").unwrap(),
        ),
        E::Link("etc/os-release".into(), "../usr/lib/os-release"),
        E::File("usr/bin/bash", std::fs::read("/usr/bin/bash").unwrap()),
    ];
    for p in DEB_PKGS {
        base.push(E::Dir(format!("usr/share/doc/{p}")));
        base.push(E::Owned(
            format!("usr/share/doc/{p}/copyright"),
            copyright(p),
        ));
    }
    let l0 = layer(&base, Comp::Gzip);
    // Layer 1 (zstd): `tar` purged (status rewritten without it, doc dir whited out);
    // distroless-style status.d entries for gzip and cpp-12 (doc dir symlink).
    let without_tar: Vec<String> = st
        .iter()
        .filter(|s| !s.starts_with("Package: tar\n"))
        .cloned()
        .collect();
    let l1 = layer(
        &[
            E::Owned("var/lib/dpkg/status".into(), status_file(&without_tar)),
            E::File("usr/share/doc/.wh.tar", Vec::new()),
            E::Dir("var/lib/dpkg/status.d".into()),
            E::Owned("var/lib/dpkg/status.d/gzip".into(), status_file(&gzip)),
            E::File(
                "var/lib/dpkg/status.d/gzip.md5sums",
                b"0000  usr/bin/gzip\n".to_vec(),
            ),
            E::Owned("usr/share/doc/gzip/copyright".into(), copyright("gzip")),
            E::Owned("var/lib/dpkg/status.d/cpp-12".into(), status_file(&cpp)),
            E::Link("usr/share/doc/cpp-12".into(), "gcc-12-base"),
            E::Owned(
                "usr/share/doc/gcc-12-base/copyright".into(),
                copyright("gcc-12-base"),
            ),
        ],
        Comp::Zstd,
    );
    // Layer 2 (plain tar): gzip deleted (its status.d file whited out); bash upgraded.
    let upgraded: Vec<String> = without_tar
        .iter()
        .map(|s| {
            if s.starts_with("Package: bash\n") {
                s.replace(
                    &format!("Version: {}", field(s, "Version")),
                    "Version: 5.2.99-1",
                )
            } else {
                s.clone()
            }
        })
        .collect();
    let l2 = layer(
        &[
            E::File("var/lib/dpkg/status.d/.wh.gzip", Vec::new()),
            E::Owned("var/lib/dpkg/status".into(), status_file(&upgraded)),
        ],
        Comp::Plain,
    );

    let alpine_release = b"NAME=\"Alpine Linux\"\nID=alpine\nVERSION_ID=3.19.0\nPRETTY_NAME=\"Alpine Linux v3.19\"\n".to_vec();
    let a0 = layer(
        &[
            E::Owned("lib/apk/db/installed".into(), APK_DB_V1.as_bytes().to_vec()),
            E::Owned("etc/os-release".into(), alpine_release),
        ],
        Comp::Gzip,
    );
    // apk upgrade of musl in a later layer, busybox removed.
    let v2: String = APK_DB_V1
        .split("\n\n")
        .filter(|r| !r.contains("\nP:busybox\n"))
        .map(|r| r.replace("V:1.2.4-r2", "V:1.2.4-r3"))
        .collect::<Vec<_>>()
        .join("\n\n");
    let a1 = layer(
        &[E::Owned("lib/apk/db/installed".into(), v2.into_bytes())],
        Comp::Zstd,
    );

    let r0 = layer(
        &[
            E::File("var/lib/rpm/rpmdb.sqlite", b"SQLite format 3\0".to_vec()),
            E::File(
                "usr/lib/sysimage/rpm/rpmdb.sqlite",
                b"SQLite format 3\0".to_vec(),
            ),
        ],
        Comp::Gzip,
    );
    // Opaque /var/lib/rpm: the old sqlite db is hidden, a BDB `Packages` appears.
    let r1 = layer(
        &[
            E::File("var/lib/rpm/.wh..wh..opq", Vec::new()),
            E::File("var/lib/rpm/Packages", vec![0u8; 4096]),
        ],
        Comp::Gzip,
    );

    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    let manifests = write_layout(
        &layout,
        &[
            ("debian-app", vec![&l0, &l1, &l2]),
            ("debian-base", vec![&l0]),
            ("alpine-app", vec![&a0, &a1]),
            ("rpm-app", vec![&r0, &r1]),
        ],
    );
    let archive = tmp.path().join("images.oci.tar");
    archive_of(&layout, &archive);
    let mut status_all = st;
    status_all.extend(gzip);
    status_all.extend(cpp);
    Fixture {
        layout,
        archive,
        status: status_all,
        deb_layers: vec![l0.digest, l1.digest, l2.digest],
        apk_layers: vec![a0.digest, a1.digest],
        rpm_layers: vec![r0.digest, r1.digest],
        manifests,
        _tmp: tmp,
    }
}

fn scan(f: &Fixture, src: &Path) -> BTreeMap<String, sbom::ImageSbom> {
    let layout = oci::Layout::open(src).unwrap();
    oci::scan_layout(&layout, None, &oci::NoReport)
        .unwrap()
        .into_iter()
        .map(|i| {
            assert_eq!(i.manifest, Some(f.manifests[&i.name]));
            (i.name.clone(), i)
        })
        .collect()
}

fn version_of(f: &Fixture, pkg: &str) -> String {
    let s = f
        .status
        .iter()
        .find(|s| s.starts_with(&format!("Package: {pkg}\n")))
        .unwrap();
    field(s, "Version")
}

// ---------- library-level tests ----------

#[test]
fn debian_image_lists_exactly_the_present_packages_with_layers_and_licences() {
    let f = fixture();
    for src in [&f.layout, &f.archive] {
        let imgs = scan(&f, src);
        let app = &imgs["debian-app"];
        let got: Vec<(&str, &str, usize)> = app
            .packages
            .iter()
            .map(|p| (p.name.as_str(), p.version.as_str(), p.layer_index))
            .collect();
        let base_files_v = version_of(&f, "base-files");
        let coreutils_v = version_of(&f, "coreutils");
        let zlib_v = version_of(&f, "zlib1g");
        let cpp_v = version_of(&f, "cpp-12");
        assert_eq!(
            got,
            vec![
                ("base-files", base_files_v.as_str(), 0),
                ("bash", "5.2.99-1", 2),
                ("coreutils", coreutils_v.as_str(), 0),
                ("cpp-12", cpp_v.as_str(), 1),
                ("zlib1g", zlib_v.as_str(), 0),
            ],
            "tar (purged in layer 1) and gzip (status.d file deleted in layer 2) must be gone"
        );
        for p in &app.packages {
            assert_eq!(p.kind, PackageKind::Deb);
            assert_eq!(p.layer, f.deb_layers[p.layer_index]);
            assert!(!p.arch.is_empty());
        }
        assert_eq!(app.layers, f.deb_layers);
        assert!(app.rpm.is_empty());
        assert!(app.warnings.is_empty(), "{:?}", app.warnings);
        assert!(
            app.os.as_deref().unwrap_or("").contains("Debian"),
            "{:?}",
            app.os
        );

        let by: BTreeMap<&str, &sbom::Package> =
            app.packages.iter().map(|p| (p.name.as_str(), p)).collect();
        // Licences: DEP-5 License fields of the real copyright files.
        assert_eq!(by["zlib1g"].licenses, vec!["Zlib"]);
        assert_eq!(by["zlib1g"].license_source, LicenceSource::Dep5);
        for p in ["bash", "coreutils"] {
            assert_eq!(by[p].licenses[0], "GPL-3+", "{p}: {:?}", by[p].licenses);
            let names = all_licence_names(p);
            for l in &by[p].licenses {
                assert!(
                    names.contains(l),
                    "{p}: {l} not in its copyright file {names:?}"
                );
            }
        }
        // Free-form copyright (base-files): recognised from its text.
        assert_eq!(by["base-files"].licenses, vec!["GPL-2+"]);
        assert_eq!(
            by["base-files"].license_source,
            LicenceSource::CopyrightText
        );
        // cpp-12's doc dir is a symlink to gcc-12-base, whose free-form copyright refers to
        // /usr/share/common-licenses/<NAME> files: those names.
        let gcc = String::from_utf8(copyright("gcc-12-base")).unwrap();
        assert_eq!(by["cpp-12"].license_source, LicenceSource::CopyrightText);
        assert!(
            by["cpp-12"].licenses.contains(&"GPL-3".to_string()),
            "{:?}",
            by["cpp-12"].licenses
        );
        for l in &by["cpp-12"].licenses {
            let flat = gcc.split_whitespace().collect::<Vec<_>>().join(" ");
            let found = gcc.contains(&format!("/usr/share/common-licenses/{l}"))
                || (l == "Expat" && flat.contains("Permission is hereby granted, free of charge"))
                || (l.starts_with("BSD-")
                    && flat.contains("Redistribution and use in source and binary forms"))
                || (l == "Zlib" && flat.contains("This software is provided 'as-is'"));
            assert!(found, "cpp-12: {l} not found in gcc-12-base's copyright");
        }

        // The base image (shared layer 0) still has tar, unaffected by the app's layers.
        let base = &imgs["debian-base"];
        let names: Vec<&str> = base.packages.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            vec!["base-files", "bash", "coreutils", "tar", "zlib1g"]
        );
        let tar = base.packages.iter().find(|p| p.name == "tar").unwrap();
        assert_eq!(tar.licenses[0], "GPL-3+");
    }
}

#[test]
fn alpine_and_rpm_images() {
    let f = fixture();
    let imgs = scan(&f, &f.archive);
    let a = &imgs["alpine-app"];
    let got: Vec<(&str, &str, usize, Vec<String>)> = a
        .packages
        .iter()
        .map(|p| {
            (
                p.name.as_str(),
                p.version.as_str(),
                p.layer_index,
                p.licenses.clone(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "ca-certificates-bundle",
                "20230506-r0",
                0,
                vec!["MPL-2.0".to_string(), "MIT".into()]
            ),
            ("musl", "1.2.4-r3", 1, vec!["MIT".to_string()]),
        ]
    );
    assert_eq!(a.packages[0].layer, f.apk_layers[0]);
    assert_eq!(a.packages[1].layer, f.apk_layers[1]);
    assert_eq!(a.packages[0].source.as_deref(), Some("ca-certificates"));
    assert_eq!(a.os.as_deref(), Some("Alpine Linux v3.19"));

    let r = &imgs["rpm-app"];
    assert!(r.packages.is_empty());
    let dbs: Vec<(&str, usize)> = r
        .rpm
        .iter()
        .map(|d| (d.path.as_str(), d.layer_index))
        .collect();
    assert_eq!(
        dbs,
        vec![
            ("/var/lib/rpm/Packages", 1),
            ("/usr/lib/sysimage/rpm/rpmdb.sqlite", 0)
        ],
        "the opaque /var/lib/rpm hides the old rpmdb.sqlite"
    );
    assert_eq!(r.rpm[0].layer, f.rpm_layers[1]);
}

#[test]
fn corrupted_layer_is_rejected_with_its_digest() {
    let f = fixture();
    let layout = oci::Layout::open(&f.layout).unwrap();
    let img = layout
        .images()
        .unwrap()
        .into_iter()
        .find(|i| i.name == "alpine-app")
        .unwrap();
    let d = img.layers[0].digest;
    let p = f.layout.join("blobs/sha256").join(d.hex());
    let mut bytes = std::fs::read(&p).unwrap();
    let n = bytes.len();
    bytes[n - 9] ^= 0xff; // inside the gzip trailer's CRC/size: the tar itself still reads
    std::fs::write(&p, bytes).unwrap();
    let err = oci::scan_layout(&layout, Some("alpine-app"), &oci::NoReport).unwrap_err();
    let msg = format!("{err}");
    assert!(msg.contains(&d.to_string()), "{msg}");
}

#[test]
fn licence_summary_flags_copyleft_and_names_images() {
    let f = fixture();
    let imgs: Vec<sbom::ImageSbom> = scan(&f, &f.layout).into_values().collect();
    let s = sbom::licence_summary(&imgs);
    let get = |l: &str| {
        s.iter()
            .find(|e| e.licence == l)
            .unwrap_or_else(|| panic!("{l} missing"))
    };
    let gpl3 = get("GPL-3+");
    assert!(gpl3.copyleft);
    assert_eq!(gpl3.spdx.as_deref(), Some("GPL-3.0-or-later"));
    assert!(gpl3.images.contains(&"debian-app".to_string()));
    assert!(
        gpl3.packages.iter().any(|p| p.starts_with("tar@")),
        "tar is in debian-base"
    );
    let zlib = get("Zlib");
    assert!(!zlib.copyleft);
    assert_eq!(zlib.images, vec!["debian-app", "debian-base"]);
    assert!(get("MPL-2.0").copyleft);
    let mit = get("MIT");
    assert!(!mit.copyleft);
    assert_eq!(
        mit.packages,
        vec!["ca-certificates-bundle@20230506-r0", "musl@1.2.4-r3"]
    );
    // busybox (GPL-2.0-only) was removed from the alpine image in its second layer.
    assert!(s.iter().all(|e| e.licence != "GPL-2.0-only"));
}

// ---------- the binary, and validation by standard tools ----------

fn tool_or_skip(cmd: &str, args: &[&str]) -> bool {
    let ok = std::process::Command::new(cmd)
        .args(args)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{cmd} is required in CI (scripts/deps.sh installs it)");
        }
        eprintln!("SKIP: {cmd} not available (run scripts/deps.sh)");
    }
    ok
}

fn darkport() -> Command {
    let mut c = Command::cargo_bin("darkport").unwrap();
    c.arg("--progress").arg("quiet");
    c
}

#[test]
fn cli_spdx_validates_with_pyspdxtools_and_lists_the_packages() {
    let f = fixture();
    let out = darkport()
        .args([
            "sbom",
            f.archive.to_str().unwrap(),
            "--image",
            "debian-app",
            "--format",
            "spdx",
        ])
        .args(["--created", "2026-01-02T03:04:05Z"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["spdxVersion"], "SPDX-2.3");
    assert_eq!(doc["creationInfo"]["created"], "2026-01-02T03:04:05Z");
    let pk = doc["packages"].as_array().unwrap();
    let names: Vec<&str> = pk
        .iter()
        .skip(1)
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        vec!["base-files", "bash", "coreutils", "cpp-12", "zlib1g"]
    );
    let zlib = pk.iter().find(|p| p["name"] == "zlib1g").unwrap();
    assert_eq!(zlib["licenseDeclared"], "Zlib");
    assert!(zlib["sourceInfo"]
        .as_str()
        .unwrap()
        .contains(&f.deb_layers[0].to_string()));
    assert!(zlib["externalRefs"][0]["referenceLocator"]
        .as_str()
        .unwrap()
        .starts_with("pkg:deb/debian/zlib1g@1%3A"));
    let bash = pk.iter().find(|p| p["name"] == "bash").unwrap();
    assert!(bash["licenseDeclared"]
        .as_str()
        .unwrap()
        .starts_with("GPL-3.0-or-later"));
    assert!(bash["sourceInfo"]
        .as_str()
        .unwrap()
        .contains(&f.deb_layers[2].to_string()));
    assert_eq!(pk[0]["versionInfo"], f.manifests["debian-app"].to_string());
    // Same input, same bytes.
    let again = darkport()
        .args([
            "sbom",
            f.layout.to_str().unwrap(),
            "--image",
            "debian-app",
            "--format",
            "spdx",
        ])
        .args(["--created", "2026-01-02T03:04:05Z"])
        .output()
        .unwrap();
    assert_eq!(
        again.stdout, out.stdout,
        "directory and archive give identical SPDX"
    );

    if !tool_or_skip("pyspdxtools", &["--help"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    darkport()
        .args([
            "sbom",
            f.archive.to_str().unwrap(),
            "--format",
            "spdx",
            "-o",
        ])
        .arg(dir.path())
        .assert()
        .success();
    let mut n = 0;
    for e in std::fs::read_dir(dir.path()).unwrap() {
        let p = e.unwrap().path();
        n += 1;
        let v = std::process::Command::new("pyspdxtools")
            .arg("-i")
            .arg(&p)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&v.stdout),
            String::from_utf8_lossy(&v.stderr)
        );
        assert!(
            v.status.success() && !text.contains("error") && !text.contains("invalid"),
            "{}: {text}",
            p.display()
        );
    }
    assert_eq!(n, 4, "one document per image");
    // The validator does reject a broken document (the check can fail).
    let bad = dir.path().join("bad.spdx.json");
    let mut d = doc.clone();
    d["packages"][1]["licenseDeclared"] = json!("NOT A LICENCE ((");
    std::fs::write(&bad, serde_json::to_vec(&d).unwrap()).unwrap();
    let v = std::process::Command::new("pyspdxtools")
        .arg("-i")
        .arg(&bad)
        .output()
        .unwrap();
    assert!(
        !v.status.success(),
        "pyspdxtools accepted an invalid licence expression"
    );
}

const CDX_CHECK: &str = r#"
import json, sys
from cyclonedx.validation.json import JsonStrictValidator
from cyclonedx.schema import SchemaVersion
err = JsonStrictValidator(SchemaVersion.V1_5).validate_str(open(sys.argv[1]).read())
if err:
    print("INVALID", err); sys.exit(1)
print("valid")
"#;

#[test]
fn cli_cyclonedx_validates_against_the_1_5_schema() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    darkport()
        .args([
            "sbom",
            f.layout.to_str().unwrap(),
            "--format",
            "cyclonedx",
            "-o",
        ])
        .arg(dir.path())
        .assert()
        .success();
    let app: Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("debian-app_linux-amd64.cdx.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(app["specVersion"], "1.5");
    let names: Vec<&str> = app["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        vec!["base-files", "bash", "coreutils", "cpp-12", "zlib1g"]
    );
    if !tool_or_skip(
        "python3",
        &["-c", "import cyclonedx.validation.json, jsonschema"],
    ) {
        return;
    }
    for e in std::fs::read_dir(dir.path()).unwrap() {
        let p = e.unwrap().path();
        let v = std::process::Command::new("python3")
            .args(["-c", CDX_CHECK])
            .arg(&p)
            .output()
            .unwrap();
        assert!(
            v.status.success(),
            "{}: {}{}",
            p.display(),
            String::from_utf8_lossy(&v.stdout),
            String::from_utf8_lossy(&v.stderr)
        );
    }
    let mut bad = app.clone();
    bad["components"][0]["licenses"] = json!([{"license": {"id": "NOT-A-LICENCE"}}]);
    let bp = dir.path().join("bad.json");
    std::fs::write(&bp, serde_json::to_vec(&bad).unwrap()).unwrap();
    let v = std::process::Command::new("python3")
        .args(["-c", CDX_CHECK])
        .arg(&bp)
        .output()
        .unwrap();
    assert!(
        !v.status.success(),
        "the schema check accepted an invalid licence id"
    );
}

#[test]
fn cli_table_licenses_and_errors() {
    let f = fixture();
    let out = darkport()
        .args(["sbom", f.archive.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success());
    let t = String::from_utf8(out.stdout).unwrap();
    assert!(
        t.contains("image debian-app (linux/amd64): 5 package(s), 3 layer(s)"),
        "{t}"
    );
    assert!(
        t.contains("RPM database /var/lib/rpm/Packages (layer 1)"),
        "{t}"
    );
    assert!(
        t.lines()
            .any(|l| l.starts_with("apk   musl") && l.contains("1.2.4-r3") && l.contains("MIT")),
        "{t}"
    );

    let out = darkport()
        .args(["licenses", f.archive.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let copyleft: Vec<&str> = v["copyleft"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect();
    assert!(
        copyleft.contains(&"GPL-3+") && copyleft.contains(&"MPL-2.0"),
        "{copyleft:?}"
    );
    assert!(!copyleft.contains(&"Zlib") && !copyleft.contains(&"MIT"));
    assert_eq!(v["rpm_databases"].as_array().unwrap().len(), 2);

    darkport()
        .args([
            "licenses",
            f.archive.to_str().unwrap(),
            "--image",
            "alpine-app",
            "--fail-on-copyleft",
        ])
        .assert()
        .code(1)
        .stdout(predicates::str::contains("MPL-2.0"));

    // Several images and a one-image format: exit 1 with a hint.
    darkport()
        .args(["sbom", f.archive.to_str().unwrap(), "--format", "spdx"])
        .assert()
        .code(1)
        .stderr(predicates::str::contains("hint: choose one with --image"));
    darkport()
        .args(["sbom", f.archive.to_str().unwrap(), "--image", "nope"])
        .assert()
        .code(1)
        .stderr(predicates::str::contains("no image named \"nope\""));
    let junk = f.layout.join("junk.tar");
    std::fs::write(&junk, b"not a tar at all").unwrap();
    darkport()
        .args(["sbom", junk.to_str().unwrap()])
        .assert()
        .code(1)
        .stderr(predicates::str::contains("hint: SOURCE must be"));
}

#[test]
fn fixture_is_a_real_oci_layout_for_skopeo() {
    let f = fixture();
    if !tool_or_skip("skopeo", &["--version"]) {
        return;
    }
    let out = std::process::Command::new("skopeo")
        .args(["inspect", "--raw"])
        .arg(format!("oci-archive:{}:debian-app", f.archive.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(Digest::of(&out.stdout), f.manifests["debian-app"]);
}
