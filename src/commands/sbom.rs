use crate::cli::sbom::{LicensesArgs, SbomArgs, SbomFormat};
use crate::digest::Digest;
use crate::sbom::oci::{scan_layout, Layout, ScanReporter};
use crate::sbom::spdx::RenderOpts;
use crate::sbom::{self, ImageSbom};
use crate::ui::progress::Progress;
use crate::ui::{Hint, ProgressMode};
use anyhow::{bail, Context};
use std::io::Write;
use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, Instant, UNIX_EPOCH};

struct Reporter {
    mode: ProgressMode,
    bar: OnceLock<Progress>,
}

impl ScanReporter for Reporter {
    fn start(&self, layers: usize, bytes: u64) {
        let _ = self.bar.set(Progress::new(
            self.mode,
            &format!("scan {layers} layer(s)"),
            bytes,
            true,
        ));
    }
    fn layer_done(&self, _d: &Digest, bytes: u64) {
        if let Some(b) = self.bar.get() {
            b.inc(bytes);
        }
    }
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
fn check_bundle(
    source: &Path,
    pubkey: &[std::path::PathBuf],
    allow_unsigned: bool,
) -> anyhow::Result<()> {
    if !is_darkport_bundle(source) {
        return Ok(());
    }
    let trust = crate::ops::trust::resolve(pubkey, allow_unsigned)?;
    let b = crate::bundle::Bundle::open(source, &trust)
        .with_context(|| format!("failed to open {}", source.display()))?;
    let m = b
        .member("index.json")
        .with_context(|| format!("{} has no index.json member", source.display()))?;
    b.read_member(m, 64 << 20)
        .with_context(|| format!("failed to check index.json of {}", source.display()))?;
    Ok(())
}

fn scan(source: &Path, image: Option<&str>, mode: ProgressMode) -> anyhow::Result<Vec<ImageSbom>> {
    let start = Instant::now();
    let layout = Layout::open(source)
        .with_context(|| format!("failed to read images from {}", source.display()))
        .context(Hint(
            "SOURCE must be a darkport bundle, an uncompressed oci-archive tar or an OCI image layout directory".into(),
        ))?;
    let rep = Reporter {
        mode,
        bar: OnceLock::new(),
    };
    let images = scan_layout(&layout, image, &rep)
        .with_context(|| format!("failed to scan the images of {}", source.display()))?;
    if let Some(b) = rep.bar.get() {
        b.finish();
    }
    if mode.resolve() != ProgressMode::Quiet {
        let pkgs: usize = images.iter().map(|i| i.packages.len()).sum();
        eprintln!(
            "scanned {} image(s), {} package(s) in {:.2}s",
            images.len(),
            pkgs,
            start.elapsed().as_secs_f64()
        );
    }
    Ok(images)
}

fn created(arg: Option<&str>) -> anyhow::Result<String> {
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

pub fn run_sbom(a: SbomArgs, progress: ProgressMode) -> anyhow::Result<i32> {
    let created = created(a.created.as_deref())?;
    check_bundle(&a.source, &a.pubkey, a.allow_unsigned)?;
    let images = scan(&a.source, a.image.as_deref(), progress)?;
    let opts = RenderOpts {
        created,
        tool: format!("darkport-{}", env!("CARGO_PKG_VERSION")),
    };
    let per_image = |img: &ImageSbom| -> anyhow::Result<(String, String)> {
        Ok(match a.format {
            SbomFormat::Spdx => (
                "spdx.json".into(),
                serde_json::to_string_pretty(&sbom::spdx::render(img, &opts))? + "\n",
            ),
            SbomFormat::Cyclonedx => (
                "cdx.json".into(),
                serde_json::to_string_pretty(&sbom::cyclonedx::render(img, &opts))? + "\n",
            ),
            SbomFormat::Table => ("txt".into(), sbom::report::table(std::slice::from_ref(img))),
            SbomFormat::Json => ("json".into(), serde_json::to_string_pretty(img)? + "\n"),
        })
    };
    if let Some(dir) = &a.output {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("failed to create {}", dir.display()))?;
        for img in &images {
            let (ext, text) = per_image(img)?;
            let path = dir.join(format!("{}.{ext}", file_stem(img)));
            write_atomic(&path, text.as_bytes())?;
            println!("{}", path.display());
        }
        return Ok(0);
    }
    let mut out = std::io::stdout().lock();
    match a.format {
        SbomFormat::Table => out.write_all(sbom::report::table(&images).as_bytes())?,
        SbomFormat::Json => {
            out.write_all((serde_json::to_string_pretty(&images)? + "\n").as_bytes())?
        }
        SbomFormat::Spdx | SbomFormat::Cyclonedx => {
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
                    a.source.display(),
                    images.len(),
                    names.join(", ")
                ))
                .context(Hint(
                    "choose one with --image NAME, or write one file per image with -o DIR".into(),
                ));
            }
            out.write_all(per_image(&images[0])?.1.as_bytes())?;
        }
    }
    Ok(0)
}

pub fn run_licenses(a: LicensesArgs, progress: ProgressMode) -> anyhow::Result<i32> {
    let mode = if a.json && progress == ProgressMode::Auto {
        ProgressMode::Quiet
    } else {
        progress
    };
    check_bundle(&a.source, &a.pubkey, a.allow_unsigned)?;
    let images = scan(&a.source, a.image.as_deref(), mode)?;
    let summary = sbom::licence_summary(&images);
    if a.json {
        let unknown: Vec<serde_json::Value> = images
            .iter()
            .flat_map(|i| {
                i.packages
                    .iter()
                    .filter(|p| p.licenses.is_empty())
                    .map(move |p| serde_json::json!({"image": i.name, "package": p.name, "version": p.version}))
            })
            .collect();
        let rpm: Vec<serde_json::Value> = images
            .iter()
            .flat_map(|i| {
                i.rpm.iter().map(
                    move |r| serde_json::json!({"image": i.name, "path": r.path, "layer": r.layer}),
                )
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "licences": summary,
                "copyleft": summary.iter().filter(|e| e.copyleft).map(|e| e.licence.clone()).collect::<Vec<_>>(),
                "packages_without_licence": unknown,
                "rpm_databases": rpm,
            }))?
        );
    } else {
        print!("{}", sbom::report::licence_table(&summary));
        for i in &images {
            for r in &i.rpm {
                println!(
                    "note: image {} has an RPM database at {}: its RPM packages are not listed",
                    i.name, r.path
                );
            }
        }
    }
    if a.fail_on_copyleft && summary.iter().any(|e| e.copyleft) {
        if !a.json {
            eprintln!("copyleft licences found (--fail-on-copyleft)");
        }
        return Ok(1);
    }
    if images.is_empty() {
        bail!("{} holds no image", a.source.display());
    }
    Ok(0)
}
