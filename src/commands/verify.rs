use crate::bundle::Bundle;
use crate::cli::bundle::VerifyArgs;
use crate::ui::{bundle::BundleProgress, bytes, ProgressMode};
use anyhow::Context;

pub fn run(a: VerifyArgs, progress: ProgressMode) -> anyhow::Result<i32> {
    let trust = crate::ops::trust::resolve(&a.pubkey, a.allow_unsigned)?;
    let start = std::time::Instant::now();
    let b = Bundle::open(&a.bundle, &trust)
        .with_context(|| format!("verification of {} failed", a.bundle.display()))?;
    let progress = if a.json {
        ProgressMode::Quiet
    } else {
        progress
    };
    let n = b
        .verify_all(&BundleProgress::new(progress))
        .with_context(|| format!("verification of {} failed", a.bundle.display()))?;
    let secs = start.elapsed().as_secs_f64();
    let m = b.manifest();
    let rate = n as f64 / secs.max(1e-9) / (1 << 20) as f64;
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "ok": true,
                "bundle": a.bundle,
                "bundle_id": b.id(),
                "product": m.product,
                "version": m.version,
                "signed_by": b.signed_by(),
                "members": b.members().len(),
                "bytes": n,
                "seconds": secs,
                "mib_per_s": rate,
                "missing_blobs": m.missing_blobs().count(),
            }))?
        );
    } else {
        println!(
            "OK {}: {} {}, {}, {} members, {} verified in {secs:.2}s ({rate:.0} MiB/s)",
            a.bundle.display(),
            m.product,
            m.version,
            match b.signed_by() {
                Some(k) => format!("signed by key {k}"),
                None if b.has_signature() => "signature NOT checked (no trusted key)".to_string(),
                None => "UNSIGNED".to_string(),
            },
            b.members().len(),
            bytes(n)
        );
        let missing = m.missing_blobs().count();
        if missing > 0 {
            let bases: Vec<String> = m
                .delta_base
                .iter()
                .map(|d| format!("{} {}", d.product, d.version))
                .collect();
            println!(
                "  delta bundle: {missing} blobs must already be on the site (from {})",
                bases.join(", ")
            );
        }
    }
    Ok(0)
}
