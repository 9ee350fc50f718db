//! Images from an OCI image layout: a directory (`oci-layout`, `index.json`,
//! `blobs/sha256/<hex>`) or the same tree in an uncompressed tar (`oci-archive`, the shape of
//! a darkport bundle). A tar is indexed once (member → offset, size) and blobs are read in
//! place; nothing is extracted.

use super::{compose, scan_layer, ImageSbom, LayerDelta, LayerRef, SbomError};
use crate::digest::Digest;
use rayon::prelude::*;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

const INDEX_TYPES: &[&str] = &[
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

/// An OCI layout to read images from.
pub enum Layout {
    Dir(PathBuf),
    /// Blobs scattered over files (e.g. a build's content store): `index.json` in memory and
    /// each `blobs/sha256/<hex>` member a byte range of some file. `label` names it in errors.
    Blobs {
        label: PathBuf,
        index: Vec<u8>,
        /// member name → (file, offset, size)
        members: HashMap<String, (PathBuf, u64, u64)>,
    },
    Archive {
        path: PathBuf,
        /// member name → (data offset, size)
        members: HashMap<String, (u64, u64)>,
    },
}

/// An image whose top manifest (or index) a layout leaves out: (name, digest).
pub type AbsentImage = (String, Digest);

/// One image (one platform) of a layout.
pub struct ImageEntry {
    pub name: String,
    pub manifest: Digest,
    pub platform: Option<String>,
    /// The image config's digest, when the manifest names one.
    pub config: Option<Digest>,
    pub layers: Vec<LayerRef>,
}

impl ImageEntry {
    /// `name` or `name (os/arch)` when the name has several platforms.
    pub fn label(&self) -> String {
        self.name.clone()
    }
}

/// Progress of a layout scan (implemented in `ui`).
pub trait ScanReporter: Sync {
    /// About to read `layers` distinct layer blobs totalling `bytes`.
    fn start(&self, _layers: usize, _bytes: u64) {}
    /// One layer blob was read and verified.
    fn layer_done(&self, _digest: &Digest, _bytes: u64) {}
}

/// A reporter that reports nothing.
pub struct NoReport;
impl ScanReporter for NoReport {}

fn member_name(raw: &str) -> String {
    raw.trim_start_matches("./")
        .trim_start_matches('/')
        .to_string()
}

impl Layout {
    /// Open a layout directory, or index an `oci-archive` tar.
    pub fn open(path: &Path) -> Result<Layout, SbomError> {
        let p = path.display().to_string();
        if path.is_dir() {
            if !path.join("index.json").is_file() {
                return Err(SbomError::Invalid {
                    what: "OCI image layout".into(),
                    path: p,
                    reason: "no index.json".into(),
                });
            }
            return Ok(Layout::Dir(path.to_path_buf()));
        }
        let f = File::open(path).map_err(|source| SbomError::Open {
            path: p.clone(),
            source,
        })?;
        let mut members = HashMap::new();
        let mut ar = tar::Archive::new(io::BufReader::with_capacity(1 << 16, f));
        let read_err = |source| SbomError::Read {
            what: "tar index".into(),
            path: p.clone(),
            source,
        };
        for e in ar.entries_with_seek().map_err(read_err)? {
            let e = e.map_err(read_err)?;
            if !e.header().entry_type().is_file() {
                continue;
            }
            let name = member_name(&e.path().map_err(read_err)?.to_string_lossy());
            members.insert(name, (e.raw_file_position(), e.size()));
        }
        if !members.contains_key("index.json") {
            return Err(SbomError::Invalid {
                what: "oci-archive".into(),
                path: p,
                reason:
                    "no index.json member (is this an uncompressed OCI archive or darkport bundle?)"
                        .into(),
            });
        }
        Ok(Layout::Archive {
            path: path.to_path_buf(),
            members,
        })
    }

    fn path(&self) -> &Path {
        match self {
            Layout::Dir(p) => p,
            Layout::Blobs { label, .. } => label,
            Layout::Archive { path, .. } => path,
        }
    }

    fn open_member(&self, name: &str) -> Result<Option<Box<dyn Read + Send>>, SbomError> {
        let open_err = |source| SbomError::Open {
            path: format!("{}:{name}", self.path().display()),
            source,
        };
        match self {
            Layout::Dir(d) => {
                let p = d.join(name);
                match File::open(&p) {
                    Ok(f) => Ok(Some(Box::new(f))),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(open_err(e)),
                }
            }
            Layout::Blobs { index, members, .. } => {
                if name == "index.json" {
                    return Ok(Some(Box::new(io::Cursor::new(index.clone()))));
                }
                let Some((file, off, size)) = members.get(name) else {
                    return Ok(None);
                };
                let mut f = File::open(file).map_err(open_err)?;
                f.seek(SeekFrom::Start(*off)).map_err(open_err)?;
                Ok(Some(Box::new(f.take(*size))))
            }
            Layout::Archive { path, members } => {
                let Some(&(off, size)) = members.get(name) else {
                    return Ok(None);
                };
                let mut f = File::open(path).map_err(open_err)?;
                f.seek(SeekFrom::Start(off)).map_err(open_err)?;
                Ok(Some(Box::new(f.take(size))))
            }
        }
    }

    /// Open a blob by digest (not verified here: [`scan_layer`] verifies as it reads).
    pub fn open_blob(&self, d: &Digest) -> Result<Box<dyn Read + Send>, SbomError> {
        self.open_member(&format!("blobs/sha256/{}", d.hex()))?
            .ok_or_else(|| SbomError::MissingBlob {
                digest: *d,
                path: self.path().display().to_string(),
            })
    }

    fn json(&self, name: &str, expect: Option<&Digest>) -> Result<Value, SbomError> {
        let p = format!("{}:{name}", self.path().display());
        let mut r = self.open_member(name)?.ok_or_else(|| SbomError::Invalid {
            what: "OCI layout".into(),
            path: self.path().display().to_string(),
            reason: format!("{name} is missing"),
        })?;
        let mut buf = Vec::new();
        r.by_ref()
            .take(64 << 20)
            .read_to_end(&mut buf)
            .map_err(|source| SbomError::Read {
                what: name.into(),
                path: p.clone(),
                source,
            })?;
        if let Some(d) = expect {
            let actual = Digest::of(&buf);
            if actual != *d {
                return Err(SbomError::Invalid {
                    what: "blob".into(),
                    path: p,
                    reason: format!("content hashes to {actual}, expected {d}"),
                });
            }
        }
        serde_json::from_slice(&buf).map_err(|e| SbomError::Invalid {
            what: "JSON".into(),
            path: p,
            reason: e.to_string(),
        })
    }

    /// Every image manifest reachable from `index.json`, one entry per platform.
    pub fn images(&self) -> Result<Vec<ImageEntry>, SbomError> {
        let index = self.json("index.json", None)?;
        let mut out = Vec::new();
        self.walk(&index, None, &mut out, 0, None)?;
        Ok(out)
    }

    /// Like [`Layout::images`], for a layout that may leave out some images' manifests (a
    /// delta bundle does, for images its base carries): those are returned apart, as
    /// (name, top manifest or index digest), instead of failing.
    pub fn images_partial(&self) -> Result<(Vec<ImageEntry>, Vec<AbsentImage>), SbomError> {
        let index = self.json("index.json", None)?;
        let mut out = Vec::new();
        let mut absent = Vec::new();
        self.walk(&index, None, &mut out, 0, Some(&mut absent))?;
        Ok((out, absent))
    }

    fn walk(
        &self,
        index: &Value,
        name: Option<String>,
        out: &mut Vec<ImageEntry>,
        depth: usize,
        mut absent: Option<&mut Vec<AbsentImage>>,
    ) -> Result<(), SbomError> {
        let invalid = |reason: String| SbomError::Invalid {
            what: "image index".into(),
            path: self.path().display().to_string(),
            reason,
        };
        if depth > 4 {
            return Err(invalid("indexes nested more than 4 deep".into()));
        }
        let Some(list) = index.get("manifests").and_then(Value::as_array) else {
            return Ok(());
        };
        for desc in list {
            let digest: Digest = desc
                .get("digest")
                .and_then(Value::as_str)
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| invalid(format!("descriptor without a sha256 digest: {desc}")))?;
            let ann = desc.get("annotations");
            let ann_name = ann
                .and_then(|a| {
                    a.get("io.containerd.image.name")
                        .or_else(|| a.get("org.opencontainers.image.ref.name"))
                })
                .and_then(Value::as_str)
                .map(str::to_string);
            let name = ann_name.or_else(|| name.clone());
            let mt = desc.get("mediaType").and_then(Value::as_str).unwrap_or("");
            let member = format!("blobs/sha256/{}", digest.hex());
            // A multi-platform index may be carried for some platforms only (a darkport
            // bundle keeps the children of its `platforms`): absent children are skipped.
            if depth > 0 && !self.has_member(&member) {
                continue;
            }
            if let Some(a) = absent.as_deref_mut() {
                if !self.has_member(&member) {
                    a.push((name.clone().unwrap_or_else(|| digest.short()), digest));
                    continue;
                }
            }
            let doc = self.json(&member, Some(&digest))?;
            let is_index =
                INDEX_TYPES.contains(&mt) || (mt.is_empty() && doc.get("manifests").is_some());
            if is_index {
                self.walk(&doc, name, out, depth + 1, absent.as_deref_mut())?;
                continue;
            }
            let platform = desc.get("platform").map(|p| {
                let g = |k: &str| p.get(k).and_then(Value::as_str).unwrap_or("");
                let mut s = format!("{}/{}", g("os"), g("architecture"));
                if !g("variant").is_empty() {
                    s.push('/');
                    s.push_str(g("variant"));
                }
                s
            });
            // Build attestations (buildx) are manifests for platform unknown/unknown.
            if platform.as_deref() == Some("unknown/unknown") {
                continue;
            }
            let layers = doc
                .get("layers")
                .and_then(Value::as_array)
                .ok_or_else(|| invalid(format!("manifest {digest} has no layers")))?
                .iter()
                .map(|l| {
                    let d = l
                        .get("digest")
                        .and_then(Value::as_str)
                        .and_then(|s| s.parse().ok())
                        .ok_or_else(|| {
                            invalid(format!("manifest {digest}: layer without digest"))
                        })?;
                    Ok(LayerRef {
                        digest: d,
                        media_type: l
                            .get("mediaType")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string(),
                    })
                })
                .collect::<Result<Vec<_>, SbomError>>()?;
            let config = doc
                .get("config")
                .and_then(|c| c.get("digest"))
                .and_then(Value::as_str)
                .and_then(|s| s.parse().ok());
            out.push(ImageEntry {
                name: name.clone().unwrap_or_else(|| digest.short()),
                manifest: digest,
                platform,
                config,
                layers,
            });
        }
        Ok(())
    }

    /// Whether the layout holds the blob (a delta bundle leaves out what its base carries).
    pub fn has_blob(&self, d: &Digest) -> bool {
        self.has_member(&format!("blobs/sha256/{}", d.hex()))
    }

    fn has_member(&self, name: &str) -> bool {
        match self {
            Layout::Dir(p) => p.join(name).is_file(),
            Layout::Archive { members, .. } => members.contains_key(name),
            Layout::Blobs { members, .. } => members.contains_key(name),
        }
    }

    fn blob_size(&self, d: &Digest) -> u64 {
        let name = format!("blobs/sha256/{}", d.hex());
        match self {
            Layout::Dir(p) => std::fs::metadata(p.join(name))
                .map(|m| m.len())
                .unwrap_or(0),
            Layout::Archive { members, .. } => members.get(&name).map(|m| m.1).unwrap_or(0),
            Layout::Blobs { members, .. } => members.get(&name).map(|m| m.2).unwrap_or(0),
        }
    }
}

/// Whether `want` selects an image: its name, `name@os/arch[/variant]`, or the name's last
/// path segment (`app:1.0` for `registry.example/app:1.0`).
pub fn matches(e: &ImageEntry, want: &str) -> bool {
    let full = match &e.platform {
        Some(p) => format!("{}@{p}", e.name),
        None => e.name.clone(),
    };
    want == e.name || want == full || e.name.rsplit('/').next() == Some(want)
}

/// Scan the images of a layout (all, or those `filter` selects): each distinct layer once,
/// in parallel, then one overlay per image.
pub fn scan_layout(
    layout: &Layout,
    filter: Option<&str>,
    reporter: &dyn ScanReporter,
) -> Result<Vec<ImageSbom>, SbomError> {
    let all = layout.images()?;
    let entries = select(layout, &all, filter)?;
    let (map, _) = scan_layers(layout, &entries, reporter)?;
    Ok(compose_entries(&entries, &map))
}

/// The images `filter` selects (all without one); a filter that selects none is an error
/// naming the images there are.
pub fn select<'a>(
    layout: &Layout,
    all: &'a [ImageEntry],
    filter: Option<&str>,
) -> Result<Vec<&'a ImageEntry>, SbomError> {
    let entries: Vec<&ImageEntry> = all
        .iter()
        .filter(|e| filter.map(|f| matches(e, f)).unwrap_or(true))
        .collect();
    if let Some(f) = filter {
        if entries.is_empty() {
            let mut names: Vec<String> = all.iter().map(|e| e.name.clone()).collect();
            names.dedup();
            return Err(SbomError::NoSuchImage {
                name: f.to_string(),
                path: layout.path().display().to_string(),
                available: if names.is_empty() {
                    "none".into()
                } else {
                    names.join(", ")
                },
            });
        }
    }
    Ok(entries)
}

/// One overlay per image from the deltas [`scan_layers`] returned for these entries.
pub fn compose_entries(
    entries: &[&ImageEntry],
    deltas: &HashMap<Digest, LayerDelta>,
) -> Vec<ImageSbom> {
    let mut out = Vec::with_capacity(entries.len());
    for e in entries {
        let layers: Vec<(Digest, &LayerDelta)> = e
            .layers
            .iter()
            .map(|l| (l.digest, &deltas[&l.digest]))
            .collect();
        let mut img = compose(&e.label(), &layers);
        img.manifest = Some(e.manifest);
        img.platform = e.platform.clone();
        out.push(img);
    }
    out
}

/// The layer deltas of `entries`: every distinct layer read once, front to back (sha256
/// checked while it is decompressed and its package databases kept), on the rayon pool
/// (one layer per task, so as many at a time as there are threads), largest first so the
/// longest one does not start last. Also returns the digests that were read and matched
/// (a non-distributable layer absent from the layout is not among them).
pub fn scan_layers(
    layout: &Layout,
    entries: &[&ImageEntry],
    reporter: &dyn ScanReporter,
) -> Result<(HashMap<Digest, LayerDelta>, Vec<Digest>), SbomError> {
    let mut distinct: BTreeMap<Digest, String> = BTreeMap::new();
    for e in entries {
        for l in &e.layers {
            distinct.insert(l.digest, l.media_type.clone());
        }
    }
    let mut order: Vec<(Digest, String, u64)> = distinct
        .into_iter()
        .map(|(d, mt)| {
            let size = layout.blob_size(&d);
            (d, mt, size)
        })
        .collect();
    order.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)));
    let total: u64 = order.iter().map(|x| x.2).sum();
    reporter.start(order.len(), total);
    let deltas: Vec<(Digest, bool, Result<LayerDelta, SbomError>)> = order
        .par_iter()
        .with_max_len(1)
        .map(|(d, mt, _)| {
            let (read, r) = match layout.open_blob(d) {
                Ok(reader) => (true, scan_layer(d, reader)),
                Err(SbomError::MissingBlob { .. })
                    if mt.contains("nondistributable") || mt.contains("foreign") =>
                {
                    let delta = LayerDelta {
                        warnings: vec![format!(
                            "non-distributable layer {d} not in the layout; not scanned"
                        )],
                        ..LayerDelta::default()
                    };
                    (false, Ok(delta))
                }
                Err(e) => (false, Err(e)),
            };
            if let Ok(x) = &r {
                reporter.layer_done(d, x.blob_size);
            }
            (*d, read, r)
        })
        .collect();
    let mut map: HashMap<Digest, LayerDelta> = HashMap::new();
    let mut verified = Vec::new();
    for (d, read, r) in deltas {
        map.insert(d, r?);
        if read {
            verified.push(d);
        }
    }
    Ok((map, verified))
}
