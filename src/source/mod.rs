//! Image sources: where `build-bundle` gets a product's images from.
//!
//! A source string follows skopeo's transport syntax:
//!
//! | source | meaning |
//! |---|---|
//! | `oci:DIR[:REF]` | an OCI image layout directory; `REF` = `org.opencontainers.image.ref.name` |
//! | `oci-archive:FILE[:REF]` | the same layout inside an (uncompressed) tar |
//! | `docker-archive:FILE[:NAME\|:@N]` | `docker save` output, gzipped or not, one or many images |
//! | `docker://HOST[:PORT]/REPO[:TAG\|@DIGEST]` | a registry (oci-client) |
//! | `dir:DIR[,DIR...]` | darkport's own: each directory becomes one layer, config from the spec |
//!
//! [`fetch`] resolves one source into a [`ResolvedImage`]: the top manifest or index digest
//! (kept byte for byte), the platforms kept and every blob it needs, each registered in the
//! build [`Store`]. Layers of local sources are not copied: the store points at their bytes.
//! Uncompressed layers (`docker save`, `dir:`) are compressed once (zstd or gzip) and get an
//! OCI manifest.

mod archive;
mod dir;
mod layout;
mod registry;

use crate::digest::Digest;
use crate::store::{Store, StoreError};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub use dir::ImageConfigSpec;
pub use registry::RegistryOptions;
pub mod registry_settings {
    //! Per-registry settings of the bundle spec.
    pub use super::registry::RegistrySettings;
}

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
pub const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";

/// Largest manifest/index/config darkport reads into memory.
pub const MAX_SMALL_BLOB: u64 = 8 << 20;

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("invalid image source {source_str:?}: {reason}")]
    Syntax { source_str: String, reason: String },
    #[error("failed to read {what} {path}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("image {reference:?} not found in {location}{available}")]
    NotFound {
        reference: String,
        location: String,
        available: String,
    },
    #[error("malformed {what} in {location}: {reason}")]
    Malformed {
        what: String,
        location: String,
        reason: String,
    },
    #[error("image {image} from {location} has no manifest for platforms {wanted:?} (it has {available:?})")]
    NoPlatform {
        image: String,
        location: String,
        wanted: Vec<String>,
        available: Vec<String>,
    },
    #[error("blob {digest} of {location}")]
    Store {
        digest: String,
        location: String,
        #[source]
        source: Box<StoreError>,
    },
    #[error("store error while reading {location}")]
    StoreOp {
        location: String,
        #[source]
        source: Box<StoreError>,
    },
    #[error("registry {registry}: failed to {op} {reference}")]
    Registry {
        registry: String,
        op: &'static str,
        reference: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("layer {index} of {location}: its content hashes to {actual}, but the image config says diff_id {expected}")]
    DiffIdMismatch {
        index: usize,
        location: String,
        expected: String,
        actual: Digest,
    },
}

/// A parsed source string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceRef {
    Oci {
        dir: PathBuf,
        reference: Option<String>,
    },
    OciArchive {
        file: PathBuf,
        reference: Option<String>,
    },
    DockerArchive {
        file: PathBuf,
        reference: Option<String>,
    },
    Docker {
        reference: String,
    },
    Dir {
        layers: Vec<PathBuf>,
    },
}

impl SourceRef {
    /// Parse skopeo-style source syntax; relative paths are resolved against `base`.
    pub fn parse(s: &str, base: &Path) -> Result<SourceRef, SourceError> {
        let err = |reason: &str| SourceError::Syntax {
            source_str: s.to_string(),
            reason: reason.to_string(),
        };
        let (transport, rest) = s
            .split_once(':')
            .ok_or_else(|| err("expected TRANSPORT:LOCATION (oci:, oci-archive:, docker-archive:, docker://, dir:)"))?;
        if rest.is_empty() {
            return Err(err("empty location"));
        }
        // path[:ref], split at the first ':' like skopeo does on Unix.
        let path_ref = |r: &str| -> (PathBuf, Option<String>) {
            match r.split_once(':') {
                Some((p, rf)) if !rf.is_empty() => (base.join(p), Some(rf.to_string())),
                Some((p, _)) => (base.join(p), None),
                None => (base.join(r), None),
            }
        };
        Ok(match transport {
            "oci" => {
                let (dir, reference) = path_ref(rest);
                SourceRef::Oci { dir, reference }
            }
            "oci-archive" => {
                let (file, reference) = path_ref(rest);
                SourceRef::OciArchive { file, reference }
            }
            "docker-archive" => {
                let (file, reference) = path_ref(rest);
                SourceRef::DockerArchive { file, reference }
            }
            "docker" => {
                let r = rest
                    .strip_prefix("//")
                    .ok_or_else(|| err("registry sources are written docker://HOST/REPO:TAG"))?;
                oci_client::Reference::try_from(r)
                    .map_err(|e| err(&format!("bad image reference: {e}")))?;
                SourceRef::Docker {
                    reference: r.to_string(),
                }
            }
            "dir" => {
                let layers: Vec<PathBuf> = rest
                    .split(',')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(|p| base.join(p))
                    .collect();
                if layers.is_empty() {
                    return Err(err("dir: needs at least one directory"));
                }
                SourceRef::Dir { layers }
            }
            _ => return Err(err(&format!("unknown transport {transport:?}"))),
        })
    }
}

/// An OCI content descriptor (the fields darkport uses).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Descriptor {
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<String>>,
}

impl Descriptor {
    pub fn digest(&self, location: &str) -> Result<Digest, SourceError> {
        self.digest.parse().map_err(|_| SourceError::Malformed {
            what: "descriptor".into(),
            location: location.into(),
            reason: format!(
                "unsupported digest {:?} (only sha256 is supported)",
                self.digest
            ),
        })
    }
    pub fn ref_name(&self) -> Option<&str> {
        self.annotations
            .as_ref()?
            .get(REF_NAME_ANNOTATION)?
            .as_str()
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    pub fn parse(s: &str) -> Option<Platform> {
        let mut it = s.split('/');
        let os = it.next()?.to_string();
        let architecture = it.next()?.to_string();
        let variant = it.next().map(str::to_string);
        if os.is_empty() || architecture.is_empty() || it.next().is_some() {
            return None;
        }
        Some(Platform {
            architecture,
            os,
            variant,
        })
    }
    /// Does this (image) platform satisfy a wanted one? A wanted platform without variant
    /// accepts any variant; `arm64` without variant counts as `v8`.
    pub fn satisfies(&self, wanted: &Platform) -> bool {
        if self.os != wanted.os || self.architecture != wanted.architecture {
            return false;
        }
        match &wanted.variant {
            None => true,
            Some(v) => {
                let mine = self
                    .variant
                    .clone()
                    .or_else(|| (self.architecture == "arm64").then(|| "v8".to_string()));
                mine.as_deref() == Some(v.as_str())
            }
        }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

#[derive(Deserialize)]
struct IndexJson {
    #[serde(rename = "mediaType", default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

#[derive(Deserialize)]
struct ManifestJson {
    #[serde(rename = "mediaType", default)]
    media_type: Option<String>,
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Vec<Descriptor>,
    #[serde(default)]
    manifests: Option<Vec<Descriptor>>,
}

#[derive(Deserialize)]
struct ConfigPlatform {
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    os: String,
    #[serde(default)]
    variant: Option<String>,
}

/// One blob an image needs.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct BlobRef {
    pub digest: Digest,
    pub size: u64,
    #[serde(rename = "mediaType")]
    pub media_type: String,
}

/// A source image, resolved: its top-level manifest or index and every blob it needs, all
/// registered in the store.
#[derive(Clone, Debug)]
pub struct ResolvedImage {
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
    pub platforms: Vec<String>,
    /// Top manifest/index first, then child manifests, configs and layers; no duplicates.
    pub blobs: Vec<BlobRef>,
}

/// What `fetch` needs besides the source itself.
pub struct FetchContext<'a> {
    pub store: &'a mut Store,
    pub platforms: &'a [Platform],
    pub compression: Compression,
    pub registry: &'a RegistryOptions,
    /// Layers compressed in this build, by (diff_id or directory) key, so a layer shared by
    /// several images is compressed once.
    pub layer_cache: &'a mut HashMap<String, BlobRef>,
    /// The image's `config:` from the spec (only for `dir:`).
    pub config: Option<&'a ImageConfigSpec>,
    pub reporter: &'a dyn FetchReporter,
}

/// Progress of a fetch (implemented in `ui/`).
pub trait FetchReporter: Sync {
    /// `n` more bytes read from a source or compressed.
    fn bytes(&self, _n: u64) {}
    fn note(&self, _msg: &str) {}
}

pub struct NoReport;
impl FetchReporter for NoReport {}

/// How uncompressed layers are compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// Pulled by every runtime (Docker before 23.0 cannot pull zstd).
    #[default]
    Gzip,
    /// Smaller and much faster to build; needs Docker >= 23.0, containerd >= 1.5 or podman.
    Zstd,
}

impl Compression {
    pub fn media_type(self) -> &'static str {
        match self {
            Compression::Zstd => OCI_LAYER_ZSTD,
            Compression::Gzip => OCI_LAYER_GZIP,
        }
    }
}

/// Resolve one image source into the store.
pub fn fetch(
    src: &SourceRef,
    name: &str,
    cx: &mut FetchContext,
) -> Result<ResolvedImage, SourceError> {
    match src {
        SourceRef::Oci { dir, reference } => {
            let mut acc = layout::Layout::open_dir(dir)?;
            let top = acc.find(reference.as_deref())?;
            resolve(&mut acc, cx, top, name)
        }
        SourceRef::OciArchive { file, reference } => {
            let mut acc = layout::Layout::open_archive(file)?;
            let top = acc.find(reference.as_deref())?;
            resolve(&mut acc, cx, top, name)
        }
        SourceRef::DockerArchive { file, reference } => {
            archive::fetch_docker_archive(file, reference.as_deref(), cx)
        }
        SourceRef::Docker { reference } => registry::fetch(reference, name, cx),
        SourceRef::Dir { layers } => dir::fetch_dir(layers, cx),
    }
}

/// Access to the blobs of one source.
pub(crate) trait BlobAccess {
    fn location(&self) -> String;
    /// Make `desc` available in the store (registered or copied; verified when read).
    fn fetch_blob(&mut self, cx: &mut FetchContext, desc: &Descriptor) -> Result<(), SourceError>;
    /// Fetch a small blob (manifest, index, config) and return its verified bytes.
    fn fetch_small(
        &mut self,
        cx: &mut FetchContext,
        desc: &Descriptor,
    ) -> Result<Vec<u8>, SourceError> {
        if desc.size > MAX_SMALL_BLOB {
            return Err(SourceError::Malformed {
                what: format!("descriptor {}", desc.digest),
                location: self.location(),
                reason: format!("{} bytes is too large for a manifest or config", desc.size),
            });
        }
        self.fetch_blob(cx, desc)?;
        let d = desc.digest(&self.location())?;
        cx.store
            .read_small(&d, MAX_SMALL_BLOB)
            .map_err(|source| SourceError::Store {
                digest: desc.digest.clone(),
                location: self.location(),
                source: Box::new(source),
            })
    }
}

fn parse_json<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    what: &str,
    location: &str,
) -> Result<T, SourceError> {
    serde_json::from_slice(bytes).map_err(|e| SourceError::Malformed {
        what: what.to_string(),
        location: location.to_string(),
        reason: e.to_string(),
    })
}

fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_LIST
}

/// Walk from a top descriptor down to layers, keeping the wanted platforms of an index.
pub(crate) fn resolve(
    acc: &mut dyn BlobAccess,
    cx: &mut FetchContext,
    top: Descriptor,
    name: &str,
) -> Result<ResolvedImage, SourceError> {
    let loc = acc.location();
    let top_bytes = acc.fetch_small(cx, &top)?;
    let top_digest = top.digest(&loc)?;
    let probe: ManifestJson = parse_json(&top_bytes, &format!("manifest {}", top.digest), &loc)?;
    let media_type = if !top.media_type.is_empty() {
        top.media_type.clone()
    } else if let Some(m) = probe.media_type.clone() {
        m
    } else if probe.manifests.is_some() {
        OCI_INDEX.to_string()
    } else {
        OCI_MANIFEST.to_string()
    };
    let mut blobs = vec![BlobRef {
        digest: top_digest,
        size: top_bytes.len() as u64,
        media_type: media_type.clone(),
    }];
    let mut platforms = Vec::new();
    if is_index(&media_type) {
        let idx: IndexJson = parse_json(&top_bytes, &format!("index {}", top.digest), &loc)?;
        let _ = idx.media_type;
        let mut available = Vec::new();
        let mut chosen = Vec::new();
        for m in &idx.manifests {
            let Some(p) = &m.platform else { continue };
            available.push(p.to_string());
            if cx.platforms.iter().any(|w| p.satisfies(w)) {
                chosen.push(m.clone());
            }
        }
        if chosen.is_empty() {
            return Err(SourceError::NoPlatform {
                image: name.to_string(),
                location: loc,
                wanted: cx.platforms.iter().map(|p| p.to_string()).collect(),
                available,
            });
        }
        for m in chosen {
            platforms.push(
                m.platform
                    .as_ref()
                    .map(|p| p.to_string())
                    .unwrap_or_default(),
            );
            resolve_manifest(acc, cx, &m, &mut blobs, None)?;
        }
    } else {
        let mut p = None;
        resolve_manifest(acc, cx, &top, &mut blobs, Some((&top_bytes, &mut p)))?;
        let p = p.unwrap_or_else(|| "unknown/unknown".into());
        let parsed = Platform::parse(&p);
        if !parsed
            .as_ref()
            .is_some_and(|pp| cx.platforms.iter().any(|w| pp.satisfies(w)))
        {
            return Err(SourceError::NoPlatform {
                image: name.to_string(),
                location: loc,
                wanted: cx.platforms.iter().map(|p| p.to_string()).collect(),
                available: vec![p],
            });
        }
        platforms.push(p);
    }
    Ok(ResolvedImage {
        digest: top_digest,
        media_type,
        size: top_bytes.len() as u64,
        platforms,
        blobs,
    })
}

fn push_unique(blobs: &mut Vec<BlobRef>, b: BlobRef) {
    if !blobs.iter().any(|x| x.digest == b.digest) {
        blobs.push(b);
    }
}

#[allow(clippy::type_complexity)]
fn resolve_manifest(
    acc: &mut dyn BlobAccess,
    cx: &mut FetchContext,
    desc: &Descriptor,
    blobs: &mut Vec<BlobRef>,
    already: Option<(&[u8], &mut Option<String>)>,
) -> Result<(), SourceError> {
    let loc = acc.location();
    let (bytes, platform_out) = match already {
        Some((b, p)) => (b.to_vec(), Some(p)),
        None => (acc.fetch_small(cx, desc)?, None),
    };
    let d = desc.digest(&loc)?;
    let m: ManifestJson = parse_json(&bytes, &format!("manifest {d}"), &loc)?;
    let mt = if desc.media_type.is_empty() {
        m.media_type
            .clone()
            .unwrap_or_else(|| OCI_MANIFEST.to_string())
    } else {
        desc.media_type.clone()
    };
    if is_index(&mt) || m.manifests.is_some() {
        return Err(SourceError::Malformed {
            what: format!("manifest {d}"),
            location: loc,
            reason: "nested image indexes are not supported".into(),
        });
    }
    push_unique(
        blobs,
        BlobRef {
            digest: d,
            size: bytes.len() as u64,
            media_type: mt,
        },
    );
    let config = m.config.ok_or_else(|| SourceError::Malformed {
        what: format!("manifest {d}"),
        location: loc.clone(),
        reason: "no config descriptor".into(),
    })?;
    let cfg_bytes = acc.fetch_small(cx, &config)?;
    if let Some(out) = platform_out {
        if let Ok(cp) = serde_json::from_slice::<ConfigPlatform>(&cfg_bytes) {
            let p = Platform {
                architecture: cp.architecture,
                os: cp.os,
                variant: cp.variant.filter(|v| !v.is_empty()),
            };
            *out = Some(p.to_string());
        }
    }
    push_unique(
        blobs,
        BlobRef {
            digest: config.digest(&loc)?,
            size: config.size,
            media_type: config.media_type.clone(),
        },
    );
    for l in &m.layers {
        if l.urls.is_some() {
            return Err(SourceError::Malformed {
                what: format!("layer {}", l.digest),
                location: loc,
                reason: "foreign (non-distributable) layers with urls are not supported".into(),
            });
        }
        let ld = l.digest(&loc)?;
        if !blobs.iter().any(|b| b.digest == ld) {
            acc.fetch_blob(cx, l)?;
            blobs.push(BlobRef {
                digest: ld,
                size: l.size,
                media_type: l.media_type.clone(),
            });
        }
    }
    Ok(())
}

/// The single-platform OCI image made of `config` (already in the store) and `layers`: its
/// manifest written to the store, and the blob list (manifest, config, layers once each).
pub(crate) fn single_image(
    cx: &mut FetchContext,
    cfg_digest: Digest,
    cfg_len: usize,
    layers: Vec<BlobRef>,
    platform: String,
    location: &str,
) -> Result<ResolvedImage, SourceError> {
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": cfg_digest.to_string(), "size": cfg_len},
        "layers": layers.iter().map(|l| serde_json::json!({
            "mediaType": l.media_type, "digest": l.digest.to_string(), "size": l.size
        })).collect::<Vec<_>>(),
    });
    let mbytes = serde_json::to_vec(&manifest).expect("json");
    let md = cx
        .store
        .put_bytes(&mbytes)
        .map_err(|source| SourceError::StoreOp {
            location: location.to_string(),
            source: Box::new(source),
        })?;
    let mut blobs = vec![
        BlobRef {
            digest: md,
            size: mbytes.len() as u64,
            media_type: OCI_MANIFEST.into(),
        },
        BlobRef {
            digest: cfg_digest,
            size: cfg_len as u64,
            media_type: OCI_CONFIG.into(),
        },
    ];
    for l in layers {
        if !blobs.iter().any(|b| b.digest == l.digest) {
            blobs.push(l);
        }
    }
    Ok(ResolvedImage {
        digest: md,
        media_type: OCI_MANIFEST.into(),
        size: mbytes.len() as u64,
        platforms: vec![platform],
        blobs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_sources() {
        let b = Path::new("/spec");
        assert_eq!(
            SourceRef::parse("oci:build/rng:1.1.0", b).unwrap(),
            SourceRef::Oci {
                dir: "/spec/build/rng".into(),
                reference: Some("1.1.0".into())
            }
        );
        assert_eq!(
            SourceRef::parse("docker-archive:/x/redis.tar", b).unwrap(),
            SourceRef::DockerArchive {
                file: "/x/redis.tar".into(),
                reference: None
            }
        );
        assert_eq!(
            SourceRef::parse("docker://127.0.0.1:5000/webui:1.1.0", b).unwrap(),
            SourceRef::Docker {
                reference: "127.0.0.1:5000/webui:1.1.0".into()
            }
        );
        assert_eq!(
            SourceRef::parse("dir:a, b", b).unwrap(),
            SourceRef::Dir {
                layers: vec!["/spec/a".into(), "/spec/b".into()]
            }
        );
        assert!(SourceRef::parse("ftp:x", b).is_err());
        assert!(SourceRef::parse("docker:x", b).is_err());
        assert!(SourceRef::parse("nothing", b).is_err());
    }

    #[test]
    fn platforms_match() {
        let w = Platform::parse("linux/arm64/v8").unwrap();
        let p = Platform::parse("linux/arm64").unwrap();
        assert!(p.satisfies(&w));
        assert!(!Platform::parse("linux/arm/v7").unwrap().satisfies(&w));
        let any = Platform::parse("linux/arm").unwrap();
        assert!(Platform::parse("linux/arm/v7").unwrap().satisfies(&any));
        assert!(Platform::parse("linux").is_none());
    }
}
