//! Push blobs to a node's CAS: only the ones it lacks, each verified on the node before it
//! is renamed into `<root>/blobs/sha256/<hex>`, resuming interrupted uploads from their `.part`.

use crate::digest::Digest;
use crate::transport::{ReadSeek, Transport, TransportError, UploadOpts};
use std::collections::BTreeSet;
use std::io;

/// Where blob bytes come from (the bundle file, a local store, ...).
pub trait BlobSource: Sync {
    /// A reader positioned at the blob's first byte, limited to it, and its size.
    fn open_blob(&self, digest: &Digest) -> io::Result<(Box<dyn ReadSeek>, u64)>;
}

/// Per-node progress callbacks (implemented by `ui`).
pub trait PushReporter: Sync {
    fn blob_started(&self, _host: &str, _digest: &Digest, _size: u64) {}
    fn blob_done(&self, _host: &str, _digest: &Digest, _sent: u64, _resumed_from: u64) {}
}

impl PushReporter for () {}

#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct PushReport {
    pub host: String,
    pub blobs_sent: usize,
    pub bytes_sent: u64,
    pub blobs_present: usize,
    /// Bytes that did not need sending because an interrupted upload left them on the node.
    pub bytes_resumed: u64,
    /// A later registry host copies what it lacks from the first one, inside the site.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fetched_from: Option<String>,
    pub blobs_fetched: usize,
    pub bytes_fetched: u64,
}

/// Blob path in a node's CAS.
pub fn blob_path(root: &str, d: &Digest) -> String {
    format!("{}/blobs/sha256/{}", root.trim_end_matches('/'), d.hex())
}

/// Send every blob of `wanted` the node does not have (`present`, from a probe).
pub fn push_missing(
    t: &mut dyn Transport,
    root: &str,
    wanted: &BTreeSet<Digest>,
    present: &BTreeSet<Digest>,
    src: &dyn BlobSource,
    rep: &dyn PushReporter,
) -> Result<PushReport, PushError> {
    let host = t.host().to_string();
    let mut report = PushReport {
        host: host.clone(),
        ..Default::default()
    };
    for d in wanted {
        if present.contains(d) {
            report.blobs_present += 1;
            continue;
        }
        let (mut r, size) = src
            .open_blob(d)
            .map_err(|source| PushError::Source { digest: *d, source })?;
        rep.blob_started(&host, d, size);
        let up = t
            .upload(
                &mut r,
                size,
                &blob_path(root, d),
                &UploadOpts {
                    sha256: Some(*d),
                    mode: Some(0o444),
                    become_: None,
                },
            )
            .map_err(|source| PushError::Upload {
                host: host.clone(),
                digest: *d,
                source: Box::new(source),
            })?;
        rep.blob_done(&host, d, up.bytes_sent, up.resumed_from);
        report.blobs_sent += 1;
        report.bytes_sent += up.bytes_sent;
        report.bytes_resumed += up.resumed_from;
    }
    Ok(report)
}

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("failed to read blob {digest} from the bundle")]
    Source {
        digest: Digest,
        #[source]
        source: io::Error,
    },
    #[error("failed to push blob {digest} to {host}")]
    Upload {
        host: String,
        digest: Digest,
        #[source]
        source: Box<TransportError>,
    },
}

impl PushError {
    pub fn is_unreachable(&self) -> bool {
        matches!(self, PushError::Upload { source, .. } if source.is_unreachable())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::local::LocalTransport;
    use std::collections::BTreeMap;
    use std::io::Cursor;

    struct Mem(BTreeMap<Digest, Vec<u8>>);
    impl BlobSource for Mem {
        fn open_blob(&self, d: &Digest) -> io::Result<(Box<dyn ReadSeek>, u64)> {
            let b = self
                .0
                .get(d)
                .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such blob"))?;
            Ok((Box::new(Cursor::new(b.clone())), b.len() as u64))
        }
    }

    #[test]
    fn sends_only_missing_and_resumes_partials() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_str().unwrap();
        let blobs: BTreeMap<Digest, Vec<u8>> = (0..3u8)
            .map(|i| vec![i; 10_000 * (i as usize + 1)])
            .map(|b| (Digest::of(&b), b))
            .collect();
        let keys: Vec<Digest> = blobs.keys().copied().collect();
        let src = Mem(blobs.clone());
        let wanted: BTreeSet<Digest> = keys.iter().copied().collect();
        std::fs::create_dir_all(dir.path().join("blobs/sha256")).unwrap();
        // blob 0 is present already; blob 1 was half sent by an interrupted run.
        std::fs::write(blob_path(root, &keys[0]), &blobs[&keys[0]]).unwrap();
        let half = &blobs[&keys[1]][..blobs[&keys[1]].len() / 2];
        std::fs::write(format!("{}.part", blob_path(root, &keys[1])), half).unwrap();
        let present: BTreeSet<Digest> = [keys[0]].into();
        let mut t = LocalTransport::new("n1");
        let r = push_missing(&mut t, root, &wanted, &present, &src, &()).unwrap();
        assert_eq!(r.blobs_sent, 2);
        assert_eq!(r.blobs_present, 1);
        assert_eq!(r.bytes_resumed, half.len() as u64);
        let total: u64 = [1, 2].iter().map(|i| blobs[&keys[*i]].len() as u64).sum();
        assert_eq!(r.bytes_sent, total - half.len() as u64);
        for (d, b) in &blobs {
            assert_eq!(&std::fs::read(blob_path(root, d)).unwrap(), b);
        }
    }
}
