//! Reading a bundle: verify the signature first, then accept only the listed members,
//! in canonical order, with canonical headers; hash on demand ([`Bundle::verify_all`],
//! [`Bundle::open_member`]).

use super::manifest::{Manifest, FORMAT_V1};
use super::sign::TrustedKey;
use super::{
    canonical_header, check_member_name, BundleError, Reporter, MANIFEST_NAME, MAX_MANIFEST,
    MAX_SIGNATURE, SIGNATURE_NAME,
};
use crate::digest::Digest;
use rayon::prelude::*;
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

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

fn read_exact_at(f: &File, path: &Path, buf: &mut [u8], off: u64) -> Result<(), BundleError> {
    f.read_exact_at(buf, off).map_err(|source| BundleError::Io {
        op: "read",
        path: path.into(),
        source,
    })
}

struct Raw {
    name: String,
    size: u64,
    mode: u32,
    typeflag: u8,
    header: [u8; 512],
}

fn pad512(n: u64) -> u64 {
    n.div_ceil(512) * 512
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
        let p = path.to_path_buf();
        let read_header = |off: u64, after: &str| -> Result<Option<Raw>, BundleError> {
            if off + 512 > len {
                return Err(BundleError::Truncated {
                    path: p.clone(),
                    detail: format!("no tar header at offset {off} after {after}"),
                    len,
                });
            }
            let mut block = [0u8; 512];
            read_exact_at(&file, &p, &mut block, off)?;
            if block.iter().all(|&b| b == 0) {
                return Ok(None);
            }
            let h = tar::Header::from_byte_slice(&block);
            let bad = |reason: String| BundleError::BadHeader {
                path: p.clone(),
                offset: off,
                member: format!("after {after}"),
                reason,
            };
            let stored = h.cksum().map_err(|e| bad(e.to_string()))?;
            let computed: u32 = block[..148].iter().map(|&b| b as u32).sum::<u32>()
                + 8 * 32
                + block[156..].iter().map(|&b| b as u32).sum::<u32>();
            if stored != computed {
                return Err(bad(
                    "header checksum mismatch (corrupted or tampered header)".into(),
                ));
            }
            let name = String::from_utf8(h.path_bytes().to_vec())
                .map_err(|_| bad("member name is not UTF-8".into()))?;
            let size = h.size().map_err(|e| bad(e.to_string()))?;
            let mode = h.mode().map_err(|e| bad(e.to_string()))?;
            Ok(Some(Raw {
                name,
                size,
                mode,
                typeflag: block[156],
                header: block,
            }))
        };
        let check_raw = |raw: &Raw, off: u64| -> Result<(), BundleError> {
            check_member_name(&raw.name).map_err(|reason| BundleError::BadMemberName {
                path: p.clone(),
                member: raw.name.clone(),
                offset: off,
                reason,
            })?;
            if raw.typeflag != b'0' && raw.typeflag != 0 {
                let kind = match raw.typeflag {
                    b'1' => "hard link".to_string(),
                    b'2' => "symbolic link".to_string(),
                    b'3' | b'4' => "device".to_string(),
                    b'5' => "directory".to_string(),
                    b'6' => "fifo".to_string(),
                    b'x' | b'g' => "pax extension header".to_string(),
                    b'L' | b'K' => "GNU long-name header".to_string(),
                    t => format!("member of type {:?}", t as char),
                };
                return Err(BundleError::MemberType {
                    path: p.clone(),
                    member: raw.name.clone(),
                    offset: off,
                    kind,
                });
            }
            if off + 512 + raw.size > len {
                return Err(BundleError::Truncated {
                    path: p.clone(),
                    detail: format!(
                        "member {:?} needs {} bytes from offset {}",
                        raw.name,
                        raw.size,
                        off + 512
                    ),
                    len,
                });
            }
            Ok(())
        };

        // 1. darkport.json
        let not_bundle = |reason: String| BundleError::NotABundle {
            path: p.clone(),
            reason,
        };
        let h0 = read_header(0, "start of file")
            .map_err(|e| match e {
                BundleError::Truncated { .. } => {
                    not_bundle("file is shorter than one tar header".into())
                }
                BundleError::BadHeader { .. } => {
                    not_bundle("it does not start with a valid tar header".into())
                }
                e => e,
            })?
            .ok_or_else(|| not_bundle("empty archive".into()))?;
        if h0.name != MANIFEST_NAME {
            return Err(not_bundle(format!(
                "first member is {:?}, expected {MANIFEST_NAME}",
                h0.name
            )));
        }
        check_raw(&h0, 0)?;
        if h0.size > MAX_MANIFEST {
            return Err(not_bundle(format!(
                "darkport.json is {} bytes, over the limit",
                h0.size
            )));
        }
        let mut mbytes = vec![0u8; h0.size as usize];
        read_exact_at(&file, &p, &mut mbytes, 512)?;
        let mut members = vec![Member {
            name: MANIFEST_NAME.into(),
            kind: super::reader::MemberKind::Manifest,
            header_offset: 0,
            data_offset: 512,
            size: h0.size,
            mode: h0.mode,
            sha256: Digest::of(&mbytes),
        }];
        let id = members[0].sha256;
        let mut pos = 512 + pad512(h0.size);

        // 2. signature, verified before the manifest is even parsed
        let h1 = read_header(pos, MANIFEST_NAME)?;
        let mut signed_by = None;
        let mut header_checks = vec![(h0.header, 0u64)];
        match h1 {
            Some(h1) if h1.name == SIGNATURE_NAME => {
                check_raw(&h1, pos)?;
                if h1.size > MAX_SIGNATURE {
                    return Err(BundleError::Signature {
                        path: p.clone(),
                        source: super::SigError::Malformed(format!(
                            "{} bytes is too large",
                            h1.size
                        )),
                    });
                }
                let mut sbytes = vec![0u8; h1.size as usize];
                read_exact_at(&file, &p, &mut sbytes, pos + 512)?;
                let stext = String::from_utf8_lossy(&sbytes).to_string();
                if trust.keys.is_empty() {
                    if !trust.allow_unsigned {
                        return Err(BundleError::Signature {
                            path: p.clone(),
                            source: super::SigError::Malformed(
                                "no trusted public key was given".into(),
                            ),
                        });
                    }
                } else {
                    let mut last = None;
                    for k in &trust.keys {
                        match k.verify(&mbytes, &stext) {
                            Ok(tc) => {
                                let want = format!("manifest={id}");
                                if !tc.split(' ').any(|w| w == want) {
                                    return Err(BundleError::TrustedComment {
                                        path: p.clone(),
                                        comment: tc,
                                    });
                                }
                                signed_by = Some(k.key_id());
                                last = None;
                                break;
                            }
                            Err(e) => last = Some(e),
                        }
                    }
                    if let Some(e) = last {
                        return Err(BundleError::Signature {
                            path: p.clone(),
                            source: e,
                        });
                    }
                }
                members.push(Member {
                    name: SIGNATURE_NAME.into(),
                    kind: MemberKind::Signature,
                    header_offset: pos,
                    data_offset: pos + 512,
                    size: h1.size,
                    mode: h1.mode,
                    sha256: Digest::of(&sbytes),
                });
                header_checks.push((h1.header, pos));
                pos += 512 + pad512(h1.size);
            }
            _ => {
                if !trust.allow_unsigned {
                    return Err(BundleError::Unsigned { path: p.clone() });
                }
            }
        }

        // 3. the manifest, now that it is authentic
        let manifest: Manifest =
            serde_json::from_slice(&mbytes).map_err(|e| BundleError::BadManifest {
                path: p.clone(),
                reason: e.to_string(),
            })?;
        if manifest.format != FORMAT_V1 {
            return Err(BundleError::BadManifest {
                path: p.clone(),
                reason: format!(
                    "unsupported format {:?} (this darkport reads {FORMAT_V1})",
                    manifest.format
                ),
            });
        }
        if manifest
            .blobs
            .windows(2)
            .any(|w| w[0].digest >= w[1].digest)
        {
            return Err(BundleError::BadManifest {
                path: p.clone(),
                reason: "blobs are not sorted and unique".into(),
            });
        }
        // Expected members after the signature, in order.
        let mut expected: Vec<(String, MemberKind, u64, Digest, u32)> = Vec::new();
        for f in &manifest.files {
            expected.push((f.path.clone(), MemberKind::File, f.size, f.sha256, 0o644));
        }
        for pb in &manifest.playbooks {
            if pb.mode != 0o644 && pb.mode != 0o755 {
                return Err(BundleError::BadManifest {
                    path: p.clone(),
                    reason: format!("playbook {} has mode {:o}", pb.path, pb.mode),
                });
            }
            expected.push((
                format!("playbooks/{}", pb.path),
                MemberKind::Playbook(pb.path.clone()),
                pb.size,
                pb.sha256,
                pb.mode,
            ));
        }
        for b in manifest.blobs.iter().filter(|b| b.present) {
            expected.push((
                format!("blobs/sha256/{}", b.digest.hex()),
                MemberKind::Blob(b.digest),
                b.size,
                b.digest,
                0o644,
            ));
        }
        let expected_idx: HashMap<&str, usize> = expected
            .iter()
            .enumerate()
            .map(|(i, e)| (e.0.as_str(), i))
            .collect();
        let mut seen = vec![false; expected.len()];
        let mut next = 0usize;
        let mut last_name = members.last().unwrap().name.clone();
        while let Some(raw) = read_header(pos, &last_name)? {
            check_raw(&raw, pos)?;
            let Some(&i) = expected_idx.get(raw.name.as_str()) else {
                if raw.name == MANIFEST_NAME || raw.name == SIGNATURE_NAME {
                    return Err(BundleError::DuplicateMember {
                        path: p.clone(),
                        member: raw.name,
                        offset: pos,
                    });
                }
                return Err(BundleError::UnlistedMember {
                    path: p.clone(),
                    member: raw.name,
                    offset: pos,
                });
            };
            if seen[i] {
                return Err(BundleError::DuplicateMember {
                    path: p.clone(),
                    member: raw.name,
                    offset: pos,
                });
            }
            if i != next {
                return Err(BundleError::OutOfOrder {
                    path: p.clone(),
                    member: raw.name,
                    offset: pos,
                    expected: expected[next].0.clone(),
                });
            }
            let (name, kind, size, sha, mode) = expected[i].clone();
            if raw.size != size {
                return Err(BundleError::SizeMismatch {
                    bundle: p.clone(),
                    member: name,
                    expected: size,
                    actual: raw.size,
                });
            }
            header_checks.push((raw.header, pos));
            seen[i] = true;
            next += 1;
            members.push(Member {
                name: name.clone(),
                kind,
                header_offset: pos,
                data_offset: pos + 512,
                size,
                mode,
                sha256: sha,
            });
            last_name = name;
            pos += 512 + pad512(size);
        }
        if next < expected.len() {
            return Err(BundleError::MissingMember {
                path: p.clone(),
                member: expected[next].0.clone(),
            });
        }
        // End: exactly two zero blocks, then end of file.
        let end = pos + 1024;
        if len < end {
            return Err(BundleError::Truncated {
                path: p.clone(),
                detail: "the end-of-archive marker is cut short".into(),
                len,
            });
        }
        let mut tail = [0u8; 512];
        read_exact_at(&file, &p, &mut tail, pos + 512)?;
        if tail.iter().any(|&b| b != 0) {
            return Err(BundleError::TrailingData {
                path: p.clone(),
                offset: pos + 512,
            });
        }
        if len > end {
            return Err(BundleError::TrailingData {
                path: p.clone(),
                offset: end,
            });
        }
        // Headers must be byte-for-byte what the writer produces.
        for ((block, off), m) in header_checks.iter().zip(&members) {
            let canon = canonical_header(&m.name, m.size, m.mode)?;
            if &canon != block {
                return Err(BundleError::BadHeader {
                    path: p.clone(),
                    offset: *off,
                    member: m.name.clone(),
                    reason: "not a canonical darkport header (fields changed)".into(),
                });
            }
        }
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
            path: p,
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
