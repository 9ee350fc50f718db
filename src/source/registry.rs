//! `docker://` — images pulled from a registry with oci-client. Manifests are fetched raw
//! (exact bytes, digest checked), blobs streamed into the store and verified.

use super::{BlobAccess, Descriptor, FetchContext, ResolvedImage, SourceError};
use super::{DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST};
use crate::digest::Digest;
use futures_util::StreamExt;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

/// Per-registry settings from the bundle spec's `registries:` map (key = `host[:port]`).
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RegistrySettings {
    /// Talk plain HTTP (opt-in; e.g. a local build registry on 127.0.0.1).
    #[serde(default)]
    pub plain_http: bool,
    /// Accept any TLS certificate (testing only).
    #[serde(default)]
    pub insecure_tls: bool,
    /// Basic auth user name; the password comes from the environment variable
    /// `password_env` (default `DARKPORT_REGISTRY_PASSWORD`).
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password_env: Option<String>,
}

#[derive(Clone, Debug, Default)]
pub struct RegistryOptions {
    pub registries: BTreeMap<String, RegistrySettings>,
}

impl RegistryOptions {
    fn settings(&self, host: &str) -> RegistrySettings {
        self.registries.get(host).cloned().unwrap_or_default()
    }
}

struct RegistryAccess {
    rt: tokio::runtime::Runtime,
    client: Client,
    auth: RegistryAuth,
    reference: Reference,
    registry: String,
}

fn reg_err(
    registry: &str,
    op: &'static str,
    reference: &str,
    e: impl std::error::Error + Send + Sync + 'static,
) -> SourceError {
    SourceError::Registry {
        registry: registry.to_string(),
        op,
        reference: reference.to_string(),
        source: Box::new(e),
    }
}

impl RegistryAccess {
    fn repo_ref(&self, digest: &str) -> Reference {
        Reference::with_digest(
            self.reference.registry().to_string(),
            self.reference.repository().to_string(),
            digest.to_string(),
        )
    }
}

const ACCEPT: [&str; 4] = [OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST];

impl BlobAccess for RegistryAccess {
    fn location(&self) -> String {
        format!("docker://{}", self.reference)
    }

    fn fetch_small(
        &mut self,
        cx: &mut FetchContext,
        desc: &Descriptor,
    ) -> Result<Vec<u8>, SourceError> {
        let d = desc.digest(&self.location())?;
        if cx.store.get(&d).is_some_and(|b| b.verified) {
            return cx
                .store
                .read_small(&d, super::MAX_SMALL_BLOB)
                .map_err(|source| SourceError::Store {
                    digest: desc.digest.clone(),
                    location: self.location(),
                    source: Box::new(source),
                });
        }
        let is_manifest = ACCEPT.contains(&desc.media_type.as_str());
        let r = self.repo_ref(&desc.digest);
        let bytes: Vec<u8> = if is_manifest {
            let (b, _) = self
                .rt
                .block_on(self.client.pull_manifest_raw(&r, &self.auth, &ACCEPT))
                .map_err(|e| reg_err(&self.registry, "pull manifest", &r.to_string(), e))?;
            b.to_vec()
        } else {
            let mut v = Vec::new();
            self.rt
                .block_on(self.client.pull_blob(&r, desc.digest.as_str(), &mut v))
                .map_err(|e| reg_err(&self.registry, "pull config", &r.to_string(), e))?;
            v
        };
        let got = Digest::of(&bytes);
        if got != d {
            return Err(SourceError::Malformed {
                what: format!("blob {d}"),
                location: self.location(),
                reason: format!("registry sent content hashing to {got}"),
            });
        }
        cx.store
            .put_bytes(&bytes)
            .map_err(|source| SourceError::StoreOp {
                location: self.location(),
                source: Box::new(source),
            })?;
        Ok(bytes)
    }

    fn fetch_blob(&mut self, cx: &mut FetchContext, desc: &Descriptor) -> Result<(), SourceError> {
        let d = desc.digest(&self.location())?;
        if cx.store.get(&d).is_some_and(|b| b.verified) {
            return Ok(());
        }
        let loc = self.location();
        let sterr = |source| SourceError::Store {
            digest: desc.digest.clone(),
            location: loc.clone(),
            source: Box::new(source),
        };
        let (tmp, mut w) = cx.store.writer("pull").map_err(sterr)?;
        let r = self.repo_ref(&desc.digest);
        let oci_desc = oci_client::manifest::OciDescriptor {
            media_type: desc.media_type.clone(),
            digest: desc.digest.clone(),
            size: desc.size as i64,
            ..Default::default()
        };
        let rep = cx.reporter;
        let res: Result<(), SourceError> = self.rt.block_on(async {
            let mut s = self
                .client
                .pull_blob_stream(&r, &oci_desc)
                .await
                .map_err(|e| reg_err(&self.registry, "pull blob", &r.to_string(), e))?;
            while let Some(chunk) = s.stream.next().await {
                let chunk =
                    chunk.map_err(|e| reg_err(&self.registry, "read blob", &r.to_string(), e))?;
                w.write_all(&chunk).map_err(|source| SourceError::Io {
                    what: "downloaded blob",
                    path: tmp.clone(),
                    source,
                })?;
                rep.bytes(chunk.len() as u64);
            }
            Ok(())
        });
        if let Err(e) = res {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        cx.store
            .commit(tmp, w, Some((d, Some(desc.size))), &loc)
            .map_err(sterr)?;
        Ok(())
    }
}

pub(crate) fn fetch(
    reference: &str,
    name: &str,
    cx: &mut FetchContext,
) -> Result<ResolvedImage, SourceError> {
    let r: Reference =
        reference
            .parse()
            .map_err(|e: oci_client::ParseError| SourceError::Syntax {
                source_str: format!("docker://{reference}"),
                reason: e.to_string(),
            })?;
    let host = r.registry().to_string();
    let st = cx.registry.settings(&host);
    let protocol = if st.plain_http {
        ClientProtocol::HttpsExcept(vec![host.clone()])
    } else {
        ClientProtocol::Https
    };
    let config = ClientConfig {
        protocol,
        accept_invalid_certificates: st.insecure_tls,
        connect_timeout: Some(Duration::from_secs(10)),
        read_timeout: Some(Duration::from_secs(120)),
        ..Default::default()
    };
    let auth = match &st.username {
        Some(u) => {
            let var = st
                .password_env
                .clone()
                .unwrap_or_else(|| "DARKPORT_REGISTRY_PASSWORD".into());
            RegistryAuth::Basic(u.clone(), std::env::var(&var).unwrap_or_default())
        }
        None => RegistryAuth::Anonymous,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| SourceError::Io {
            what: "(start async runtime for)",
            path: reference.into(),
            source,
        })?;
    let client = Client::new(config);
    let (bytes, digest) = rt
        .block_on(client.pull_manifest_raw(&r, &auth, &ACCEPT))
        .map_err(|e| reg_err(&host, "pull manifest", reference, e))?;
    let d = Digest::of(&bytes);
    if !digest.is_empty() && digest != d.to_string() {
        return Err(SourceError::Malformed {
            what: format!("manifest {reference}"),
            location: format!("docker://{reference}"),
            reason: format!("registry says digest {digest}, content hashes to {d}"),
        });
    }
    if let Some(pinned) = r.digest() {
        if pinned != d.to_string() {
            return Err(SourceError::Malformed {
                what: format!("manifest {reference}"),
                location: format!("docker://{reference}"),
                reason: format!("content hashes to {d}"),
            });
        }
    }
    #[derive(Deserialize)]
    struct Probe {
        #[serde(rename = "mediaType", default)]
        media_type: Option<String>,
        #[serde(default)]
        manifests: Option<serde_json::Value>,
    }
    let probe: Probe = super::parse_json(&bytes, "manifest", &format!("docker://{reference}"))?;
    let media_type = probe.media_type.unwrap_or_else(|| {
        if probe.manifests.is_some() {
            OCI_INDEX.into()
        } else {
            OCI_MANIFEST.into()
        }
    });
    cx.store
        .put_bytes(&bytes)
        .map_err(|source| SourceError::StoreOp {
            location: format!("docker://{reference}"),
            source: Box::new(source),
        })?;
    let top = Descriptor {
        media_type,
        digest: d.to_string(),
        size: bytes.len() as u64,
        platform: None,
        annotations: None,
        urls: None,
    };
    let mut acc = RegistryAccess {
        rt,
        client,
        auth,
        reference: r,
        registry: host,
    };
    super::resolve(&mut acc, cx, top, name)
}
