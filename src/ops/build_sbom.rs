//! The SBOMs of a build: one SPDX 2.3 document per image and platform, zstd-compressed and
//! stored as a blob of the bundle (format v2, `docs/FORMAT.md`). A delta bundle reuses the
//! document of every image whose manifest its base bundle already described, by digest, and
//! scans only the others; each layer those need is read once (hashed, decompressed and its
//! package databases kept in the same pass), layers in parallel. Layers read here are
//! marked verified in the store, so the bundle writer copies them without hashing again.

use crate::bundle::{writer, BlobEntry, Manifest, SbomEntry, SBOM_MEDIA_TYPE};
use crate::digest::Digest;
use crate::store::{Location, Store};
use anyhow::Context;
use rayon::prelude::*;
use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;

/// Time written into the stored SBOMs when the build has none (`SOURCE_DATE_EPOCH` unset):
/// fixed, so the same inputs still give a byte-identical bundle.
const SBOM_EPOCH: &str = "1970-01-01T00:00:00Z";

/// zstd level of the stored documents: SPDX JSON is repetitive, and at this level a document
/// of a thousand packages compresses in a few milliseconds (deterministic for the same input).
const SBOM_ZSTD_LEVEL: i32 = 9;

/// A document a base bundle carries, keyed by (image manifest digest, platform).
pub type Reusable = HashMap<(Digest, Option<String>), (SbomEntry, BlobEntry)>;

/// What the base bundles of a delta offer: their documents by image manifest (each with the
/// id of the bundle that actually carries it: a base that is itself a delta passes on its own
/// base's id).
pub fn reusable_of(base: &Manifest, base_id: Digest, into: &mut Reusable) {
    for s in &base.sboms {
        let Some(b) = base.blob(&s.document) else {
            continue;
        };
        let mut entry = s.clone();
        entry.from_bundle = Some(s.from_bundle.unwrap_or(base_id));
        let blob = BlobEntry {
            present: false,
            ..b.clone()
        };
        into.entry((s.manifest, s.platform.clone()))
            .or_insert((entry, blob));
    }
}

/// The SBOM entries and blobs for `m`'s images: reused from `reuse` where the image manifest
/// is the same, else scanned from `store`, rendered, compressed and put into it. A document
/// that is byte for byte one the bases hold is left out like any base blob.
pub fn image_sboms(
    m: &Manifest,
    store: &mut Store,
    reuse: &Reusable,
) -> anyhow::Result<(Vec<SbomEntry>, Vec<BlobEntry>)> {
    use crate::sbom::oci::{compose_entries, scan_layers, NoReport};
    let layout = store_layout(m, store);
    let all = layout
        .images()
        .context("failed to list the images for their SBOMs")?;
    let mut entries = Vec::new();
    let mut blobs = Vec::new();
    let mut todo = Vec::new();
    for e in &all {
        match reuse.get(&(e.manifest, e.platform.clone())) {
            Some((s, b)) => {
                entries.push(SbomEntry {
                    image: e.name.clone(),
                    ..s.clone()
                });
                blobs.push(b.clone());
            }
            None => todo.push(e),
        }
    }
    let (deltas, verified) =
        scan_layers(&layout, &todo, &NoReport).context("failed to build the image SBOMs")?;
    for e in &todo {
        check_diff_ids(e, &deltas, store)?;
    }
    for d in &verified {
        store.mark_verified(d);
    }
    let images = compose_entries(&todo, &deltas);
    let opts = crate::sbom::spdx::RenderOpts {
        created: m.created.clone().unwrap_or_else(|| SBOM_EPOCH.into()),
        tool: format!("darkport-{}", env!("CARGO_PKG_VERSION")),
    };
    let docs: Vec<Vec<u8>> = images
        .par_iter()
        .map(|img| -> anyhow::Result<Vec<u8>> {
            let mut doc = serde_json::to_vec_pretty(&crate::sbom::spdx::render(img, &opts))?;
            doc.push(b'\n');
            zstd::bulk::compress(&doc, SBOM_ZSTD_LEVEL)
                .with_context(|| format!("failed to compress the SBOM of {}", img.name))
        })
        .collect::<anyhow::Result<_>>()?;
    for (e, z) in todo.iter().zip(docs) {
        let document = store.put_bytes(&z)?;
        let from_bundle = reuse
            .values()
            .find(|(s, _)| s.document == document)
            .and_then(|(s, _)| s.from_bundle);
        entries.push(SbomEntry {
            image: e.name.clone(),
            platform: e.platform.clone(),
            manifest: e.manifest,
            document,
            from_bundle,
        });
        blobs.push(BlobEntry {
            digest: document,
            size: z.len() as u64,
            media_type: SBOM_MEDIA_TYPE.into(),
            present: from_bundle.is_none(),
        });
    }
    entries.sort_by(|a, b| (&a.image, &a.platform).cmp(&(&b.image, &b.platform)));
    let mut seen = BTreeSet::new();
    blobs.retain(|b| seen.insert(b.digest));
    Ok((entries, blobs))
}

/// The uncompressed content of every layer read must hash to the diff_id the image config
/// lists for it (what a runtime checks when it unpacks the layer): a mismatch fails the build
/// here rather than the pull on site.
fn check_diff_ids(
    e: &crate::sbom::oci::ImageEntry,
    deltas: &HashMap<Digest, crate::sbom::LayerDelta>,
    store: &Store,
) -> anyhow::Result<()> {
    let Some(config) = e.config else {
        return Ok(());
    };
    let bytes = store
        .read_small(&config, 64 << 20)
        .with_context(|| format!("failed to read the config of image {}", e.name))?;
    let v: serde_json::Value = serde_json::from_slice(&bytes)
        .with_context(|| format!("the config {config} of image {} is not JSON", e.name))?;
    let Some(ids) = v.pointer("/rootfs/diff_ids").and_then(|x| x.as_array()) else {
        return Ok(());
    };
    for (i, l) in e.layers.iter().enumerate() {
        let (Some(want), Some(got)) = (
            ids.get(i).and_then(|x| x.as_str()),
            deltas.get(&l.digest).and_then(|d| d.diff_id),
        ) else {
            continue;
        };
        if want != got.to_string() {
            anyhow::bail!(
                "image {}: layer {i} ({}) uncompresses to content that hashes to {got}, but its config lists diff_id {want}",
                e.name,
                l.digest
            );
        }
    }
    Ok(())
}

/// The build's store seen as an OCI layout (the bundle's `index.json` in memory, each blob
/// where the store has it), for the SBOM scanner.
fn store_layout(m: &Manifest, store: &Store) -> crate::sbom::oci::Layout {
    let mut members = HashMap::new();
    for b in store.iter() {
        let (path, off) = match &b.location {
            Location::File(p) => (p.clone(), 0),
            Location::Range { path, offset, .. } => (path.clone(), *offset),
        };
        members.insert(
            format!("blobs/sha256/{}", b.digest.hex()),
            (path, off, b.size),
        );
    }
    crate::sbom::oci::Layout::Blobs {
        label: PathBuf::from("the build's image store"),
        index: writer::layout_index(m),
        members,
    }
}
