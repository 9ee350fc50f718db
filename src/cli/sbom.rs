//! `darkport sbom` and `darkport licenses`.

use std::path::PathBuf;

/// Output format of `darkport sbom`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SbomFormat {
    /// SPDX 2.3 JSON, one document per image.
    Spdx,
    /// CycloneDX 1.5 JSON, one BOM per image.
    Cyclonedx,
    /// A package table per image.
    Table,
    /// darkport's own inventory JSON (all images in one array).
    Json,
}

#[derive(clap::Args, Debug)]
pub struct SbomArgs {
    /// A darkport bundle, an `oci-archive` tar, or an OCI image layout directory.
    pub source: PathBuf,
    /// Only this image (its name, `name@os/arch`, or the name's last path segment).
    #[arg(long)]
    pub image: Option<String>,
    #[arg(long, value_enum, default_value_t = SbomFormat::Table)]
    pub format: SbomFormat,
    /// Write one file per image into this directory (`<image>.spdx.json`, `.cdx.json`, `.txt`,
    /// `.json`) instead of printing.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Document creation time, RFC 3339 (default: $SOURCE_DATE_EPOCH if set, else now).
    #[arg(long)]
    pub created: Option<String>,
    /// Trusted public key(s) for a darkport bundle SOURCE (as for verify); its signature is
    /// checked before any image is read. Not used for oci-archive or layout sources.
    #[arg(long, value_name = "PUB")]
    pub pubkey: Vec<PathBuf>,
    /// Accept an unsigned darkport bundle.
    #[arg(long)]
    pub allow_unsigned: bool,
}

#[derive(clap::Args, Debug)]
pub struct LicensesArgs {
    /// A darkport bundle, an `oci-archive` tar, or an OCI image layout directory.
    pub source: PathBuf,
    /// Only this image.
    #[arg(long)]
    pub image: Option<String>,
    /// The summary as JSON.
    #[arg(long)]
    pub json: bool,
    /// Exit with code 1 when any copyleft licence is found (for release gates).
    #[arg(long)]
    pub fail_on_copyleft: bool,
    /// Trusted public key(s) for a darkport bundle SOURCE (as for verify); its signature is
    /// checked before any image is read. Not used for oci-archive or layout sources.
    #[arg(long, value_name = "PUB")]
    pub pubkey: Vec<PathBuf>,
    /// Accept an unsigned darkport bundle.
    #[arg(long)]
    pub allow_unsigned: bool,
}
