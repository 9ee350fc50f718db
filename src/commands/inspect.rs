use crate::bundle::Bundle;
use crate::cli::bundle::InspectArgs;
use crate::ui::bytes;
use anyhow::Context;

pub fn run(a: InspectArgs) -> anyhow::Result<i32> {
    let trust = crate::ops::trust::resolve(&a.pubkey, a.allow_unsigned)?;
    let b = Bundle::open(&a.bundle, &trust)
        .with_context(|| format!("failed to open {}", a.bundle.display()))?;
    let m = b.manifest();
    let stored = m.stored_blob_bytes();
    let image_bytes = m.image_bytes();
    let saving = image_bytes.saturating_sub(stored);
    let present = m.blobs.iter().filter(|x| x.present).count();
    if a.json {
        let images: Vec<serde_json::Value> = m
            .images
            .iter()
            .map(|i| {
                serde_json::json!({
                    "name": i.name, "digest": i.digest, "mediaType": i.media_type,
                    "platforms": i.platforms, "size": i.total_size, "blobs": i.blobs.len(),
                    "source": i.source,
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "bundle": a.bundle,
                "bundle_id": b.id(),
                "file_size": b.file_len(),
                "signed_by": b.signed_by(),
                "format": m.format,
                "product": m.product,
                "version": m.version,
                "upgrades_from": m.upgrades_from,
                "platforms": m.platforms,
                "created": m.created,
                "images": images,
                "blob_count": m.blobs.len(),
                "blobs_in_bundle": present,
                "stored_blob_bytes": stored,
                "image_bytes": image_bytes,
                "dedup_saving_bytes": saving,
                "dedup_ratio": if stored > 0 { image_bytes as f64 / stored as f64 } else { 0.0 },
                "playbooks": m.playbooks.iter().map(|p| &p.path).collect::<Vec<_>>(),
                "migrations": m.migrations,
                "delta_base": m.delta_base,
                "missing_blobs": m.missing_blobs().map(|x| x.digest).collect::<Vec<_>>(),
            }))?
        );
        return Ok(0);
    }
    println!("bundle    {} ({})", a.bundle.display(), bytes(b.file_len()));
    println!("product   {} {}", m.product, m.version);
    if let Some(u) = &m.upgrades_from {
        println!("upgrades  from {u}");
    }
    println!("platforms {}", m.platforms.join(", "));
    println!(
        "signature {}",
        match b.signed_by() {
            Some(k) => format!("ok, key {k}"),
            None if b.has_signature() => "present but NOT checked (no trusted key)".into(),
            None => "NONE (unsigned)".into(),
        }
    );
    println!("id        {}", b.id());
    println!("images    {}", m.images.len());
    for i in &m.images {
        println!(
            "  {:<36} {}  {:<14} {:>10}",
            i.name,
            i.digest.short(),
            i.platforms.join(","),
            bytes(i.total_size)
        );
    }
    println!("blobs     {} ({} in this file)", m.blobs.len(), present);
    println!(
        "stored    {} vs {} sum of image sizes: dedup saved {} ({:.1}%)",
        bytes(stored),
        bytes(image_bytes),
        bytes(saving),
        if image_bytes > 0 {
            saving as f64 * 100.0 / image_bytes as f64
        } else {
            0.0
        }
    );
    println!(
        "playbooks {} files, {} migrations",
        m.playbooks.len(),
        m.migrations.len()
    );
    if m.delta_base.is_empty() {
        println!("delta     no (full bundle)");
    } else {
        for d in &m.delta_base {
            println!(
                "delta     base {} {} ({})",
                d.product,
                d.version,
                d.bundle_id.short()
            );
        }
        println!(
            "          {} blobs must already be on the site",
            m.missing_blobs().count()
        );
    }
    Ok(0)
}
