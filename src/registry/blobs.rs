//! Reading blobs out of the CAS for the server: positioned, streamed reads (never the whole
//! blob in memory) and the integrity verdict cache.
//!
//! Integrity strategy: a blob's sha256 is checked the first time it is served after a start,
//! and the verdict is cached keyed by the file's identity (device, inode, size, mtime, ctime),
//! so any later change to the file (rewrite, in-place corruption, replacement) forces a new
//! check. A full GET of an unchecked blob hashes while it streams and holds back the LAST chunk
//! until the digest is known: on a mismatch the stream ends in an error, the connection is cut
//! before the final bytes, and the client (which knows `Content-Length`) never sees a complete
//! body. A range request of an unchecked blob hashes the file first. A blob found bad is
//! answered `BLOB_UNKNOWN` until the file changes.

use crate::digest::Digest;
use bytes::Bytes;
use sha2::{Digest as _, Sha256};
use std::collections::HashMap;
use std::fs::{File, Metadata};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;
use std::sync::Mutex;

/// Size of each chunk read from disk and sent to the client.
pub const CHUNK: usize = 256 * 1024;

/// A file's identity: if any of this changes, the content must be checked again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileKey {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

impl FileKey {
    pub fn of(m: &Metadata) -> FileKey {
        FileKey {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime_ns: m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128,
            ctime_ns: m.ctime() as i128 * 1_000_000_000 + m.ctime_nsec() as i128,
        }
    }
}

/// The result of hashing a stored blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Good,
    Bad,
}

/// Verdicts per digest, valid only while the file keeps the same [`FileKey`].
#[derive(Debug, Default)]
pub struct IntegrityCache {
    map: Mutex<HashMap<Digest, (FileKey, Verdict)>>,
}

impl IntegrityCache {
    pub fn get(&self, d: &Digest, key: &FileKey) -> Option<Verdict> {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        match map.get(d) {
            Some((k, v)) if k == key => Some(*v),
            _ => None,
        }
    }
    pub fn set(&self, d: Digest, key: FileKey, v: Verdict) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.insert(d, (key, v));
    }
}

/// An opened CAS file.
#[derive(Debug)]
pub struct OpenBlob {
    pub file: File,
    pub key: FileKey,
    pub len: u64,
}

/// Open `path`; `Ok(None)` when it does not exist (or is not a regular file).
pub fn open_blob(path: &Path) -> io::Result<Option<OpenBlob>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Ok(None);
    }
    Ok(Some(OpenBlob {
        key: FileKey::of(&meta),
        len: meta.len(),
        file,
    }))
}

/// Hash the whole file (positioned reads; blocking) and compare with `expected`.
pub fn verify_file(file: &File, expected: &Digest) -> io::Result<bool> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut pos = 0u64;
    loop {
        let n = file.read_at(&mut buf, pos)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        pos += n as u64;
    }
    Ok(Digest::from_bytes(h.finalize().into()) == *expected)
}

/// Called once with the verdict when a verifying stream has read the whole file.
pub type OnVerdict = Box<dyn FnOnce(Verdict) + Send>;

/// Stream `len` bytes from `start` on a blocking thread, in [`CHUNK`]s, through a small
/// channel (back-pressure: at most a few chunks in memory per request). With `verify`, the
/// bytes must be the whole file and hash to the digest, or the stream ends in an error before
/// its last chunk.
pub fn stream(
    blob: OpenBlob,
    start: u64,
    len: u64,
    verify: Option<(Digest, OnVerdict)>,
) -> impl futures_util::Stream<Item = io::Result<Bytes>> + Send + 'static {
    let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(4);
    tokio::task::spawn_blocking(move || {
        let mut hasher = verify.as_ref().map(|_| Sha256::new());
        let mut verify = verify;
        let mut pos = start;
        let end = start + len;
        while pos < end {
            let want = ((end - pos) as usize).min(CHUNK);
            let mut buf = vec![0u8; want];
            let mut got = 0;
            while got < want {
                match blob.file.read_at(&mut buf[got..], pos + got as u64) {
                    Ok(0) => break,
                    Ok(n) => got += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        let _ = tx.blocking_send(Err(e));
                        return;
                    }
                }
            }
            if got < want {
                let _ = tx.blocking_send(Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "blob file shrank while being served",
                )));
                return;
            }
            pos += want as u64;
            if let Some(h) = hasher.as_mut() {
                h.update(&buf);
                if pos == end {
                    let h = hasher.take().expect("hasher present");
                    let ok = verify
                        .as_ref()
                        .map(|(d, _)| Digest::from_bytes(h.finalize().into()) == *d)
                        .unwrap_or(true);
                    if let Some((_, on)) = verify.take() {
                        on(if ok { Verdict::Good } else { Verdict::Bad });
                    }
                    if !ok {
                        let _ = tx.blocking_send(Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            "blob content does not match its digest",
                        )));
                        return;
                    }
                }
            }
            if tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
                return; // client went away
            }
        }
        // Zero-length blob: nothing was read, verify the empty content.
        if let Some((d, on)) = verify.take() {
            let ok = Digest::of(b"") == d;
            on(if ok { Verdict::Good } else { Verdict::Bad });
            if !ok {
                let _ = tx.blocking_send(Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "blob content does not match its digest",
                )));
            }
        }
    });
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|x| (x, rx)) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    async fn collect(
        s: impl futures_util::Stream<Item = io::Result<Bytes>>,
    ) -> (Vec<u8>, Option<io::Error>) {
        let mut out = Vec::new();
        let mut s = std::pin::pin!(s);
        while let Some(r) = s.next().await {
            match r {
                Ok(b) => out.extend_from_slice(&b),
                Err(e) => return (out, Some(e)),
            }
        }
        (out, None)
    }

    #[tokio::test]
    async fn streams_ranges_and_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..(CHUNK * 2 + 123)).map(|i| (i % 251) as u8).collect();
        let d = Digest::of(&data);
        let p = dir.path().join("b");
        std::fs::write(&p, &data).unwrap();

        let (tx, rx) = std::sync::mpsc::channel();
        let b = open_blob(&p).unwrap().unwrap();
        let len = b.len;
        let on: OnVerdict = Box::new(move |v| tx.send(v).unwrap());
        let (got, err) = collect(stream(b, 0, len, Some((d, on)))).await;
        assert!(err.is_none());
        assert_eq!(got, data);
        assert_eq!(rx.recv().unwrap(), Verdict::Good);

        let b = open_blob(&p).unwrap().unwrap();
        let (got, _) = collect(stream(b, 10, 20, None)).await;
        assert_eq!(got, &data[10..30]);
        assert!(verify_file(&open_blob(&p).unwrap().unwrap().file, &d).unwrap());
    }

    #[tokio::test]
    async fn corrupt_blob_never_completes() {
        let dir = tempfile::tempdir().unwrap();
        let data = vec![7u8; CHUNK + 10];
        let d = Digest::of(&data);
        let p = dir.path().join("b");
        let mut bad = data.clone();
        bad[CHUNK + 5] ^= 1;
        std::fs::write(&p, &bad).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let b = open_blob(&p).unwrap().unwrap();
        let len = b.len;
        let (got, err) = collect(stream(
            b,
            0,
            len,
            Some((d, Box::new(move |v| tx.send(v).unwrap()))),
        ))
        .await;
        assert!(err.is_some());
        assert!(got.len() < data.len(), "the last chunk was held back");
        assert_eq!(rx.recv().unwrap(), Verdict::Bad);
        assert!(!verify_file(&open_blob(&p).unwrap().unwrap().file, &d).unwrap());
    }

    #[test]
    fn cache_is_keyed_by_file_identity() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("b");
        std::fs::write(&p, b"abc").unwrap();
        let d = Digest::of(b"abc");
        let k1 = open_blob(&p).unwrap().unwrap().key;
        let c = IntegrityCache::default();
        c.set(d, k1, Verdict::Good);
        assert_eq!(c.get(&d, &k1), Some(Verdict::Good));
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&p, b"abd").unwrap();
        let k2 = open_blob(&p).unwrap().unwrap().key;
        assert_ne!(k1, k2);
        assert_eq!(c.get(&d, &k2), None);
        assert!(open_blob(&dir.path().join("missing")).unwrap().is_none());
        assert!(open_blob(dir.path()).unwrap().is_none());
    }
}
