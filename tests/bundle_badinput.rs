//! Bad input: every case exits 1 with a message naming the member or file:line.

mod support;
use bundle_common::*;
use darkport::bundle::{Bundle, NoReport, Trust, TrustedKey};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use support::bundle as bundle_common;

struct Fixture {
    _t: tempfile::TempDir,
    dir: PathBuf,
    bundle: PathBuf,
    pubk: PathBuf,
}

fn fixture() -> Fixture {
    let t = tempfile::tempdir().unwrap();
    let d = t.path().to_path_buf();
    let (key, pubk) = keys(&d, "k");
    write_oci_layout(&d.join("layout"), &product_images(1, 2));
    std::fs::create_dir_all(d.join("pb/migrations")).unwrap();
    std::fs::write(d.join("pb/install.yml"), "- hosts: all\n  tasks: []\n").unwrap();
    std::fs::write(
        d.join("pb/migrations/0001-x.yml"),
        "- hosts: all\n  vars:\n    darkport_migration: {version: 1.0.0, scope: node}\n  tasks: []\n",
    )
    .unwrap();
    let spec = d.join("s.yaml");
    write_spec(
        &spec,
        "1.0.0",
        &[
            ("testprod/a:1".into(), "oci:layout:app0-v1".into()),
            ("testprod/b:1".into(), "oci:layout:app1-v1".into()),
        ],
        "playbooks: pb\n",
    );
    let bundle = d.join("b.darkport");
    ok(&run(&[
        "build-bundle",
        "-f",
        spec.to_str().unwrap(),
        "-o",
        bundle.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
    ]));
    Fixture {
        _t: t,
        dir: d,
        bundle,
        pubk,
    }
}

fn verify(f: &Fixture, bundle: &Path) -> std::process::Output {
    run(&[
        "verify",
        "--pubkey",
        f.pubk.to_str().unwrap(),
        bundle.to_str().unwrap(),
    ])
}

fn lib_check(bundle: &Path, pubk: &Path) -> Result<u64, darkport::bundle::BundleError> {
    let t = Trust::key(TrustedKey::load(pubk).unwrap());
    Bundle::open(bundle, &t)?.verify_all(&NoReport)
}

#[test]
fn one_flipped_byte_anywhere_is_caught() {
    let f = fixture();
    lib_check(&f.bundle, &f.pubk).expect("pristine bundle verifies");
    let len = std::fs::metadata(&f.bundle).unwrap().len();
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&f.bundle)
        .unwrap();
    let b = Bundle::open(&f.bundle, &Trust::key(TrustedKey::load(&f.pubk).unwrap())).unwrap();
    // Targeted spots: every header, first/last data byte and padding of every member, the end.
    let mut spots: Vec<u64> = Vec::new();
    for m in b.members() {
        spots.extend([
            m.header_offset,
            m.header_offset + 100,
            m.header_offset + 136,
            m.header_offset + 300,
        ]);
        spots.push(m.data_offset);
        if m.size > 0 {
            spots.push(m.data_offset + m.size - 1);
        }
        if m.size % 512 != 0 {
            spots.push(m.data_offset + m.size);
        }
    }
    spots.extend([len - 1024, len - 1]);
    // Plus a sweep over the whole file.
    spots.extend((0..len).step_by((len / 400).max(1) as usize));
    drop(b);
    for &pos in &spots {
        let mut byte = [0u8];
        file.read_exact_at(&mut byte, pos).unwrap();
        file.write_all_at(&[byte[0] ^ 0x01], pos).unwrap();
        let r = lib_check(&f.bundle, &f.pubk);
        file.write_all_at(&byte, pos).unwrap();
        if r.is_ok() {
            let b =
                Bundle::open(&f.bundle, &Trust::key(TrustedKey::load(&f.pubk).unwrap())).unwrap();
            let ms: Vec<_> = b
                .members()
                .iter()
                .map(|m| (m.name.clone(), m.header_offset, m.size))
                .collect();
            panic!("flipping the byte at offset {pos} of {len} went unnoticed; members {ms:?}");
        }
    }
    lib_check(&f.bundle, &f.pubk).expect("restored bundle verifies");

    // Through the binary: exit 1 and the member named.
    let b = Bundle::open(&f.bundle, &Trust::key(TrustedKey::load(&f.pubk).unwrap())).unwrap();
    let layer = b.members().iter().max_by_key(|m| m.size).unwrap().clone();
    let manifest = b.member("darkport.json").unwrap().clone();
    let playbook = b.playbook("install.yml").unwrap().clone();
    drop(b);
    for (m, expect) in [
        (&layer, layer.name.clone()),
        (&manifest, "signature check".to_string()),
        (&playbook, "playbooks/install.yml".to_string()),
    ] {
        let pos = m.data_offset + m.size / 2;
        let mut byte = [0u8];
        file.read_exact_at(&mut byte, pos).unwrap();
        file.write_all_at(&[byte[0] ^ 0x80], pos).unwrap();
        let err = fails(&verify(&f, &f.bundle));
        file.write_all_at(&byte, pos).unwrap();
        assert!(err.contains(&expect), "{err}");
    }
    // Flipped header byte: the checksum catches it, naming the member before it.
    let pos = layer.header_offset + 20;
    let mut byte = [0u8];
    file.read_exact_at(&mut byte, pos).unwrap();
    file.write_all_at(&[byte[0] ^ 0x01], pos).unwrap();
    let err = fails(&verify(&f, &f.bundle));
    assert!(
        err.contains("header") && err.contains(&format!("offset {}", layer.header_offset)),
        "{err}"
    );
}

#[test]
fn truncated_file() {
    let f = fixture();
    let data = std::fs::read(&f.bundle).unwrap();
    let len = data.len();
    for cut in [len - 1, len - 600, len - 1024, len / 2, 1000, 100] {
        let p = f.dir.join(format!("cut{cut}.darkport"));
        std::fs::write(&p, &data[..cut]).unwrap();
        let err = fails(&verify(&f, &p));
        assert!(
            err.contains("truncated") || err.contains("not a darkport bundle"),
            "cut {cut}: {err}"
        );
    }
    let p = f.dir.join("empty.darkport");
    std::fs::write(&p, b"").unwrap();
    assert!(fails(&verify(&f, &p)).contains("not a darkport bundle"));
}

#[test]
fn wrong_missing_or_bad_key() {
    let f = fixture();
    let (_, other) = keys(&f.dir, "other");
    let err = fails(&run(&[
        "verify",
        "--pubkey",
        other.to_str().unwrap(),
        f.bundle.to_str().unwrap(),
    ]));
    assert!(
        err.contains("signed by key") && err.contains("darkport.json"),
        "{err}"
    );
    // No key anywhere.
    let err = fails(&run(&["verify", f.bundle.to_str().unwrap()]));
    assert!(
        err.contains("no trusted public key") && err.contains("hint:"),
        "{err}"
    );
    // DARKPORT_PUBKEY is honoured.
    ok(&run_env(
        &["verify", f.bundle.to_str().unwrap()],
        &[("DARKPORT_PUBKEY", f.pubk.to_str().unwrap())],
    ));
    // A garbage key file.
    let bad = f.dir.join("bad.pub");
    std::fs::write(&bad, "untrusted comment: x\nnot-base64!\n").unwrap();
    let err = fails(&run(&[
        "verify",
        "--pubkey",
        bad.to_str().unwrap(),
        f.bundle.to_str().unwrap(),
    ]));
    assert!(err.contains("bad.pub"), "{err}");
    // inspect refuses too.
    fails(&run(&[
        "inspect",
        "--pubkey",
        other.to_str().unwrap(),
        f.bundle.to_str().unwrap(),
    ]));
}

#[test]
fn unsigned_bundle_refused_by_default() {
    let f = fixture();
    let spec = f.dir.join("s.yaml");
    let u = f.dir.join("u.darkport");
    let out = ok(&run(&[
        "build-bundle",
        "-f",
        spec.to_str().unwrap(),
        "-o",
        u.to_str().unwrap(),
        "--unsigned",
    ]));
    assert!(out.contains("UNSIGNED"));
    let err = fails(&verify(&f, &u));
    assert!(err.contains("unsigned"), "{err}");
    fails(&run(&[
        "inspect",
        "--pubkey",
        f.pubk.to_str().unwrap(),
        u.to_str().unwrap(),
    ]));
    let out = ok(&run(&["verify", "--allow-unsigned", u.to_str().unwrap()]));
    assert!(out.contains("UNSIGNED"), "{out}");
    // A build without key and without --unsigned is refused.
    let err = fails(&run(&[
        "build-bundle",
        "-f",
        spec.to_str().unwrap(),
        "-o",
        u.to_str().unwrap(),
    ]));
    assert!(err.contains("--key"), "{err}");
}

/// A raw ustar header with an arbitrary name and type (bypassing the tar crate's checks).
fn raw_header(name: &str, size: u64, typeflag: u8, link: &str) -> [u8; 512] {
    let mut h = tar::Header::new_ustar();
    {
        let old = h.as_old_mut();
        old.name[..name.len()].copy_from_slice(name.as_bytes());
        old.linkname[..link.len()].copy_from_slice(link.as_bytes());
    }
    h.set_size(size);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h.as_mut_bytes()[156] = typeflag;
    h.set_cksum();
    *h.as_bytes()
}

/// The bundle with one extra member appended before the end-of-archive blocks.
fn with_extra(f: &Fixture, tag: &str, header: [u8; 512], data: &[u8]) -> PathBuf {
    let mut v = std::fs::read(&f.bundle).unwrap();
    v.truncate(v.len() - 1024);
    v.extend_from_slice(&header);
    v.extend_from_slice(data);
    v.resize(v.len().div_ceil(512) * 512, 0);
    v.extend_from_slice(&[0u8; 1024]);
    let p = f.dir.join(format!("{tag}.darkport"));
    std::fs::write(&p, v).unwrap();
    p
}

#[test]
fn unlisted_traversal_absolute_link_and_duplicate_members() {
    let f = fixture();
    let cases: Vec<(&str, [u8; 512], Vec<u8>, &str)> = vec![
        (
            "unlisted",
            raw_header("extra.txt", 5, b'0', ""),
            b"hello".to_vec(),
            "\"extra.txt\" at offset",
        ),
        (
            "dotdot",
            raw_header("../evil", 5, b'0', ""),
            b"hello".to_vec(),
            "'..'",
        ),
        (
            "dotdot2",
            raw_header("playbooks/../../evil", 5, b'0', ""),
            b"hello".to_vec(),
            "'..'",
        ),
        (
            "absolute",
            raw_header("/etc/evil", 5, b'0', ""),
            b"hello".to_vec(),
            "absolute path",
        ),
        (
            "symlink",
            raw_header("playbooks/link", 0, b'2', "/etc/passwd"),
            vec![],
            "symbolic link",
        ),
        (
            "hardlink",
            raw_header("playbooks/hl", 0, b'1', "darkport.json"),
            vec![],
            "hard link",
        ),
        (
            "pax",
            raw_header("PaxHeaders/x", 20, b'x', ""),
            b"20 path=evil/x.txt\n\n".to_vec(),
            "pax extension header",
        ),
    ];
    for (tag, h, data, expect) in cases {
        let p = with_extra(&f, tag, h, &data);
        let err = fails(&verify(&f, &p));
        assert!(err.contains(expect), "{tag}: {err}");
        assert!(err.contains(&format!("{tag}.darkport")), "{tag}: {err}");
    }
    // A listed member repeated.
    let data = std::fs::read(&f.bundle).unwrap();
    let b = Bundle::open(&f.bundle, &Trust::key(TrustedKey::load(&f.pubk).unwrap())).unwrap();
    let m = b.playbook("install.yml").unwrap();
    let member = &data[m.header_offset as usize..(m.data_offset + m.size) as usize];
    let mut h = [0u8; 512];
    h.copy_from_slice(&member[..512]);
    let p = with_extra(&f, "dup", h, &member[512..]);
    let err = fails(&verify(&f, &p));
    assert!(
        err.contains("appears twice") && err.contains("playbooks/install.yml"),
        "{err}"
    );
    // Data after the end-of-archive marker.
    let mut v = data.clone();
    v.extend_from_slice(b"junk");
    let p = f.dir.join("trailing.darkport");
    std::fs::write(&p, v).unwrap();
    assert!(fails(&verify(&f, &p)).contains("after the end of the archive"));
}

#[test]
fn malformed_spec_names_file_and_line() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let cases = [
        ("product: p\nversion: 1.0.0\nimages:\n  - name: p/a:1\n   source: oci:x\n", "s.yaml:4:"),
        ("product: p\nversion: 1.0.0\nimages:\n  - name: p/a:1\n    sorce: oci:x\n", "s.yaml:5:"),
        ("product: p\nversion: 1.x\nimages:\n  - name: p/a:1\n    source: oci:x\n", "s.yaml:2:"),
        ("product: p\nversion: 1.0.0\nimages:\n  - name: p/a:1\n    source: oci:x\n  - name: P/A\n    source: oci:x\n", "s.yaml:6:"),
        ("product: p\nversion: 1.0.0\nimages:\n  - name: p/a:1\n    source: tftp:x\n", "s.yaml:5:"),
        ("product: p\nversion: 1.0.0\nupgrades_from: \"~~1\"\nimages:\n  - name: p/a:1\n    source: oci:x\n", "s.yaml:3:"),
    ];
    let spec = d.join("s.yaml");
    for (text, expect) in cases {
        std::fs::write(&spec, text).unwrap();
        let err = fails(&run(&[
            "build-bundle",
            "-f",
            spec.to_str().unwrap(),
            "-o",
            d.join("x.darkport").to_str().unwrap(),
            "--unsigned",
        ]));
        assert!(err.contains(expect), "{text}\n=> {err}");
    }
    let err = fails(&run(&[
        "build-bundle",
        "-f",
        d.join("nope.yaml").to_str().unwrap(),
        "--unsigned",
    ]));
    assert!(err.contains("nope.yaml"), "{err}");
}

#[test]
fn missing_image() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    write_oci_layout(&d.join("layout"), &product_images(1, 1));
    let spec = d.join("s.yaml");
    write_spec(
        &spec,
        "1.0.0",
        &[
            ("testprod/a:1".into(), "oci:layout:app0-v1".into()),
            ("testprod/b:1".into(), "oci:layout:nope".into()),
        ],
        "",
    );
    let err = fails(&run(&[
        "build-bundle",
        "-f",
        spec.to_str().unwrap(),
        "-o",
        d.join("x.darkport").to_str().unwrap(),
        "--unsigned",
    ]));
    assert!(
        err.contains("testprod/b:1")
            && err.contains("s.yaml:7")
            && err.contains("\"nope\" not found")
            && err.contains("app0-v1"),
        "{err}"
    );
    write_spec(
        &spec,
        "1.0.0",
        &[("testprod/a:1".into(), "oci:missing-dir:x".into())],
        "",
    );
    let err = fails(&run(&[
        "build-bundle",
        "-f",
        spec.to_str().unwrap(),
        "-o",
        d.join("x.darkport").to_str().unwrap(),
        "--unsigned",
    ]));
    assert!(err.contains("missing-dir/index.json"), "{err}");
    // A blob file missing from the layout.
    let blobs: Vec<_> = std::fs::read_dir(d.join("layout/blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let biggest = blobs
        .iter()
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap();
    std::fs::write(biggest, b"corrupted").unwrap();
    write_spec(
        &spec,
        "1.0.0",
        &[("testprod/a:1".into(), "oci:layout:app0-v1".into())],
        "",
    );
    let err = fails(&run(&[
        "build-bundle",
        "-f",
        spec.to_str().unwrap(),
        "-o",
        d.join("x.darkport").to_str().unwrap(),
        "--unsigned",
    ]));
    assert!(
        err.contains(&biggest.file_name().unwrap().to_string_lossy().to_string()),
        "{err}"
    );
    assert!(!d.join("x.darkport").exists());
}

/// A playbook that would fail at the site is refused at build time with every problem, each
/// naming the source file and line; no bundle is written, and no image is fetched first.
#[test]
fn broken_playbooks_are_refused_before_signing() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    std::fs::create_dir_all(d.join("pb/templates")).unwrap();
    std::fs::write(
        d.join("pb/install.yml"),
        "- hosts: all\n  tasks:\n    - name: start it\n      dockr_container: name=x\n    - template: src=app.conf.j2 dest=/etc/app.conf\n",
    )
    .unwrap();
    std::fs::write(
        d.join("pb/templates/app.conf.j2"),
        "port = {{ port }}\n{% if tls %}\ntls = on\n",
    )
    .unwrap();
    let spec = d.join("s.yaml");
    // The image source does not exist: the playbook check comes first.
    write_spec(
        &spec,
        "1.0.0",
        &[("testprod/a:1".into(), "oci:nowhere:app0-v1".into())],
        "playbooks: pb\n",
    );
    let out = d.join("x.darkport");
    let err = fails(&run(&[
        "build-bundle",
        "-f",
        spec.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--unsigned",
    ]));
    assert!(err.contains("(2 problems)"), "{err}");
    assert!(
        err.contains("pb/install.yml:3:") || err.contains("pb/install.yml:4:"),
        "{err}"
    );
    assert!(err.contains("dockr_container"), "{err}");
    assert!(err.contains("pb/templates/app.conf.j2:"), "{err}");
    assert!(!out.exists());

    // No install.yml at all: refused, naming it.
    std::fs::remove_file(d.join("pb/install.yml")).unwrap();
    std::fs::remove_file(d.join("pb/templates/app.conf.j2")).unwrap();
    let err = fails(&run(&[
        "build-bundle",
        "-f",
        spec.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--unsigned",
    ]));
    assert!(err.contains("pb/install.yml: missing"), "{err}");
    assert!(!out.exists());
}

/// `inspect --pubkey` reports on every member (images, blobs, playbooks, SBOMs, SHA256SUMS),
/// so it checks them as verify does: one changed byte in any of them is exit 1 naming the
/// member, not "signature ok". `--manifest-only` checks the signature alone and says so.
#[test]
fn inspect_checks_every_member_it_reports_on() {
    let f = fixture();
    let (pk, bs) = (f.pubk.to_str().unwrap(), f.bundle.to_str().unwrap());
    let out = ok(&run(&["inspect", "--pubkey", pk, bs]));
    assert!(out.contains("every hash matches the manifest"), "{out}");
    let b = Bundle::open(&f.bundle, &Trust::key(TrustedKey::load(&f.pubk).unwrap())).unwrap();
    let pick = |pred: &dyn Fn(&str) -> bool| {
        b.members()
            .iter()
            .find(|m| pred(&m.name) && m.size > 0)
            .unwrap_or_else(|| panic!("no such member in {:?}", b.members()))
            .clone()
    };
    let targets = [
        pick(&|n| n.starts_with("blobs/")),
        pick(&|n| n == "playbooks/install.yml"),
        pick(&|n| n == "SHA256SUMS"),
        // An SBOM document: a zstd blob the manifest's `sboms` names (format v2).
        b.blob(&b.manifest().sboms.first().expect("an SBOM").document)
            .expect("the SBOM blob is in the bundle")
            .clone(),
    ];
    drop(b);
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&f.bundle)
        .unwrap();
    for m in &targets {
        let pos = m.data_offset + m.size / 2;
        let mut byte = [0u8];
        file.read_exact_at(&mut byte, pos).unwrap();
        file.write_all_at(&[byte[0] ^ 0x20], pos).unwrap();
        let err = fails(&run(&["inspect", "--pubkey", pk, bs]));
        assert!(
            err.contains(&m.name) && err.contains("verification of"),
            "{}: {err}",
            m.name
        );
        let o = run(&["inspect", "--json", "--pubkey", pk, bs]);
        fails(&o);
        let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(j["ok"], false, "{j}");
        // Asked for the manifest only: exit 0, and the output says what was not checked.
        let out = ok(&run(&["inspect", "--manifest-only", "--pubkey", pk, bs]));
        assert!(
            out.contains("signature of the manifest ok")
                && out.contains("members not checked (run verify)"),
            "{out}"
        );
        let o = run(&["inspect", "--manifest-only", "--json", "--pubkey", pk, bs]);
        let j: serde_json::Value = serde_json::from_slice(&ok_out(&o)).unwrap();
        assert_eq!(j["members_checked"], false, "{j}");
        file.write_all_at(&byte, pos).unwrap();
    }
    let o = run(&["inspect", "--json", "--pubkey", pk, bs]);
    let j: serde_json::Value = serde_json::from_slice(&ok_out(&o)).unwrap();
    assert_eq!(j["members_checked"], true, "{j}");
}

fn ok_out(o: &std::process::Output) -> Vec<u8> {
    ok(o);
    o.stdout.clone()
}
