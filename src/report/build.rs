//! `build-bundle`'s report and reporter.

use crate::bundle::Reporter;
use crate::digest::Digest;
use crate::source::FetchReporter;
use std::path::PathBuf;

#[derive(Debug, serde::Serialize)]
pub struct BuildReport {
    pub path: PathBuf,
    pub size: u64,
    pub bundle_id: Digest,
    pub signed_by: Option<String>,
    pub product: String,
    pub version: String,
    pub images: usize,
    pub blobs: usize,
    pub blobs_in_bundle: usize,
    pub stored_blob_bytes: u64,
    pub image_bytes: u64,
    pub omitted_blobs: usize,
    pub seconds: f64,
}

/// A reporter for the whole build (fetch + write), implemented in `ui/`.
pub trait BuildReporter: Reporter + FetchReporter {
    fn image(&self, _name: &str, _source: &str) {}
}
