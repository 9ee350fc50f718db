//! Reporters for bundle building and verification (a byte bar on a TTY, plain lines
//! otherwise), and the text of the verify and inspect reports.

use super::progress::Progress;
use super::{bytes, ProgressMode};
use crate::report::bundle::{InspectReport, Signature, VerifyReport};
use std::sync::Mutex;

pub struct BundleProgress {
    mode: ProgressMode,
    bar: Mutex<Option<Progress>>,
}

impl BundleProgress {
    pub fn new(mode: ProgressMode) -> Self {
        BundleProgress {
            mode: mode.resolve(),
            bar: Mutex::new(None),
        }
    }
}

impl crate::bundle::Reporter for BundleProgress {
    fn start(&self, phase: &str, total_bytes: u64) {
        if self.mode != ProgressMode::Quiet {
            *self.bar.lock().unwrap() = Some(Progress::new(self.mode, phase, total_bytes, true));
        }
    }
    fn advance(&self, bytes: u64) {
        if let Some(b) = &*self.bar.lock().unwrap() {
            b.inc(bytes);
        }
    }
    fn finish(&self) {
        if let Some(b) = self.bar.lock().unwrap().take() {
            b.finish();
        }
    }
}

impl crate::source::FetchReporter for BundleProgress {
    fn note(&self, msg: &str) {
        if self.mode != ProgressMode::Quiet {
            eprintln!("{msg}");
        }
    }
}

impl crate::report::build::BuildReporter for BundleProgress {
    fn image(&self, name: &str, source: &str) {
        if self.mode != ProgressMode::Quiet {
            eprintln!("image {name} <- {source}");
        }
    }
}

/// `darkport verify` as text.
pub fn verify_text(r: &VerifyReport) -> String {
    let mut out = format!(
        "OK {}: {} {}, {}, {} members, {} verified in {:.2}s ({:.0} MiB/s)\n",
        r.bundle.display(),
        r.product,
        r.version,
        match &r.signature {
            Signature::Trusted(k) => format!("signed by key {k}"),
            Signature::Unchecked => "signature NOT checked (no trusted key)".to_string(),
            Signature::None => "UNSIGNED".to_string(),
        },
        r.members,
        bytes(r.bytes),
        r.seconds,
        r.mib_per_s
    );
    if r.missing_blobs > 0 {
        let bases: Vec<String> = r
            .delta_base
            .iter()
            .map(|d| format!("{} {}", d.product, d.version))
            .collect();
        out.push_str(&format!(
            "  delta bundle: {} blobs must already be on the site (from {})\n",
            r.missing_blobs,
            bases.join(", ")
        ));
    }
    out
}

/// `darkport inspect` as text.
pub fn inspect_text(r: &InspectReport) -> String {
    let mut o = format!(
        "bundle    {} ({})\n",
        r.bundle.display(),
        bytes(r.file_size)
    );
    o.push_str(&format!("product   {} {}\n", r.product, r.version));
    if let Some(u) = &r.upgrades_from {
        o.push_str(&format!("upgrades  from {u}\n"));
    }
    o.push_str(&format!("platforms {}\n", r.platforms.join(", ")));
    o.push_str(&format!(
        "signature {}\n",
        match (&r.signature, r.members_checked) {
            (Signature::Trusted(k), true) => format!("ok, key {k}"),
            (Signature::Trusted(k), false) =>
                format!("of the manifest ok, key {k}; members not checked (run verify)"),
            (Signature::Unchecked, _) => "present but NOT checked (no trusted key)".into(),
            (Signature::None, _) => "NONE (unsigned)".into(),
        }
    ));
    o.push_str(&format!(
        "members   {}\n",
        if r.members_checked {
            format!("{}, every hash matches the manifest", r.members)
        } else {
            format!("{}, NOT checked (--manifest-only; run verify)", r.members)
        }
    ));
    o.push_str(&format!("id        {}\n", r.bundle_id));
    o.push_str(&format!("images    {}\n", r.images.len()));
    for i in &r.images {
        o.push_str(&format!(
            "  {:<36} {}  {:<14} {:>10}\n",
            i.name,
            i.digest.short(),
            i.platforms.join(","),
            bytes(i.size)
        ));
        o.push_str(&image_layers_line(i));
    }
    o.push_str(&shared_layers(r));
    o.push_str(&format!(
        "blobs     {} ({} in this file)\n",
        r.blob_count, r.blobs_in_bundle
    ));
    o.push_str(&format!(
        "stored    {} vs {} sum of image sizes: dedup saved {} ({:.1}%)\n",
        bytes(r.unique_blob_bytes),
        bytes(r.image_bytes),
        bytes(r.dedup_saving_bytes),
        if r.image_bytes > 0 {
            r.dedup_saving_bytes as f64 * 100.0 / r.image_bytes as f64
        } else {
            0.0
        }
    ));
    if r.delta_saving_bytes > 0 {
        o.push_str(&format!(
            "          of which {} in this file; the delta leaves {} to its base\n",
            bytes(r.stored_blob_bytes),
            bytes(r.delta_saving_bytes)
        ));
    }
    o.push_str(&format!(
        "playbooks {} files, {} migrations\n",
        r.playbooks.len(),
        r.migrations.len()
    ));
    if !r.compose.is_empty() {
        o.push_str(&format!("compose   {}\n", r.compose.join(", ")));
    }
    if r.delta_base.is_empty() {
        o.push_str("delta     no (full bundle)\n");
    } else {
        for d in &r.delta_base {
            o.push_str(&format!(
                "delta     base {} {} ({})\n",
                d.product,
                d.version,
                d.bundle_id.short()
            ));
        }
        o.push_str(&format!(
            "          {} blobs must already be on the site\n",
            r.missing_blobs.len()
        ));
    }
    o
}

/// `      3 layers (1.2 MiB): 2 shared with other images, 1 only here; 1 new in this file`
fn image_layers_line(i: &crate::report::bundle::InspectImage) -> String {
    let n = i.layers.len();
    let size: u64 = i.layers.iter().map(|l| l.size).sum();
    let shared = i
        .layers
        .iter()
        .filter(|l| !l.shared_with.is_empty())
        .count();
    let new = i.layers.iter().filter(|l| l.in_bundle).count();
    let mut s = format!(
        "      {n} layer{} ({}): {shared} shared with other images, {} only here",
        if n == 1 { "" } else { "s" },
        bytes(size),
        n - shared
    );
    if new < n {
        s.push_str(&format!("; {new} in this file, {} from the base", n - new));
    }
    s.push('\n');
    s
}

/// The layers several images use, largest first: what deduplication stores once.
fn shared_layers(r: &InspectReport) -> String {
    let mut seen = std::collections::BTreeMap::new();
    for i in &r.images {
        for l in i.layers.iter().filter(|l| !l.shared_with.is_empty()) {
            seen.entry(l.digest).or_insert_with(|| {
                let mut users = l.shared_with.clone();
                users.push(i.name.clone());
                users.sort();
                (l.size, users)
            });
        }
    }
    if seen.is_empty() {
        return String::new();
    }
    let mut rows: Vec<_> = seen.into_iter().collect();
    rows.sort_by(|a, b| b.1 .0.cmp(&a.1 .0).then(a.0.cmp(&b.0)));
    let mut o = format!(
        "shared    {} layer(s) stored once for several images\n",
        rows.len()
    );
    for (d, (size, users)) in rows {
        o.push_str(&format!(
            "  {}  {:>10}  {} images: {}\n",
            d.short(),
            bytes(size),
            users.len(),
            users.join(", ")
        ));
    }
    o
}
