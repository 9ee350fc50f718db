//! `docker-archive:` — `docker save` output (plain or gzipped tar, one or many images).
//! Compressed layers keep their bytes; uncompressed ones are compressed once per build.

use super::layout::{normalize, TarIndex};
use super::{
    parse_json, BlobRef, Compression, FetchContext, Platform, ResolvedImage, SourceError,
    OCI_LAYER_GZIP, OCI_LAYER_ZSTD,
};
use crate::digest::{Digest, HashingWriter};
use crate::store::Location;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

#[derive(serde::Deserialize)]
struct SaveEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

#[derive(serde::Deserialize)]
struct ImageConfig {
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    os: String,
    #[serde(default)]
    variant: Option<String>,
    rootfs: RootFs,
}

#[derive(serde::Deserialize)]
struct RootFs {
    #[serde(default)]
    diff_ids: Vec<String>,
}

/// Compress what `produce` writes into a new store blob. Returns the uncompressed digest
/// (diff_id) and the compressed blob.
pub(crate) fn compress_into_store(
    cx: &mut FetchContext,
    origin: &str,
    produce: &mut dyn FnMut(&mut dyn Write) -> io::Result<()>,
) -> Result<(Digest, BlobRef), SourceError> {
    let sterr = |source| SourceError::StoreOp {
        location: origin.to_string(),
        source: Box::new(source),
    };
    let ioerr = |source| SourceError::Io {
        what: "and compress layer",
        path: origin.into(),
        source,
    };
    let (tmp, w) = cx.store.writer("layer").map_err(sterr)?;
    let (w, diff) = match cx.compression {
        Compression::Zstd => {
            let mut enc = zstd::Encoder::new(w, 3).map_err(ioerr)?;
            // Any worker count >= 1 gives the same bytes, so builds stay reproducible.
            enc.multithread(2).map_err(ioerr)?;
            let mut hw = HashingWriter::new(enc);
            produce(&mut hw).map_err(ioerr)?;
            let (enc, (diff, _)) = hw.finish();
            (enc.finish().map_err(ioerr)?, diff)
        }
        Compression::Gzip => {
            let enc = flate2::GzBuilder::new()
                .mtime(0)
                .write(w, flate2::Compression::default());
            let mut hw = HashingWriter::new(enc);
            produce(&mut hw).map_err(ioerr)?;
            let (enc, (diff, _)) = hw.finish();
            (enc.finish().map_err(ioerr)?, diff)
        }
    };
    let (digest, size) = cx.store.commit(tmp, w, None, origin).map_err(sterr)?;
    Ok((
        diff,
        BlobRef {
            digest,
            size,
            media_type: cx.compression.media_type().to_string(),
        },
    ))
}

/// A bounded positional reader over part of a file.
pub(crate) struct RangeReader {
    file: File,
    pos: u64,
    end: u64,
}

impl RangeReader {
    pub fn new(file: File, offset: u64, len: u64) -> Self {
        RangeReader {
            file,
            pos: offset,
            end: offset + len,
        }
    }
}

impl Read for RangeReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = (self.end - self.pos) as usize;
        if left == 0 {
            return Ok(0);
        }
        let want = buf.len().min(left);
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.pos += n as u64;
        Ok(n)
    }
}

pub(crate) fn fetch_docker_archive(
    file: &Path,
    reference: Option<&str>,
    cx: &mut FetchContext,
) -> Result<ResolvedImage, SourceError> {
    let location = format!("docker-archive:{}", file.display());
    let tar_path = plain_tar(file, cx)?;
    let idx = TarIndex::build(&tar_path)?;
    let mbytes = idx
        .read_small("manifest.json", super::MAX_SMALL_BLOB)
        .map_err(|_| SourceError::Malformed {
            what: "docker archive".into(),
            location: location.clone(),
            reason: "no manifest.json member: not `docker save` output".into(),
        })?;
    let entries: Vec<SaveEntry> = parse_json(&mbytes, "manifest.json", &location)?;
    let entry = pick_entry(&entries, reference, &location)?;

    let cfg_bytes = idx.read_small(&normalize(&entry.config), super::MAX_SMALL_BLOB)?;
    let cfg: ImageConfig = parse_json(
        &cfg_bytes,
        &format!("image config {}", entry.config),
        &location,
    )?;
    let cfg_digest = cx
        .store
        .put_bytes(&cfg_bytes)
        .map_err(|source| SourceError::StoreOp {
            location: location.clone(),
            source: Box::new(source),
        })?;
    let platform = Platform {
        architecture: cfg.architecture.clone(),
        os: cfg.os.clone(),
        variant: cfg.variant.clone().filter(|v| !v.is_empty()),
    };
    if !cx.platforms.iter().any(|w| platform.satisfies(w)) {
        return Err(SourceError::NoPlatform {
            image: reference.unwrap_or("(only image)").to_string(),
            location,
            wanted: cx.platforms.iter().map(|p| p.to_string()).collect(),
            available: vec![platform.to_string()],
        });
    }
    if cfg.rootfs.diff_ids.len() != entry.layers.len() {
        return Err(SourceError::Malformed {
            what: format!("image config {}", entry.config),
            location,
            reason: format!(
                "{} diff_ids for {} layers",
                cfg.rootfs.diff_ids.len(),
                entry.layers.len()
            ),
        });
    }
    let mut layers = Vec::new();
    for (i, lpath) in entry.layers.iter().enumerate() {
        let name = normalize(lpath);
        let (off, size) = *idx
            .members
            .get(&name)
            .ok_or_else(|| SourceError::NotFound {
                reference: name.clone(),
                location: location.clone(),
                available: String::new(),
            })?;
        let member = Member {
            tar: &tar_path,
            name: &name,
            off,
            size,
        };
        layers.push(archive_layer(
            cx,
            &member,
            &cfg.rootfs.diff_ids[i],
            i,
            &location,
        )?);
    }
    super::single_image(
        cx,
        cfg_digest,
        cfg_bytes.len(),
        layers,
        platform.to_string(),
        &location,
    )
}

/// The archive as a plain tar: `docker save | gzip` is decompressed once to a temp file in
/// the store, so members can be read in place.
fn plain_tar(file: &Path, cx: &mut FetchContext) -> Result<PathBuf, SourceError> {
    let ioerr = |source| SourceError::Io {
        what: "docker archive",
        path: file.to_path_buf(),
        source,
    };
    let mut magic = [0u8; 2];
    File::open(file)
        .and_then(|mut f| f.read_exact(&mut magic))
        .map_err(ioerr)?;
    Ok(if magic == [0x1f, 0x8b] {
        // `docker save | gzip`: decompress once to a temp file so members can be read in place.
        let tmp = cx.store.temp_path("docker-archive.tar");
        let f = File::open(file).map_err(ioerr)?;
        let mut dec = flate2::read::MultiGzDecoder::new(io::BufReader::with_capacity(1 << 20, f));
        let mut out = io::BufWriter::with_capacity(1 << 20, File::create(&tmp).map_err(ioerr)?);
        io::copy(&mut dec, &mut out).map_err(ioerr)?;
        out.flush().map_err(ioerr)?;
        tmp
    } else {
        file.to_path_buf()
    })
}

/// The image a reference names in `manifest.json`: `@N` by index, a tag (with Docker's
/// `:latest` and `docker.io/` defaults), or the only one. Not found lists the tags.
fn pick_entry<'e>(
    entries: &'e [SaveEntry],
    reference: Option<&str>,
    location: &str,
) -> Result<&'e SaveEntry, SourceError> {
    let location = location.to_string();
    let tags: Vec<String> = entries
        .iter()
        .flat_map(|e| e.repo_tags.clone().unwrap_or_default())
        .collect();
    match reference {
        Some(r) if r.starts_with('@') => {
            let n: usize = r[1..].parse().map_err(|_| SourceError::Syntax {
                source_str: location.clone(),
                reason: format!("bad image index {r:?}"),
            })?;
            entries.get(n)
        }
        Some(r) => entries.iter().find(|e| {
            e.repo_tags.as_ref().is_some_and(|t| {
                t.iter().any(|t| {
                    t == r
                        || *t == format!("{r}:latest")
                        || t.strip_prefix("docker.io/library/") == Some(r)
                        || t.strip_prefix("docker.io/") == Some(r)
                })
            })
        }),
        None if entries.len() == 1 => entries.first(),
        None => {
            return Err(SourceError::NotFound {
                reference: String::new(),
                location,
                available: format!(
                    " (the archive holds {} images: add :NAME or :@N; tags: {})",
                    entries.len(),
                    tags.join(", ")
                ),
            })
        }
    }
    .ok_or_else(|| SourceError::NotFound {
        reference: reference.unwrap_or_default().to_string(),
        location: location.clone(),
        available: format!(" (it has: {})", tags.join(", ")),
    })
}

/// One layer member of the archive.
struct Member<'a> {
    tar: &'a Path,
    name: &'a str,
    off: u64,
    size: u64,
}

/// A layer into the store: a compressed member is kept as it is (registered by range, its
/// digest learned by hashing); an uncompressed one is compressed once per diff_id and
/// compression (cached), and refused when its content does not match the config's diff_id.
fn archive_layer(
    cx: &mut FetchContext,
    m: &Member,
    diff_id: &str,
    i: usize,
    location: &str,
) -> Result<BlobRef, SourceError> {
    let ioerr = |source| SourceError::Io {
        what: "docker archive",
        path: m.tar.to_path_buf(),
        source,
    };
    let open = || File::open(m.tar).map_err(ioerr);
    let mut head = [0u8; 4];
    let hn = open()?.read_at(&mut head, m.off).map_err(ioerr)?;
    let compressed = if hn >= 2 && head[..2] == [0x1f, 0x8b] {
        Some(OCI_LAYER_GZIP)
    } else if hn == 4 && head == [0x28, 0xb5, 0x2f, 0xfd] {
        Some(OCI_LAYER_ZSTD)
    } else {
        None
    };
    Ok(if let Some(mt) = compressed {
        // Keep the bytes: hash the member to learn its digest.
        let (d, n) = Digest::of_reader(io::BufReader::with_capacity(
            1 << 20,
            RangeReader::new(open()?, m.off, m.size),
        ))
        .map_err(ioerr)?;
        cx.reporter.bytes(n);
        cx.store.register(
            d,
            n,
            Location::Range {
                path: m.tar.to_path_buf(),
                offset: m.off,
                len: m.size,
            },
        );
        BlobRef {
            digest: d,
            size: n,
            media_type: mt.to_string(),
        }
    } else {
        let key = format!("{}+{:?}", diff_id, cx.compression);
        if let Some(b) = cx.layer_cache.get(&key) {
            b.clone()
        } else {
            let f = open()?;
            let rep = cx.reporter;
            let (diff, b) = compress_into_store(cx, &format!("{location}:{}", m.name), &mut |w| {
                let mut r = RangeReader::new(f.try_clone()?, m.off, m.size);
                let mut buf = vec![0u8; 1 << 20];
                loop {
                    let n = r.read(&mut buf)?;
                    if n == 0 {
                        return Ok(());
                    }
                    w.write_all(&buf[..n])?;
                    rep.bytes(n as u64);
                }
            })?;
            if diff.to_string() != diff_id {
                return Err(SourceError::DiffIdMismatch {
                    index: i,
                    location: location.to_string(),
                    expected: diff_id.to_string(),
                    actual: diff,
                });
            }
            cx.layer_cache.insert(key, b.clone());
            b
        }
    })
}
