//! The bundle: one signed, deduplicated, reproducible file (format: `docs/FORMAT.md`).
//!
//! A bundle is an uncompressed POSIX ustar archive shaped as an OCI image layout, so
//! `skopeo copy oci-archive:FILE:NAME ...` reads it. Members, in this exact order:
//!
//! 1. `darkport.json` — the [`Manifest`] (compact JSON), then
//! 2. `darkport.json.minisig` — its minisign signature,
//! 3. `oci-layout`, `index.json` (one entry per image, `org.opencontainers.image.ref.name`
//!    = image name), `compose/*` when the product has compose files, `SHA256SUMS`,
//! 4. `playbooks/<path>` sorted by path,
//! 5. `blobs/sha256/<hex>` sorted by digest, each blob once; among them one zstd-compressed
//!    SPDX 2.3 document per image and platform (`sboms` in the manifest, format v2; v1
//!    bundles carried them as `sbom/<image>.spdx.json` members of 3, still read).
//!
//! Headers are canonical (mode 0644/0755, uid/gid 0, mtime 0, no user names, no
//! extensions), followed by 1024 zero bytes and nothing else.
//!
//! # Reading (for install, registry, sbom, ...)
//!
//! ```no_run
//! use darkport::bundle::{Bundle, Trust, TrustedKey};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let key = TrustedKey::load("site.pub".as_ref())?;
//! // Verifies the signature before reading anything else, then checks that every tar
//! // header is canonical and names exactly the listed members, in order (no hashing yet).
//! let b = Bundle::open("dockercoins-1.0.0.darkport".as_ref(), &Trust::key(key))?;
//! let m = b.manifest(); // product, version, upgrades_from, images, blobs, playbooks, delta_base
//! // Hash every member (parallel, pread) before trusting content in bulk:
//! b.verify_all(&darkport::bundle::NoReport)?;
//! for img in &m.images {
//!     for d in &img.blobs {
//!         if let Some(member) = b.blob(d) {
//!             // member.data_offset / member.size: serve it with pread, no unpacking
//!             let mut r = b.open_member(member)?; // streaming, digest checked at EOF
//!             std::io::copy(&mut r, &mut std::io::sink())?;
//!         }
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! # Writing
//! [`writer::write_bundle`] (used by `ops::build`); signing with [`SigningKey`].

pub mod manifest;
mod member;
pub mod reader;
mod scan;
pub mod sign;
pub mod spec;
pub mod writer;

pub use manifest::{
    BlobEntry, DeltaBase, FileEntry, ImageEntry, Manifest, PlaybookEntry, SbomEntry, FORMAT_V1,
    FORMAT_V2, MAX_SBOM_DOC, SBOM_MEDIA_TYPE,
};
pub use reader::{Bundle, Member, MemberKind, MemberRange, MemberReader, Trust};
pub use sign::{keygen, KeyError, SigError, SigningKey, TrustedKey};

use std::path::PathBuf;

pub const MANIFEST_NAME: &str = "darkport.json";
pub const SIGNATURE_NAME: &str = "darkport.json.minisig";
/// Largest `darkport.json` accepted.
pub const MAX_MANIFEST: u64 = 64 << 20;
/// Largest signature file accepted.
pub const MAX_SIGNATURE: u64 = 4096;

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("failed to {op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a darkport bundle: {reason}")]
    NotABundle { path: PathBuf, reason: String },
    #[error("{path} is unsigned (no darkport.json.minisig member); unsigned bundles are refused")]
    Unsigned { path: PathBuf },
    #[error("signature check of {path} member darkport.json failed")]
    Signature {
        path: PathBuf,
        #[source]
        source: SigError,
    },
    #[error("{path}: the signed trusted comment {comment:?} does not match member darkport.json")]
    TrustedComment { path: PathBuf, comment: String },
    #[error("{path}: member darkport.json is invalid: {reason}")]
    BadManifest { path: PathBuf, reason: String },
    #[error("{path}: member {member:?} at offset {offset} rejected: {reason}")]
    BadMemberName {
        path: PathBuf,
        member: String,
        offset: u64,
        reason: String,
    },
    #[error(
        "{path}: member {member:?} at offset {offset} is a {kind}, only regular files are allowed"
    )]
    MemberType {
        path: PathBuf,
        member: String,
        offset: u64,
        kind: String,
    },
    #[error("{path}: member {member:?} at offset {offset} is not listed in darkport.json")]
    UnlistedMember {
        path: PathBuf,
        member: String,
        offset: u64,
    },
    #[error("{path}: member {member:?} at offset {offset} appears twice")]
    DuplicateMember {
        path: PathBuf,
        member: String,
        offset: u64,
    },
    #[error(
        "{path}: member {member:?} at offset {offset} is out of order (expected {expected:?})"
    )]
    OutOfOrder {
        path: PathBuf,
        member: String,
        offset: u64,
        expected: String,
    },
    #[error("{path}: member {member:?} listed in darkport.json is missing")]
    MissingMember { path: PathBuf, member: String },
    #[error("{bundle}: member {member:?} has {actual} bytes, darkport.json says {expected}")]
    SizeMismatch {
        bundle: PathBuf,
        member: String,
        expected: u64,
        actual: u64,
    },
    #[error("{path}: member {member:?} is corrupt: content hashes to {actual}, darkport.json says {expected}")]
    HashMismatch {
        path: PathBuf,
        member: String,
        expected: String,
        actual: String,
    },
    #[error("{path}: member {member:?} is corrupt: {reason}")]
    CorruptMember {
        path: PathBuf,
        member: String,
        reason: String,
    },
    #[error("{path} is truncated: {detail} (file has {len} bytes)")]
    Truncated {
        path: PathBuf,
        detail: String,
        len: u64,
    },
    #[error("{path}: tar header at offset {offset} ({member}) is invalid: {reason}")]
    BadHeader {
        path: PathBuf,
        offset: u64,
        member: String,
        reason: String,
    },
    #[error("{path}: unexpected data after the end of the archive at offset {offset}")]
    TrailingData { path: PathBuf, offset: u64 },
    #[error("{path}: blob {digest} is not in this bundle")]
    NoSuchBlob { path: PathBuf, digest: String },
    #[error("playbook file {path}: {reason}")]
    Playbook { path: PathBuf, reason: String },
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Key(KeyError),
}

/// Progress of long bundle operations (implemented in `ui/`).
pub trait Reporter: Sync {
    fn start(&self, _phase: &str, _total_bytes: u64) {}
    fn advance(&self, _bytes: u64) {}
    fn finish(&self) {}
}

/// A reporter that reports nothing.
pub struct NoReport;
impl Reporter for NoReport {}

/// Why a member name is unacceptable, if it is.
pub fn check_member_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("empty name".into());
    }
    if name.starts_with('/') {
        return Err("absolute path".into());
    }
    if name.split('/').any(|c| c == "..") {
        return Err("path contains '..'".into());
    }
    if name.split('/').any(|c| c.is_empty() || c == ".") {
        return Err("path has empty or '.' components".into());
    }
    if name.len() > 255 {
        return Err("path longer than 255 bytes".into());
    }
    if name.bytes().any(|b| b < 0x20 || b == 0x7f || b == b'\\') {
        return Err("control characters or backslash in path".into());
    }
    Ok(())
}

/// The exact 512-byte ustar header darkport writes for a member.
pub fn canonical_header(name: &str, size: u64, mode: u32) -> Result<[u8; 512], BundleError> {
    check_member_name(name).map_err(|reason| BundleError::BadMemberName {
        path: PathBuf::from("(bundle being written)"),
        member: name.to_string(),
        offset: 0,
        reason,
    })?;
    let mut h = tar::Header::new_ustar();
    h.set_path(name).map_err(|e| BundleError::BadMemberName {
        path: PathBuf::from("(bundle being written)"),
        member: name.to_string(),
        offset: 0,
        reason: e.to_string(),
    })?;
    h.set_size(size);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    let mut out = [0u8; 512];
    out.copy_from_slice(h.as_bytes());
    Ok(out)
}
