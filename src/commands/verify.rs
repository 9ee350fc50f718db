//! `darkport verify`: the signature and every member of a bundle checked.

use crate::cli::bundle::VerifyArgs;
use crate::ops::bundle_info;
use crate::ops::site::BundleTrust;
use crate::ui::{bundle::BundleProgress, print_json, ProgressMode};

pub fn run(a: VerifyArgs, progress: ProgressMode) -> anyhow::Result<i32> {
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
    let r = bundle_info::verify(&o, &BundleProgress::new(progress))?;
    if a.json {
        print_json(&r);
    } else {
        print!("{}", crate::ui::bundle::verify_text(&r));
    }
    Ok(0)
}
