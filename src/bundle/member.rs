//! What a bundle is made of, as the reader sees it: its members and where their bytes are,
//! and which signatures it accepts.

use super::sign::TrustedKey;
use crate::digest::Digest;

/// Which signatures a reader accepts.
#[derive(Clone, Debug, Default)]
pub struct Trust {
    pub keys: Vec<TrustedKey>,
    /// Accept bundles without a signature (never the default).
    pub allow_unsigned: bool,
}

impl Trust {
    pub fn key(k: TrustedKey) -> Trust {
        Trust {
            keys: vec![k],
            allow_unsigned: false,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MemberKind {
    Manifest,
    Signature,
    /// `oci-layout`, `index.json`, `SHA256SUMS`
    File,
    /// path relative to `playbooks/`
    Playbook(String),
    Blob(Digest),
}

/// One member of the bundle file and where its bytes are.
#[derive(Clone, Debug)]
pub struct Member {
    pub name: String,
    pub kind: MemberKind,
    pub header_offset: u64,
    /// Offset of the first data byte in the bundle file (for pread / HTTP Range serving).
    pub data_offset: u64,
    pub size: u64,
    pub mode: u32,
    /// Expected sha256 (from the signed manifest; for the signature itself, its own hash).
    pub sha256: Digest,
}
