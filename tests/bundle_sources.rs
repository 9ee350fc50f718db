//! Each input kind: oci layout (incl. a multi-platform index), oci-archive, docker-archive
//! (plain, gzipped, several images), dir:, and a registry (Debian's docker-registry on
//! loopback filled by skopeo), plus an unreachable registry.

mod support;
use bundle_common::*;
use std::io::Read;
use std::path::Path;
use support::bundle as bundle_common;

fn build_ok(d: &Path, spec: &Path, extra: &[&str]) -> (std::path::PathBuf, serde_json::Value) {
    let (key, pubk) = if d.join("k.key").exists() {
        (d.join("k.key"), d.join("k.pub"))
    } else {
        keys(d, "k")
    };
    let b = d.join(format!(
        "{}.darkport",
        spec.file_stem().unwrap().to_string_lossy()
    ));
    let mut a = vec![
        "build-bundle",
        "-f",
        spec.to_str().unwrap(),
        "-o",
        b.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
    ];
    a.extend_from_slice(extra);
    ok(&run(&a));
    ok(&run(&[
        "verify",
        "--pubkey",
        pubk.to_str().unwrap(),
        b.to_str().unwrap(),
    ]));
    let j = inspect_json(&b, &pubk);
    (b, j)
}

/// Read a blob out of a bundle through the library API (verified).
fn blob(bundle: &Path, pubk: &Path, digest: &str) -> Vec<u8> {
    let k = darkport::bundle::TrustedKey::load(pubk).unwrap();
    let b = darkport::bundle::Bundle::open(bundle, &darkport::bundle::Trust::key(k)).unwrap();
    let mut v = Vec::new();
    b.open_blob(&digest.parse().unwrap())
        .unwrap()
        .read_to_end(&mut v)
        .unwrap();
    v
}

/// A `docker save`-style archive with several images sharing a base layer (uncompressed).
fn write_docker_save(path: &Path, images: &[GenImage], tags: &[&str]) -> Vec<String> {
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |name: &str, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, name, data).unwrap();
    };
    let mut manifest = Vec::new();
    let mut diff_sets = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (im, tag) in images.iter().zip(tags) {
        let diff_ids: Vec<String> = im.layers.iter().map(|l| sha(l)).collect();
        let mut layer_paths = Vec::new();
        for (l, d) in im.layers.iter().zip(&diff_ids) {
            let p = format!("{}/layer.tar", &d[7..]);
            if seen.insert(p.clone()) {
                add(&p, l);
            }
            layer_paths.push(p);
        }
        let cfg = serde_json::to_vec(&serde_json::json!({
            "architecture": "amd64", "os": "linux", "config": {"Cmd": ["/bin/sh"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }))
        .unwrap();
        let cname = format!("{}.json", &sha(&cfg)[7..]);
        add(&cname, &cfg);
        manifest
            .push(serde_json::json!({"Config": cname, "RepoTags": [tag], "Layers": layer_paths}));
        diff_sets.push(diff_ids);
    }
    add("manifest.json", &serde_json::to_vec(&manifest).unwrap());
    std::fs::write(path, b.into_inner().unwrap()).unwrap();
    diff_sets.concat()
}

#[test]
fn docker_archive_plain_gzipped_and_multi_image() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    keys(d, "k");
    let imgs = product_images(1, 2);
    let diff_ids = write_docker_save(&d.join("save.tar"), &imgs, &["gen/app0:1", "gen/app1:1"]);
    sh(&format!(
        "gzip -1 -c {0}/save.tar > {0}/save.tar.gz",
        d.display()
    ));
    for (ext, comp, magic_ok) in [
        ("tar", "zstd", &[0x28u8, 0xb5, 0x2f, 0xfd][..]),
        ("tar.gz", "gzip", &[0x1fu8, 0x8b][..]),
    ] {
        let spec = d.join(format!("s-{comp}.yaml"));
        write_spec(
            &spec,
            "1.0.0",
            &[
                (
                    "testprod/app0:1".into(),
                    format!("docker-archive:save.{ext}:gen/app0:1"),
                ),
                (
                    "testprod/app1:1".into(),
                    format!("docker-archive:save.{ext}:@1"),
                ),
            ],
            "",
        );
        let (b, j) = build_ok(d, &spec, &["--layer-compression", comp]);
        // 2 manifests + 2 configs + shared base + 2 app layers, and one SBOM per image
        assert_eq!(stored_sboms(&b).1, 2);
        assert_eq!(j["blob_count"], 7 + 2, "{j}");
        // Every layer is compressed and decompresses to its diff_id.
        let pubk = d.join("k.pub");
        let top = j["images"][0]["digest"].as_str().unwrap().to_string();
        let m: serde_json::Value = serde_json::from_slice(&blob(&b, &pubk, &top)).unwrap();
        let want = format!("application/vnd.oci.image.layer.v1.tar+{comp}");
        for (i, l) in m["layers"].as_array().unwrap().iter().enumerate() {
            assert_eq!(l["mediaType"], want.as_str());
            let data = blob(&b, &pubk, l["digest"].as_str().unwrap());
            assert!(data.starts_with(magic_ok));
            let raw = if comp == "zstd" {
                zstd::decode_all(&data[..]).unwrap()
            } else {
                let mut v = Vec::new();
                flate2::read::GzDecoder::new(&data[..])
                    .read_to_end(&mut v)
                    .unwrap();
                v
            };
            assert_eq!(sha(&raw), diff_ids[i]);
        }
    }
    // Several images and no name: a clear error listing the tags.
    let spec = d.join("ambiguous.yaml");
    write_spec(
        &spec,
        "1.0.0",
        &[("testprod/x:1".into(), "docker-archive:save.tar".into())],
        "",
    );
    let err = fails(&run(&[
        "build-bundle",
        "-f",
        spec.to_str().unwrap(),
        "-o",
        d.join("a.darkport").to_str().unwrap(),
        "--unsigned",
    ]));
    assert!(
        err.contains("holds 2 images") && err.contains("gen/app1:1"),
        "{err}"
    );
}

#[test]
fn oci_archive_and_multi_platform_index() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let v = write_oci_layout(&d.join("layout"), &product_images(1, 2));
    // Make a two-platform index of app0 (amd64) and app1 (declared arm64).
    let read =
        |digest: &str| std::fs::read(d.join("layout/blobs/sha256").join(&digest[7..])).unwrap();
    let idx = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": v[0].1, "size": read(&v[0].1).len(), "platform": {"architecture": "amd64", "os": "linux"}},
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": v[1].1, "size": read(&v[1].1).len(), "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"}},
        ]})).unwrap();
    let id = sha(&idx);
    std::fs::write(d.join("layout/blobs/sha256").join(&id[7..]), &idx).unwrap();
    let mut index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("layout/index.json")).unwrap()).unwrap();
    index["manifests"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
        "mediaType": "application/vnd.oci.image.index.v1+json", "digest": id, "size": idx.len(),
        "annotations": {"org.opencontainers.image.ref.name": "multi"}}));
    std::fs::write(
        d.join("layout/index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();
    sh(&format!(
        "tar -C {0}/layout -cf {0}/layout.tar .",
        d.display()
    ));

    let spec = d.join("s.yaml");
    write_spec(
        &spec,
        "1.0.0",
        &[
            (
                "testprod/a:1".into(),
                "oci-archive:layout.tar:app0-v1".into(),
            ),
            ("testprod/multi:1".into(), "oci:layout:multi".into()),
        ],
        "",
    );
    let (b, j) = build_ok(d, &spec, &[]);
    assert_eq!(j["images"][0]["digest"].as_str().unwrap(), v[0].1);
    // The index keeps its bytes (digest) but only the amd64 child is carried.
    assert_eq!(j["images"][1]["digest"].as_str().unwrap(), id);
    assert_eq!(
        j["images"][1]["platforms"],
        serde_json::json!(["linux/amd64"])
    );
    // index + app0 manifest/config/base/app layer; app1's own layer and config are not there;
    // plus one SBOM document per image (the index has one platform here)
    assert_eq!(stored_sboms(&b).1, 2);
    assert_eq!(j["blob_count"], 5 + 2, "{j}");

    // Asking for arm64 too brings the second child.
    let spec2 = d.join("s2.yaml");
    std::fs::write(
        &spec2,
        std::fs::read_to_string(&spec)
            .unwrap()
            .replace("[linux/amd64]", "[linux/amd64, linux/arm64/v8]"),
    )
    .unwrap();
    let (b2, j2) = build_ok(d, &spec2, &[]);
    assert_eq!(
        j2["images"][1]["platforms"],
        serde_json::json!(["linux/amd64", "linux/arm64/v8"])
    );
    // ... and its SBOM: testprod/a, multi amd64, multi arm64
    assert_eq!(stored_sboms(&b2).1, 3);
    assert_eq!(j2["blob_count"], 8 + 3, "{j2}");

    // A platform nobody has is an error naming the image and what it has.
    let spec3 = d.join("s3.yaml");
    std::fs::write(
        &spec3,
        std::fs::read_to_string(&spec)
            .unwrap()
            .replace("[linux/amd64]", "[linux/s390x]"),
    )
    .unwrap();
    let err = fails(&run(&[
        "build-bundle",
        "-f",
        spec3.to_str().unwrap(),
        "-o",
        d.join("x.darkport").to_str().unwrap(),
        "--unsigned",
    ]));
    assert!(
        err.contains("linux/s390x") && err.contains("testprod/a:1"),
        "{err}"
    );
}

#[test]
fn dir_source_makes_a_config_from_the_spec() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    std::fs::create_dir_all(d.join("base/bin")).unwrap();
    std::fs::write(d.join("base/bin/tool"), rand_bytes(5, 10_000)).unwrap();
    std::os::unix::fs::symlink("tool", d.join("base/bin/alias")).unwrap();
    std::fs::create_dir_all(d.join("app")).unwrap();
    std::fs::write(d.join("app/run.sh"), "#!/bin/sh\necho hi\n").unwrap();
    let spec = d.join("s.yaml");
    std::fs::write(
        &spec,
        "product: testprod\nversion: 1.0.0\nimages:\n  - name: testprod/app:1\n    source: dir:base,app\n    config:\n      Entrypoint: [/bin/sh, /run.sh]\n      Env: [A=1]\n      ExposedPorts: [\"8080\"]\n",
    )
    .unwrap();
    let (b, j) = build_ok(d, &spec, &[]);
    let pubk = d.join("k.pub");
    let m: serde_json::Value =
        serde_json::from_slice(&blob(&b, &pubk, j["images"][0]["digest"].as_str().unwrap()))
            .unwrap();
    let cfg: serde_json::Value =
        serde_json::from_slice(&blob(&b, &pubk, m["config"]["digest"].as_str().unwrap())).unwrap();
    assert_eq!(
        cfg["config"]["Entrypoint"],
        serde_json::json!(["/bin/sh", "/run.sh"])
    );
    assert_eq!(
        cfg["config"]["ExposedPorts"],
        serde_json::json!({"8080/tcp": {}})
    );
    assert_eq!(cfg["architecture"], "amd64");
    assert_eq!(cfg["rootfs"]["diff_ids"].as_array().unwrap().len(), 2);
    // The default compression is gzip (every runtime pulls it).
    assert_eq!(
        m["layers"][0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
    // The base layer holds the symlink as a symlink.
    let gz = blob(&b, &pubk, m["layers"][0]["digest"].as_str().unwrap());
    let mut layer = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut layer).unwrap();
    let mut ar = tar::Archive::new(&layer[..]);
    let kinds: Vec<(String, bool)> = ar
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.path().unwrap().to_string_lossy().to_string(),
                e.header().entry_type().is_symlink(),
            )
        })
        .collect();
    assert!(kinds.contains(&("bin/alias".into(), true)), "{kinds:?}");
    assert_eq!(sha(&layer), cfg["rootfs"]["diff_ids"][0].as_str().unwrap());
}

struct Registry {
    child: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    support::free_port("127.0.0.1")
}

fn start_registry() -> Registry {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = dir.path().join("config.yml");
    std::fs::write(
        &cfg,
        format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let mut child = std::process::Command::new("docker-registry")
        .args(["serve", cfg.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Registry {
                child,
                port,
                _dir: dir,
            };
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("docker-registry did not start on port {port}");
}

#[test]
fn registry_source_against_docker_registry() {
    if !have_tool("skopeo") || !have_tool("docker-registry") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let v = write_oci_layout(&d.join("layout"), &product_images(1, 2));
    let reg = start_registry();
    for (tag, _, _) in &v {
        sh(&format!(
            "skopeo copy --quiet --dest-tls-verify=false oci:{}:{tag} docker://127.0.0.1:{}/gen/{tag}:1",
            d.join("layout").display(),
            reg.port
        ));
    }
    let spec = d.join("s.yaml");
    write_spec(
        &spec,
        "1.0.0",
        &[
            (
                "testprod/app0:1".into(),
                format!("docker://127.0.0.1:{}/gen/app0-v1:1", reg.port),
            ),
            (
                "testprod/app1:1".into(),
                format!("docker://127.0.0.1:{}/gen/app1-v1:1", reg.port),
            ),
        ],
        &format!(
            "registries:\n  \"127.0.0.1:{}\": {{plain_http: true}}\n",
            reg.port
        ),
    );
    let (b, j) = build_ok(d, &spec, &[]);
    assert_eq!(j["images"][0]["digest"].as_str().unwrap(), v[0].1);
    assert_eq!(j["images"][1]["digest"].as_str().unwrap(), v[1].1);
    // Layers keep their exact bytes: same unique blob set as the layout.
    let unique: u64 = std::fs::read_dir(d.join("layout/blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    // (the bundle also stores one compressed SBOM document per image)
    let (sbom_bytes, sboms) = stored_sboms(&b);
    assert_eq!(sboms, 2);
    assert_eq!(
        j["stored_blob_bytes"].as_u64().unwrap(),
        unique + sbom_bytes
    );
    // And skopeo can push every image from the bundle back into the registry, same digest.
    for (i, name) in ["testprod/app0:1", "testprod/app1:1"].iter().enumerate() {
        sh(&format!(
            "skopeo copy --quiet --dest-tls-verify=false oci-archive:{}:{name} docker://127.0.0.1:{}/back/{name}",
            b.display(),
            reg.port
        ));
        let o = sh(&format!(
            "skopeo inspect --raw --tls-verify=false docker://127.0.0.1:{}/back/{name}",
            reg.port
        ));
        assert_eq!(sha(&o.stdout), v[i].1);
    }
    // A tag that is not there: exit 1, naming the image and the spec line.
    let spec2 = d.join("missing.yaml");
    write_spec(
        &spec2,
        "1.0.0",
        &[(
            "testprod/none:1".into(),
            format!("docker://127.0.0.1:{}/gen/nothing:1", reg.port),
        )],
        &format!(
            "registries:\n  \"127.0.0.1:{}\": {{plain_http: true}}\n",
            reg.port
        ),
    );
    let err = fails(&run(&[
        "build-bundle",
        "-f",
        spec2.to_str().unwrap(),
        "-o",
        d.join("m.darkport").to_str().unwrap(),
        "--unsigned",
    ]));
    assert!(
        err.contains("testprod/none:1") && err.contains("missing.yaml:7"),
        "{err}"
    );
}

#[test]
fn unreachable_registry_fails_clearly() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let port = free_port(); // nothing listens there any more
    let spec = d.join("s.yaml");
    write_spec(
        &spec,
        "1.0.0",
        &[(
            "testprod/app:1".into(),
            format!("docker://127.0.0.1:{port}/gen/app:1"),
        )],
        &format!("registries:\n  \"127.0.0.1:{port}\": {{plain_http: true}}\n"),
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
        err.contains(&format!("registry 127.0.0.1:{port}")) && err.contains("testprod/app:1"),
        "{err}"
    );
    assert!(!d.join("x.darkport").exists());
}
