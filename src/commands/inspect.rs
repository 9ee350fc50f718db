//! `darkport inspect`: what a bundle holds.

use crate::cli::bundle::InspectArgs;
use crate::ops::bundle_info;
use crate::ops::site::BundleTrust;
use crate::ui::{bundle::BundleProgress, print_json, ProgressMode};
use anyhow::Context;

pub fn run(a: InspectArgs, progress: ProgressMode) -> anyhow::Result<i32> {
    let o = BundleTrust {
        bundle: a.bundle.clone(),
        pubkeys: a.pubkey.clone(),
        allow_unsigned: a.allow_unsigned,
    };
    let progress = if a.json {
        ProgressMode::Quiet
    } else {
        progress
    };
    let r = bundle_info::inspect(&o, !a.manifest_only, &BundleProgress::new(progress))?;
    if let Some(p) = &a.html {
        std::fs::write(p, crate::ui::inspect_html::page(&r))
            .with_context(|| format!("writing {}", p.display()))?;
        eprintln!("wrote {}", p.display());
    }
    if a.json {
        print_json(&r);
    } else {
        print!("{}", crate::ui::bundle::inspect_text(&r));
    }
    Ok(0)
}
