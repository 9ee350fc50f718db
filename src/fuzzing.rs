//! Entry points of the fuzz targets (`fuzz/fuzz_targets/*.rs`, run with `cargo fuzz`) and of
//! their stable replay (`tests/fuzz_corpus.rs`): both call exactly these functions, so an
//! input that once crashed a target stays a regression test on the stable toolchain.
//!
//! Each function takes the raw input bytes, must never panic (a panic is the bug the fuzzer
//! reports), and ignores the `Result` of the code under test: an error is the right answer
//! to hostile input, a panic, a hang or unbounded memory is not. Where the code under test
//! makes promises beyond "no panic" (a `Range` inside the blob, a route whose parts are
//! valid) the function asserts them.
//!
//! Multi-file inputs (`playbook`, `sbom_json`) are plain text so that seeds stay readable:
//! files are separated by lines `### <relative path>`. Where structure helps the fuzzer
//! more than bytes do (template contexts, registry blob sizes) it is drawn with
//! [`arbitrary::Unstructured`] from the bytes after the first NUL.

use crate::bundle::{Bundle, NoReport, Trust, TrustedKey};
use crate::digest::Digest;
use crate::inventory::Inventory;
use arbitrary::Unstructured;
use std::path::{Path, PathBuf};

/// The public key the seed bundles are signed with (`fuzz/seeds/README.md`).
pub const SEED_PUBKEY: &str = "RWQTvgi8FdZoEDI2llNgN5PbydXniYSVy+/NTVQ5yNQ/99mjxuo61tl2";

/// Largest input any entry point looks at: the targets are about parsing, not volume.
const MAX_INPUT: usize = 256 << 10;

fn cap(data: &[u8]) -> &[u8] {
    &data[..data.len().min(MAX_INPUT)]
}

/// Split at the first NUL: (text before, bytes after).
fn split_nul(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}

/// A scratch directory for this process and thread, emptied before each use.
fn scratch(what: &str) -> PathBuf {
    let id = format!("{:?}", std::thread::current().id());
    let id: String = id.chars().filter(char::is_ascii_digit).collect();
    let dir =
        std::env::temp_dir().join(format!("darkport-fuzz-{}-{id}-{what}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create fuzz scratch directory");
    dir
}

/// Recompute the checksum of every 512-byte block that looks like a ustar header, so a
/// mutated bundle gets past the header checksum and exercises the checks behind it.
pub fn fix_tar_checksums(buf: &mut [u8]) {
    for block in buf.chunks_exact_mut(512) {
        if &block[257..262] != b"ustar" {
            continue;
        }
        block[148..156].fill(b' ');
        let sum: u32 = block.iter().map(|&b| u32::from(b)).sum();
        let field = format!("{sum:06o}\0 ");
        block[148..156].copy_from_slice(field.as_bytes());
    }
}

/// `Bundle::open` on arbitrary bytes. The first byte chooses the mode: bit 0 fixes the tar
/// header checksums first (mutated valid bundles), bit 1 opens with the seed key instead
/// of `allow_unsigned` (so the signature checks run on the mutated signature member).
/// A bundle that opens is then verified and every member read to the end.
pub fn bundle_open(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut file = cap_bundle(rest).to_vec();
    if mode & 1 != 0 {
        fix_tar_checksums(&mut file);
    }
    let trust = if mode & 2 != 0 {
        let key = TrustedKey::from_base64(SEED_PUBKEY, Path::new("seed.pub"))
            .expect("the seed public key parses");
        Trust::key(key)
    } else {
        Trust {
            keys: Vec::new(),
            allow_unsigned: true,
        }
    };
    let dir = scratch("bundle");
    let path = dir.join("fuzz.darkport");
    std::fs::write(&path, &file).expect("write fuzz bundle");
    if let Ok(b) = Bundle::open(&path, &trust) {
        let _ = b.verify_all(&NoReport);
        for m in b.members() {
            if let Ok(mut r) = b.open_member(m) {
                let _ = std::io::copy(&mut r, &mut std::io::sink());
            }
        }
        for pb in &b.manifest().playbooks {
            let _ = b.playbook(&pb.path);
        }
    }
}

/// Bundles may be larger than text inputs (they carry blobs), but stay bounded.
fn cap_bundle(data: &[u8]) -> &[u8] {
    &data[..data.len().min(4 << 20)]
}

/// The INI inventory parser. Text after the first NUL is a host pattern to select.
pub fn inventory_ini(data: &[u8]) {
    let (text, pattern) = split_nul(cap(data));
    let text = String::from_utf8_lossy(text);
    if let Ok(inv) = Inventory::from_ini_str(&text, Path::new("fuzz.ini")) {
        exercise_inventory(&inv, &String::from_utf8_lossy(pattern));
    }
}

/// The YAML inventory parser. Text after the first NUL is a host pattern to select.
pub fn inventory_yaml(data: &[u8]) {
    let (text, pattern) = split_nul(cap(data));
    let text = String::from_utf8_lossy(text);
    if let Ok(inv) = Inventory::from_yaml_str(&text, Path::new("fuzz.yml")) {
        exercise_inventory(&inv, &String::from_utf8_lossy(pattern));
    }
}

fn exercise_inventory(inv: &Inventory, pattern: &str) {
    let _ = inv.to_ansible_list();
    let _ = inv.graph("all", true);
    let hosts = inv.hosts();
    for h in hosts.iter().take(16) {
        let _ = inv.host_vars(h);
        let _ = inv.group_names(h);
        let _ = inv.connection(h);
    }
    if !pattern.is_empty() {
        if let Ok(sel) = inv.select(pattern) {
            for h in &sel {
                assert!(
                    inv.has_host(h),
                    "pattern {pattern:?} selected unknown host {h:?}"
                );
            }
        }
        let _ = inv.to_ansible_list_limited(Some(pattern));
    }
}

/// Write `### path` separated files under `root`; the text before any `###` line is the
/// file `first`. Paths that are not plain relative paths are skipped.
fn write_files(root: &Path, text: &str, first: &str) -> Vec<PathBuf> {
    let mut written = Vec::new();
    let mut name = first.to_string();
    let mut body = String::new();
    let mut flush = |name: &str, body: &str| {
        let rel = Path::new(name);
        let ok = !name.is_empty()
            && rel.components().count() <= 6
            && rel
                .components()
                .all(|c| matches!(c, std::path::Component::Normal(_)));
        if !ok {
            return;
        }
        let p = root.join(rel);
        if let Some(parent) = p.parent() {
            if std::fs::create_dir_all(parent).is_err() {
                return;
            }
        }
        if std::fs::write(&p, body).is_ok() {
            written.push(p);
        }
    };
    for line in text.split_inclusive('\n') {
        if let Some(n) = line.strip_prefix("### ") {
            flush(&name, &body);
            name = n.trim().to_string();
            body.clear();
        } else {
            body.push_str(line);
        }
    }
    flush(&name, &body);
    written
}

/// The playbook and role loader: `install.yml` plus any `### roles/r/tasks/main.yml`-style
/// files next to it (roles, meta dependencies, handlers, vars files, included task files).
pub fn playbook(data: &[u8]) {
    let text = String::from_utf8_lossy(cap(data));
    let dir = scratch("playbook");
    write_files(&dir, &text, "install.yml");
    if let Ok(pb) = crate::playbook::model::Playbook::load(&dir.join("install.yml")) {
        let _ = crate::playbook::model::check_vars_files(&pb);
        // What build-bundle checks before signing (templates, include_tasks, migrations).
        let _ = crate::ops::build_check::check_playbooks(&dir, &[]);
    }
}

/// A template context: fixed variables of every kind plus arbitrary ones from `u`.
fn template_ctx(u: &mut Unstructured) -> minijinja::Value {
    let mut vars = serde_json::json!({
        "x": 1, "f": 1.5, "s": "str", "e": "", "t": true, "n": null,
        "l": [1, "two", [3], {"k": "v"}], "d": {"a": 1, "b": {"c": [1, 2]}},
        "inventory_hostname": "web1", "groups": {"all": ["web1", "db1"], "web": ["web1"]},
        "hostvars": {"web1": {"x": 2}, "db1": {}},
    });
    let map = vars.as_object_mut().expect("object");
    for i in 0..u.arbitrary_len::<u8>().unwrap_or(0).min(8) {
        map.insert(format!("v{i}"), arbitrary_json(u, 0));
    }
    crate::playbook::template::from_json(&vars)
}

fn arbitrary_json(u: &mut Unstructured, depth: usize) -> serde_json::Value {
    use serde_json::Value;
    let pick = u.int_in_range(0u8..=6).unwrap_or(0);
    match pick {
        0 => Value::Null,
        1 => Value::Bool(u.arbitrary().unwrap_or(false)),
        2 => Value::from(u.arbitrary::<i64>().unwrap_or(0)),
        3 => serde_json::Number::from_f64(u.arbitrary::<f64>().unwrap_or(0.0))
            .map(Value::Number)
            .unwrap_or(Value::Null),
        4 => Value::String(u.arbitrary::<String>().unwrap_or_default()),
        5 if depth < 4 => {
            let n = u.arbitrary_len::<u8>().unwrap_or(0).min(6);
            Value::Array((0..n).map(|_| arbitrary_json(u, depth + 1)).collect())
        }
        6 if depth < 4 => {
            let n = u.arbitrary_len::<u8>().unwrap_or(0).min(6);
            let mut m = serde_json::Map::new();
            for _ in 0..n {
                let k = u.arbitrary::<String>().unwrap_or_default();
                m.insert(k, arbitrary_json(u, depth + 1));
            }
            Value::Object(m)
        }
        _ => Value::String(String::new()),
    }
}

/// The template renderer: the text before the first NUL is rendered as a templated string,
/// as an expression, as a condition and as a template file (with `#jinja2:` header and the
/// template module's options); the bytes after it choose extra context variables.
pub fn template(data: &[u8]) {
    use crate::playbook::template::{self as t, file};
    let (src, rest) = split_nul(&data[..data.len().min(16 << 10)]);
    let src = String::from_utf8_lossy(src);
    let mut u = Unstructured::new(rest);
    let ctx = template_ctx(&mut u);
    let _ = t::check_syntax(&src);
    let _ = t::check_file_syntax(&src);
    let _ = t::render_str(&src, &ctx);
    let _ = t::eval_expr(&src, &ctx);
    let _ = t::eval_cond(&serde_json::Value::String(src.to_string()), &ctx);
    let options = file::Overrides {
        trim_blocks: u.arbitrary().unwrap_or(true),
        lstrip_blocks: u.arbitrary().unwrap_or(false),
        keep_trailing_newline: u.arbitrary().unwrap_or(false),
        ..file::Overrides::default()
    };
    let dir = scratch("template");
    let _ = std::fs::write(dir.join("inc.j2"), "included {{ x }}\n");
    let search = [dir];
    let ft = file::FileTemplate {
        name: "fuzz.j2",
        text: &src,
        search: &search,
        options,
    };
    let _ = ft.render(&ctx);
}

/// Registry request routing and `Range` parsing: line 1 is the request path, line 2 the
/// `Range` header, line 3 the query string; the blob length is drawn from the bytes after
/// the first NUL. Checks what the server relies on: a partial range lies inside the blob,
/// and every routed name, tag and digest is valid.
pub fn registry(data: &[u8]) {
    use crate::registry::names::{self, BlobRef, Reference, Route};
    use crate::registry::range::{parse_range, RangeReq};
    let (text, rest) = split_nul(cap(data));
    let text = String::from_utf8_lossy(text);
    let mut lines = text.split('\n');
    let path = lines.next().unwrap_or("");
    let range = lines.next();
    let query = lines.next();
    let mut u = Unstructured::new(rest);
    let len: u64 = match u.int_in_range(0u8..=3).unwrap_or(0) {
        0 => u.int_in_range(0u64..=4096).unwrap_or(0),
        1 => u.arbitrary().unwrap_or(0),
        2 => u64::MAX,
        _ => 0,
    };
    match parse_range(range, len) {
        RangeReq::Partial { start, end } => {
            assert!(
                start <= end && end < len,
                "range {range:?} of {len} gave {start}..={end}"
            );
        }
        RangeReq::Full | RangeReq::Unsatisfiable => {}
    }
    let _ = names::parse_digest(path);
    let _ = names::percent_decode(path);
    let repos: Vec<String> = ["a", "b/c", "d", "e%2Ff"].map(String::from).to_vec();
    let (page, link) = crate::registry::server::paginate(repos.iter(), query, "/v2/_catalog");
    assert!(page.len() <= repos.len());
    if let Some(l) = link {
        assert!(!page.is_empty(), "a next link after an empty page: {l}");
    }
    if let Ok(route) = names::route(path) {
        let check = |n: &str| assert!(names::valid_name(n), "routed invalid name {n:?}");
        match route {
            Route::Base | Route::Catalog => {}
            Route::Tags { name } | Route::Upload { name } | Route::Referrers { name } => {
                check(&name)
            }
            Route::Manifest { name, reference } => {
                check(&name);
                if let Reference::Tag(t) = reference {
                    assert!(names::valid_tag(&t), "routed invalid tag {t:?}");
                }
            }
            Route::Blob { name, digest } => {
                check(&name);
                if let BlobRef::Sha256(d) = digest {
                    assert!(path.contains(&d.hex()) || path.contains('%'));
                }
            }
        }
    }
}

/// The dpkg status parser (`var/lib/dpkg/status`, `status.d/*`) and the Debian copyright
/// reader.
pub fn sbom_dpkg(data: &[u8]) {
    let data = cap(data);
    let _ = crate::sbom::dpkg::parse_status(data, "var/lib/dpkg/status");
    let text = String::from_utf8_lossy(data);
    let paras = crate::sbom::dpkg::paragraphs(&text);
    if crate::sbom::dpkg::is_dep5(&paras) {
        let _ = crate::sbom::dpkg::dep5_licence_fields(&paras);
    }
    let _ = crate::sbom::license::from_debian_copyright(&text);
}

/// Alpine's `lib/apk/db/installed` parser and the licence expression splitter.
pub fn sbom_apk(data: &[u8]) {
    let data = cap(data);
    if let Ok(pkgs) = crate::sbom::apk::parse_installed(data) {
        for p in &pkgs {
            for l in &p.licenses {
                let _ = crate::sbom::license::split_expression(l);
                let _ = crate::sbom::license::to_spdx_id(l);
            }
        }
    }
}

/// One layer blob (plain, gzip or zstd tar) through the layer scanner, then composed into
/// an image and rendered as SPDX and CycloneDX.
pub fn sbom_layer(data: &[u8]) {
    let data = cap_bundle(data);
    let d = Digest::of(data);
    if let Ok(delta) = crate::sbom::scan_layer(&d, data) {
        render_sbom(&[(d, &delta)]);
    }
}

fn render_sbom(layers: &[(Digest, &crate::sbom::LayerDelta)]) {
    let img = crate::sbom::compose("fuzz/image:1", layers);
    let opts = crate::sbom::spdx::RenderOpts {
        created: "2026-01-01T00:00:00Z".into(),
        tool: "darkport-fuzz".into(),
    };
    let _ = crate::sbom::spdx::render(&img, &opts);
    let _ = crate::sbom::cyclonedx::render(&img, &opts);
    let _ = crate::sbom::report::table(std::slice::from_ref(&img));
    let _ = crate::sbom::licence_summary(std::slice::from_ref(&img));
}

/// The OCI layout JSON the SBOM reader walks (`index.json`, nested indexes, manifests) and
/// the layers it names. Files are `### N` separated documents: document 0 is `index.json`,
/// each other one is stored as a blob under its own digest, and `sha256:@N` in a document
/// stands for the digest of document N (N greater than its own number), so references can
/// be valid.
pub fn sbom_json(data: &[u8]) {
    let text = String::from_utf8_lossy(cap(data));
    let mut docs: Vec<Vec<u8>> = vec![Vec::new()];
    for line in text.split_inclusive('\n') {
        if line.starts_with("### ") {
            docs.push(Vec::new());
        } else if let Some(last) = docs.last_mut() {
            last.extend_from_slice(line.as_bytes());
        }
    }
    docs.truncate(16);
    let dir = scratch("oci");
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).expect("create blobs dir");
    let mut digests: Vec<Option<Digest>> = vec![None; docs.len()];
    for i in (0..docs.len()).rev() {
        let mut doc = docs[i].clone();
        for (j, d) in digests.iter().enumerate().skip(i + 1) {
            if let Some(d) = d {
                doc = replace_all(
                    &doc,
                    format!("sha256:@{j}").as_bytes(),
                    d.to_string().as_bytes(),
                );
            }
        }
        if i == 0 {
            std::fs::write(dir.join("index.json"), &doc).expect("write index.json");
        } else {
            let d = Digest::of(&doc);
            std::fs::write(blobs.join(d.hex()), &doc).expect("write blob");
            digests[i] = Some(d);
        }
    }
    let Ok(layout) = crate::sbom::oci::Layout::open(&dir) else {
        return;
    };
    if let Ok(images) = crate::sbom::oci::scan_layout(&layout, None, &crate::sbom::oci::NoReport) {
        let _ = crate::sbom::licence_summary(&images);
    }
}

fn replace_all(hay: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(hay.len());
    let mut i = 0;
    while i < hay.len() {
        if hay[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.push(hay[i]);
            i += 1;
        }
    }
    out
}

/// A target's entry point.
pub type Target = fn(&[u8]);

/// Every target by its name (the `fuzz/fuzz_targets/<name>.rs` file and the
/// `fuzz/corpus/<name>/` directory).
pub const TARGETS: &[(&str, Target)] = &[
    ("bundle_open", bundle_open),
    ("inventory_ini", inventory_ini),
    ("inventory_yaml", inventory_yaml),
    ("playbook", playbook),
    ("template", template),
    ("registry", registry),
    ("sbom_dpkg", sbom_dpkg),
    ("sbom_apk", sbom_apk),
    ("sbom_layer", sbom_layer),
    ("sbom_json", sbom_json),
];
