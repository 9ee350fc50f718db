//! Software bill of materials: which OS packages each image ships, under which licences, and
//! from which layer.
//!
//! The core is pure and streaming and does not depend on the bundle format:
//!
//! 1. [`scan_layer`] reads ONE layer blob (gzip, zstd or plain tar, sniffed from its first
//!    bytes), once, front to back, verifying its sha256 as it goes. It keeps only the small
//!    package-database files (dpkg `status`, `status.d/*`, `usr/share/doc/*/copyright`, apk
//!    `installed`, `os-release`) and notes RPM databases and OCI whiteouts. The result, a
//!    [`LayerDelta`], depends on the layer alone, so a layer shared by several images is
//!    scanned once and layers can be scanned in parallel.
//! 2. [`compose`] applies the deltas of an image in order as an overlay (whiteouts
//!    `.wh.<name>` and opaque `.wh..wh..opq` hide lower layers only), re-reads the package
//!    databases after each layer that touched them to find the layer that introduced each
//!    package (version), and resolves licences from the final copyright files.
//! 3. Writers: [`spdx::render`] (SPDX 2.3 JSON), [`cyclonedx::render`] (CycloneDX 1.5 JSON),
//!    [`report::table`] and [`report::licence_summary`].
//!
//! [`oci`] reads images from an OCI image layout directory or an `oci-archive` tar (which is
//! also the shape of a darkport bundle), without extracting anything.

pub mod apk;
pub mod cyclonedx;
pub mod dpkg;
pub mod layer;
pub mod license;
pub mod oci;
pub mod report;
pub mod spdx;

use crate::digest::Digest;
use serde::Serialize;
use std::collections::BTreeMap;

pub use layer::{scan_layer, LayerDelta};

/// Errors of the SBOM scanner and readers.
#[derive(Debug, thiserror::Error)]
pub enum SbomError {
    #[error("failed to read layer {digest}")]
    ReadLayer {
        digest: Digest,
        #[source]
        source: std::io::Error,
    },
    #[error("layer {expected} does not match its digest: read {actual} ({size} bytes)")]
    LayerDigest {
        expected: Digest,
        actual: Digest,
        size: u64,
    },
    #[error("failed to open {path}")]
    Open {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to read {what} in {path}")]
    Read {
        what: String,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid {what} in {path}: {reason}")]
    Invalid {
        what: String,
        path: String,
        reason: String,
    },
    #[error("blob {digest} not found in {path}")]
    MissingBlob { digest: Digest, path: String },
    #[error("no image named {name:?} in {path} (images: {available})")]
    NoSuchImage {
        name: String,
        path: String,
        available: String,
    },
}

/// One layer of an image, in order from the base.
pub struct LayerRef {
    pub digest: Digest,
    pub media_type: String,
}

/// Which package manager a package was recorded by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PackageKind {
    Deb,
    Apk,
}

impl PackageKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PackageKind::Deb => "deb",
            PackageKind::Apk => "apk",
        }
    }
}

/// Where a package's licence information was found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LicenceSource {
    /// DEP-5 machine-readable `usr/share/doc/<pkg>/copyright` (`License:` fields).
    Dep5,
    /// Free-form copyright file: recognised licence references or texts.
    CopyrightText,
    /// The apk database `L:` field.
    ApkDb,
    /// Nothing found.
    None,
}

/// An installed OS package.
#[derive(Clone, Debug, Serialize)]
pub struct Package {
    pub kind: PackageKind,
    pub name: String,
    pub version: String,
    pub arch: String,
    /// Source package (dpkg `Source:`, apk `o:` origin), when it differs from `name`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maintainer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub homepage: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Licences as the package states them (Debian short names such as `GPL-3+`, or the apk
    /// field's SPDX-like identifiers), distinct, in order of appearance.
    pub licenses: Vec<String>,
    pub license_source: LicenceSource,
    /// The layer whose package database first listed this package at this version.
    pub layer: Digest,
    /// Its position in the image (0 = base).
    pub layer_index: usize,
}

impl Package {
    /// A stable key: kind, name and architecture.
    pub fn key(&self) -> String {
        format!("{}:{}:{}", self.kind.as_str(), self.name, self.arch)
    }
}

/// An RPM database present in the final filesystem (RPM packages are detected, not listed).
#[derive(Clone, Debug, Serialize)]
pub struct RpmDb {
    pub path: String,
    pub layer: Digest,
    pub layer_index: usize,
}

/// The inventory of one image.
#[derive(Clone, Debug, Serialize)]
pub struct ImageSbom {
    /// Image name (reference) as the source names it.
    pub name: String,
    /// Manifest digest, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manifest: Option<Digest>,
    /// `os/arch[/variant]`, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// `PRETTY_NAME` from `etc/os-release` (or `usr/lib/os-release`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
    /// `ID` and `VERSION_ID` from os-release (for package URLs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub os_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub os_version_id: Option<String>,
    pub layers: Vec<Digest>,
    /// Sorted by kind, name, architecture.
    pub packages: Vec<Package>,
    pub rpm: Vec<RpmDb>,
    /// Things the scanner skipped or could not parse (never silently).
    pub warnings: Vec<String>,
}

/// Compose the inventory of an image from its layers' deltas, base first.
pub fn compose(name: &str, layers: &[(Digest, &LayerDelta)]) -> ImageSbom {
    layer::compose(name, layers)
}

/// Convenience: scan an image whose layer blobs are opened by `open`, layers in order.
/// Scans layers sequentially; callers with many images should scan each distinct layer once
/// (in parallel) with [`scan_layer`] and [`compose`] per image.
pub fn scan_image<R, F>(
    name: &str,
    layers: &[LayerRef],
    mut open: F,
) -> Result<ImageSbom, SbomError>
where
    R: std::io::Read,
    F: FnMut(&LayerRef) -> Result<R, SbomError>,
{
    let mut deltas = Vec::with_capacity(layers.len());
    for l in layers {
        let r = open(l)?;
        deltas.push((l.digest, scan_layer(&l.digest, r)?));
    }
    let refs: Vec<(Digest, &LayerDelta)> = deltas.iter().map(|(d, x)| (*d, x)).collect();
    Ok(compose(name, &refs))
}

/// Licence summary across images: per licence, which packages and which images.
#[derive(Clone, Debug, Serialize)]
pub struct LicenceEntry {
    /// The licence as stated (Debian short name or apk identifier).
    pub licence: String,
    /// The SPDX identifier or expression it maps to, if known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spdx: Option<String>,
    pub copyleft: bool,
    /// `name@version` of each package stating it.
    pub packages: Vec<String>,
    pub images: Vec<String>,
}

/// Group packages of several images by licence (sorted by licence name).
pub fn licence_summary(images: &[ImageSbom]) -> Vec<LicenceEntry> {
    let mut map: BTreeMap<String, (Vec<String>, Vec<String>)> = BTreeMap::new();
    for img in images {
        for p in &img.packages {
            let lics: Vec<String> = if p.licenses.is_empty() {
                vec!["(unknown)".to_string()]
            } else {
                p.licenses.clone()
            };
            for l in lics {
                let e = map.entry(l).or_default();
                let pv = format!("{}@{}", p.name, p.version);
                if !e.0.contains(&pv) {
                    e.0.push(pv);
                }
                if !e.1.contains(&img.name) {
                    e.1.push(img.name.clone());
                }
            }
        }
    }
    map.into_iter()
        .map(|(l, (mut pk, mut im))| {
            pk.sort();
            im.sort();
            let spdx = license::to_spdx_id(&l);
            LicenceEntry {
                copyleft: license::is_copyleft(&l),
                spdx,
                licence: l,
                packages: pk,
                images: im,
            }
        })
        .collect()
}
