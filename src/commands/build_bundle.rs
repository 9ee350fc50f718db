use crate::cli::bundle::BuildBundleArgs;
use crate::ops::build::{build, BuildOptions};
use crate::ops::keys::load_signing_key;
use crate::ui::{bundle::BundleProgress, bytes, ProgressMode};

pub fn run(a: BuildBundleArgs, progress: ProgressMode) -> anyhow::Result<i32> {
    let key = match &a.key {
        Some(p) => Some(load_signing_key(p, || super::keygen::password(false))?),
        None => None,
    };
    let since_trust = if a.since_pubkey.is_empty() {
        None
    } else {
        Some(crate::ops::trust::resolve(&a.since_pubkey, false)?)
    };
    let progress = if a.json {
        ProgressMode::Quiet
    } else {
        progress
    };
    let rep = BundleProgress::new(progress);
    let r = build(
        BuildOptions {
            spec: a.spec,
            out: a.out,
            key,
            unsigned: a.unsigned,
            since: a.since,
            since_trust,
            compression: a.layer_compression,
        },
        &rep,
    )?;
    if a.json {
        crate::ui::print_json(&r);
    } else {
        let saved = r.image_bytes.saturating_sub(r.stored_blob_bytes);
        println!("wrote {} ({})", r.path.display(), bytes(r.size));
        println!(
            "  product {} {}, {} images, {} blobs",
            r.product, r.version, r.images, r.blobs
        );
        println!(
            "  stored blob bytes {} vs sum of image sizes {} (dedup saved {})",
            bytes(r.stored_blob_bytes),
            bytes(r.image_bytes),
            bytes(saved)
        );
        if r.omitted_blobs > 0 {
            println!(
                "  delta: {} blobs left out (held by the base bundle)",
                r.omitted_blobs
            );
        }
        match &r.signed_by {
            Some(k) => println!("  signed by key {k}"),
            None => println!("  UNSIGNED (verify and install refuse it unless --allow-unsigned)"),
        }
        println!("  bundle id {} ({:.2}s)", r.bundle_id, r.seconds);
    }
    Ok(0)
}
