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
        (
            r#""signed_by": "[0-9A-F]{16}""#,
            r#""signed_by": "[KEYID]""#,
        ),
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

/// `--json` documents (docs/JSON.md): the envelope, the report, and a refusal that is still one
/// valid JSON object on stdout (a tampered bundle, a wrong key), with the text error on stderr.
#[test]
fn json_documents_are_one_object_with_the_envelope_also_on_refusal() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let (b, pubk) = small_bundle(d);
    let (bs, ps) = (b.to_str().unwrap(), pubk.to_str().unwrap());
    let json = |o: &std::process::Output| -> serde_json::Value {
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not one JSON document ({e}):\n{}",
                String::from_utf8_lossy(&o.stdout)
            )
        })
    };

    let o = run(&["inspect", "--json", "--pubkey", ps, bs]);
    ok(&o);
    let j = json(&o);
    assert_eq!(j["schema"], "darkport/1");
    assert_eq!(j["command"], "inspect");
    insta::assert_snapshot!(
        "inspect_json",
        stable(&serde_json::to_string_pretty(&j).unwrap(), d)
    );

    let o = run(&["verify", "--json", "--pubkey", ps, bs]);
    ok(&o);
    let j = json(&o);
    assert_eq!(
        (j["command"].as_str(), j["ok"].as_bool()),
        (Some("verify"), Some(true))
    );

    // Tampered: exit 1, the error as the document, the same words on stderr.
    let mut data = std::fs::read(&b).unwrap();
    let at = data.len() - 4096;
    data[at] ^= 0xff;
    let bad = d.join("tampered.darkport");
    std::fs::write(&bad, data).unwrap();
    let o = run(&["verify", "--json", "--pubkey", ps, bad.to_str().unwrap()]);
    let err = fails(&o);
    let j = json(&o);
    assert_eq!(j["ok"], false);
    assert_eq!(j["error"]["exit_code"], 1);
    let msg = j["error"]["message"].as_str().unwrap();
    assert!(err.contains(msg), "stderr {err:?} lacks {msg:?}");
    insta::assert_snapshot!(
        "verify_tampered_json",
        stable(&serde_json::to_string_pretty(&j).unwrap(), d)
    );

    // A key that did not sign it.
    let (_, other) = keys(d, "other");
    let o = run(&["inspect", "--json", "--pubkey", other.to_str().unwrap(), bs]);
    fails(&o);
    let j = json(&o);
    assert_eq!(
        (j["command"].as_str(), j["ok"].as_bool()),
        (Some("inspect"), Some(false))
    );
    assert!(j["error"]["message"].as_str().is_some(), "{j}");
}
