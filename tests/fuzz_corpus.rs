//! The fuzz corpora on the stable toolchain: every seed under `fuzz/corpus/<target>/` and
//! every input kept under `fuzz/artifacts/<target>/` (crashes the fuzzers found, fixed since)
//! goes through the same `darkport::fuzzing` function its `cargo fuzz` target calls. A panic
//! in any of them fails the test and names the file (docs/FUZZING.md).

use darkport::fuzzing::{self, TARGETS};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = rd
        .map(|e| e.expect("read corpus entry").path())
        .filter(|p| p.is_file())
        .collect();
    out.sort();
    out
}

/// Run `f` on every file; the files whose run panicked, with the panic message.
fn replay(f: fn(&[u8]), inputs: &[PathBuf]) -> Vec<String> {
    let mut failed = Vec::new();
    for p in inputs {
        let data = std::fs::read(p).expect("read corpus file");
        if let Err(e) = catch_unwind(AssertUnwindSafe(|| f(&data))) {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failed.push(format!("{}: {msg}", p.display()));
        }
    }
    failed
}

fn replay_target(name: &str) {
    let (_, f) = TARGETS
        .iter()
        .find(|(n, _)| *n == name)
        .expect("a target of that name");
    let seeds = files(&fuzz_dir().join("corpus").join(name));
    assert!(!seeds.is_empty(), "no seed corpus for target {name}");
    let mut inputs = seeds;
    inputs.extend(files(&fuzz_dir().join("artifacts").join(name)));
    let failed = replay(*f, &inputs);
    assert!(
        failed.is_empty(),
        "target {name} panicked on {} of {} inputs:\n{}",
        failed.len(),
        inputs.len(),
        failed.join("\n")
    );
}

#[test]
fn bundle_open() {
    replay_target("bundle_open");
}
#[test]
fn inventory_ini() {
    replay_target("inventory_ini");
}
#[test]
fn inventory_yaml() {
    replay_target("inventory_yaml");
}
#[test]
fn playbook() {
    replay_target("playbook");
}
#[test]
fn template() {
    replay_target("template");
}
#[test]
fn registry() {
    replay_target("registry");
}
#[test]
fn sbom_dpkg() {
    replay_target("sbom_dpkg");
}
#[test]
fn sbom_apk() {
    replay_target("sbom_apk");
}
#[test]
fn sbom_layer() {
    replay_target("sbom_layer");
}
#[test]
fn sbom_json() {
    replay_target("sbom_json");
}

/// The fuzz crate, the replay and the corpora name the same targets: a new target gets a
/// replay here, and a corpus or artifact directory with a misspelt name is not skipped.
#[test]
fn targets_corpora_and_fuzz_crate_agree() {
    let names: Vec<&str> = TARGETS.iter().map(|(n, _)| *n).collect();
    let mut crate_targets: Vec<String> = files(&fuzz_dir().join("fuzz_targets"))
        .iter()
        .filter_map(|p| Some(p.file_stem()?.to_str()?.to_string()))
        .collect();
    crate_targets.sort();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(
        crate_targets, sorted,
        "fuzz/fuzz_targets/*.rs vs fuzzing::TARGETS"
    );
    let manifest = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).expect("fuzz/Cargo.toml");
    for n in &names {
        let src = std::fs::read_to_string(fuzz_dir().join(format!("fuzz_targets/{n}.rs")))
            .expect("target source");
        assert!(
            src.contains(&format!("darkport::fuzzing::{n}(")),
            "fuzz target {n} must call darkport::fuzzing::{n}"
        );
        assert!(
            manifest.contains(&format!("name = \"{n}\"")),
            "{n} not a [[bin]] in fuzz/Cargo.toml"
        );
    }
    for sub in ["corpus", "artifacts"] {
        for e in std::fs::read_dir(fuzz_dir().join(sub))
            .into_iter()
            .flatten()
        {
            let e = e.expect("entry");
            let n = e.file_name().to_string_lossy().to_string();
            assert!(names.contains(&n.as_str()), "fuzz/{sub}/{n} is no target's");
        }
    }
}

/// The replay detects a panicking target (so a crash kept in the corpus fails this test).
#[test]
fn replay_reports_a_panic() {
    fn boom(data: &[u8]) {
        assert!(data.is_empty(), "boom on {} bytes", data.len());
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b) = (dir.path().join("empty"), dir.path().join("one"));
    std::fs::write(&a, b"").expect("write");
    std::fs::write(&b, b"x").expect("write");
    let failed = replay(boom, &[a, b]);
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(failed[0].contains("one: boom on 1 bytes"), "{failed:?}");
}

/// The checksum fix-up the mutated-bundle mode relies on gives headers the tar reader accepts.
#[test]
fn fixed_checksums_verify() {
    let mut h = tar::Header::new_ustar();
    h.set_path("a").expect("path");
    h.set_size(3);
    h.set_cksum();
    let mut block = h.as_bytes().to_vec();
    block[124] = b'1'; // size edited: checksum now wrong
    let edited = tar::Header::from_byte_slice(&block).cksum().expect("cksum");
    fuzzing::fix_tar_checksums(&mut block);
    let fixed = tar::Header::from_byte_slice(&block);
    let sum: u32 = block[..148].iter().map(|&b| u32::from(b)).sum::<u32>()
        + 8 * 32
        + block[156..].iter().map(|&b| u32::from(b)).sum::<u32>();
    assert_eq!(fixed.cksum().expect("cksum"), sum);
    assert_ne!(edited, sum);
}

/// The bundle seeds are real bundles signed by the key the target trusts, so the fuzzer
/// starts past the signature check (fuzz/make-seed-bundle.sh makes them anew).
#[test]
fn bundle_seeds_open() {
    use darkport::bundle::{Bundle, Trust, TrustedKey};
    let dir = tempfile::tempdir().expect("tempdir");
    let key = TrustedKey::from_base64(fuzzing::SEED_PUBKEY, Path::new("seed.pub")).expect("key");
    for (seed, trust) in [
        ("signed-tiny", Trust::key(key)),
        (
            "unsigned-tiny",
            Trust {
                keys: Vec::new(),
                allow_unsigned: true,
            },
        ),
    ] {
        let data = std::fs::read(fuzz_dir().join("corpus/bundle_open").join(seed)).expect("seed");
        let p = dir.path().join(seed);
        std::fs::write(&p, &data[1..]).expect("write");
        let b = Bundle::open(&p, &trust).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        b.verify_all(&darkport::bundle::NoReport)
            .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        assert!(!b.manifest().images.is_empty() && !b.manifest().playbooks.is_empty());
    }
}

/// What the inventory crash (`all` made a child of another group) now gives: a parse error
/// naming the source and line, as ansible-core also refuses it (exit 1, no panic).
#[test]
fn all_as_a_child_group_is_refused_with_file_and_line() {
    use darkport::inventory::Inventory;
    let ini = "[web]\nw1\n[top:children]\nweb\nall\n";
    let e = match Inventory::from_ini_str(ini, Path::new("hosts.ini")) {
        Ok(_) => panic!("{ini:?} was accepted"),
        Err(e) => e.to_string(),
    };
    assert!(
        e.contains("hosts.ini:5") && e.contains("group 'all' cannot be a child of group 'top'"),
        "{e}"
    );
    let yaml = "top:\n  children:\n    all:\n";
    let e = match Inventory::from_yaml_str(yaml, Path::new("hosts.yml")) {
        Ok(_) => panic!("{yaml:?} was accepted"),
        Err(e) => e.to_string(),
    };
    assert!(
        e.contains("hosts.yml:") && e.contains("group 'all' cannot be a child of group 'top'"),
        "{e}"
    );
}
