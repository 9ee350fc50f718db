//! `registry: {external: URL, ...}` in the inventory: instead of seeding darkport's own registry
//! on the site, push the bundle's images into a registry the site already runs.
//!
//! ```yaml
//! all:
//!   vars:
//!     registry:
//!       external: https://registry.site.example:5000/product   # path = namespace prefix
//!       ca: /etc/pki/site-ca.pem      # controller-side CA file; also written to the nodes
//!       username: darkport            # basic/bearer credentials (password from the
//!       password_env: SITE_REG_PASS   #   named environment variable, never the inventory)
//!       parallel: 4
//! ```
//!
//! Each blob goes over the link once: the first repository that needs it gets it (HEAD first:
//! what the registry has is skipped), every other repository mounts it from there (a registry
//! that declines the mount gets the upload). Uploads stream from the bundle file (monolithic
//! PUT), several in parallel. Manifests are pushed with their exact bytes, children before
//! the index, the tag last.

use crate::bundle::manifest::Manifest;
use crate::bundle::Bundle;
use crate::digest::Digest;
use crate::node::push::BlobSource;
use anyhow::{bail, Context};
use futures_util::StreamExt;
use oci_client::client::ClientConfig;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

/// The site's own registry, from the inventory's `registry` variable.
#[derive(Clone, Debug)]
pub struct External {
    /// `host[:port]`.
    pub host: String,
    /// Repository prefix (`""` or `"a/b/"`).
    pub namespace: String,
    pub plain_http: bool,
    pub ca: Option<PathBuf>,
    pub username: Option<String>,
    pub password_env: Option<String>,
    pub parallel: usize,
}

pub use crate::report::site::ExternalReport;

impl External {
    /// Parse the `registry` inventory variable; `None` when it has no `external` key.
    pub fn from_var(v: Option<&Value>) -> anyhow::Result<Option<External>> {
        let Some(v) = v else { return Ok(None) };
        let Some(map) = v.as_object() else {
            bail!("inventory variable `registry` must be a mapping like {{external: URL}}, not {v}")
        };
        let Some(url) = map.get("external") else {
            return Ok(None);
        };
        let url = url
            .as_str()
            .ok_or_else(|| anyhow::anyhow!("registry.external must be a URL string"))?;
        for k in map.keys() {
            if !["external", "ca", "username", "password_env", "parallel"].contains(&k.as_str()) {
                bail!("registry.{k}: unknown key (known: external, ca, username, password_env, parallel)");
            }
        }
        let (plain_http, rest) = if let Some(r) = url.strip_prefix("http://") {
            (true, r)
        } else {
            (false, url.strip_prefix("https://").unwrap_or(url))
        };
        let rest = rest.trim_end_matches('/');
        let (host, ns) = rest.split_once('/').unwrap_or((rest, ""));
        if host.is_empty() {
            bail!("registry.external {url:?}: no host");
        }
        let s = |k: &str| map.get(k).and_then(|v| v.as_str()).map(String::from);
        let parallel = match map.get("parallel") {
            None => 4,
            Some(v) => v
                .as_u64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                .filter(|n| *n >= 1)
                .ok_or_else(|| anyhow::anyhow!("registry.parallel must be a number >= 1"))?
                as usize,
        };
        Ok(Some(External {
            host: host.to_string(),
            namespace: if ns.is_empty() {
                String::new()
            } else {
                format!("{ns}/")
            },
            plain_http,
            ca: s("ca").map(PathBuf::from),
            username: s("username"),
            password_env: s("password_env"),
            parallel,
        }))
    }

    /// `host/namespace` as the nodes' runtimes name it (`darkport_registry`).
    pub fn address(&self) -> String {
        format!("{}/{}", self.host, self.namespace)
            .trim_end_matches('/')
            .to_string()
    }

    /// The pullable reference of a bundle image (`name:tag`).
    pub fn reference(&self, image: &str) -> String {
        format!("{}/{}{image}", self.host, self.namespace)
    }

    /// The CA certificate the nodes must trust for this registry, if one was given.
    pub fn ca_pem(&self) -> anyhow::Result<Option<Vec<u8>>> {
        match &self.ca {
            None => Ok(None),
            Some(p) => std::fs::read(p)
                .map(Some)
                .with_context(|| format!("registry.ca: reading {}", p.display())),
        }
    }

    fn client(&self) -> anyhow::Result<(Client, RegistryAuth)> {
        let plain = self.plain_http.then_some(self.host.as_str());
        let config = ClientConfig {
            use_monolithic_push: true,
            read_timeout: Some(Duration::from_secs(300)),
            ..crate::registry::client::config(self.ca_pem()?, plain)
        };
        let auth = match &self.username {
            Some(u) => {
                let var = self
                    .password_env
                    .clone()
                    .unwrap_or_else(|| "DARKPORT_REGISTRY_PASSWORD".into());
                RegistryAuth::Basic(u.clone(), std::env::var(&var).unwrap_or_default())
            }
            None => RegistryAuth::Anonymous,
        };
        Ok((Client::new(config), auth))
    }

    fn repo_ref(&self, repo: &str, tag_or_digest: &str) -> Reference {
        let repository = format!("{}{repo}", self.namespace);
        if tag_or_digest.starts_with("sha256:") {
            Reference::with_digest(self.host.clone(), repository, tag_or_digest.into())
        } else {
            Reference::with_tag(self.host.clone(), repository, tag_or_digest.into())
        }
    }

    /// Check the registry answers `/v2/` (200, or 401 when it wants credentials).
    pub fn check(&self) -> anyhow::Result<()> {
        let (client, auth) = self.client()?;
        let rt = runtime()?;
        let r = self.repo_ref("darkport-preflight", "probe");
        rt.block_on(async {
            match client.auth(&r, &auth, RegistryOperation::Pull).await {
                Ok(_) => Ok(()),
                Err(e) => Err(anyhow::anyhow!("{e}")),
            }
        })
        .with_context(|| format!("external registry {} does not answer", self.host))?;
        // `auth` does not touch the network for anonymous access: ask for a blob that does not
        // exist, which any reachable registry answers.
        let missing = Digest::of(b"darkport preflight").to_string();
        rt.block_on(client.blob_exists(&r, &missing))
            .map(|_| ())
            .map_err(|e| anyhow::anyhow!("{e}"))
            .with_context(|| format!("external registry {} does not answer", self.host))
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    crate::registry::client::runtime().context("starting the async runtime")
}

/// `name:tag` split at the tag's colon (the one after the last `/`).
fn split_tag(name: &str) -> (&str, &str) {
    let slash = name.rfind('/').map(|i| i + 1).unwrap_or(0);
    match name[slash..].rfind(':') {
        Some(i) => (&name[..slash + i], &name[slash + i + 1..]),
        None => (name, "latest"),
    }
}

/// One manifest to push: repository, digest, media type, exact bytes, tag (top level only).
struct ManifestPush {
    repo: String,
    digest: Digest,
    media_type: String,
    bytes: Vec<u8>,
    tag: Option<String>,
}

fn read_blob(b: &Bundle, d: &Digest) -> anyhow::Result<Vec<u8>> {
    let (mut r, size) = BlobSource::open_blob(b, d)?;
    let mut v = Vec::with_capacity(size as usize);
    r.read_to_end(&mut v)?;
    Ok(v)
}

/// Per repository, the blobs (configs and layers) its manifests reference.
type RepoBlobs = BTreeMap<String, BTreeSet<Digest>>;

/// Walk every image: the manifests (children first, then the top one with its tag) and, per
/// repository, the blobs (configs and layers) they reference.
fn plan(b: &Bundle, m: &Manifest) -> anyhow::Result<(Vec<ManifestPush>, RepoBlobs)> {
    let mut manifests = Vec::new();
    let mut blobs = RepoBlobs::new();
    for img in &m.images {
        let (repo, tag) = split_tag(&img.name);
        let top = read_blob(b, &img.digest)
            .with_context(|| format!("reading the manifest of {}", img.name))?;
        let doc: Value = serde_json::from_slice(&top)
            .with_context(|| format!("manifest of {} is not JSON", img.name))?;
        let mut image_manifests = vec![(img.digest, img.media_type.clone(), top, doc)];
        if let Some(children) = image_manifests[0].3["manifests"].as_array().cloned() {
            for c in children {
                let d: Digest = c["digest"]
                    .as_str()
                    .and_then(|s| s.parse().ok())
                    .with_context(|| format!("{}: a child manifest without a digest", img.name))?;
                let mt = c["mediaType"].as_str().unwrap_or_default().to_string();
                let bytes = read_blob(b, &d)?;
                let doc: Value = serde_json::from_slice(&bytes)?;
                image_manifests.push((d, mt, bytes, doc));
            }
        }
        let set = blobs.entry(repo.to_string()).or_default();
        // Children (platform manifests) first, the top manifest (tagged) last.
        for (i, (d, mt, bytes, doc)) in image_manifests.into_iter().enumerate().rev() {
            for desc in std::iter::once(&doc["config"]).chain(
                doc["layers"]
                    .as_array()
                    .map(|a| a.iter().collect::<Vec<_>>())
                    .unwrap_or_default(),
            ) {
                if let Some(x) = desc["digest"].as_str().and_then(|s| s.parse().ok()) {
                    set.insert(x);
                }
            }
            manifests.push(ManifestPush {
                repo: repo.to_string(),
                digest: d,
                media_type: mt,
                bytes,
                tag: (i == 0).then(|| tag.to_string()),
            });
        }
    }
    Ok((manifests, blobs))
}

/// A blocking reader turned into a stream of chunks (read on a blocking thread).
fn reader_stream(
    mut r: Box<dyn crate::transport::ReadSeek>,
) -> impl futures_util::Stream<Item = oci_client::errors::Result<bytes::Bytes>> + Send + 'static {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::task::spawn_blocking(move || loop {
        let mut buf = vec![0u8; 1 << 20];
        match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                buf.truncate(n);
                if tx.blocking_send(Ok(bytes::Bytes::from(buf))).is_err() {
                    break;
                }
            }
            Err(e) => {
                let _ = tx.blocking_send(Err(oci_client::errors::OciDistributionError::IoError(e)));
                break;
            }
        }
    });
    tokio_stream_from(rx)
}

fn tokio_stream_from<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> + Send + 'static {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// Push every image of the bundle into the external registry.
pub fn push(
    b: &Bundle,
    m: &Manifest,
    ext: &External,
    line: &(dyn Fn(&str) + Sync),
) -> anyhow::Result<ExternalReport> {
    let (manifests, blobs) = plan(b, m)?;
    let (client, auth) = ext.client()?;
    let sizes: BTreeMap<Digest, u64> = m.blobs.iter().map(|x| (x.digest, x.size)).collect();
    let rt = runtime()?;
    let mut rep = ExternalReport {
        registry: ext.address(),
        ..Default::default()
    };
    rt.block_on(async {
        for repo in blobs.keys() {
            client
                .auth(&ext.repo_ref(repo, "x"), &auth, RegistryOperation::Push)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))
                .with_context(|| format!("authenticating to {} for {repo}", ext.host))?;
        }
        // Each digest's first repository uploads it; the others mount it from there.
        let mut first: BTreeMap<Digest, String> = BTreeMap::new();
        let mut rest: Vec<(String, Digest)> = Vec::new();
        for (repo, ds) in &blobs {
            for d in ds {
                if first.contains_key(d) {
                    rest.push((repo.clone(), *d));
                } else {
                    first.insert(*d, repo.clone());
                }
            }
        }
        #[derive(PartialEq)]
        enum Done {
            Present,
            Sent(u64),
            Mounted,
        }
        let upload = |repo: String, d: Digest, mount_from: Option<String>| {
            let client = client.clone();
            async move {
                let r = ext.repo_ref(&repo, &d.to_string());
                let what = || format!("blob {d} to {}/{}{repo}", ext.host, ext.namespace);
                if client
                    .blob_exists(&r, &d.to_string())
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))
                    .with_context(what)?
                {
                    return anyhow::Ok(Done::Present);
                }
                if let Some(from) = mount_from {
                    let src = ext.repo_ref(&from, &d.to_string());
                    if client.mount_blob(&r, &src, &d.to_string()).await.is_ok() {
                        return Ok(Done::Mounted);
                    }
                }
                let (reader, size) = BlobSource::open_blob(b, &d).with_context(|| {
                    format!(
                        "{}: not in the bundle and not in the registry (a delta bundle needs its base pushed first)",
                        what()
                    )
                })?;
                client
                    .push_blob_stream(&r, reader_stream(reader), &d.to_string(), Some(size))
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))
                    .with_context(what)?;
                Ok(Done::Sent(size))
            }
        };
        let mut count = |res: anyhow::Result<Done>| -> anyhow::Result<()> {
            match res? {
                Done::Present => rep.blobs_present += 1,
                Done::Mounted => rep.blobs_mounted += 1,
                Done::Sent(n) => {
                    rep.blobs_sent += 1;
                    rep.bytes_sent += n;
                }
            }
            Ok(())
        };
        let total: u64 = first.keys().filter_map(|d| sizes.get(d)).sum();
        line(&format!(
            "pushing {} blob(s) ({} at most) into {}",
            first.len(),
            crate::report::bytes(total),
            ext.address()
        ));
        let mut s = futures_util::stream::iter(
            first
                .iter()
                .map(|(d, repo)| upload(repo.clone(), *d, None)),
        )
        .buffer_unordered(ext.parallel);
        while let Some(r) = s.next().await {
            count(r)?;
        }
        drop(s);
        let mut s = futures_util::stream::iter(rest.iter().map(|(repo, d)| {
            let from = first.get(d).cloned();
            upload(repo.clone(), *d, from)
        }))
        .buffer_unordered(ext.parallel);
        while let Some(r) = s.next().await {
            count(r)?;
        }
        drop(s);
        for mp in &manifests {
            let ct = axum::http::HeaderValue::from_str(&mp.media_type)
                .with_context(|| format!("media type {:?}", mp.media_type))?;
            let by = mp.tag.clone().unwrap_or_else(|| mp.digest.to_string());
            let r = ext.repo_ref(&mp.repo, &by);
            client
                .push_manifest_raw(&r, mp.bytes.clone(), ct)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))
                .with_context(|| format!("pushing manifest {by} of {}", mp.repo))?;
            rep.manifests += 1;
            rep.manifest_bytes += mp.bytes.len() as u64;
        }
        anyhow::Ok(())
    })?;
    Ok(rep)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_registry_variable() {
        let v: Value = serde_json::json!({"external": "https://reg.site:5443/prod/x/", "parallel": 8, "username": "u"});
        let e = External::from_var(Some(&v)).unwrap().unwrap();
        assert_eq!(e.host, "reg.site:5443");
        assert_eq!(e.namespace, "prod/x/");
        assert!(!e.plain_http);
        assert_eq!(e.parallel, 8);
        assert_eq!(e.address(), "reg.site:5443/prod/x");
        assert_eq!(e.reference("a/b:1"), "reg.site:5443/prod/x/a/b:1");
        let v: Value = serde_json::json!({"external": "http://127.0.0.1:5000"});
        let e = External::from_var(Some(&v)).unwrap().unwrap();
        assert!(e.plain_http);
        assert_eq!(e.address(), "127.0.0.1:5000");
        assert!(External::from_var(None).unwrap().is_none());
        assert!(External::from_var(Some(&serde_json::json!({"other": 1})))
            .unwrap()
            .is_none());
        let bad = External::from_var(Some(&serde_json::json!({"external": "x", "pasword": 1})));
        assert!(bad.unwrap_err().to_string().contains("registry.pasword"));
        assert!(External::from_var(Some(&serde_json::json!("x"))).is_err());
    }

    #[test]
    fn splits_the_tag() {
        assert_eq!(split_tag("a/b:1.0"), ("a/b", "1.0"));
        assert_eq!(split_tag("host:5000/a/b"), ("host:5000/a/b", "latest"));
        assert_eq!(split_tag("b"), ("b", "latest"));
    }
}
