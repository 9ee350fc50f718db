//! `darkport registry fetch`: fill this node's CAS from another darkport registry of the site.
//!
//! Runs ON a registry host (the installer starts it over SSH with the binary it placed there),
//! so a blob the first registry host already holds travels host to host inside the site
//! instead of crossing the operator's link once per registry host. Each blob is downloaded to
//! `<hex>.fetch`, its sha256 checked while it streams (oci-client also checks the
//! registry's `Docker-Content-Digest`), then renamed into place read-only. Blobs already
//! present are skipped.

use crate::digest::Digest;
use anyhow::{bail, Context};
use futures_util::StreamExt;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::path::Path;
use tokio::io::AsyncWriteExt;

#[derive(Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct FetchReport {
    pub fetched: usize,
    pub bytes: u64,
    pub present: usize,
}

/// Parse `REPOSITORY@sha256:HEX`.
fn parse_item(s: &str) -> anyhow::Result<(String, Digest)> {
    let (repo, d) = s
        .rsplit_once('@')
        .with_context(|| format!("{s:?}: expected REPOSITORY@sha256:HEX"))?;
    let d: Digest = d
        .parse()
        .map_err(|e| anyhow::anyhow!("{s:?}: bad digest: {e}"))?;
    if repo.is_empty() {
        bail!("{s:?}: no repository");
    }
    Ok((repo.to_string(), d))
}

pub fn fetch(
    root: &Path,
    from: &str,
    ca: &Path,
    parallel: usize,
    items: &[String],
) -> anyhow::Result<FetchReport> {
    let items: Vec<(String, Digest)> = items
        .iter()
        .map(|s| parse_item(s))
        .collect::<anyhow::Result<_>>()?;
    let dir = root.join("blobs/sha256");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let pem = std::fs::read(ca).with_context(|| format!("reading {}", ca.display()))?;
    let client = Client::new(super::client::config(Some(pem), None));
    let rt = super::client::runtime()?;
    let mut rep = FetchReport::default();
    let todo: Vec<(String, Digest)> = items
        .into_iter()
        .filter(|(_, d)| {
            let have = dir.join(d.hex()).exists();
            if have {
                rep.present += 1;
            }
            !have
        })
        .collect();
    rt.block_on(async {
        let one = |repo: String, d: Digest| {
            let client = client.clone();
            let dir = dir.clone();
            async move {
                let r = Reference::with_digest(from.to_string(), repo.clone(), d.to_string());
                let what = || format!("blob {d} of {repo} from {from}");
                client
                    .auth(
                        &r,
                        &RegistryAuth::Anonymous,
                        oci_client::RegistryOperation::Pull,
                    )
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))
                    .with_context(what)?;
                let part = dir.join(format!("{}.fetch", d.hex()));
                let mut f = tokio::fs::File::create(&part)
                    .await
                    .with_context(|| format!("creating {}", part.display()))?;
                let mut s = client
                    .pull_blob_stream(&r, d.to_string().as_str())
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))
                    .with_context(what)?;
                let mut h = Sha256::new();
                let mut n = 0u64;
                while let Some(chunk) = s.next().await {
                    let chunk = chunk
                        .map_err(|e| anyhow::anyhow!("{e}"))
                        .with_context(what)?;
                    h.update(&chunk);
                    n += chunk.len() as u64;
                    f.write_all(&chunk).await?;
                }
                f.sync_all().await?;
                drop(f);
                if Digest::from_bytes(h.finalize().into()) != d {
                    let _ = tokio::fs::remove_file(&part).await;
                    bail!("{}: the bytes do not match the digest", what());
                }
                let dest = dir.join(d.hex());
                let mut perm = tokio::fs::metadata(&part).await?.permissions();
                std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o444);
                tokio::fs::set_permissions(&part, perm).await?;
                tokio::fs::rename(&part, &dest).await?;
                anyhow::Ok(n)
            }
        };
        let mut s = futures_util::stream::iter(todo.into_iter().map(|(r, d)| one(r, d)))
            .buffer_unordered(parallel.max(1));
        while let Some(r) = s.next().await {
            rep.bytes += r?;
            rep.fetched += 1;
        }
        anyhow::Ok(())
    })?;
    Ok(rep)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_name_a_repository_and_a_digest() {
        let d = Digest::of(b"x");
        let (r, got) = parse_item(&format!("dockercoins/rng@{d}")).unwrap();
        assert_eq!((r.as_str(), got), ("dockercoins/rng", d));
        assert!(parse_item("dockercoins/rng").is_err());
        assert!(parse_item(&format!("@{d}")).is_err());
        assert!(parse_item("a@sha256:zz").is_err());
    }
}
