//! Which public keys a command trusts, and where they are looked up by default.
//!
//! Order: every `--pubkey FILE` given; else `$DARKPORT_PUBKEY`; else
//! `$XDG_CONFIG_HOME/darkport/trusted.pub` (default `~/.config/darkport/trusted.pub`);
//! else `/etc/darkport/trusted.pub`. No key and no `--allow-unsigned` is an error.

use crate::bundle::{Trust, TrustedKey};
use crate::report::Hint;
use anyhow::Context;
use std::path::PathBuf;

/// Default key locations, in lookup order.
pub fn default_pubkey_paths() -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Ok(p) = std::env::var("DARKPORT_PUBKEY") {
        if !p.is_empty() {
            v.push(PathBuf::from(p));
            return v;
        }
    }
    let cfg = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")));
    if let Some(c) = cfg {
        v.push(c.join("darkport").join("trusted.pub"));
    }
    v.push(PathBuf::from("/etc/darkport/trusted.pub"));
    v
}

/// Build the trust set from explicit keys or the default locations.
pub fn resolve(pubkeys: &[PathBuf], allow_unsigned: bool) -> anyhow::Result<Trust> {
    let mut keys = Vec::new();
    for p in pubkeys {
        keys.push(
            TrustedKey::load(p)
                .with_context(|| format!("failed to load public key {}", p.display()))?,
        );
    }
    if keys.is_empty() {
        let defaults = default_pubkey_paths();
        let explicit_env = std::env::var("DARKPORT_PUBKEY").is_ok_and(|s| !s.is_empty());
        for p in &defaults {
            if p.exists() || explicit_env {
                keys.push(
                    TrustedKey::load(p)
                        .with_context(|| format!("failed to load public key {}", p.display()))?,
                );
                break;
            }
        }
        if keys.is_empty() && !allow_unsigned {
            let list: Vec<String> = defaults.iter().map(|p| p.display().to_string()).collect();
            return Err(anyhow::anyhow!("no trusted public key found (looked in {})", list.join(", ")))
                .context(Hint(
                    "pass --pubkey FILE.pub (the .pub written by `darkport keygen`), or set DARKPORT_PUBKEY".into(),
                ))
                .context("cannot check the bundle signature");
        }
    }
    Ok(Trust {
        keys,
        allow_unsigned,
    })
}
