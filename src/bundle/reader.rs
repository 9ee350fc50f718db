//! Reading a bundle: verify the signature first, then accept only the listed members,
//! in canonical order, with canonical headers; hash on demand ([`Bundle::verify_all`],
//! [`Bundle::open_member`]).

use super::manifest::Manifest;
pub use super::member::{Member, MemberKind, Trust};
use super::scan::{self, pad512, read_exact_at, Scan};
use super::{BundleError, Reporter, SIGNATURE_NAME};
use crate::digest::Digest;
use rayon::prelude::*;
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// An opened bundle whose signature and member table have been checked.
pub struct Bundle {
    path: PathBuf,
    file: File,
    len: u64,
    manifest: Manifest,
    id: Digest,
    signed_by: Option<String>,
    members: Vec<Member>,
    blobs: HashMap<Digest, usize>,
    by_name: HashMap<String, usize>,
}

impl Bundle {
    /// Open `path`: verify `darkport.json` against `trust` before anything else, then walk
    /// every tar header (cheap: no data is read) and check that the members are exactly the
    /// listed ones, in order. Member content is checked by [`Bundle::verify_all`] or while
    /// reading through [`Bundle::open_member`].
    pub fn open(path: &Path, trust: &Trust) -> Result<Bundle, BundleError> {
        let file = File::open(path).map_err(|source| BundleError::Io {
            op: "open bundle",
            path: path.into(),
            source,
        })?;
        let len = file
            .metadata()
            .map_err(|source| BundleError::Io {
                op: "stat bundle",
                path: path.into(),
                source,
            })?
            .len();
        let mut scan = Scan::new(&file, path, len);
        let mbytes = scan.manifest_member()?;
        let id = Digest::of(&mbytes);
        let signed_by = scan.signature(&mbytes, trust)?;
        let manifest = scan::parse_manifest(path, &mbytes)?;
        let expected = scan::expected_members(path, &manifest)?;
        scan.members(&expected)?;
        scan.end()?;
        scan.canonical_headers()?;
        let members = scan.members;
        let blobs = members
            .iter()
            .enumerate()
            .filter_map(|(i, m)| match m.kind {
                MemberKind::Blob(d) => Some((d, i)),
                _ => None,
            })
            .collect();
        let by_name = members
            .iter()
            .enumerate()
            .map(|(i, m)| (m.name.clone(), i))
            .collect();
        Ok(Bundle {
            path: path.to_path_buf(),
            file,
            len,
            manifest,
            id,
            signed_by,
            members,
            blobs,
            by_name,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
    /// The underlying file, for positional reads of [`Member::data_offset`] ranges.
    pub fn file(&self) -> &File {
        &self.file
    }
    pub fn file_len(&self) -> u64 {
        self.len
    }
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }
    /// The bundle id: sha256 of the exact `darkport.json` bytes (what the signature covers).
    pub fn id(&self) -> Digest {
        self.id
    }
    /// Key id that signed the bundle (None if opened with `allow_unsigned` and unsigned).
    pub fn signed_by(&self) -> Option<&str> {
        self.signed_by.as_deref()
    }
    /// Whether the bundle carries a signature member (checked or not).
    pub fn has_signature(&self) -> bool {
        self.member(SIGNATURE_NAME).is_some()
    }
    pub fn members(&self) -> &[Member] {
        &self.members
    }
    pub fn member(&self, name: &str) -> Option<&Member> {
        self.by_name.get(name).map(|&i| &self.members[i])
    }
    /// The member holding a blob (None when a delta bundle left it out).
    pub fn blob(&self, d: &Digest) -> Option<&Member> {
        self.blobs.get(d).map(|&i| &self.members[i])
    }
    /// A playbook file by its path relative to `playbooks/`.
    pub fn playbook(&self, rel: &str) -> Option<&Member> {
        self.member(&format!("playbooks/{rel}"))
    }

    /// Stream a member's bytes; the reader fails with `InvalidData` at the end if the
    /// content does not match the signed manifest.
    pub fn open_member(&self, m: &Member) -> Result<MemberReader, BundleError> {
        let f = self.file.try_clone().map_err(|source| BundleError::Io {
            op: "reopen",
            path: self.path.clone(),
            source,
        })?;
        Ok(MemberReader {
            inner: crate::store::VerifiedReader::new(
                f,
                m.data_offset,
                m.size,
                m.sha256,
                format!("{} member {}", self.path.display(), m.name),
            ),
        })
    }

    /// Stream a blob by digest.
    pub fn open_blob(&self, d: &Digest) -> Result<MemberReader, BundleError> {
        let m = self.blob(d).ok_or_else(|| BundleError::NoSuchBlob {
            path: self.path.clone(),
            digest: d.to_string(),
        })?;
        self.open_member(m)
    }

    /// Read a small member (e.g. a manifest blob or playbook) fully, verified.
    pub fn read_member(&self, m: &Member, max: u64) -> Result<Vec<u8>, BundleError> {
        if m.size > max {
            return Err(BundleError::CorruptMember {
                path: self.path.clone(),
                member: m.name.clone(),
                reason: format!("{} bytes is more than the {max} expected", m.size),
            });
        }
        let mut v = Vec::with_capacity(m.size as usize);
        self.open_member(m)?
            .read_to_end(&mut v)
            .map_err(|e| self.content_err(m, e))?;
        Ok(v)
    }

    /// The SPDX JSON of a v2 SBOM document carried by this bundle (hash checked, then
    /// decompressed, at most [`super::MAX_SBOM_DOC`] bytes); `None` when a delta left it out.
    pub fn read_sbom(&self, e: &super::SbomEntry) -> Result<Option<Vec<u8>>, BundleError> {
        let Some(m) = self.blob(&e.document) else {
            return Ok(None);
        };
        let mut doc = Vec::new();
        let mut r = zstd::Decoder::new(self.open_member(m)?).map_err(|e| self.content_err(m, e))?;
        (&mut r)
            .take(super::MAX_SBOM_DOC + 1)
            .read_to_end(&mut doc)
            .map_err(|e| self.content_err(m, e))?;
        if doc.len() as u64 > super::MAX_SBOM_DOC {
            return Err(self.content_err(
                m,
                io::Error::other(format!(
                    "SBOM document larger than {} bytes",
                    super::MAX_SBOM_DOC
                )),
            ));
        }
        // Drain to the end of the member so its digest is checked.
        io::copy(&mut r.finish(), &mut io::sink()).map_err(|e| self.content_err(m, e))?;
        Ok(Some(doc))
    }

    fn content_err(&self, m: &Member, e: io::Error) -> BundleError {
        BundleError::CorruptMember {
            path: self.path.clone(),
            member: m.name.clone(),
            reason: e.to_string(),
        }
    }

    /// Write the playbook tree into `dest` (created; must not exist yet), checking every
    /// file's hash. Only listed files are written; modes are 0644/0755.
    pub fn extract_playbooks(&self, dest: &Path) -> Result<(), BundleError> {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::create_dir(dest).map_err(|source| BundleError::Io {
            op: "create playbook directory",
            path: dest.into(),
            source,
        })?;
        for m in &self.members {
            let MemberKind::Playbook(rel) = &m.kind else {
                continue;
            };
            let target = dest.join(rel);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent).map_err(|source| BundleError::Io {
                    op: "create directory",
                    path: parent.into(),
                    source,
                })?;
            }
            let mut out = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(m.mode)
                .open(&target)
                .map_err(|source| BundleError::Io {
                    op: "create",
                    path: target.clone(),
                    source,
                })?;
            let mut r = self.open_member(m)?;
            io::copy(&mut r, &mut out).map_err(|e| self.content_err(m, e))?;
        }
        Ok(())
    }

    /// Hash every member (in parallel, with positional reads) and check the padding after
    /// each, so one flipped byte anywhere in the file is found. Returns the bytes hashed.
    pub fn verify_all(&self, rep: &dyn Reporter) -> Result<u64, BundleError> {
        let total: u64 = self.members.iter().map(|m| m.size).sum();
        rep.start("verifying", total);
        // Big members first so the two cores stay busy to the end.
        let mut order: Vec<&Member> = self.members.iter().collect();
        order.sort_by_key(|m| std::cmp::Reverse(m.size));
        order
            .par_iter()
            .with_max_len(1)
            .try_for_each(|m| -> Result<(), BundleError> {
                let mut buf = vec![0u8; (1 << 20).min(m.size.max(1) as usize)];
                let mut h = crate::digest::HashingWriter::new(io::sink());
                let mut pos = m.data_offset;
                let end = m.data_offset + m.size;
                use std::io::Write;
                while pos < end {
                    let want = ((end - pos) as usize).min(buf.len());
                    let n = self.file.read_at(&mut buf[..want], pos).map_err(|source| {
                        BundleError::Io {
                            op: "read",
                            path: self.path.clone(),
                            source,
                        }
                    })?;
                    if n == 0 {
                        return Err(BundleError::Truncated {
                            path: self.path.clone(),
                            detail: format!("member {:?} ends early", m.name),
                            len: self.len,
                        });
                    }
                    h.write_all(&buf[..n]).expect("sink");
                    pos += n as u64;
                    rep.advance(n as u64);
                }
                let (_, (d, _)) = h.finish();
                if d != m.sha256 {
                    return Err(BundleError::HashMismatch {
                        path: self.path.clone(),
                        member: m.name.clone(),
                        expected: m.sha256.to_string(),
                        actual: d.to_string(),
                    });
                }
                let padlen = (pad512(m.size) - m.size) as usize;
                if padlen > 0 {
                    let mut pad = vec![0u8; padlen];
                    read_exact_at(&self.file, &self.path, &mut pad, end)?;
                    if pad.iter().any(|&b| b != 0) {
                        return Err(BundleError::CorruptMember {
                            path: self.path.clone(),
                            member: m.name.clone(),
                            reason: "non-zero bytes in the padding after its data".into(),
                        });
                    }
                }
                Ok(())
            })?;
        rep.finish();
        Ok(total)
    }
}

/// A seekable window onto one member's bytes (no hashing: for resumable uploads whose
/// receiver checks the digest, and for HTTP range serving).
pub struct MemberRange {
    file: File,
    start: u64,
    len: u64,
    pos: u64,
}

impl MemberRange {
    pub fn len(&self) -> u64 {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Read for MemberRange {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.len.saturating_sub(self.pos);
        if left == 0 {
            return Ok(0);
        }
        let want = buf.len().min(left.min(usize::MAX as u64) as usize);
        let n = self.file.read_at(&mut buf[..want], self.start + self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl io::Seek for MemberRange {
    fn seek(&mut self, to: io::SeekFrom) -> io::Result<u64> {
        let new = match to {
            io::SeekFrom::Start(n) => n as i128,
            io::SeekFrom::End(d) => self.len as i128 + d as i128,
            io::SeekFrom::Current(d) => self.pos as i128 + d as i128,
        };
        if new < 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek before start of member",
            ));
        }
        self.pos = new as u64;
        Ok(self.pos)
    }
}

impl Bundle {
    /// A seekable, unverified reader over a member (see [`MemberRange`]).
    pub fn member_range(&self, m: &Member) -> Result<MemberRange, BundleError> {
        let file = self.file.try_clone().map_err(|source| BundleError::Io {
            op: "reopen",
            path: self.path.clone(),
            source,
        })?;
        Ok(MemberRange {
            file,
            start: m.data_offset,
            len: m.size,
            pos: 0,
        })
    }
}

/// Streaming reader over one member; checks the digest when the last byte is read.
pub struct MemberReader {
    inner: crate::store::VerifiedReader,
}

impl Read for MemberReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf)
    }
}
