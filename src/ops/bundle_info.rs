//! `darkport verify` and `darkport inspect`: open a bundle (signature first) and report what it
//! holds; verify also hashes every member.

use crate::bundle::{Bundle, Reporter};
use crate::ops::site::BundleTrust;
use crate::report::bundle::{InspectImage, InspectReport, Signature, VerifyReport};
use anyhow::Context;
use std::time::Instant;

fn signature(b: &Bundle) -> Signature {
    match b.signed_by() {
        Some(k) => Signature::Trusted(k.to_string()),
        None if b.has_signature() => Signature::Unchecked,
        None => Signature::None,
    }
}

/// Check the signature and every member's digest.
pub fn verify(o: &BundleTrust, rep: &dyn Reporter) -> anyhow::Result<VerifyReport> {
    let trust = crate::ops::trust::resolve(&o.pubkeys, o.allow_unsigned)?;
    let failed = || format!("verification of {} failed", o.bundle.display());
    let start = Instant::now();
    let b = Bundle::open(&o.bundle, &trust).with_context(failed)?;
    let n = b.verify_all(rep).with_context(failed)?;
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

/// What the bundle holds, from its (signature-checked) manifest.
pub fn inspect(o: &BundleTrust) -> anyhow::Result<InspectReport> {
    let trust = crate::ops::trust::resolve(&o.pubkeys, o.allow_unsigned)?;
    let b = Bundle::open(&o.bundle, &trust)
        .with_context(|| format!("failed to open {}", o.bundle.display()))?;
    let m = b.manifest();
    let stored = m.stored_blob_bytes();
    let image_bytes = m.image_bytes();
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
            })
            .collect(),
        blob_count: m.blobs.len(),
        blobs_in_bundle: m.blobs.iter().filter(|x| x.present).count(),
        stored_blob_bytes: stored,
        image_bytes,
        dedup_saving_bytes: image_bytes.saturating_sub(stored),
        dedup_ratio: if stored > 0 {
            image_bytes as f64 / stored as f64
        } else {
            0.0
        },
        playbooks: m.playbooks.iter().map(|p| p.path.clone()).collect(),
        migrations: m.migrations.clone(),
        delta_base: m.delta_base.clone(),
        missing_blobs: m.missing_blobs().map(|x| x.digest).collect(),
        signature: signature(&b),
    })
}
