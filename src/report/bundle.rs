//! Reports of `darkport verify` and `darkport inspect` (what a bundle holds and whether it is
//! intact), as `ops::bundle_info` produces them and `ui::bundle` prints them.

use super::Verdict;
use crate::bundle::DeltaBase;
use crate::digest::Digest;
use serde::Serialize;
use std::path::PathBuf;

/// Who signed a bundle, as its reader found it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Signature {
    /// Signed by this trusted key.
    Trusted(String),
    /// A signature is present but no trusted key checked it (`--allow-unsigned`).
    Unchecked,
    /// No signature at all.
    None,
}

/// `darkport verify`: the signature and every member checked.
#[derive(Debug, Serialize)]
pub struct VerifyReport {
    pub ok: bool,
    pub bundle: PathBuf,
    pub bundle_id: Digest,
    pub product: String,
    pub version: String,
    pub signed_by: Option<String>,
    pub members: usize,
    pub bytes: u64,
    pub seconds: f64,
    pub mib_per_s: f64,
    pub missing_blobs: usize,
    #[serde(skip)]
    pub signature: Signature,
    #[serde(skip)]
    pub delta_base: Vec<DeltaBase>,
}

/// One image of `darkport inspect`.
#[derive(Debug, Serialize)]
pub struct InspectImage {
    pub name: String,
    pub digest: Digest,
    #[serde(rename = "mediaType")]
    pub media_type: String,
    pub platforms: Vec<String>,
    pub size: u64,
    pub blobs: usize,
    pub source: String,
    /// The image's layers (every platform's), in the order the manifest lists its blobs.
    pub layers: Vec<InspectLayer>,
}

/// One layer of an image: whether this file carries it (a delta leaves the base's out) and
/// which other images of the bundle use the same blob (stored once).
#[derive(Debug, Serialize)]
pub struct InspectLayer {
    pub digest: Digest,
    pub size: u64,
    pub in_bundle: bool,
    pub shared_with: Vec<String>,
}

/// `darkport inspect`: what a bundle holds (its signature checked, its members not hashed).
#[derive(Debug, Serialize)]
pub struct InspectReport {
    pub bundle: PathBuf,
    pub bundle_id: Digest,
    pub file_size: u64,
    pub signed_by: Option<String>,
    pub format: String,
    pub product: String,
    pub version: String,
    pub upgrades_from: Option<String>,
    pub platforms: Vec<String>,
    pub created: Option<String>,
    pub images: Vec<InspectImage>,
    pub blob_count: usize,
    pub blobs_in_bundle: usize,
    pub stored_blob_bytes: u64,
    pub image_bytes: u64,
    /// Bytes of every distinct blob the images need (in this file or, for a delta, the base).
    pub unique_blob_bytes: u64,
    /// What storing each blob once saves: `image_bytes - unique_blob_bytes`.
    pub dedup_saving_bytes: u64,
    pub dedup_ratio: f64,
    /// What a delta leaves to its base: `unique_blob_bytes - stored_blob_bytes` (0 for a full
    /// bundle). Dedup and delta are different savings.
    pub delta_saving_bytes: u64,
    pub playbooks: Vec<String>,
    pub migrations: Vec<String>,
    /// The compose files the product is deployed with, in `-f` order (empty: playbooks only).
    pub compose: Vec<String>,
    pub delta_base: Vec<DeltaBase>,
    pub missing_blobs: Vec<Digest>,
    /// Members of the file (manifest and signature included).
    pub members: usize,
    /// Every member was hashed against the manifest (false with `--manifest-only`).
    pub members_checked: bool,
    #[serde(skip)]
    pub signature: Signature,
}

impl Verdict for VerifyReport {
    fn ok(&self) -> bool {
        self.ok
    }
}

impl Verdict for InspectReport {
    fn ok(&self) -> bool {
        true
    }
}
