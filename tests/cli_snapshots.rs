//! Snapshots (insta) of what an operator reads: `inspect` and `verify` text, and the error
//! rendering of a tampered bundle and of a malformed spec. Digests, key ids, temp paths and
//! timings are filtered out so the snapshots hold only what must not drift.

mod support;
use std::path::Path;
use support::bundle::*;

/// Replace what changes between runs with stable placeholders.
fn stable(text: &str, tmp: &Path) -> String {
    let mut s = text.replace(tmp.to_str().unwrap(), "[TMP]");
    let rules: &[(&str, &str)] = &[
        (r"sha256:[0-9a-f]{64}", "sha256:[DIGEST]"),
        (r"\b[0-9a-f]{64}\b", "[HEX]"),
        (r"\b[0-9a-f]{12}\b", "[SHORT]"),
        (r"key [0-9A-F]{16}", "key [KEYID]"),
        (r"in \d+\.\d+s \(\d+ MiB/s\)", "in [TIME] ([RATE])"),
    ];
    for (re, to) in rules {
        s = regex::Regex::new(re)
            .unwrap()
            .replace_all(&s, *to)
            .into_owned();
    }
    s
}

fn small_bundle(d: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let (key, pubk) = keys(d, "k");
    let refs = write_oci_layout(&d.join("layout"), &product_images(1, 2));
    let imgs: Vec<(String, String)> = refs
        .iter()
        .enumerate()
        .map(|(i, (tag, _, _))| (format!("testprod/app{i}:1"), format!("oci:layout:{tag}")))
        .collect();
    let spec = d.join("spec.yaml");
    write_spec(&spec, "1.0.0", &imgs, "");
    let b = d.join("testprod-1.0.0.darkport");
    ok(&run(&[
        "build-bundle",
        "-f",
        spec.to_str().unwrap(),
        "-o",
        b.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
    ]));
    (b, pubk)
}

#[test]
fn inspect_verify_and_refusals_read_the_same() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let (b, pubk) = small_bundle(d);
    let (bs, ps) = (b.to_str().unwrap(), pubk.to_str().unwrap());

    let inspect = ok(&run(&["inspect", "--pubkey", ps, bs]));
    insta::assert_snapshot!("inspect", stable(&inspect, d));

    let verify = ok(&run(&["verify", "--pubkey", ps, bs]));
    insta::assert_snapshot!("verify", stable(&verify, d));

    // One byte of a member changed: refused, the error names the bundle and the member.
    let mut data = std::fs::read(&b).unwrap();
    let at = data.len() - 4096;
    data[at] ^= 0xff;
    let bad = d.join("tampered.darkport");
    std::fs::write(&bad, data).unwrap();
    let err = fails(&run(&["verify", "--pubkey", ps, bad.to_str().unwrap()]));
    insta::assert_snapshot!("verify_tampered", stable(&err, d));

    // A malformed spec: the error names the file and the line.
    let spec = d.join("broken.yaml");
    std::fs::write(
        &spec,
        "product: testprod\nversion: 1.0.0\nimages:\n  - name: [unclosed\n",
    )
    .unwrap();
    let err = fails(&run(&[
        "build-bundle",
        "-f",
        spec.to_str().unwrap(),
        "-o",
        d.join("x.darkport").to_str().unwrap(),
        "--unsigned",
    ]));
    insta::assert_snapshot!("build_malformed_spec", stable(&err, d));
}
