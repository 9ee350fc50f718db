//! Round trip, dedup, reproducibility, delta, skopeo read-back and minisign CLI checks on
//! generated images (shared base layer, app images on top, a v2 changing only app layers).

mod support;
use bundle_common::*;
use std::path::Path;
use support::bundle as bundle_common;

fn build(spec: &Path, out: &Path, key: &Path, extra: &[&str]) -> String {
    let mut a = vec![
        "build-bundle",
        "-f",
        spec.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
    ];
    a.extend_from_slice(extra);
    ok(&run(&a))
}

#[test]
fn round_trip_dedup_reproducible_delta() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let (key, pubk) = keys(d, "k");
    let v1 = write_oci_layout(&d.join("layout-v1"), &product_images(1, 4));
    let v2 = write_oci_layout(&d.join("layout-v2"), &product_images(2, 4));
    let spec1 = d.join("v1.yaml");
    let imgs = |v: &[(String, String, u64)], dir: &str| -> Vec<(String, String)> {
        v.iter()
            .enumerate()
            .map(|(i, (tag, _, _))| {
                (
                    format!("testprod/app{i}:{}", tag.rsplit('v').next().unwrap()),
                    format!("oci:{dir}:{tag}"),
                )
            })
            .collect()
    };
    write_spec(&spec1, "1.0.0", &imgs(&v1, "layout-v1"), "");
    let b1 = d.join("v1.darkport");
    build(&spec1, &b1, &key, &[]);

    // Reproducible: a second build of the same inputs is byte-identical.
    let b1b = d.join("v1-again.darkport");
    build(&spec1, &b1b, &key, &[]);
    assert_eq!(
        std::fs::read(&b1).unwrap(),
        std::fs::read(&b1b).unwrap(),
        "builds differ"
    );

    // Verify passes and names the signing key.
    let out = ok(&run(&[
        "verify",
        "--pubkey",
        pubk.to_str().unwrap(),
        b1.to_str().unwrap(),
    ]));
    assert!(out.starts_with("OK "), "{out}");

    // Dedup: stored blob bytes = unique blob bytes of the layout; file ≤ 1.01 × that + metadata.
    let j = inspect_json(&b1, &pubk);
    let mut unique = 0u64;
    for e in std::fs::read_dir(d.join("layout-v1/blobs/sha256")).unwrap() {
        unique += e.unwrap().metadata().unwrap().len();
    }
    // The bundle also stores one compressed SBOM document per image.
    let (sbom_bytes, sboms) = stored_sboms(&b1);
    assert_eq!(sboms, 4);
    assert!(
        sbom_bytes < 4 * 4096,
        "compressed SBOMs: {sbom_bytes} bytes"
    );
    assert_eq!(
        j["stored_blob_bytes"].as_u64().unwrap(),
        unique + sbom_bytes
    );
    let sum_images: u64 = v1.iter().map(|x| x.2).sum();
    assert_eq!(j["image_bytes"].as_u64().unwrap(), sum_images);
    assert!(sum_images > 3 * unique, "the base layer should be shared");
    let file = std::fs::metadata(&b1).unwrap().len();
    let blobs = j["blob_count"].as_u64().unwrap();
    // Per member: one 512-byte header plus < 512 bytes of padding; plus the manifest files.
    assert!(
        file <= unique + 1024 * (blobs + 8) + 64 * 1024,
        "file {file} vs unique {unique}"
    );
    // Manifest digests are the layout's digests.
    for (i, (_, md, _)) in v1.iter().enumerate() {
        assert_eq!(j["images"][i]["digest"].as_str().unwrap(), md);
        assert_eq!(j["images"][i]["platforms"][0], "linux/amd64");
    }

    // Delta: v2 --since v1 holds only the blobs v1 lacks (app layers, configs, manifests).
    let spec2 = d.join("v2.yaml");
    write_spec(
        &spec2,
        "1.1.0",
        &imgs(&v2, "layout-v2"),
        "upgrades_from: \">=1.0.0, <1.1.0\"\n",
    );
    let b2 = d.join("v2-delta.darkport");
    build(&spec2, &b2, &key, &["--since", b1.to_str().unwrap()]);
    let j2 = inspect_json(&b2, &pubk);
    let v1_blobs: std::collections::BTreeSet<String> =
        std::fs::read_dir(d.join("layout-v1/blobs/sha256"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
    let mut new_bytes = 0u64;
    for e in std::fs::read_dir(d.join("layout-v2/blobs/sha256")).unwrap() {
        let e = e.unwrap();
        if !v1_blobs.contains(&e.file_name().to_string_lossy().to_string()) {
            new_bytes += e.metadata().unwrap().len();
        }
    }
    // Every image's manifest changed (new app layers), so the delta carries 4 new SBOMs.
    let (sbom2_bytes, sboms2) = stored_sboms(&b2);
    assert_eq!(sboms2, 4);
    assert_eq!(
        j2["stored_blob_bytes"].as_u64().unwrap(),
        new_bytes + sbom2_bytes
    );
    assert_eq!(j2["delta_base"][0]["version"], "1.0.0");
    assert_eq!(j2["delta_base"][0]["bundle_id"], j["bundle_id"]);
    assert_eq!(
        j2["missing_blobs"].as_array().unwrap().len(),
        1,
        "only the shared base layer is left out"
    );
    assert_eq!(j2["upgrades_from"], ">=1.0.0, <1.1.0");
    assert!(std::fs::metadata(&b2).unwrap().len() < file / 2);
    let out = ok(&run(&[
        "verify",
        "--pubkey",
        pubk.to_str().unwrap(),
        b2.to_str().unwrap(),
    ]));
    assert!(out.contains("delta bundle: 1 blobs"), "{out}");

    // A full v2 bundle written to a directory gets its canonical name.
    let dist = d.join("dist/");
    build(&spec2, &dist, &key, &[]);
    assert!(d.join("dist/testprod-1.1.0.darkport").exists());
}

#[test]
fn skopeo_copies_every_image_out_with_identical_digests() {
    if !have_tool("skopeo") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let (key, _) = keys(d, "k");
    let v1 = write_oci_layout(&d.join("layout"), &product_images(1, 3));
    let images: Vec<(String, String)> = v1
        .iter()
        .enumerate()
        .map(|(i, (tag, _, _))| (format!("testprod/app{i}:1.0"), format!("oci:layout:{tag}")))
        .collect();
    let spec = d.join("s.yaml");
    write_spec(&spec, "1.0.0", &images, "");
    let b = d.join("b.darkport");
    build(&spec, &b, &key, &[]);
    for (i, (name, _)) in images.iter().enumerate() {
        let dest = d.join(format!("out{i}"));
        sh(&format!(
            "skopeo copy --quiet oci-archive:{}:{name} oci:{}:x",
            b.display(),
            dest.display()
        ));
        let refs = layout_refs(&dest);
        assert_eq!(refs.len(), 1);
        assert_eq!(refs[0].1, v1[i].1, "manifest digest changed for {name}");
    }
}

#[test]
fn minisign_cli_verifies_the_manifest_and_sha256sums_the_members() {
    if !have_tool("minisign") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let (key, pubk) = keys(d, "k");
    write_oci_layout(&d.join("layout"), &product_images(1, 1));
    let spec = d.join("s.yaml");
    write_spec(
        &spec,
        "1.0.0",
        &[("testprod/app0:1".into(), "oci:layout:app0-v1".into())],
        "",
    );
    let b = d.join("b.darkport");
    build(&spec, &b, &key, &[]);
    let x = d.join("x");
    std::fs::create_dir(&x).unwrap();
    sh(&format!("cd {} && tar -xf {} && minisign -Vm darkport.json -p {} && sha256sum -c --quiet SHA256SUMS", x.display(), b.display(), pubk.display()));
    // And minisign rejects a changed manifest.
    sh(&format!(
        "cd {} && sed -i 's/testprod/testprad/' darkport.json",
        x.display()
    ));
    let o = std::process::Command::new("minisign")
        .args(["-Vm", "darkport.json", "-p", pubk.to_str().unwrap()])
        .current_dir(&x)
        .output()
        .unwrap();
    assert!(!o.status.success());
}

#[test]
fn encrypted_key_needs_its_password() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let prefix = d.join("enc");
    ok(&run_env(
        &["keygen", "--out", prefix.to_str().unwrap()],
        &[("DARKPORT_KEY_PASSWORD", "s3cret")],
    ));
    let text = std::fs::read_to_string(d.join("enc.key")).unwrap();
    assert!(text.starts_with("untrusted comment:"));
    write_oci_layout(&d.join("layout"), &product_images(1, 1));
    let spec = d.join("s.yaml");
    write_spec(
        &spec,
        "1.0.0",
        &[("testprod/app0:1".into(), "oci:layout:app0-v1".into())],
        "",
    );
    let (bp, kp) = (d.join("b.darkport"), d.join("enc.key"));
    let args = [
        "build-bundle",
        "-f",
        spec.to_str().unwrap(),
        "-o",
        bp.to_str().unwrap(),
        "--key",
        kp.to_str().unwrap(),
    ];
    let err = fails(&run_env(&args, &[("DARKPORT_KEY_PASSWORD", "wrong")]));
    assert!(err.contains("Wrong password"), "{err}");
    let err = fails(&run(&args));
    assert!(err.contains("DARKPORT_KEY_PASSWORD"), "{err}");
    ok(&run_env(&args, &[("DARKPORT_KEY_PASSWORD", "s3cret")]));
    ok(&run(&[
        "verify",
        "--pubkey",
        d.join("enc.pub").to_str().unwrap(),
        d.join("b.darkport").to_str().unwrap(),
    ]));
    // keygen refuses to overwrite
    let err = fails(&run(&[
        "keygen",
        "--out",
        prefix.to_str().unwrap(),
        "--no-password",
    ]));
    assert!(err.contains("refusing to overwrite"), "{err}");
}
