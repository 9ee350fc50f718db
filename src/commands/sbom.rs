use crate::cli::sbom::{LicensesArgs, SbomArgs, SbomFormat};
use crate::ops::sbom::{self, Digest, Format, ScanOpts, ScanReport, ScanReporter};
use crate::ui::progress::Progress;
use crate::ui::ProgressMode;
use anyhow::bail;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

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

/// Scan with a progress bar, then a one-line summary on stderr unless quiet.
fn scan(
    source: &Path,
    image: Option<&str>,
    pubkey: &[PathBuf],
    allow_unsigned: bool,
    mode: ProgressMode,
) -> anyhow::Result<ScanReport> {
    let rep = Reporter {
        mode,
        bar: OnceLock::new(),
    };
    let opts = ScanOpts {
        source,
        image,
        pubkey,
        allow_unsigned,
    };
    let r = sbom::scan(&opts, &rep)?;
    if let Some(b) = rep.bar.get() {
        b.finish();
    }
    for e in &r.elsewhere {
        eprintln!("note: {}", e.note);
    }
    if mode.resolve() != ProgressMode::Quiet {
        eprintln!(
            "scanned {} image(s), {} package(s) in {:.2}s",
            r.images.len(),
            r.packages(),
            r.seconds
        );
    }
    Ok(r)
}

fn format(f: SbomFormat) -> Format {
    match f {
        SbomFormat::Spdx => Format::Spdx,
        SbomFormat::Cyclonedx => Format::Cyclonedx,
        SbomFormat::Table => Format::Table,
        SbomFormat::Json => Format::Json,
    }
}

pub fn run_sbom(a: SbomArgs, progress: ProgressMode) -> anyhow::Result<i32> {
    let created = sbom::created(a.created.as_deref())?;
    let r = scan(
        &a.source,
        a.image.as_deref(),
        &a.pubkey,
        a.allow_unsigned,
        progress,
    )?;
    let fmt = format(a.format);
    if let Some(dir) = &a.output {
        for path in sbom::write_per_image(dir, &r.images, fmt, &created)? {
            println!("{}", path.display());
        }
        return Ok(0);
    }
    let text = sbom::render_all(&a.source, &r.images, fmt, &created)?;
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        // `darkport sbom … | head`: the reader went away; that is not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(0),
        r => r.map(|_| 0).map_err(Into::into),
    }
}

pub fn run_licenses(a: LicensesArgs, progress: ProgressMode) -> anyhow::Result<i32> {
    let mode = if a.json && progress == ProgressMode::Auto {
        ProgressMode::Quiet
    } else {
        progress
    };
    let r = scan(
        &a.source,
        a.image.as_deref(),
        &a.pubkey,
        a.allow_unsigned,
        mode,
    )?;
    let report = sbom::licences(&r.images);
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", sbom::licence_table(&report));
        for db in &report.rpm_databases {
            println!(
                "note: image {} has an RPM database at {}: its RPM packages are not listed",
                db.image, db.path
            );
        }
    }
    if a.fail_on_copyleft && !report.copyleft.is_empty() {
        if !a.json {
            eprintln!("copyleft licences found (--fail-on-copyleft)");
        }
        return Ok(1);
    }
    if r.images.is_empty() {
        bail!("{} holds no image", a.source.display());
    }
    Ok(0)
}
