//! Content-addressed blob store used while building a bundle.
//!
//! Every blob is known by its sha256 [`Digest`]. A blob either lives in the store's own
//! directory (`<root>/blobs/sha256/<hex>`, written by [`Store::put_stream`] through a temp
//! file and a rename, hashed while written) or is a byte range of an existing local file
//! (an OCI layout's blob file, a member of an uncompressed tar). Ranges let the bundle writer
//! copy straight from the sources: a local layer is read exactly once per build.
//!
//! Nothing here holds a blob in memory; readers are bounded, streaming and, with
//! [`Store::open_verified`], check the digest when the last byte has been read.

use crate::digest::{Digest, HashingWriter};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("failed to {op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("blob {digest} is not in the store")]
    Missing { digest: Digest },
    #[error("blob {expected} has wrong content: got {actual} ({size} bytes) from {origin}")]
    DigestMismatch {
        expected: Digest,
        actual: Digest,
        size: u64,
        origin: String,
    },
    #[error("blob {digest} from {origin} has {actual} bytes, expected {expected}")]
    SizeMismatch {
        digest: Digest,
        origin: String,
        expected: u64,
        actual: u64,
    },
}

/// Where a blob's bytes are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// A whole file (in the store or a source directory).
    File(PathBuf),
    /// `len` bytes at `offset` of a file (e.g. a member of an uncompressed tar).
    Range {
        path: PathBuf,
        offset: u64,
        len: u64,
    },
}

impl Location {
    pub fn describe(&self) -> String {
        match self {
            Location::File(p) => p.display().to_string(),
            Location::Range { path, offset, len } => {
                format!("{} (bytes {offset}..{})", path.display(), offset + len)
            }
        }
    }
}

#[derive(Clone, Debug)]
pub struct StoredBlob {
    pub digest: Digest,
    pub size: u64,
    pub location: Location,
    /// True when the store (not a source) already checked the bytes against the digest.
    pub verified: bool,
}

/// The build-time CAS. Not shared between processes; one per build.
pub struct Store {
    root: PathBuf,
    blobs: BTreeMap<Digest, StoredBlob>,
    tmp_counter: AtomicU64,
}

impl Store {
    /// A store rooted at `root` (created if needed). Blobs already in `root/blobs/sha256`
    /// from an earlier build are not trusted until re-registered by a source.
    pub fn open(root: &Path) -> Result<Store, StoreError> {
        let blobs = root.join("blobs").join("sha256");
        std::fs::create_dir_all(&blobs).map_err(|source| StoreError::Io {
            op: "create store directory",
            path: blobs.clone(),
            source,
        })?;
        Ok(Store {
            root: root.to_path_buf(),
            blobs: BTreeMap::new(),
            tmp_counter: AtomicU64::new(0),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn contains(&self, d: &Digest) -> bool {
        self.blobs.contains_key(d)
    }

    pub fn get(&self, d: &Digest) -> Option<&StoredBlob> {
        self.blobs.get(d)
    }

    pub fn iter(&self) -> impl Iterator<Item = &StoredBlob> {
        self.blobs.values()
    }

    /// Register bytes that live elsewhere under their expected digest. The content is
    /// checked when the blob is read through [`Store::open_verified`] (the bundle writer
    /// does that while copying, so each byte is hashed once).
    pub fn register(&mut self, digest: Digest, size: u64, location: Location) {
        self.blobs.entry(digest).or_insert(StoredBlob {
            digest,
            size,
            location,
            verified: false,
        });
    }

    /// Record that a blob's bytes were read and matched its digest elsewhere (e.g. by the
    /// SBOM scan, which hashes each layer while it reads it), so the bundle writer can copy
    /// it without hashing again. Returns whether the blob is known.
    pub fn mark_verified(&mut self, d: &Digest) -> bool {
        match self.blobs.get_mut(d) {
            Some(b) => {
                b.verified = true;
                true
            }
            None => false,
        }
    }

    /// A blob's entry, the file holding it and the offset of its first byte there.
    fn locate(&self, d: &Digest) -> Result<(&StoredBlob, PathBuf, u64), StoreError> {
        let b = self
            .blobs
            .get(d)
            .ok_or(StoreError::Missing { digest: *d })?;
        let (path, offset) = match &b.location {
            Location::File(p) => (p.clone(), 0),
            Location::Range { path, offset, .. } => (path.clone(), *offset),
        };
        Ok((b, path, offset))
    }

    /// An open file positioned at a blob's first byte and bounded to its size, for a plain
    /// copy (no hashing): only for blobs that are [`StoredBlob::verified`].
    pub fn open_raw(&self, d: &Digest) -> Result<io::Take<File>, StoreError> {
        use std::io::{Seek, SeekFrom};
        let (b, path, offset) = self.locate(d)?;
        let io_err = |source| StoreError::Io {
            op: "open blob",
            path: path.clone(),
            source,
        };
        let mut f = File::open(&path).map_err(io_err)?;
        let len = f.metadata().map_err(io_err)?.len();
        if len < offset + b.size {
            return Err(StoreError::SizeMismatch {
                digest: *d,
                origin: b.location.describe(),
                expected: b.size,
                actual: len.saturating_sub(offset),
            });
        }
        f.seek(SeekFrom::Start(offset)).map_err(io_err)?;
        Ok(f.take(b.size))
    }

    /// Path of a blob in the store's own directory.
    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.root.join("blobs").join("sha256").join(d.hex())
    }

    /// A new private temp file path inside the store.
    pub fn temp_path(&self, hint: &str) -> PathBuf {
        let n = self.tmp_counter.fetch_add(1, Ordering::Relaxed);
        self.root
            .join(format!(".tmp-{}-{n}-{hint}", std::process::id()))
    }

    /// Write a stream into the store, hashing while writing; if `expected` is given the
    /// content must match it (digest and, if given, size). Returns the digest and size.
    pub fn put_stream<R: Read>(
        &mut self,
        mut r: R,
        expected: Option<(Digest, Option<u64>)>,
        origin: &str,
    ) -> Result<(Digest, u64), StoreError> {
        let (tmp, mut w) = self.writer("put")?;
        io::copy(&mut r, &mut w).map_err(|source| StoreError::Io {
            op: "write blob from",
            path: PathBuf::from(origin),
            source,
        })?;
        self.commit(tmp, w, expected, origin)
    }

    /// A temp file writer for content produced incrementally (e.g. by a compressor or an
    /// async download); finish with [`Store::commit`].
    pub fn writer(
        &self,
        hint: &str,
    ) -> Result<(PathBuf, HashingWriter<BufWriter<File>>), StoreError> {
        let tmp = self.temp_path(hint);
        let f = File::create(&tmp).map_err(|source| StoreError::Io {
            op: "create",
            path: tmp.clone(),
            source,
        })?;
        Ok((
            tmp,
            HashingWriter::new(BufWriter::with_capacity(1 << 20, f)),
        ))
    }

    /// Check a finished temp file against `expected` and move it to its digest's path.
    pub fn commit(
        &mut self,
        tmp: PathBuf,
        w: HashingWriter<BufWriter<File>>,
        expected: Option<(Digest, Option<u64>)>,
        origin: &str,
    ) -> Result<(Digest, u64), StoreError> {
        let (bw, (digest, size)) = w.finish();
        bw.into_inner()
            .map_err(|e| e.into_error())
            .map_err(|source| StoreError::Io {
                op: "flush",
                path: tmp.clone(),
                source,
            })?;
        if let Some((want, want_size)) = expected {
            if want != digest {
                let _ = std::fs::remove_file(&tmp);
                return Err(StoreError::DigestMismatch {
                    expected: want,
                    actual: digest,
                    size,
                    origin: origin.to_string(),
                });
            }
            if let Some(ws) = want_size {
                if ws != size {
                    let _ = std::fs::remove_file(&tmp);
                    return Err(StoreError::SizeMismatch {
                        digest,
                        origin: origin.to_string(),
                        expected: ws,
                        actual: size,
                    });
                }
            }
        }
        let dest = self.blob_path(&digest);
        std::fs::rename(&tmp, &dest).map_err(|source| StoreError::Io {
            op: "rename into store",
            path: dest.clone(),
            source,
        })?;
        self.blobs.insert(
            digest,
            StoredBlob {
                digest,
                size,
                location: Location::File(dest),
                verified: true,
            },
        );
        Ok((digest, size))
    }

    /// Store small in-memory content (manifests, configs) and return its digest.
    pub fn put_bytes(&mut self, data: &[u8]) -> Result<Digest, StoreError> {
        let d = Digest::of(data);
        if self.blobs.get(&d).is_some_and(|b| b.verified) {
            return Ok(d);
        }
        let (tmp, mut w) = self.writer("bytes")?;
        w.write_all(data).map_err(|source| StoreError::Io {
            op: "write",
            path: tmp.clone(),
            source,
        })?;
        self.commit(tmp, w, Some((d, Some(data.len() as u64))), "memory")?;
        Ok(d)
    }

    /// A streaming reader over the blob that fails with `InvalidData` at the end if the
    /// bytes do not hash to the digest or have the wrong length.
    pub fn open_verified(&self, d: &Digest) -> Result<VerifiedReader, StoreError> {
        let (b, path, offset) = self.locate(d)?;
        let f = File::open(&path).map_err(|source| StoreError::Io {
            op: "open blob",
            path: path.clone(),
            source,
        })?;
        Ok(VerifiedReader::new(
            f,
            offset,
            b.size,
            *d,
            b.location.describe(),
        ))
    }

    /// Read a small blob fully (manifests and configs only; callers cap the size).
    pub fn read_small(&self, d: &Digest, max: u64) -> Result<Vec<u8>, StoreError> {
        let b = self
            .blobs
            .get(d)
            .ok_or(StoreError::Missing { digest: *d })?;
        if b.size > max {
            return Err(StoreError::SizeMismatch {
                digest: *d,
                origin: b.location.describe(),
                expected: max,
                actual: b.size,
            });
        }
        let mut r = self.open_verified(d)?;
        let mut v = Vec::with_capacity(b.size as usize);
        r.read_to_end(&mut v).map_err(|source| StoreError::Io {
            op: "read blob",
            path: PathBuf::from(b.location.describe()),
            source,
        })?;
        Ok(v)
    }
}

/// Positional, bounded reader that hashes what it yields and checks the digest at EOF.
pub struct VerifiedReader {
    file: File,
    pos: u64,
    end: u64,
    hasher: sha2::Sha256,
    expected: Digest,
    origin: String,
    size: u64,
    checked: bool,
}

impl VerifiedReader {
    pub fn new(file: File, offset: u64, size: u64, expected: Digest, origin: String) -> Self {
        use sha2::Digest as _;
        VerifiedReader {
            file,
            pos: offset,
            end: offset + size,
            hasher: sha2::Sha256::new(),
            expected,
            origin,
            size,
            checked: false,
        }
    }
}

impl Read for VerifiedReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use sha2::Digest as _;
        let left = self.end - self.pos;
        if left == 0 {
            if !self.checked {
                self.checked = true;
                let h = std::mem::take(&mut self.hasher);
                let got = Digest::from_bytes(h.finalize().into());
                if got != self.expected {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "blob {} read from {} hashes to {got}",
                            self.expected, self.origin
                        ),
                    ));
                }
            }
            return Ok(0);
        }
        let want = buf.len().min(left.min(usize::MAX as u64) as usize);
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "blob {} in {} ends early ({} of {} bytes)",
                    self.expected,
                    self.origin,
                    self.size - left,
                    self.size
                ),
            ));
        }
        self.hasher.update(&buf[..n]);
        self.pos += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_and_verify_range() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        let d = s.put_bytes(b"hello world").unwrap();
        assert_eq!(s.read_small(&d, 100).unwrap(), b"hello world");
        // a range of an outside file
        let f = dir.path().join("outer");
        std::fs::write(&f, b"xxhelloyy").unwrap();
        let d2 = Digest::of(b"hello");
        s.register(
            d2,
            5,
            Location::Range {
                path: f.clone(),
                offset: 2,
                len: 5,
            },
        );
        assert_eq!(s.read_small(&d2, 100).unwrap(), b"hello");
        // wrong content is caught at EOF
        let bad = Digest::of(b"other");
        s.register(
            bad,
            5,
            Location::Range {
                path: f,
                offset: 2,
                len: 5,
            },
        );
        let err = s.read_small(&bad, 100).unwrap_err().to_string();
        assert!(err.contains("read blob"), "{err}");
        // wrong expected digest on put
        let e = s
            .put_stream(&b"abc"[..], Some((Digest::of(b"abd"), None)), "test")
            .unwrap_err();
        assert!(matches!(e, StoreError::DigestMismatch { .. }));
    }
}
