//! `darkport.json`: the signed manifest, first member of every bundle.

use crate::digest::Digest;
use serde::{Deserialize, Serialize};

/// [`Manifest::format`] of bundles whose SBOMs are `sbom/*.spdx.json` file members (read, no
/// longer written).
pub const FORMAT_V1: &str = "darkport-bundle/v1";
/// [`Manifest::format`] written now: SBOMs are zstd-compressed SPDX blobs listed in `sboms`
/// (a delta bundle references the unchanged images' documents of its base by digest).
pub const FORMAT_V2: &str = "darkport-bundle/v2";
/// Media type of an SBOM blob: an SPDX 2.3 JSON document compressed as one zstd frame.
pub const SBOM_MEDIA_TYPE: &str = "application/spdx+json+zstd";
/// Largest decompressed SBOM document a reader accepts.
pub const MAX_SBOM_DOC: u64 = 256 << 20;

/// The signed table of contents of a bundle. Serialized as compact JSON with fields in
/// this order (see `docs/FORMAT.md`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: String,
    pub product: String,
    pub version: String,
    /// semver requirement on the installed version this bundle may upgrade (e.g.
    /// `">=1.0.0, <1.1.0"`); `None` = install only.
    pub upgrades_from: Option<String>,
    pub platforms: Vec<String>,
    /// RFC 3339 build time, only when `SOURCE_DATE_EPOCH` was set (keeps builds reproducible).
    pub created: Option<String>,
    pub images: Vec<ImageEntry>,
    /// Every blob every image needs, sorted by digest; `present: false` ones were left out
    /// of a delta bundle because a base bundle holds them.
    pub blobs: Vec<BlobEntry>,
    /// Other members: `oci-layout`, `index.json`, `SHA256SUMS`.
    pub files: Vec<FileEntry>,
    /// Files under `playbooks/` (paths relative to it), sorted.
    pub playbooks: Vec<PlaybookEntry>,
    /// `playbooks/migrations/*.yml` paths relative to `playbooks/`, in order.
    pub migrations: Vec<String>,
    /// Bundles a delta bundle builds on (empty for a full bundle).
    pub delta_base: Vec<DeltaBase>,
    /// The product's compose files (`compose/<file>` members of `files`), in `-f` order;
    /// absent for a playbook-only product.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub compose: Vec<String>,
    /// v2: one SBOM document per image and platform, a blob of [`SBOM_MEDIA_TYPE`] listed in
    /// `blobs` (`present: false` in a delta when the base bundle's document is reused).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sboms: Vec<SbomEntry>,
}

/// The SBOM of one image (one platform): which image manifest it describes and the blob
/// holding the document.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SbomEntry {
    /// The image name (`images[].name`).
    pub image: String,
    /// `os/arch[/variant]` of a multi-platform image; `None` for a single manifest.
    pub platform: Option<String>,
    /// The (platform) image manifest the document was scanned from.
    pub manifest: Digest,
    /// The document's blob digest (an entry of `blobs` with media type [`SBOM_MEDIA_TYPE`]).
    pub document: Digest,
    /// The bundle id of the (base) bundle that carries the document, when it is not this one:
    /// a delta reuses the document of an image whose manifest did not change.
    pub from_bundle: Option<Digest>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ImageEntry {
    /// Name the site registry serves it under, e.g. `dockercoins/rng:1.0.0`.
    pub name: String,
    /// Digest of the top-level manifest or index (its exact bytes are a blob).
    pub digest: Digest,
    #[serde(rename = "mediaType")]
    pub media_type: String,
    pub size: u64,
    pub platforms: Vec<String>,
    /// Every blob of this image (manifests, configs, layers), top first.
    pub blobs: Vec<Digest>,
    /// Sum of the sizes of `blobs`.
    pub total_size: u64,
    /// The source it was built from (informational).
    pub source: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BlobEntry {
    pub digest: Digest,
    pub size: u64,
    #[serde(rename = "mediaType")]
    pub media_type: String,
    pub present: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    pub path: String,
    pub sha256: Digest,
    pub size: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PlaybookEntry {
    /// Relative to `playbooks/` (the member is `playbooks/<path>`).
    pub path: String,
    pub sha256: Digest,
    pub size: u64,
    /// 0o644 or 0o755 (decimal in JSON).
    pub mode: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DeltaBase {
    pub product: String,
    pub version: String,
    /// sha256 of the base bundle's `darkport.json` (its bundle id).
    pub bundle_id: Digest,
}

impl Manifest {
    /// Canonical bytes (compact JSON + newline).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec(self).expect("manifest serializes");
        v.push(b'\n');
        v
    }

    pub fn blob(&self, d: &Digest) -> Option<&BlobEntry> {
        self.blobs
            .binary_search_by(|b| b.digest.cmp(d))
            .ok()
            .map(|i| &self.blobs[i])
    }

    /// Bytes of blobs stored in the bundle (present ones).
    pub fn stored_blob_bytes(&self) -> u64 {
        self.blobs
            .iter()
            .filter(|b| b.present)
            .map(|b| b.size)
            .sum()
    }

    /// Whether this is a v2 bundle (SBOM blobs) rather than v1 (SBOM file members).
    pub fn is_v2(&self) -> bool {
        self.format == FORMAT_V2
    }

    /// Sum of every image's size (what separate per-image archives would hold).
    pub fn image_bytes(&self) -> u64 {
        self.images.iter().map(|i| i.total_size).sum()
    }

    /// Blobs a delta bundle expects the site to hold already.
    pub fn missing_blobs(&self) -> impl Iterator<Item = &BlobEntry> {
        self.blobs.iter().filter(|b| !b.present)
    }

    /// The trusted comment signed with the manifest.
    pub fn trusted_comment(&self, manifest_digest: &Digest) -> String {
        format!(
            "darkport-bundle product={} version={} manifest={}",
            self.product, self.version, manifest_digest
        )
    }
}
