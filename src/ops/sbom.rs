//! SBOM and licence flows: check a bundle's signature when the source is one, scan the
//! images' package databases, render SPDX / CycloneDX / JSON / table documents, summarise
//! licences. Commands choose the output; nothing here prints.

use crate::report::Hint;
use crate::sbom::oci::{compose_entries, scan_layers, select, Layout};
use crate::sbom::spdx::RenderOpts;
use crate::sbom::{self, ImageSbom, LicenceEntry};
use anyhow::Context;
use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, UNIX_EPOCH};

pub use crate::digest::Digest;
pub use crate::sbom::oci::ScanReporter;

/// What to scan.
pub struct ScanOpts<'a> {
    /// A darkport bundle, an uncompressed oci-archive tar or an OCI layout directory.
    pub source: &'a Path,
    /// Only this image (name or name@platform).
    pub image: Option<&'a str>,
    /// Trusted public keys for a bundle source.
    pub pubkey: &'a [PathBuf],
    pub allow_unsigned: bool,
}

/// The images scanned and how long it took.
#[derive(Serialize)]
pub struct ScanReport {
    pub images: Vec<ImageSbom>,
    /// Images of a delta bundle that could not be scanned (layers its base carries), and
    /// where their SBOM documents are.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub elsewhere: Vec<Elsewhere>,
    pub seconds: f64,
}

/// An image of a delta bundle whose layers are not all in it: not scanned here.
#[derive(Serialize)]
pub struct Elsewhere {
    pub image: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    pub manifest: Digest,
    pub missing_layers: usize,
    /// The stored SBOM document (a blob), when the bundle lists one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub document: Option<Digest>,
    /// `this bundle`, or the base bundle (product, version, id) that carries the document.
    pub document_in: String,
    /// One line saying all of that.
    pub note: String,
}

impl ScanReport {
    pub fn packages(&self) -> usize {
        self.images.iter().map(|i| i.packages.len()).sum()
    }
}

/// The document formats an SBOM is rendered in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Spdx,
    Cyclonedx,
    Table,
    Json,
}

/// True when `path` is a file whose first tar member is `darkport.json` (a darkport bundle).
fn is_darkport_bundle(path: &Path) -> bool {
    use std::io::Read;
    let mut h = [0u8; 100];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut h))
        .is_ok()
        && h.split(|b| *b == 0).next() == Some(crate::bundle::MANIFEST_NAME.as_bytes())
}

/// For a darkport bundle: check its signature (and canonical member list), then the signed
/// hash of `index.json`; manifests and layers are checked by digest while they are scanned,
/// so every byte the SBOM is built from is covered by the signature.
fn check_bundle(o: &ScanOpts) -> anyhow::Result<Option<crate::bundle::Bundle>> {
    let source = o.source;
    if !is_darkport_bundle(source) {
        return Ok(None);
    }
    let trust = super::trust::resolve(o.pubkey, o.allow_unsigned)?;
    let b = crate::bundle::Bundle::open(source, &trust)
        .with_context(|| format!("failed to open {}", source.display()))?;
    let m = b
        .member("index.json")
        .with_context(|| format!("{} has no index.json member", source.display()))?;
    b.read_member(m, 64 << 20)
        .with_context(|| format!("failed to check index.json of {}", source.display()))?;
    Ok(Some(b))
}

/// Check (a bundle's signature) and scan every image of the source. In a delta bundle, an
/// image with layers the bundle leaves out is not scanned: the report says where its SBOM
/// document is (this bundle, or the base bundle that carries it), and when no selected image
/// can be scanned that is the error.
pub fn scan(o: &ScanOpts, rep: &dyn ScanReporter) -> anyhow::Result<ScanReport> {
    let bundle = check_bundle(o)?;
    let start = Instant::now();
    let layout = Layout::open(o.source)
        .with_context(|| format!("failed to read images from {}", o.source.display()))
        .context(Hint(
            "SOURCE must be a darkport bundle, an uncompressed oci-archive tar or an OCI image layout directory".into(),
        ))?;
    let scan_err = || format!("failed to scan the images of {}", o.source.display());
    let (all, absent) = match &bundle {
        Some(_) => layout.images_partial(),
        None => layout.images().map(|a| (a, Vec::new())),
    }
    .with_context(scan_err)?;
    let absent: Vec<&(String, Digest)> = absent
        .iter()
        .filter(|(name, _)| o.image.map(|f| name_matches(name, f)).unwrap_or(true))
        .collect();
    let mut entries = if all.is_empty() && !absent.is_empty() {
        Vec::new()
    } else {
        match select(&layout, &all, o.image) {
            Err(_) if !absent.is_empty() => Vec::new(),
            r => r.with_context(scan_err)?,
        }
    };
    let mut elsewhere = Vec::new();
    if let Some(b) = &bundle {
        for (name, digest) in &absent {
            elsewhere.push(absent_image(b, name, digest));
        }
        entries.retain(|e| {
            let missing = e
                .layers
                .iter()
                .filter(|l| !layout.has_blob(&l.digest))
                .filter(|l| b.manifest().blob(&l.digest).is_some_and(|x| !x.present))
                .count();
            if missing > 0 {
                elsewhere.push(elsewhere_of(b, e, missing));
            }
            missing == 0
        });
        if entries.is_empty() && !elsewhere.is_empty() {
            let lines: Vec<String> = elsewhere.iter().map(|e| e.note.clone()).collect();
            return Err(anyhow::anyhow!(lines.join("\n"))
                .context(Hint(
                    "scan the full bundle of the version the site runs (or the base named above) for those images".into(),
                ))
                .context(format!(
                    "{} is a delta bundle: no selected image has all its layers in it",
                    o.source.display()
                )));
        }
    }
    let (deltas, _) = scan_layers(&layout, &entries, rep).with_context(scan_err)?;
    Ok(ScanReport {
        images: compose_entries(&entries, &deltas),
        elsewhere,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// Whether an image selector (`--image`) names `name` (its full name or last path segment).
fn name_matches(name: &str, want: &str) -> bool {
    let bare = want.split('@').next().unwrap_or(want);
    name == bare || name.rsplit('/').next() == Some(bare)
}

/// An image whose manifest a delta bundle leaves out (unchanged since its base): where its
/// SBOM document(s) are.
fn absent_image(b: &crate::bundle::Bundle, name: &str, digest: &Digest) -> Elsewhere {
    let m = b.manifest();
    let docs: Vec<&crate::bundle::SbomEntry> = m.sboms.iter().filter(|s| s.image == name).collect();
    let document_in = match docs.first().and_then(|s| s.from_bundle) {
        Some(id) => base_label(m, &id),
        None if docs.is_empty() => "no bundle (this bundle lists no SBOM for it)".into(),
        None => "this bundle".into(),
    };
    let listed: Vec<String> = docs.iter().map(|s| s.document.to_string()).collect();
    let doc = if listed.is_empty() {
        "it has no stored SBOM".to_string()
    } else {
        format!(
            "its SBOM is document {} in {document_in}",
            listed.join(", ")
        )
    };
    Elsewhere {
        image: name.to_string(),
        platform: None,
        manifest: *digest,
        missing_layers: 0,
        document: docs.first().map(|s| s.document),
        note: format!(
            "image {name} not scanned: unchanged since the base, its manifest and layers are not in this delta bundle (the site has them); {doc}"
        ),
        document_in,
    }
}

/// `base bundle P V (bundle id …)` for a delta base, else the bare id.
fn base_label(m: &crate::bundle::Manifest, id: &Digest) -> String {
    match m.delta_base.iter().find(|d| d.bundle_id == *id) {
        Some(d) => format!("base bundle {} {} (bundle id {id})", d.product, d.version),
        None => format!("bundle {id} (a base of this delta's base)"),
    }
}

/// Where the SBOM of an image a delta bundle cannot scan is.
fn elsewhere_of(
    b: &crate::bundle::Bundle,
    e: &crate::sbom::oci::ImageEntry,
    missing_layers: usize,
) -> Elsewhere {
    let m = b.manifest();
    let entry = m
        .sboms
        .iter()
        .find(|s| s.manifest == e.manifest && s.platform == e.platform);
    let document_in = match entry {
        Some(s) => match &s.from_bundle {
            Some(id) => base_label(m, id),
            None => "this bundle".to_string(),
        },
        None => "no bundle (this bundle lists no SBOM for it)".to_string(),
    };
    let label = match &e.platform {
        Some(p) => format!("{}@{p}", e.name),
        None => e.name.clone(),
    };
    let doc = match entry {
        Some(s) if s.from_bundle.is_none() => format!(
            "its SBOM is document {} in this bundle (read it with: tar -xOf {} blobs/sha256/{} | zstd -d)",
            s.document,
            b.path().display(),
            s.document.hex()
        ),
        Some(s) => format!("its SBOM is document {} in {document_in}", s.document),
        None => "it has no stored SBOM".to_string(),
    };
    Elsewhere {
        image: e.name.clone(),
        platform: e.platform.clone(),
        manifest: e.manifest,
        missing_layers,
        document: entry.map(|s| s.document),
        note: format!(
            "image {label} not scanned: {missing_layers} of its {} layer(s) are not in this delta bundle (the site has them from its base); {doc}",
            e.layers.len()
        ),
        document_in,
    }
}

/// The creation time documents carry: `--created`, else `SOURCE_DATE_EPOCH` (reproducible
/// builds), else now.
pub fn created(arg: Option<&str>) -> anyhow::Result<String> {
    if let Some(c) = arg {
        humantime::parse_rfc3339(c)
            .with_context(|| format!("invalid --created {c:?} (want e.g. 2026-01-31T12:00:00Z)"))?;
        return Ok(c.to_string());
    }
    if let Ok(s) = std::env::var("SOURCE_DATE_EPOCH") {
        let secs: u64 = s
            .trim()
            .parse()
            .with_context(|| format!("invalid SOURCE_DATE_EPOCH {s:?}"))?;
        let t = UNIX_EPOCH + Duration::from_secs(secs);
        return Ok(humantime::format_rfc3339_seconds(t).to_string());
    }
    Ok(RenderOpts::now().created)
}

fn render_opts(created: &str) -> RenderOpts {
    RenderOpts {
        created: created.to_string(),
        tool: format!("darkport-{}", env!("CARGO_PKG_VERSION")),
    }
}

/// One image's document in `format`: the file extension and the text.
pub fn render_one(
    img: &ImageSbom,
    format: Format,
    created: &str,
) -> anyhow::Result<(String, String)> {
    let opts = render_opts(created);
    Ok(match format {
        Format::Spdx => (
            "spdx.json".into(),
            serde_json::to_string_pretty(&sbom::spdx::render(img, &opts))? + "\n",
        ),
        Format::Cyclonedx => (
            "cdx.json".into(),
            serde_json::to_string_pretty(&sbom::cyclonedx::render(img, &opts))? + "\n",
        ),
        Format::Table => ("txt".into(), sbom::report::table(std::slice::from_ref(img))),
        Format::Json => ("json".into(), serde_json::to_string_pretty(img)? + "\n"),
    })
}

/// Every image's document as one text for stdout. SPDX and CycloneDX describe one image:
/// more than one is refused with the names to choose from.
pub fn render_all(
    source: &Path,
    images: &[ImageSbom],
    format: Format,
    created: &str,
) -> anyhow::Result<String> {
    match format {
        Format::Table => Ok(sbom::report::table(images)),
        Format::Json => Ok(serde_json::to_string_pretty(images)? + "\n"),
        Format::Spdx | Format::Cyclonedx => {
            if images.len() != 1 {
                let names: Vec<String> = images
                    .iter()
                    .map(|i| match &i.platform {
                        Some(p) => format!("{}@{p}", i.name),
                        None => i.name.clone(),
                    })
                    .collect();
                return Err(anyhow::anyhow!(
                    "{} holds {} images ({}); an SPDX/CycloneDX document describes one",
                    source.display(),
                    images.len(),
                    names.join(", ")
                ))
                .context(Hint(
                    "choose one with --image NAME, or write one file per image with -o DIR".into(),
                ));
            }
            Ok(render_one(&images[0], format, created)?.1)
        }
    }
}

fn file_stem(img: &ImageSbom) -> String {
    let mut s: String = img
        .name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if let Some(p) = &img.platform {
        s.push('_');
        s.push_str(&p.replace('/', "-"));
    }
    s
}

/// Write `data` to `path` atomically (temp file, fsync, rename).
fn write_atomic(path: &Path, data: &[u8]) -> anyhow::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("failed to create a temp file in {}", dir.display()))?;
    tmp.write_all(data)
        .and_then(|_| tmp.as_file().sync_all())
        .with_context(|| format!("failed to write {}", path.display()))?;
    tmp.persist(path)
        .with_context(|| format!("failed to rename into {}", path.display()))?;
    Ok(())
}

/// One document per image in `dir` (created if needed), each written atomically; the
/// paths written, in image order.
pub fn write_per_image(
    dir: &Path,
    images: &[ImageSbom],
    format: Format,
    created: &str,
) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("failed to create {}", dir.display()))?;
    let mut written = Vec::new();
    for img in images {
        let (ext, text) = render_one(img, format, created)?;
        let path = dir.join(format!("{}.{ext}", file_stem(img)));
        write_atomic(&path, text.as_bytes())?;
        written.push(path);
    }
    Ok(written)
}

/// A package whose database entry names no licence.
#[derive(Serialize)]
pub struct Unlicensed {
    pub image: String,
    pub package: String,
    pub version: String,
}

/// An RPM database found in an image (its packages are not read).
#[derive(Serialize)]
pub struct RpmDb {
    pub image: String,
    pub path: String,
    pub layer: Digest,
}

/// The licences of every scanned package, which are copyleft, and what could not be told.
#[derive(Serialize)]
pub struct LicenceReport {
    pub licences: Vec<LicenceEntry>,
    pub copyleft: Vec<String>,
    pub packages_without_licence: Vec<Unlicensed>,
    pub rpm_databases: Vec<RpmDb>,
}

pub fn licences(images: &[ImageSbom]) -> LicenceReport {
    let licences = sbom::licence_summary(images);
    let copyleft = licences
        .iter()
        .filter(|e| e.copyleft)
        .map(|e| e.licence.clone())
        .collect();
    let mut packages_without_licence = Vec::new();
    let mut rpm_databases = Vec::new();
    for i in images {
        for p in i.packages.iter().filter(|p| p.licenses.is_empty()) {
            packages_without_licence.push(Unlicensed {
                image: i.name.clone(),
                package: p.name.clone(),
                version: p.version.clone(),
            });
        }
        for r in &i.rpm {
            rpm_databases.push(RpmDb {
                image: i.name.clone(),
                path: r.path.clone(),
                layer: r.layer,
            });
        }
    }
    LicenceReport {
        licences,
        copyleft,
        packages_without_licence,
        rpm_databases,
    }
}

/// The licence summary as the text table.
pub fn licence_table(r: &LicenceReport) -> String {
    sbom::report::licence_table(&r.licences)
}
