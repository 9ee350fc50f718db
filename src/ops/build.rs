//! `build-bundle`: spec → sources → store → (delta against older bundles) → signed bundle.

use super::build_sbom::{self, Reusable};
use crate::bundle::spec::Spec;
use crate::bundle::{
    writer, BlobEntry, Bundle, DeltaBase, ImageEntry, Manifest, SigningKey, Trust, FORMAT_V2,
};
use crate::digest::Digest;
pub use crate::report::build::{BuildReport, BuildReporter};
use crate::report::Hint;
use crate::source::{self, Compression, FetchContext};
use crate::store::Store;
use anyhow::{bail, Context};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

pub struct BuildOptions {
    pub spec: PathBuf,
    /// Output file, or directory (existing, or ending in `/`) for `<product>-<version>.darkport`.
    pub out: PathBuf,
    /// The signing key; `None` only with `unsigned`.
    pub key: Option<SigningKey>,
    pub unsigned: bool,
    pub since: Vec<PathBuf>,
    /// Keys trusted for the `--since` bundles (default: the signing key's public key).
    pub since_trust: Option<Trust>,
    /// Overrides the spec's `layer_compression` (default gzip).
    pub compression: Option<Compression>,
}

fn output_path(out: &Path, product: &str, version: &str, bases: &[DeltaBase]) -> PathBuf {
    let is_dir = out.is_dir() || out.as_os_str().to_string_lossy().ends_with('/');
    if !is_dir {
        return out.to_path_buf();
    }
    let name = if bases.is_empty() {
        format!("{product}-{version}.darkport")
    } else {
        let from: Vec<&str> = bases.iter().map(|b| b.version.as_str()).collect();
        format!("{product}-{version}-from-{}.darkport", from.join("+"))
    };
    out.join(name)
}

pub fn build(opts: BuildOptions, rep: &dyn BuildReporter) -> anyhow::Result<BuildReport> {
    let start = std::time::Instant::now();
    if opts.key.is_none() && !opts.unsigned {
        bail!("no signing key: pass --key FILE.key (or --unsigned for a test bundle nobody will install)");
    }
    let spec = Spec::load(&opts.spec)?;
    // Delta bases first: cheap, and a wrong base should fail before a long fetch.
    let (bases, base_blobs, reuse) = delta_bases(&opts, &spec)?;
    let out = output_path(&opts.out, &spec.product, &spec.version.to_string(), &bases);
    let out_dir = out
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    std::fs::create_dir_all(&out_dir)
        .with_context(|| format!("failed to create output directory {}", out_dir.display()))?;
    let work = tempfile::Builder::new()
        .prefix(".darkport-build-")
        .tempdir_in(&out_dir)
        .with_context(|| format!("failed to create a work directory in {}", out_dir.display()))?;
    let mut store = Store::open(work.path())?;
    // The playbooks before the images: a broken one must not cost a long fetch, nor ship.
    let (playbooks, migrations) = playbooks_of(&spec)?;
    if let Some(dir) = &spec.playbooks {
        let c = super::build_check::check_playbooks(dir, &migrations)?;
        rep.note(&format!(
            "checked {} playbook(s), {} task file(s), {} template(s)",
            c.playbooks, c.task_files, c.templates
        ));
    }
    let (images, all) = fetch_images(&spec, &opts, &mut store, &base_blobs, rep)?;
    let created = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .map(|s| {
            humantime::format_rfc3339_seconds(
                std::time::UNIX_EPOCH + std::time::Duration::from_secs(s),
            )
            .to_string()
        });
    let mut manifest = Manifest {
        format: FORMAT_V2.into(),
        product: spec.product.clone(),
        version: spec.version.to_string(),
        upgrades_from: spec.upgrades_from.clone(),
        platforms: spec.platforms.iter().map(|p| p.to_string()).collect(),
        created,
        images,
        blobs: all.into_values().collect(),
        files: vec![],
        playbooks,
        migrations,
        delta_base: bases,
        compose: spec
            .compose_project
            .iter()
            .flat_map(|p| p.files.iter().map(|f| format!("compose/{}", f.rel)))
            .collect(),
        sboms: vec![],
    };
    let blobs = manifest.blobs.len();
    let blobs_in_bundle = manifest.blobs.iter().filter(|b| b.present).count();
    let stored = manifest.stored_blob_bytes();
    let image_bytes = manifest.image_bytes();
    let omitted = blobs - blobs_in_bundle;
    let product = manifest.product.clone();
    let version = manifest.version.clone();
    let nimages = manifest.images.len();
    // The SBOMs: scanned from the store (each layer read once, in parallel, then copied
    // into the bundle without a second hash), or reused from a base for an unchanged image.
    let (sboms, sbom_blobs) = build_sbom::image_sboms(&manifest, &mut store, &reuse)?;
    manifest.sboms = sboms;
    for b in sbom_blobs {
        if manifest.blob(&b.digest).is_none() {
            manifest.blobs.push(b);
            manifest.blobs.sort_by_key(|b| b.digest);
        }
    }
    let mut extra = Vec::new();
    if let Some(p) = &spec.compose_project {
        extra.extend(p.members());
    }
    let summary = writer::write_bundle(
        manifest,
        &store,
        spec.playbooks.as_deref(),
        opts.key.as_ref(),
        extra,
        &out,
        rep,
    )
    .with_context(|| format!("failed to write bundle {}", out.display()))?;
    drop(store);
    work.close().ok();
    Ok(BuildReport {
        path: summary.path,
        size: summary.size,
        bundle_id: summary.manifest_digest,
        signed_by: summary.signed_by,
        product,
        version,
        images: nimages,
        blobs,
        blobs_in_bundle,
        stored_blob_bytes: stored,
        image_bytes,
        omitted_blobs: omitted,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// The `--since` base bundles, each opened (signature checked) and required to be of the
/// same product, the union of their blobs (which the delta leaves out) and the SBOM
/// documents they describe image manifests with (which the delta references).
fn delta_bases(
    opts: &BuildOptions,
    spec: &Spec,
) -> anyhow::Result<(Vec<DeltaBase>, BTreeSet<Digest>, Reusable)> {
    let mut bases = Vec::new();
    let mut base_blobs: BTreeSet<Digest> = BTreeSet::new();
    let mut reuse = Reusable::new();
    for b in &opts.since {
        let trust = match (&opts.since_trust, &opts.key) {
            (Some(t), _) => t.clone(),
            (None, Some(k)) => Trust::key(k.public_key()),
            (None, None) => Trust {
                keys: vec![],
                allow_unsigned: true,
            },
        };
        let old = Bundle::open(b, &trust)
            .with_context(|| format!("failed to open base bundle {} (--since)", b.display()))
            .context(Hint(
                "the base bundle must be signed by the same key, or pass --since-pubkey".into(),
            ))?;
        let m = old.manifest();
        if m.product != spec.product {
            bail!(
                "base bundle {} is for product {:?}, not {:?}",
                b.display(),
                m.product,
                spec.product
            );
        }
        base_blobs.extend(m.blobs.iter().map(|x| x.digest));
        build_sbom::reusable_of(m, old.id(), &mut reuse);
        bases.push(DeltaBase {
            product: m.product.clone(),
            version: m.version.clone(),
            bundle_id: old.id(),
        });
    }
    Ok((bases, base_blobs, reuse))
}

/// Fetch every image of the spec into the store (layers shared through one cache) and
/// list their blobs once each, marked absent when a base bundle holds them.
fn fetch_images(
    spec: &Spec,
    opts: &BuildOptions,
    store: &mut Store,
    base_blobs: &BTreeSet<Digest>,
    rep: &dyn BuildReporter,
) -> anyhow::Result<(Vec<ImageEntry>, BTreeMap<Digest, BlobEntry>)> {
    let mut cache = HashMap::new();
    let mut images = Vec::new();
    let mut all: BTreeMap<Digest, BlobEntry> = BTreeMap::new();
    for im in &spec.images {
        rep.image(&im.name, &im.source_text);
        let mut cx = FetchContext {
            store,
            platforms: &spec.platforms,
            compression: opts
                .compression
                .or(spec.layer_compression)
                .unwrap_or_default(),
            registry: &spec.registry,
            layer_cache: &mut cache,
            config: im.config.as_ref(),
            reporter: rep,
        };
        let r = source::fetch(&im.source, &im.name, &mut cx).with_context(|| {
            format!(
                "failed to get image {} ({}, source {})",
                im.name, im.at, im.source_text
            )
        })?;
        for b in &r.blobs {
            all.entry(b.digest).or_insert(BlobEntry {
                digest: b.digest,
                size: b.size,
                media_type: b.media_type.clone(),
                present: !base_blobs.contains(&b.digest),
            });
        }
        images.push(ImageEntry {
            name: im.name.clone(),
            digest: r.digest,
            media_type: r.media_type,
            size: r.size,
            platforms: r.platforms,
            total_size: r.blobs.iter().map(|b| b.size).sum(),
            blobs: r.blobs.iter().map(|b| b.digest).collect(),
            source: im.source_text.clone(),
        });
    }
    Ok((images, all))
}

/// The spec's playbooks directory (which must exist when named) and the migrations in it:
/// `migrations/*.yml|yaml`, not in subdirectories.
fn playbooks_of(spec: &Spec) -> anyhow::Result<(Vec<crate::bundle::PlaybookEntry>, Vec<String>)> {
    let playbooks = match &spec.playbooks {
        Some(p) => {
            if !p.is_dir() {
                bail!(
                    "{}: playbooks directory {} does not exist",
                    spec.path.display(),
                    p.display()
                );
            }
            writer::collect_playbooks(p)?
        }
        None => vec![],
    };
    let migrations: Vec<String> = playbooks
        .iter()
        .filter(|p| {
            p.path.starts_with("migrations/")
                && (p.path.ends_with(".yml") || p.path.ends_with(".yaml"))
                && !p.path["migrations/".len()..].contains('/')
        })
        .map(|p| p.path.clone())
        .collect();
    Ok((playbooks, migrations))
}
