//! Writing a bundle: canonical tar headers, members in canonical order, signed manifest
//! first, temp file → fsync → rename.

use super::manifest::{FileEntry, Manifest, PlaybookEntry};
use super::sign::SigningKey;
use super::{canonical_header, BundleError, Reporter, MANIFEST_NAME, SIGNATURE_NAME};
use crate::digest::Digest;
use crate::source::{OCI_INDEX, REF_NAME_ANNOTATION};
use crate::store::{Store, VerifiedReader};
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

pub const OCI_LAYOUT: &[u8] = b"{\"imageLayoutVersion\":\"1.0.0\"}";

/// Collect the playbook tree: regular files only, sorted, with sha256, size and mode.
pub fn collect_playbooks(root: &Path) -> Result<Vec<PlaybookEntry>, BundleError> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let rd = std::fs::read_dir(&dir).map_err(|source| BundleError::Io {
            op: "read playbook directory",
            path: dir.clone(),
            source,
        })?;
        for e in rd {
            let e = e.map_err(|source| BundleError::Io {
                op: "read playbook directory",
                path: dir.clone(),
                source,
            })?;
            let p = e.path();
            let md = std::fs::symlink_metadata(&p).map_err(|source| BundleError::Io {
                op: "stat",
                path: p.clone(),
                source,
            })?;
            let rel = p
                .strip_prefix(root)
                .expect("under root")
                .to_str()
                .ok_or_else(|| BundleError::Playbook {
                    path: p.clone(),
                    reason: "file name is not UTF-8".into(),
                })?
                .to_string();
            if md.is_dir() {
                stack.push(p);
            } else if md.is_file() {
                use std::os::unix::fs::PermissionsExt;
                let (d, n) = Digest::of_file(&p).map_err(|source| BundleError::Io {
                    op: "hash playbook file",
                    path: p.clone(),
                    source,
                })?;
                let mode = if md.permissions().mode() & 0o100 != 0 {
                    0o755
                } else {
                    0o644
                };
                let member = format!("playbooks/{rel}");
                super::check_member_name(&member).map_err(|reason| BundleError::Playbook {
                    path: p.clone(),
                    reason,
                })?;
                out.push(PlaybookEntry {
                    path: rel,
                    sha256: d,
                    size: n,
                    mode,
                });
            } else {
                return Err(BundleError::Playbook {
                    path: p,
                    reason:
                        "only regular files and directories are allowed (no symlinks or devices)"
                            .into(),
                });
            }
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// `index.json` of the OCI layout: one entry per image, named by `ref.name`.
pub fn layout_index(m: &Manifest) -> Vec<u8> {
    let manifests: Vec<serde_json::Value> = m
        .images
        .iter()
        .map(|i| {
            serde_json::json!({
                "mediaType": i.media_type,
                "digest": i.digest.to_string(),
                "size": i.size,
                "annotations": {REF_NAME_ANNOTATION: i.name},
            })
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": manifests,
    }))
    .expect("json")
}

fn sha256sums(m: &Manifest, layout: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut s = String::new();
    for (p, data) in layout {
        s.push_str(&format!("{}  {p}\n", Digest::of(data).hex()));
    }
    for p in &m.playbooks {
        s.push_str(&format!("{}  playbooks/{}\n", p.sha256.hex(), p.path));
    }
    for b in m.blobs.iter().filter(|b| b.present) {
        s.push_str(&format!(
            "{}  blobs/sha256/{}\n",
            b.digest.hex(),
            b.digest.hex()
        ));
    }
    s.into_bytes()
}

pub struct WriteSummary {
    pub path: PathBuf,
    pub size: u64,
    pub manifest_digest: Digest,
    pub signed_by: Option<String>,
}

struct Out {
    w: BufWriter<File>,
    pos: u64,
    path: PathBuf,
}

impl Out {
    fn io(&self, source: io::Error) -> BundleError {
        BundleError::Io {
            op: "write bundle",
            path: self.path.clone(),
            source,
        }
    }
    fn member_bytes(&mut self, name: &str, data: &[u8], mode: u32) -> Result<(), BundleError> {
        let h = canonical_header(name, data.len() as u64, mode)?;
        self.w.write_all(&h).map_err(|e| self.io(e))?;
        self.w.write_all(data).map_err(|e| self.io(e))?;
        self.pos += 512 + data.len() as u64;
        self.pad()
    }
    fn member_stream(
        &mut self,
        name: &str,
        size: u64,
        mode: u32,
        mut r: impl Read,
        rep: &dyn Reporter,
    ) -> Result<(), BundleError> {
        let h = canonical_header(name, size, mode)?;
        self.w.write_all(&h).map_err(|e| self.io(e))?;
        self.pos += 512;
        let mut buf = vec![0u8; 1 << 20];
        let mut done = 0u64;
        loop {
            let n = r.read(&mut buf).map_err(|source| BundleError::Io {
                op: "copy into bundle the member",
                path: PathBuf::from(name),
                source,
            })?;
            if n == 0 {
                break;
            }
            self.w.write_all(&buf[..n]).map_err(|e| self.io(e))?;
            done += n as u64;
            rep.advance(n as u64);
        }
        if done != size {
            return Err(BundleError::SizeMismatch {
                bundle: self.path.clone(),
                member: name.to_string(),
                expected: size,
                actual: done,
            });
        }
        self.pos += size;
        self.pad()
    }
    /// A member whose bytes were already checked against its digest: copied file to file
    /// (`copy_file_range` where the kernel has it), not through a hashing buffer.
    fn member_copy(
        &mut self,
        name: &str,
        size: u64,
        mut r: io::Take<File>,
        rep: &dyn Reporter,
    ) -> Result<(), BundleError> {
        let h = canonical_header(name, size, 0o644)?;
        self.w.write_all(&h).map_err(|e| self.io(e))?;
        self.pos += 512;
        self.w.flush().map_err(|e| self.io(e))?;
        let done = io::copy(&mut r, self.w.get_mut()).map_err(|source| BundleError::Io {
            op: "copy into bundle the member",
            path: PathBuf::from(name),
            source,
        })?;
        if done != size {
            return Err(BundleError::SizeMismatch {
                bundle: self.path.clone(),
                member: name.to_string(),
                expected: size,
                actual: done,
            });
        }
        rep.advance(size);
        self.pos += size;
        self.pad()
    }
    fn pad(&mut self) -> Result<(), BundleError> {
        let rem = (self.pos % 512) as usize;
        if rem != 0 {
            let z = [0u8; 512];
            self.w.write_all(&z[..512 - rem]).map_err(|e| self.io(e))?;
            self.pos += (512 - rem) as u64;
        }
        Ok(())
    }
}

/// Write a bundle to `out` (a file path). `manifest` must have images, blobs, playbooks,
/// migrations and delta_base filled; `files` is computed here (`oci-layout`, `index.json`,
/// then `extra_files` such as the compose files, in the order given, then `SHA256SUMS`). Present
/// blobs are read from `store` (digest checked while copying, unless the store already
/// checked them), playbooks from `playbook_root`.
pub fn write_bundle(
    mut manifest: Manifest,
    store: &Store,
    playbook_root: Option<&Path>,
    signer: Option<&SigningKey>,
    extra_files: Vec<(String, Vec<u8>)>,
    out: &Path,
    rep: &dyn Reporter,
) -> Result<WriteSummary, BundleError> {
    manifest.blobs.sort_by_key(|b| b.digest);
    let index = layout_index(&manifest);
    let mut layout = vec![
        ("oci-layout".to_string(), OCI_LAYOUT.to_vec()),
        ("index.json".to_string(), index),
    ];
    for (name, _) in &extra_files {
        super::check_member_name(name).map_err(|reason| BundleError::Playbook {
            path: PathBuf::from(name),
            reason,
        })?;
    }
    layout.extend(extra_files);
    let sums = sha256sums(&manifest, &layout);
    manifest.files = layout
        .iter()
        .chain(std::iter::once(&("SHA256SUMS".to_string(), sums.clone())))
        .map(|(p, d)| FileEntry {
            path: p.clone(),
            sha256: Digest::of(d),
            size: d.len() as u64,
        })
        .collect();
    if !manifest.playbooks.is_empty() && playbook_root.is_none() {
        return Err(BundleError::Playbook {
            path: PathBuf::from("playbooks"),
            reason: "manifest lists playbooks but no playbook directory was given".into(),
        });
    }
    let mbytes = manifest.to_bytes();
    let mdigest = Digest::of(&mbytes);
    let sig = match signer {
        Some(k) => Some(
            k.sign(&mbytes, &manifest.trusted_comment(&mdigest))
                .map_err(BundleError::Key)?,
        ),
        None => None,
    };
    let total: u64 =
        manifest.stored_blob_bytes() + manifest.playbooks.iter().map(|p| p.size).sum::<u64>();
    rep.start("writing bundle", total);

    let dir = out
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let fname = out
        .file_name()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{fname}.tmp{}", std::process::id()));
    let f = File::create(&tmp).map_err(|source| BundleError::Io {
        op: "create",
        path: tmp.clone(),
        source,
    })?;
    let mut o = Out {
        w: BufWriter::with_capacity(4 << 20, f),
        pos: 0,
        path: tmp.clone(),
    };
    let res = (|| -> Result<(), BundleError> {
        o.member_bytes(MANIFEST_NAME, &mbytes, 0o644)?;
        if let Some(s) = &sig {
            o.member_bytes(SIGNATURE_NAME, s.as_bytes(), 0o644)?;
        }
        for (p, d) in &layout {
            o.member_bytes(p, d, 0o644)?;
        }
        o.member_bytes("SHA256SUMS", &sums, 0o644)?;
        if let Some(root) = playbook_root {
            for p in &manifest.playbooks {
                let src = root.join(&p.path);
                let f = File::open(&src).map_err(|source| BundleError::Io {
                    op: "open playbook file",
                    path: src.clone(),
                    source,
                })?;
                let r = VerifiedReader::new(f, 0, p.size, p.sha256, src.display().to_string());
                o.member_stream(&format!("playbooks/{}", p.path), p.size, p.mode, r, rep)?;
            }
        }
        for b in manifest.blobs.iter().filter(|b| b.present) {
            let name = format!("blobs/sha256/{}", b.digest.hex());
            if store.get(&b.digest).is_some_and(|s| s.verified) {
                let r = store.open_raw(&b.digest).map_err(BundleError::Store)?;
                o.member_copy(&name, b.size, r, rep)?;
            } else {
                let r = store.open_verified(&b.digest).map_err(BundleError::Store)?;
                o.member_stream(&name, b.size, 0o644, r, rep)?;
            }
        }
        o.w.write_all(&[0u8; 1024]).map_err(|e| o.io(e))?;
        o.pos += 1024;
        o.w.flush().map_err(|e| o.io(e))?;
        o.w.get_ref().sync_all().map_err(|e| o.io(e))?;
        Ok(())
    })();
    if let Err(e) = res {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, out).map_err(|source| BundleError::Io {
        op: "rename bundle into place",
        path: out.into(),
        source,
    })?;
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    rep.finish();
    Ok(WriteSummary {
        path: out.into(),
        size: o.pos,
        manifest_digest: mdigest,
        signed_by: signer.map(|k| k.key_id()),
    })
}
