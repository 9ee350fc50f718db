//! `darkport verify` and `darkport inspect`: open a bundle (signature first) and report what it
//! holds; verify also hashes every member.

use crate::bundle::{Bundle, Manifest, Reporter};
use crate::digest::Digest;
use crate::ops::site::BundleTrust;
use crate::report::bundle::{InspectImage, InspectLayer, InspectReport, Signature, VerifyReport};
use anyhow::Context;
use std::collections::BTreeMap;
use std::time::Instant;

fn signature(b: &Bundle) -> Signature {
    match b.signed_by() {
        Some(k) => Signature::Trusted(k.to_string()),
        None if b.has_signature() => Signature::Unchecked,
        None => Signature::None,
    }
}

/// Open a bundle (its signature checked) and, with `members`, hash every member against the
/// signed manifest: the one check verify and inspect share. Returns the bytes hashed.
fn open_checked(
    o: &BundleTrust,
    members: bool,
    rep: &dyn Reporter,
) -> anyhow::Result<(Bundle, Option<u64>)> {
    let trust = crate::ops::trust::resolve(&o.pubkeys, o.allow_unsigned)?;
    let failed = || format!("verification of {} failed", o.bundle.display());
    let b = Bundle::open(&o.bundle, &trust).with_context(failed)?;
    let hashed = match members {
        true => Some(b.verify_all(rep).with_context(failed)?),
        false => None,
    };
    Ok((b, hashed))
}

/// Check the signature and every member's digest.
pub fn verify(o: &BundleTrust, rep: &dyn Reporter) -> anyhow::Result<VerifyReport> {
    let start = Instant::now();
    let (b, hashed) = open_checked(o, true, rep)?;
    let n = hashed.unwrap_or(0);
    let secs = start.elapsed().as_secs_f64();
    let m = b.manifest();
    Ok(VerifyReport {
        ok: true,
        bundle: o.bundle.clone(),
        bundle_id: b.id(),
        product: m.product.clone(),
        version: m.version.clone(),
        signed_by: b.signed_by().map(str::to_string),
        members: b.members().len(),
        bytes: n,
        seconds: secs,
        mib_per_s: n as f64 / secs.max(1e-9) / (1 << 20) as f64,
        missing_blobs: m.missing_blobs().count(),
        signature: signature(&b),
        delta_base: m.delta_base.clone(),
    })
}

/// What the bundle holds, from its (signature-checked) manifest; with `members` (the
/// default of the command), every member is also hashed as verify does, so what is reported
/// is what the file holds.
pub fn inspect(
    o: &BundleTrust,
    members: bool,
    rep: &dyn Reporter,
) -> anyhow::Result<InspectReport> {
    let (b, hashed) = open_checked(o, members, rep)?;
    let m = b.manifest();
    let stored = m.stored_blob_bytes();
    let image_bytes = m.image_bytes();
    // Dedup is about image blobs; the v2 SBOM documents are blobs too, but of no image.
    let all_blobs: u64 = m.blobs.iter().map(|x| x.size).sum();
    let unique: u64 = m
        .blobs
        .iter()
        .filter(|x| x.media_type != crate::bundle::SBOM_MEDIA_TYPE)
        .map(|x| x.size)
        .sum();
    let users = layer_users(m);
    Ok(InspectReport {
        bundle: o.bundle.clone(),
        bundle_id: b.id(),
        file_size: b.file_len(),
        signed_by: b.signed_by().map(str::to_string),
        format: m.format.clone(),
        product: m.product.clone(),
        version: m.version.clone(),
        upgrades_from: m.upgrades_from.clone(),
        platforms: m.platforms.clone(),
        created: m.created.clone(),
        images: m
            .images
            .iter()
            .map(|i| InspectImage {
                name: i.name.clone(),
                digest: i.digest,
                media_type: i.media_type.clone(),
                platforms: i.platforms.clone(),
                size: i.total_size,
                blobs: i.blobs.len(),
                source: i.source.clone(),
                layers: layers_of(m, i, &users),
            })
            .collect(),
        blob_count: m.blobs.len(),
        blobs_in_bundle: m.blobs.iter().filter(|x| x.present).count(),
        stored_blob_bytes: stored,
        image_bytes,
        unique_blob_bytes: unique,
        dedup_saving_bytes: image_bytes.saturating_sub(unique),
        dedup_ratio: if unique > 0 {
            image_bytes as f64 / unique as f64
        } else {
            0.0
        },
        delta_saving_bytes: all_blobs.saturating_sub(stored),
        playbooks: m.playbooks.iter().map(|p| p.path.clone()).collect(),
        migrations: m.migrations.clone(),
        compose: m.compose.clone(),
        delta_base: m.delta_base.clone(),
        missing_blobs: m.missing_blobs().map(|x| x.digest).collect(),
        members: b.members().len(),
        members_checked: hashed.is_some(),
        signature: signature(&b),
    })
}

/// A layer blob (OCI or Docker media type), not a manifest, index or config.
fn is_layer(media_type: &str) -> bool {
    media_type.contains(".layer.") || media_type.contains("rootfs.diff")
}

/// For every layer blob, the names of the images that use it.
fn layer_users(m: &Manifest) -> BTreeMap<Digest, Vec<String>> {
    let mut users: BTreeMap<Digest, Vec<String>> = BTreeMap::new();
    for i in &m.images {
        for d in &i.blobs {
            if m.blob(d).is_some_and(|b| is_layer(&b.media_type)) {
                let u = users.entry(*d).or_default();
                if !u.contains(&i.name) {
                    u.push(i.name.clone());
                }
            }
        }
    }
    users
}

fn layers_of(
    m: &Manifest,
    i: &crate::bundle::manifest::ImageEntry,
    users: &BTreeMap<Digest, Vec<String>>,
) -> Vec<InspectLayer> {
    i.blobs
        .iter()
        .filter_map(|d| m.blob(d))
        .filter(|b| is_layer(&b.media_type))
        .map(|b| InspectLayer {
            digest: b.digest,
            size: b.size,
            in_bundle: b.present,
            shared_with: users
                .get(&b.digest)
                .map(|u| u.iter().filter(|n| **n != i.name).cloned().collect())
                .unwrap_or_default(),
        })
        .collect()
}
