//! The steps of [`Bundle::open`](super::reader::Bundle::open), in the order they run. Each
//! step reads only tar headers and the two small members at the front (never layer data),
//! and each refuses something specific; the order matters: nothing from the manifest is
//! believed before its signature has been checked.

use super::manifest::{Manifest, FORMAT_V1, FORMAT_V2, SBOM_MEDIA_TYPE};
use super::member::{Member, MemberKind, Trust};
use super::{
    canonical_header, check_member_name, BundleError, MANIFEST_NAME, MAX_MANIFEST, MAX_SIGNATURE,
    SIGNATURE_NAME,
};
use crate::digest::Digest;
use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// One tar header as read from the file, before it is trusted.
pub(super) struct Raw {
    pub name: String,
    pub size: u64,
    pub mode: u32,
    pub typeflag: u8,
    pub header: [u8; 512],
}

/// A member the signed manifest says must come next: name, kind, size, hash, mode.
type Expected = (String, MemberKind, u64, Digest, u32);

pub(super) fn pad512(n: u64) -> u64 {
    n.div_ceil(512) * 512
}

pub(super) fn read_exact_at(
    f: &File,
    path: &Path,
    buf: &mut [u8],
    off: u64,
) -> Result<(), BundleError> {
    f.read_exact_at(buf, off).map_err(|source| BundleError::Io {
        op: "read",
        path: path.into(),
        source,
    })
}

/// The bundle file being opened, and what the scan has accepted so far.
pub(super) struct Scan<'a> {
    pub file: &'a File,
    pub path: PathBuf,
    pub len: u64,
    /// Members accepted so far, in file order.
    pub members: Vec<Member>,
    /// The raw header block of each accepted member, with its offset, for the final
    /// canonical-header check.
    pub headers: Vec<([u8; 512], u64)>,
    /// Offset of the next tar header.
    pub pos: u64,
}

impl<'a> Scan<'a> {
    pub fn new(file: &'a File, path: &Path, len: u64) -> Scan<'a> {
        Scan {
            file,
            path: path.to_path_buf(),
            len,
            members: Vec::new(),
            headers: Vec::new(),
            pos: 0,
        }
    }

    /// The tar header at `off` (`None` for a zero block). Refuses a header that is cut
    /// short, has a wrong checksum (corrupted or edited), or a name that is not UTF-8.
    fn read_header(&self, off: u64, after: &str) -> Result<Option<Raw>, BundleError> {
        let p = &self.path;
        if off + 512 > self.len {
            return Err(BundleError::Truncated {
                path: p.clone(),
                detail: format!("no tar header at offset {off} after {after}"),
                len: self.len,
            });
        }
        let mut block = [0u8; 512];
        read_exact_at(self.file, p, &mut block, off)?;
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
    }

    /// Refuses unsafe member names (absolute, `..`, …), anything but a regular file (links,
    /// devices, directories, pax/GNU extension headers) and data running past the end.
    fn check_raw(&self, raw: &Raw, off: u64) -> Result<(), BundleError> {
        let p = &self.path;
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
        // Checked: a base-256 size field holds up to u64::MAX, and `off + 512 + size` overflowed
        // (regression input: fuzz/artifacts/bundle_open/crash-check-raw-size-overflow).
        let end = off.checked_add(512).and_then(|d| d.checked_add(raw.size));
        if !matches!(end, Some(end) if end <= self.len) {
            return Err(BundleError::Truncated {
                path: p.clone(),
                detail: format!(
                    "member {:?} needs {} bytes from offset {}",
                    raw.name,
                    raw.size,
                    off + 512
                ),
                len: self.len,
            });
        }
        Ok(())
    }

    /// Accept `raw` at the current position as `name`/`kind` and move past its data.
    fn accept(&mut self, raw: &Raw, name: String, kind: MemberKind, sha256: Digest) {
        self.members.push(Member {
            name,
            kind,
            header_offset: self.pos,
            data_offset: self.pos + 512,
            size: raw.size,
            mode: raw.mode,
            sha256,
        });
        self.headers.push((raw.header, self.pos));
        self.pos += 512 + pad512(raw.size);
    }

    /// Step 1: the first member must be `darkport.json`, of bounded size; returns its bytes
    /// (not parsed yet). Refuses a file that is not a tar archive at all.
    pub fn manifest_member(&mut self) -> Result<Vec<u8>, BundleError> {
        let not_bundle = |reason: String| BundleError::NotABundle {
            path: self.path.clone(),
            reason,
        };
        let h0 = self
            .read_header(0, "start of file")
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
        self.check_raw(&h0, 0)?;
        if h0.size > MAX_MANIFEST {
            return Err(not_bundle(format!(
                "darkport.json is {} bytes, over the limit",
                h0.size
            )));
        }
        let mut mbytes = vec![0u8; h0.size as usize];
        read_exact_at(self.file, &self.path, &mut mbytes, 512)?;
        let sha = Digest::of(&mbytes);
        self.accept(&h0, MANIFEST_NAME.into(), MemberKind::Manifest, sha);
        Ok(mbytes)
    }

    /// Step 2: the signature over the manifest bytes, verified before the manifest is even
    /// parsed. Refuses an unsigned bundle (unless `trust` allows it), an oversized
    /// signature, one no trusted key verifies, and a trusted comment that does not name this
    /// manifest. Returns the key id that signed it.
    pub fn signature(
        &mut self,
        mbytes: &[u8],
        trust: &Trust,
    ) -> Result<Option<String>, BundleError> {
        let p = self.path.clone();
        let h1 = match self.read_header(self.pos, MANIFEST_NAME)? {
            Some(h1) if h1.name == SIGNATURE_NAME => h1,
            _ if trust.allow_unsigned => return Ok(None),
            _ => return Err(BundleError::Unsigned { path: p }),
        };
        self.check_raw(&h1, self.pos)?;
        let sig_err = |source| BundleError::Signature {
            path: p.clone(),
            source,
        };
        if h1.size > MAX_SIGNATURE {
            let why = format!("{} bytes is too large", h1.size);
            return Err(sig_err(super::SigError::Malformed(why)));
        }
        let mut sbytes = vec![0u8; h1.size as usize];
        read_exact_at(self.file, &p, &mut sbytes, self.pos + 512)?;
        let stext = String::from_utf8_lossy(&sbytes).to_string();
        let id = Digest::of(mbytes);
        let mut signed_by = None;
        if trust.keys.is_empty() {
            if !trust.allow_unsigned {
                let why = "no trusted public key was given".into();
                return Err(sig_err(super::SigError::Malformed(why)));
            }
        } else {
            let mut last = None;
            for k in &trust.keys {
                match k.verify(mbytes, &stext) {
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
                return Err(sig_err(e));
            }
        }
        let sha = Digest::of(&sbytes);
        self.accept(&h1, SIGNATURE_NAME.into(), MemberKind::Signature, sha);
        Ok(signed_by)
    }

    /// Step 4: every remaining header must be the next expected member, with the size the
    /// manifest says. Refuses unlisted, duplicate, out-of-order and missing members.
    pub fn members(&mut self, expected: &[Expected]) -> Result<(), BundleError> {
        let p = self.path.clone();
        let index: HashMap<&str, usize> = expected
            .iter()
            .enumerate()
            .map(|(i, e)| (e.0.as_str(), i))
            .collect();
        let mut next = 0usize;
        let mut last_name = self
            .members
            .last()
            .map(|m| m.name.clone())
            .unwrap_or_default();
        while let Some(raw) = self.read_header(self.pos, &last_name)? {
            self.check_raw(&raw, self.pos)?;
            let offset = self.pos;
            let Some(&i) = index.get(raw.name.as_str()) else {
                if raw.name == MANIFEST_NAME || raw.name == SIGNATURE_NAME {
                    return Err(BundleError::DuplicateMember {
                        path: p,
                        member: raw.name,
                        offset,
                    });
                }
                return Err(BundleError::UnlistedMember {
                    path: p,
                    member: raw.name,
                    offset,
                });
            };
            if i < next {
                return Err(BundleError::DuplicateMember {
                    path: p,
                    member: raw.name,
                    offset,
                });
            }
            if i != next {
                return Err(BundleError::OutOfOrder {
                    path: p,
                    member: raw.name,
                    offset,
                    expected: expected[next].0.clone(),
                });
            }
            let (name, kind, size, sha, mode) = expected[i].clone();
            if raw.size != size {
                return Err(BundleError::SizeMismatch {
                    bundle: p,
                    member: name,
                    expected: size,
                    actual: raw.size,
                });
            }
            let raw = Raw { mode, ..raw };
            self.accept(&raw, name.clone(), kind, sha);
            last_name = name;
            next += 1;
        }
        if next < expected.len() {
            return Err(BundleError::MissingMember {
                path: p,
                member: expected[next].0.clone(),
            });
        }
        Ok(())
    }

    /// Step 5: exactly two zero blocks end the archive, and the file ends there. Refuses a
    /// cut-short end and anything appended.
    pub fn end(&self) -> Result<(), BundleError> {
        let p = &self.path;
        let end = self.pos + 1024;
        if self.len < end {
            return Err(BundleError::Truncated {
                path: p.clone(),
                detail: "the end-of-archive marker is cut short".into(),
                len: self.len,
            });
        }
        let mut tail = [0u8; 512];
        read_exact_at(self.file, p, &mut tail, self.pos + 512)?;
        if tail.iter().any(|&b| b != 0) {
            return Err(BundleError::TrailingData {
                path: p.clone(),
                offset: self.pos + 512,
            });
        }
        if self.len > end {
            return Err(BundleError::TrailingData {
                path: p.clone(),
                offset: end,
            });
        }
        Ok(())
    }

    /// Step 6: every header must be byte for byte what the writer produces, so no field
    /// (owner, mtime, mode, link name …) can carry something the checks above did not see.
    pub fn canonical_headers(&self) -> Result<(), BundleError> {
        for ((block, off), m) in self.headers.iter().zip(&self.members) {
            let canon = canonical_header(&m.name, m.size, m.mode)?;
            if &canon != block {
                return Err(BundleError::BadHeader {
                    path: self.path.clone(),
                    offset: *off,
                    member: m.name.clone(),
                    reason: "not a canonical darkport header (fields changed)".into(),
                });
            }
        }
        Ok(())
    }
}

/// Step 3: the manifest, parsed now that it is authentic. Refuses bad JSON, another format
/// version and a blob list that is not sorted and unique.
pub(super) fn parse_manifest(path: &Path, mbytes: &[u8]) -> Result<Manifest, BundleError> {
    let bad = |reason: String| BundleError::BadManifest {
        path: path.to_path_buf(),
        reason,
    };
    let manifest: Manifest = serde_json::from_slice(mbytes).map_err(|e| bad(e.to_string()))?;
    if manifest.format != FORMAT_V1 && manifest.format != FORMAT_V2 {
        return Err(bad(format!(
            "unsupported format {:?} (this darkport reads {FORMAT_V1} and {FORMAT_V2})",
            manifest.format
        )));
    }
    if manifest
        .blobs
        .windows(2)
        .any(|w| w[0].digest >= w[1].digest)
    {
        return Err(bad("blobs are not sorted and unique".into()));
    }
    if let Some(c) = manifest
        .compose
        .iter()
        .find(|c| !c.starts_with("compose/") || !manifest.files.iter().any(|f| f.path == **c))
    {
        return Err(bad(format!(
            "compose file {c:?} is not a compose/ member listed in files"
        )));
    }
    check_sboms(&manifest).map_err(bad)?;
    Ok(manifest)
}

/// v2 `sboms`: each names a blob of the SBOM media type (present, or absent in a delta and
/// then carried by a base bundle), one entry per image manifest and platform. v1 has none.
fn check_sboms(m: &Manifest) -> Result<(), String> {
    if !m.is_v2() && !m.sboms.is_empty() {
        return Err(format!("sboms listed in a {FORMAT_V1} manifest"));
    }
    let mut seen = std::collections::BTreeSet::new();
    for s in &m.sboms {
        let b = m
            .blob(&s.document)
            .ok_or_else(|| format!("SBOM {} of {} is not listed in blobs", s.document, s.image))?;
        if b.media_type != SBOM_MEDIA_TYPE {
            return Err(format!(
                "SBOM {} of {} has media type {:?}, not {SBOM_MEDIA_TYPE}",
                s.document, s.image, b.media_type
            ));
        }
        if b.present == s.from_bundle.is_some() {
            return Err(format!(
                "SBOM {} of {}: from_bundle must be set exactly when the blob is left out",
                s.document, s.image
            ));
        }
        if !m.images.iter().any(|i| i.name == s.image) {
            return Err(format!("SBOM {} names no image {:?}", s.document, s.image));
        }
        if !seen.insert((&s.image, &s.platform)) {
            return Err(format!(
                "two SBOMs for image {:?} {:?}",
                s.image, s.platform
            ));
        }
    }
    Ok(())
}

/// The members the manifest lists after the signature, in the order the writer puts them:
/// files, playbooks, present blobs. Refuses a playbook mode other than 0644 / 0755.
pub(super) fn expected_members(
    path: &Path,
    manifest: &Manifest,
) -> Result<Vec<Expected>, BundleError> {
    let mut expected: Vec<Expected> = Vec::new();
    for f in &manifest.files {
        expected.push((f.path.clone(), MemberKind::File, f.size, f.sha256, 0o644));
    }
    for pb in &manifest.playbooks {
        if pb.mode != 0o644 && pb.mode != 0o755 {
            return Err(BundleError::BadManifest {
                path: path.to_path_buf(),
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
    Ok(expected)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::FileEntry;

    fn manifest(compose: &[&str], files: &[&str]) -> Vec<u8> {
        Manifest {
            format: FORMAT_V1.into(),
            product: "p".into(),
            version: "1.0.0".into(),
            upgrades_from: None,
            platforms: vec!["linux/amd64".into()],
            created: None,
            images: vec![],
            blobs: vec![],
            files: files
                .iter()
                .map(|f| FileEntry {
                    path: f.to_string(),
                    sha256: crate::digest::Digest::of(f.as_bytes()),
                    size: 1,
                })
                .collect(),
            playbooks: vec![],
            migrations: vec![],
            delta_base: vec![],
            compose: compose.iter().map(|c| c.to_string()).collect(),
            sboms: vec![],
        }
        .to_bytes()
    }

    /// v1 manifests (SBOMs as `sbom/` file members) still parse; `sboms` must name an SBOM
    /// blob, with `from_bundle` set exactly when the blob is left out, and only in v2.
    #[test]
    fn format_versions_and_sbom_entries() {
        use crate::bundle::{BlobEntry, ImageEntry, SbomEntry, FORMAT_V2, SBOM_MEDIA_TYPE};
        let p = Path::new("b.darkport");
        let v1 = manifest(&[], &["sbom/app.spdx.json"]);
        assert_eq!(parse_manifest(p, &v1).unwrap().format, FORMAT_V1);
        let doc = crate::digest::Digest::of(b"doc");
        let with = |format: &str, media_type: &str, present: bool, from: bool| {
            let mut m: Manifest = serde_json::from_slice(&manifest(&[], &[])).unwrap();
            m.format = format.into();
            m.images = vec![ImageEntry {
                name: "app:1".into(),
                digest: crate::digest::Digest::of(b"m"),
                media_type: "application/vnd.oci.image.manifest.v1+json".into(),
                size: 1,
                platforms: vec![],
                blobs: vec![],
                total_size: 0,
                source: "x".into(),
            }];
            m.blobs = vec![BlobEntry {
                digest: doc,
                size: 3,
                media_type: media_type.into(),
                present,
            }];
            m.sboms = vec![SbomEntry {
                image: "app:1".into(),
                platform: None,
                manifest: crate::digest::Digest::of(b"m"),
                document: doc,
                from_bundle: from.then(|| crate::digest::Digest::of(b"base")),
            }];
            parse_manifest(p, &m.to_bytes())
                .map(|_| ())
                .map_err(|e| e.to_string())
        };
        with(FORMAT_V2, SBOM_MEDIA_TYPE, true, false).unwrap();
        with(FORMAT_V2, SBOM_MEDIA_TYPE, false, true).unwrap();
        for (f, mt, present, from, why) in [
            (
                FORMAT_V1,
                SBOM_MEDIA_TYPE,
                true,
                false,
                "sboms listed in a darkport-bundle/v1",
            ),
            (FORMAT_V2, "application/json", true, false, "has media type"),
            (
                FORMAT_V2,
                SBOM_MEDIA_TYPE,
                false,
                false,
                "from_bundle must be set",
            ),
            (
                FORMAT_V2,
                SBOM_MEDIA_TYPE,
                true,
                true,
                "from_bundle must be set",
            ),
        ] {
            let e = with(f, mt, present, from).unwrap_err();
            assert!(e.contains(why), "{e}");
        }
        let mut m: Manifest = serde_json::from_slice(&manifest(&[], &[])).unwrap();
        m.format = "darkport-bundle/v3".into();
        let e = parse_manifest(p, &m.to_bytes()).unwrap_err().to_string();
        assert!(e.contains("unsupported format"), "{e}");
    }

    /// A `compose` entry must be a `compose/` member the manifest lists (and so hashes).
    #[test]
    fn compose_entries_must_be_listed_members() {
        let p = Path::new("b.darkport");
        let ok = manifest(&["compose/c.yml"], &["compose/c.yml"]);
        assert_eq!(parse_manifest(p, &ok).unwrap().compose, ["compose/c.yml"]);
        for bad in [
            manifest(&["compose/c.yml"], &[]),
            manifest(&["index.json"], &["index.json"]),
        ] {
            let e = parse_manifest(p, &bad).unwrap_err().to_string();
            assert!(e.contains("b.darkport"), "{e}");
            assert!(
                e.contains("is not a compose/ member listed in files"),
                "{e}"
            );
        }
        // Without compose files the key is not written at all (older bundles stay identical).
        let none = String::from_utf8(manifest(&[], &[])).unwrap();
        assert!(!none.contains("compose"), "{none}");
    }
}
