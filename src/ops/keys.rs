//! Signing keys: generate a key pair, load the secret key a build signs with.

use crate::bundle::SigningKey;
use anyhow::Context;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// A generated key pair.
#[derive(Serialize)]
pub struct KeygenReport {
    pub secret_key: PathBuf,
    pub public_key: PathBuf,
    pub key_id: String,
    /// The secret key is password-protected.
    pub encrypted: bool,
}

/// Write `<out>.key` / `<out>.pub` (refusing to overwrite unless `force`).
pub fn keygen(out: &Path, password: Option<String>, force: bool) -> anyhow::Result<KeygenReport> {
    let encrypted = password.is_some();
    let (sk, pk, id) = crate::bundle::keygen(out, password, force)
        .with_context(|| format!("failed to generate a key pair at {}", out.display()))?;
    Ok(KeygenReport {
        secret_key: sk,
        public_key: pk,
        key_id: id,
        encrypted,
    })
}

/// Load the secret key at `path`; `password` is asked for only when the key is encrypted.
pub fn load_signing_key(
    path: &Path,
    password: impl FnOnce() -> anyhow::Result<String>,
) -> anyhow::Result<SigningKey> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("failed to read signing key {}", path.display()))?;
    let pw = match SigningKey::is_encrypted_text(&text) {
        Some(true) => Some(password()?),
        _ => None,
    };
    SigningKey::load(path, pw).context("cannot sign the bundle")
}
