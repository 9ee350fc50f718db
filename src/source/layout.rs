//! OCI image layouts: a directory (`oci:`) or an uncompressed tar of one (`oci-archive:`).
//! Blobs are never copied: the store points at the file or the tar member's byte range.

use super::{parse_json, BlobAccess, Descriptor, FetchContext, SourceError};
use crate::store::Location;
use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Regular members of an uncompressed tar: normalized path → (data offset, size).
pub(crate) struct TarIndex {
    pub file: PathBuf,
    pub members: HashMap<String, (u64, u64)>,
}

pub(crate) fn normalize(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    parts.join("/")
}

impl TarIndex {
    pub fn build(file: &Path) -> Result<TarIndex, SourceError> {
        let io = |source| SourceError::Io {
            what: "tar archive",
            path: file.to_path_buf(),
            source,
        };
        let f = File::open(file).map_err(io)?;
        let mut ar = tar::Archive::new(f);
        let mut members = HashMap::new();
        let mut links = Vec::new();
        for e in ar.entries_with_seek().map_err(io)? {
            let e = e.map_err(io)?;
            let path = normalize(&String::from_utf8_lossy(&e.path_bytes()));
            let kind = e.header().entry_type();
            if kind.is_file() {
                members.insert(path, (e.raw_file_position(), e.size()));
            } else if kind.is_symlink() || kind.is_hard_link() {
                if let Ok(Some(t)) = e.link_name() {
                    let t = t.to_string_lossy().to_string();
                    let target = if kind.is_symlink() {
                        let parent = Path::new(&path)
                            .parent()
                            .map(|p| p.to_string_lossy().to_string())
                            .unwrap_or_default();
                        normalize(&format!("{parent}/{t}"))
                    } else {
                        normalize(&t)
                    };
                    links.push((path, target));
                }
            }
        }
        for (p, t) in links {
            if let Some(v) = members.get(&t).copied() {
                members.insert(p, v);
            }
        }
        Ok(TarIndex {
            file: file.to_path_buf(),
            members,
        })
    }

    pub fn read_small(&self, name: &str, max: u64) -> Result<Vec<u8>, SourceError> {
        let (off, size) = *self
            .members
            .get(name)
            .ok_or_else(|| SourceError::NotFound {
                reference: name.to_string(),
                location: self.file.display().to_string(),
                available: String::new(),
            })?;
        if size > max {
            return Err(SourceError::Malformed {
                what: name.to_string(),
                location: self.file.display().to_string(),
                reason: format!("{size} bytes is too large"),
            });
        }
        let mut buf = vec![0u8; size as usize];
        use std::os::unix::fs::FileExt;
        let f = File::open(&self.file).map_err(|source| SourceError::Io {
            what: "tar archive",
            path: self.file.clone(),
            source,
        })?;
        f.read_exact_at(&mut buf, off)
            .map_err(|source| SourceError::Io {
                what: "tar member",
                path: self.file.join(name),
                source,
            })?;
        Ok(buf)
    }
}

enum Backing {
    Dir(PathBuf),
    Tar(TarIndex),
}

pub(crate) struct Layout {
    backing: Backing,
    index: Vec<Descriptor>,
}

#[derive(serde::Deserialize)]
struct LayoutIndex {
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

impl Layout {
    pub fn open_dir(dir: &Path) -> Result<Layout, SourceError> {
        let p = dir.join("index.json");
        let mut s = Vec::new();
        File::open(&p)
            .and_then(|f| f.take(super::MAX_SMALL_BLOB).read_to_end(&mut s))
            .map_err(|source| SourceError::Io {
                what: "OCI layout index",
                path: p.clone(),
                source,
            })?;
        let idx: LayoutIndex = parse_json(&s, "index.json", &dir.display().to_string())?;
        Ok(Layout {
            backing: Backing::Dir(dir.to_path_buf()),
            index: idx.manifests,
        })
    }

    pub fn open_archive(file: &Path) -> Result<Layout, SourceError> {
        let t = TarIndex::build(file)?;
        let s = t.read_small("index.json", super::MAX_SMALL_BLOB)?;
        let idx: LayoutIndex = parse_json(&s, "index.json", &file.display().to_string())?;
        Ok(Layout {
            backing: Backing::Tar(t),
            index: idx.manifests,
        })
    }

    /// The index entry for `reference` (or the only one when `None`).
    pub fn find(&self, reference: Option<&str>) -> Result<Descriptor, SourceError> {
        let names: Vec<String> = self
            .index
            .iter()
            .filter_map(|d| d.ref_name().map(str::to_string))
            .collect();
        let avail = if names.is_empty() {
            String::new()
        } else {
            format!(" (it has: {})", names.join(", "))
        };
        match reference {
            Some(r) => self
                .index
                .iter()
                .find(|d| d.ref_name() == Some(r))
                .cloned()
                .ok_or(SourceError::NotFound {
                    reference: r.to_string(),
                    location: self.location(),
                    available: avail,
                }),
            None if self.index.len() == 1 => Ok(self.index[0].clone()),
            None => Err(SourceError::NotFound {
                reference: String::new(),
                location: self.location(),
                available: format!(
                    " (the layout holds {} images: add :REF{avail})",
                    self.index.len()
                ),
            }),
        }
    }
}

impl BlobAccess for Layout {
    fn location(&self) -> String {
        match &self.backing {
            Backing::Dir(d) => format!("oci:{}", d.display()),
            Backing::Tar(t) => format!("oci-archive:{}", t.file.display()),
        }
    }

    fn fetch_blob(&mut self, cx: &mut FetchContext, desc: &Descriptor) -> Result<(), SourceError> {
        let d = desc.digest(&self.location())?;
        if cx.store.contains(&d) {
            return Ok(());
        }
        let rel = format!("blobs/sha256/{}", d.hex());
        match &self.backing {
            Backing::Dir(dir) => {
                let p = dir.join(&rel);
                let md = std::fs::metadata(&p).map_err(|source| SourceError::Io {
                    what: "blob",
                    path: p.clone(),
                    source,
                })?;
                if md.len() != desc.size {
                    return Err(SourceError::Malformed {
                        what: format!("blob {d}"),
                        location: self.location(),
                        reason: format!(
                            "file has {} bytes, descriptor says {}",
                            md.len(),
                            desc.size
                        ),
                    });
                }
                cx.store.register(d, desc.size, Location::File(p));
            }
            Backing::Tar(t) => {
                let (offset, len) = *t.members.get(&rel).ok_or_else(|| SourceError::NotFound {
                    reference: rel.clone(),
                    location: self.location(),
                    available: String::new(),
                })?;
                if len != desc.size {
                    return Err(SourceError::Malformed {
                        what: format!("blob {d}"),
                        location: self.location(),
                        reason: format!("member has {len} bytes, descriptor says {}", desc.size),
                    });
                }
                cx.store.register(
                    d,
                    len,
                    Location::Range {
                        path: t.file.clone(),
                        offset,
                        len,
                    },
                );
            }
        }
        Ok(())
    }
}
