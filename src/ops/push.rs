//! Push blobs to a node's CAS: only the ones it lacks, each verified on the node before it
//! is renamed into `<root>/blobs/sha256/<hex>`, resuming interrupted uploads from their `.part`.
//!
//! Small blobs (configs, manifests, small layers: most of an upgrade) travel together: one tar
//! uploaded like any file, unpacked on the node into a private directory, each member hashed
//! and renamed into place only if it matches its name. That is three round trips for all of
//! them instead of three per blob.

use crate::digest::Digest;
use crate::transport::{shell_quote, ExecOpts, ReadSeek, Transport, TransportError, UploadOpts};
use std::collections::BTreeSet;
use std::io::{self, Read};

/// Blobs up to this size go in the batch.
pub const SMALL_BLOB: u64 = 1 << 20;
/// At most this many bytes of small blobs per batch.
const BATCH_BYTES: u64 = 64 << 20;

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
    let mut missing: Vec<Digest> = Vec::new();
    for d in wanted {
        if present.contains(d) {
            report.blobs_present += 1;
        } else {
            missing.push(*d);
        }
    }
    let mut small: Vec<(Digest, Vec<u8>)> = Vec::new();
    let mut large: Vec<Digest> = Vec::new();
    let mut small_bytes = 0u64;
    for d in missing {
        let (mut r, size) = src
            .open_blob(&d)
            .map_err(|source| PushError::Source { digest: d, source })?;
        if size <= SMALL_BLOB && small_bytes + size <= BATCH_BYTES {
            let mut v = Vec::with_capacity(size as usize);
            r.read_to_end(&mut v)
                .map_err(|source| PushError::Source { digest: d, source })?;
            small_bytes += size;
            small.push((d, v));
        } else {
            large.push(d);
        }
    }
    if small.len() > 1 {
        match push_batch(t, root, &small, rep) {
            Ok(()) => {
                report.blobs_sent += small.len();
                report.bytes_sent += small_bytes;
            }
            // A node without tar: one by one, as the large ones.
            Err(BatchError::NoTar) => large.extend(small.iter().map(|x| x.0)),
            Err(BatchError::Push(e)) => return Err(e),
        }
    } else {
        large.extend(small.iter().map(|x| x.0));
    }
    for d in &large {
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

enum BatchError {
    NoTar,
    Push(PushError),
}

/// Send `blobs` as one tar; on the node each member is checked against its name before it is
/// renamed into the CAS (a mismatch fails the push: nothing wrong is ever stored).
fn push_batch(
    t: &mut dyn Transport,
    root: &str,
    blobs: &[(Digest, Vec<u8>)],
    rep: &dyn PushReporter,
) -> Result<(), BatchError> {
    let host = t.host().to_string();
    let mut tarball = tar::Builder::new(Vec::new());
    for (d, bytes) in blobs {
        let mut h = tar::Header::new_ustar();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o444);
        h.set_mtime(0);
        h.set_entry_type(tar::EntryType::Regular);
        tarball
            .append_data(&mut h, d.hex(), bytes.as_slice())
            .map_err(|source| BatchError::Push(PushError::Source { digest: *d, source }))?;
        rep.blob_started(&host, d, bytes.len() as u64);
    }
    let data = tarball.into_inner().map_err(|source| {
        BatchError::Push(PushError::Source {
            digest: blobs[0].0,
            source,
        })
    })?;
    let dir = format!("{}/blobs/sha256", root.trim_end_matches('/'));
    let tar_path = format!(
        "{dir}/.batch-{}.tar",
        crate::digest::Digest::of(&data).hex()
    );
    let upload_err = |source: TransportError| {
        BatchError::Push(PushError::Upload {
            host: host.clone(),
            digest: blobs[0].0,
            source: Box::new(source),
        })
    };
    t.upload(
        &mut io::Cursor::new(&data),
        data.len() as u64,
        &tar_path,
        &UploadOpts {
            sha256: Some(Digest::of(&data)),
            mode: Some(0o600),
            become_: None,
        },
    )
    .map_err(upload_err)?;
    let script = format!(
        r#"command -v tar >/dev/null 2>&1 || {{ rm -f {tar}; exit 127; }}
set -e
d={dir}; x="$d/.batch.$$"
rm -rf "$d"/.batch.*/; mkdir "$x"; tar -xf {tar} -C "$x"; rm -f {tar}
cd "$x"
sha256sum -- * > .sums
while read -r sum name; do
  if [ "$sum" != "$name" ]; then echo "blob $name arrived as $sum" >&2; exit 1; fi
  chmod 0444 "$name"; mv -f "$name" "$d/$name"
done < .sums
cd "$d"; rm -rf "$x""#,
        tar = shell_quote(&tar_path),
        dir = shell_quote(&dir),
    );
    let out = t.exec(&script, &ExecOpts::default()).map_err(upload_err)?;
    match out.exit_code {
        0 => {}
        127 => return Err(BatchError::NoTar),
        c => {
            return Err(BatchError::Push(PushError::Upload {
                host: host.clone(),
                digest: blobs[0].0,
                source: Box::new(TransportError::Failed {
                    host: host.clone(),
                    op: "storing a batch of small blobs".into(),
                    msg: format!("exit {c}: {}", out.stderr_str().trim()),
                }),
            }))
        }
    }
    for (d, bytes) in blobs {
        rep.blob_done(&host, d, bytes.len() as u64, 0);
    }
    Ok(())
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
    fn sends_only_missing_batches_small_ones_and_resumes_partials() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_str().unwrap();
        // Blob 0 is present already; blob 1 (large) was half sent by an interrupted run;
        // blobs 2 and 3 are small and go in one batch.
        let sizes = [10_000, 3 << 20, 20_000, 30_000];
        let blobs: Vec<(Digest, Vec<u8>)> = sizes
            .iter()
            .enumerate()
            .map(|(i, n)| vec![i as u8 + 1; *n])
            .map(|b| (Digest::of(&b), b))
            .collect();
        let src = Mem(blobs.iter().cloned().collect());
        let wanted: BTreeSet<Digest> = blobs.iter().map(|x| x.0).collect();
        std::fs::create_dir_all(dir.path().join("blobs/sha256")).unwrap();
        std::fs::write(blob_path(root, &blobs[0].0), &blobs[0].1).unwrap();
        let half = &blobs[1].1[..blobs[1].1.len() / 2];
        std::fs::write(format!("{}.part", blob_path(root, &blobs[1].0)), half).unwrap();
        let present: BTreeSet<Digest> = [blobs[0].0].into();
        let mut t = LocalTransport::new("n1");
        let r = push_missing(&mut t, root, &wanted, &present, &src, &()).unwrap();
        assert_eq!(r.blobs_sent, 3);
        assert_eq!(r.blobs_present, 1);
        assert_eq!(r.bytes_resumed, half.len() as u64);
        let total: u64 = sizes[1..].iter().map(|n| *n as u64).sum();
        assert_eq!(r.bytes_sent, total - half.len() as u64);
        for (d, b) in &blobs {
            assert_eq!(&std::fs::read(blob_path(root, d)).unwrap(), b);
        }
        // Nothing of the batch is left behind.
        let names: Vec<String> = std::fs::read_dir(dir.path().join("blobs/sha256"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 4, "{names:?}");
    }

    #[test]
    fn a_batch_member_that_does_not_match_its_name_is_never_stored() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_str().unwrap();
        let good = b"good".to_vec();
        // A source that lies: the bytes it gives for `claimed` are not those of `claimed`.
        let claimed = Digest::of(b"what the manifest says");
        let src = Mem([
            (Digest::of(&good), good.clone()),
            (claimed, b"tampered".to_vec()),
        ]
        .into());
        let wanted: BTreeSet<Digest> = [Digest::of(&good), claimed].into();
        let mut t = LocalTransport::new("n1");
        let e = push_missing(&mut t, root, &wanted, &BTreeSet::new(), &src, &()).unwrap_err();
        assert!(format!("{e:#}").contains("failed to push"), "{e:#}");
        assert!(!std::path::Path::new(&blob_path(root, &claimed)).exists());
    }
}
