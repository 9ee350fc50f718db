//! SBOM and licence flows: check a bundle's signature when the source is one, scan the
//! images' package databases, render SPDX / CycloneDX / JSON / table documents, summarise
//! licences. Commands choose the output; nothing here prints.

use crate::report::Hint;
use crate::sbom::oci::{scan_layout, Layout};
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
    pub seconds: f64,
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
fn check_bundle(o: &ScanOpts) -> anyhow::Result<()> {
    let source = o.source;
    if !is_darkport_bundle(source) {
        return Ok(());
    }
    let trust = super::trust::resolve(o.pubkey, o.allow_unsigned)?;
    let b = crate::bundle::Bundle::open(source, &trust)
        .with_context(|| format!("failed to open {}", source.display()))?;
    let m = b
        .member("index.json")
        .with_context(|| format!("{} has no index.json member", source.display()))?;
    b.read_member(m, 64 << 20)
        .with_context(|| format!("failed to check index.json of {}", source.display()))?;
    Ok(())
}

/// Check (a bundle's signature) and scan every image of the source.
pub fn scan(o: &ScanOpts, rep: &dyn ScanReporter) -> anyhow::Result<ScanReport> {
    check_bundle(o)?;
    let start = Instant::now();
    let layout = Layout::open(o.source)
        .with_context(|| format!("failed to read images from {}", o.source.display()))
        .context(Hint(
            "SOURCE must be a darkport bundle, an uncompressed oci-archive tar or an OCI image layout directory".into(),
        ))?;
    let images = scan_layout(&layout, o.image, rep)
        .with_context(|| format!("failed to scan the images of {}", o.source.display()))?;
    Ok(ScanReport {
        images,
        seconds: start.elapsed().as_secs_f64(),
    })
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
