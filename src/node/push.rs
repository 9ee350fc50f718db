//! Push blobs to a node's CAS: only the ones it lacks, each verified on the node before it
//! is renamed into `<root>/blobs/sha256/<hex>`, resuming interrupted uploads from their `.part`.
//!
//! Small blobs (configs, manifests, small layers: most of an upgrade) travel together: one tar
//! uploaded like any file, unpacked on the node into a private directory, each member hashed
//! and renamed into place only if it matches its name. That is three round trips for all of
//! them instead of three per blob.
//!
//! Large blobs go to a registry host through the darkport binary already placed there
//! (`darkport registry receive`, see [`crate::registry::receive`]): all of them through one
//! channel, each hashed on the node while it arrives, so the node never reads a blob twice and
//! no round trip is spent per blob. Without that binary (or where it cannot run) each large
//! blob is an [`Transport::upload`] of its own: `.part`, hash on the node, rename.

use crate::digest::Digest;
use crate::transport::{shell_quote, ExecOpts, ReadSeek, Transport, TransportError, UploadOpts};
use std::collections::BTreeSet;
use std::io::{self, Read, Seek};

/// Blobs up to this size go in the batch.
pub const SMALL_BLOB: u64 = 1 << 20;
/// At most this many bytes of small blobs per batch.
const BATCH_BYTES: u64 = 64 << 20;

/// Where blob bytes come from (the bundle file, a local store, ...).
pub trait BlobSource: Sync {
    /// A reader positioned at the blob's first byte, limited to it, and its size.
    fn open_blob(&self, digest: &Digest) -> io::Result<(Box<dyn ReadSeek>, u64)>;
}

/// Blobs held in memory (small sources, tests).
impl BlobSource for std::collections::BTreeMap<Digest, Vec<u8>> {
    fn open_blob(&self, d: &Digest) -> io::Result<(Box<dyn ReadSeek>, u64)> {
        let b = self
            .get(d)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no blob {d}")))?;
        Ok((Box::new(io::Cursor::new(b.clone())), b.len() as u64))
    }
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
    /// Why that copy inside the site failed (the blobs were then sent from the controller).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fetch_error: Option<String>,
}

/// Blob path in a node's CAS.
pub fn blob_path(root: &str, d: &Digest) -> String {
    super::Layout::new(root).blob(d)
}

/// Send every blob of `wanted` the node does not have (`present`, from a probe). `receiver`
/// is the path of a darkport binary on the node that runs `registry receive`, if there is one.
pub fn push_missing(
    t: &mut dyn Transport,
    root: &str,
    wanted: &BTreeSet<Digest>,
    present: &BTreeSet<Digest>,
    src: &dyn BlobSource,
    rep: &dyn PushReporter,
    receiver: Option<&str>,
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
    if let (Some(bin), true) = (receiver, !large.is_empty()) {
        match push_streamed(t, root, bin, &large, src, rep, &mut report) {
            Ok(()) => return Ok(report),
            // The binary does not run there: one upload per blob, below.
            Err(StreamError::NotRunnable) => {}
            Err(StreamError::Push(e)) => return Err(e),
        }
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

enum StreamError {
    NotRunnable,
    Push(PushError),
}

/// Send `blobs` through one `darkport registry receive` on the node, resuming each from the
/// `.part` an interrupted run left; what was stored is counted into `report`.
fn push_streamed(
    t: &mut dyn Transport,
    root: &str,
    bin: &str,
    blobs: &[Digest],
    src: &dyn BlobSource,
    rep: &dyn PushReporter,
    report: &mut PushReport,
) -> Result<(), StreamError> {
    let host = t.host().to_string();
    let dir = format!("{}/blobs/sha256", root.trim_end_matches('/'));
    let fail = |digest: Digest, source: TransportError| {
        StreamError::Push(PushError::Upload {
            host: host.clone(),
            digest,
            source: Box::new(source),
        })
    };
    // 1. What interrupted runs left (one round trip for all).
    let hexes: Vec<String> = blobs.iter().map(|d| d.hex()).collect();
    let probe = format!(
        "d={}; for h in {}; do if [ -f \"$d/$h.part\" ]; then echo \"$h $(wc -c < \"$d/$h.part\")\"; fi; done; true",
        shell_quote(&dir),
        hexes.join(" ")
    );
    let out = t
        .exec(&probe, &ExecOpts::default())
        .map_err(|e| fail(blobs[0], e))?;
    let parts: std::collections::HashMap<String, u64> = out
        .stdout_str()
        .lines()
        .filter_map(|l| {
            let (h, n) = l.split_once(' ')?;
            Some((h.to_string(), n.trim().parse().ok()?))
        })
        .collect();
    // 2. Where each blob resumes.
    let mut plan: Vec<(Digest, u64, u64)> = Vec::with_capacity(blobs.len());
    for d in blobs {
        let (_, size) = src
            .open_blob(d)
            .map_err(|source| StreamError::Push(PushError::Source { digest: *d, source }))?;
        let have = parts.get(&d.hex()).copied().unwrap_or(0);
        let offset = if have <= size { have } else { 0 };
        plan.push((*d, offset, size - offset));
    }
    // 3. One stream of frames; the node answers a line per blob.
    let mut frames = Frames {
        host: &host,
        plan: plan.iter(),
        src,
        rep,
        head: io::Cursor::new(Vec::new()),
        body: None,
        failed: None,
    };
    let mut acks = Acks {
        host: &host,
        plan: &plan,
        rep,
        line: Vec::new(),
        stored: BTreeSet::new(),
        refused: Vec::new(),
    };
    let cmd = format!(
        "{} registry receive --root {}",
        shell_quote(bin),
        shell_quote(root)
    );
    let r = t.exec_streaming(&cmd, &mut frames, &mut acks);
    acks.finish();
    if let Some(e) = frames.failed.take() {
        return Err(StreamError::Push(e));
    }
    let (code, stderr) = r.map_err(|e| fail(blobs[0], e))?;
    if (code == 126 || code == 127) && acks.stored.is_empty() && acks.refused.is_empty() {
        return Err(StreamError::NotRunnable);
    }
    for (_, offset, len) in plan.iter().filter(|x| acks.stored.contains(&x.0)) {
        report.blobs_sent += 1;
        report.bytes_sent += len;
        report.bytes_resumed += offset;
    }
    if let Some((d, why)) = acks.refused.first() {
        return Err(fail(
            *d,
            TransportError::Failed {
                host: host.clone(),
                op: format!("storing blob {d}"),
                msg: why.clone(),
            },
        ));
    }
    if code != 0 || acks.stored.len() != blobs.len() {
        let d = blobs
            .iter()
            .find(|d| !acks.stored.contains(d))
            .copied()
            .unwrap_or(blobs[0]);
        return Err(fail(
            d,
            TransportError::Failed {
                host: host.clone(),
                op: "receiving blobs".into(),
                msg: format!(
                    "{} of {} stored, exit {code}: {}",
                    acks.stored.len(),
                    blobs.len(),
                    String::from_utf8_lossy(&stderr).trim()
                ),
            },
        ));
    }
    Ok(())
}

/// The frames `registry receive` reads: a header line, then the blob's bytes from its offset.
struct Frames<'a> {
    host: &'a str,
    /// (digest, offset, length) of each frame.
    plan: std::slice::Iter<'a, (Digest, u64, u64)>,
    src: &'a dyn BlobSource,
    rep: &'a dyn PushReporter,
    head: io::Cursor<Vec<u8>>,
    body: Option<(Digest, io::Take<Box<dyn ReadSeek>>)>,
    /// A blob the bundle could not give: the stream stops, this is the error.
    failed: Option<PushError>,
}

impl Frames<'_> {
    /// Open the next blob and queue its header; false at the end.
    fn next_blob(&mut self) -> io::Result<bool> {
        let Some(&(d, offset, len)) = self.plan.next() else {
            return Ok(false);
        };
        let opened = self.src.open_blob(&d).and_then(|(mut r, size)| {
            r.seek(io::SeekFrom::Start(offset))?;
            Ok((r, size))
        });
        let (r, size) = match opened {
            Ok(x) => x,
            Err(source) => {
                let msg = source.to_string();
                self.failed = Some(PushError::Source { digest: d, source });
                return Err(io::Error::other(msg));
            }
        };
        self.rep.blob_started(self.host, &d, size);
        self.head =
            io::Cursor::new(crate::registry::receive::frame_header(&d, offset, len).into_bytes());
        self.body = Some((d, r.take(len)));
        Ok(true)
    }
}

impl Read for Frames<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let n = self.head.read(buf)?;
            if n > 0 {
                return Ok(n);
            }
            if let Some((d, body)) = &mut self.body {
                let n = body.read(buf)?;
                if n > 0 {
                    return Ok(n);
                }
                if body.limit() > 0 {
                    let d = *d;
                    let msg = format!("blob {d} ended {} bytes early", body.limit());
                    self.failed = Some(PushError::Source {
                        digest: d,
                        source: io::Error::new(io::ErrorKind::UnexpectedEof, msg.clone()),
                    });
                    return Err(io::Error::other(msg));
                }
                self.body = None;
            }
            if !self.next_blob()? {
                return Ok(0);
            }
        }
    }
}

/// The node's answers, one line per frame (`ok HEX`, `bad HEX ACTUAL`, `err HEX WHY`).
struct Acks<'a> {
    host: &'a str,
    plan: &'a [(Digest, u64, u64)],
    rep: &'a dyn PushReporter,
    line: Vec<u8>,
    stored: BTreeSet<Digest>,
    refused: Vec<(Digest, String)>,
}

impl Acks<'_> {
    fn take_line(&mut self, l: &str) {
        let mut it = l.splitn(3, ' ');
        let (kind, hex, rest) = (it.next(), it.next(), it.next().unwrap_or(""));
        let Some(d) = hex.and_then(|h| Digest::from_hex(h).ok()) else {
            return;
        };
        match kind {
            Some("ok") => {
                if let Some((_, offset, len)) = self.plan.iter().find(|x| x.0 == d) {
                    self.stored.insert(d);
                    self.rep.blob_done(self.host, &d, *len, *offset);
                }
            }
            Some("bad") => self.refused.push((
                d,
                format!(
                    "the bytes that arrived hash to sha256:{rest}, so they were not stored; \
                     run the same command again (it resumes), and if this repeats check the \
                     bundle file with `darkport verify` and the node's disk"
                ),
            )),
            Some("err") => self.refused.push((d, rest.to_string())),
            _ => {}
        }
    }
    fn finish(&mut self) {
        if !self.line.is_empty() {
            let l = String::from_utf8_lossy(&std::mem::take(&mut self.line)).into_owned();
            self.take_line(l.trim_end());
        }
    }
}

impl io::Write for Acks<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.line.extend_from_slice(buf);
        while let Some(i) = self.line.iter().position(|&c| c == b'\n') {
            let rest = self.line.split_off(i + 1);
            let l = String::from_utf8_lossy(&self.line).into_owned();
            self.line = rest;
            self.take_line(l.trim_end());
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
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
        let src: BTreeMap<Digest, Vec<u8>> = blobs.iter().cloned().collect();
        let wanted: BTreeSet<Digest> = blobs.iter().map(|x| x.0).collect();
        std::fs::create_dir_all(dir.path().join("blobs/sha256")).unwrap();
        std::fs::write(blob_path(root, &blobs[0].0), &blobs[0].1).unwrap();
        let half = &blobs[1].1[..blobs[1].1.len() / 2];
        std::fs::write(format!("{}.part", blob_path(root, &blobs[1].0)), half).unwrap();
        let present: BTreeSet<Digest> = [blobs[0].0].into();
        let mut t = LocalTransport::new("n1");
        let r = push_missing(&mut t, root, &wanted, &present, &src, &(), None).unwrap();
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
        let src = BTreeMap::from([
            (Digest::of(&good), good.clone()),
            (claimed, b"tampered".to_vec()),
        ]);
        let wanted: BTreeSet<Digest> = [Digest::of(&good), claimed].into();
        let mut t = LocalTransport::new("n1");
        let e = push_missing(&mut t, root, &wanted, &BTreeSet::new(), &src, &(), None).unwrap_err();
        assert!(format!("{e:#}").contains("failed to push"), "{e:#}");
        assert!(!std::path::Path::new(&blob_path(root, &claimed)).exists());
    }
}
