//! `darkport registry fetch`: fill this node's CAS from another darkport registry of the site.
//!
//! Runs ON a registry host (the installer starts it over SSH with the binary it placed there),
//! so a blob the first registry host already holds travels host to host inside the site
//! instead of crossing the operator's link once per registry host. Each blob is downloaded to
//! `<hex>.fetch`, its sha256 checked while it streams (oci-client also checks the
//! registry's `Docker-Content-Digest`), then renamed into place read-only. Blobs already
//! present are skipped.

use crate::digest::Digest;
use futures_util::StreamExt;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::path::{Path, PathBuf};
use tokio::io::AsyncWriteExt;

#[derive(Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct FetchReport {
    pub fetched: usize,
    pub bytes: u64,
    pub present: usize,
}

/// Why a fetch failed; each names the item, file or blob (with its source registry).
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{item:?}: {reason}")]
    BadItem { item: String, reason: String },
    #[error("{op} {}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to start the async runtime")]
    Runtime(#[source] std::io::Error),
    #[error("{what}: {msg}")]
    Pull { what: String, msg: String },
    #[error("{what}: the bytes do not match the digest")]
    Mismatch { what: String },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> FetchError + 'a {
    move |source| FetchError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// Parse `REPOSITORY@sha256:HEX`.
fn parse_item(s: &str) -> Result<(String, Digest), FetchError> {
    let bad = |reason: String| FetchError::BadItem {
        item: s.to_string(),
        reason,
    };
    let (repo, d) = s
        .rsplit_once('@')
        .ok_or_else(|| bad("expected REPOSITORY@sha256:HEX".into()))?;
    let d: Digest = d.parse().map_err(|e| bad(format!("bad digest: {e}")))?;
    if repo.is_empty() {
        return Err(bad("no repository".into()));
    }
    Ok((repo.to_string(), d))
}

pub fn fetch(
    root: &Path,
    from: &str,
    ca: &Path,
    parallel: usize,
    items: &[String],
) -> Result<FetchReport, FetchError> {
    let items: Vec<(String, Digest)> = items
        .iter()
        .map(|s| parse_item(s))
        .collect::<Result<_, _>>()?;
    let dir = root.join("blobs/sha256");
    std::fs::create_dir_all(&dir).map_err(io_err("creating", &dir))?;
    let pem = std::fs::read(ca).map_err(io_err("reading", ca))?;
    let client = Client::new(super::client::config(Some(pem), None));
    let rt = super::client::runtime().map_err(FetchError::Runtime)?;
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
                let pull = |e: oci_client::errors::OciDistributionError| FetchError::Pull {
                    what: what(),
                    msg: e.to_string(),
                };
                client
                    .auth(
                        &r,
                        &RegistryAuth::Anonymous,
                        oci_client::RegistryOperation::Pull,
                    )
                    .await
                    .map_err(pull)?;
                let part = dir.join(format!("{}.fetch", d.hex()));
                let mut f = tokio::fs::File::create(&part)
                    .await
                    .map_err(io_err("creating", &part))?;
                let mut s = client
                    .pull_blob_stream(&r, d.to_string().as_str())
                    .await
                    .map_err(pull)?;
                let mut h = Sha256::new();
                let mut n = 0u64;
                while let Some(chunk) = s.next().await {
                    let chunk = chunk.map_err(|e| FetchError::Pull {
                        what: what(),
                        msg: e.to_string(),
                    })?;
                    h.update(&chunk);
                    n += chunk.len() as u64;
                    f.write_all(&chunk)
                        .await
                        .map_err(io_err("writing", &part))?;
                }
                f.sync_all().await.map_err(io_err("writing", &part))?;
                drop(f);
                if Digest::from_bytes(h.finalize().into()) != d {
                    let _ = tokio::fs::remove_file(&part).await;
                    return Err(FetchError::Mismatch { what: what() });
                }
                let dest = dir.join(d.hex());
                let mut perm = tokio::fs::metadata(&part)
                    .await
                    .map_err(io_err("reading", &part))?
                    .permissions();
                std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o444);
                tokio::fs::set_permissions(&part, perm)
                    .await
                    .map_err(io_err("making read-only", &part))?;
                tokio::fs::rename(&part, &dest)
                    .await
                    .map_err(io_err("renaming into place", &part))?;
                Ok::<u64, FetchError>(n)
            }
        };
        let mut s = futures_util::stream::iter(todo.into_iter().map(|(r, d)| one(r, d)))
            .buffer_unordered(parallel.max(1));
        while let Some(r) = s.next().await {
            rep.bytes += r?;
            rep.fetched += 1;
        }
        Ok::<(), FetchError>(())
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
