//! Streaming scan of one layer blob, and the overlay composition of an image's layers.

use super::{apk, dpkg, license, ImageSbom, LicenceSource, Package, PackageKind, RpmDb, SbomError};
use crate::digest::{Digest, HashingReader};
use std::collections::{BTreeMap, HashMap};
use std::io::{self, BufRead, BufReader, Read};

/// Largest package database file kept (dpkg `status`, apk `installed`).
const MAX_DB: u64 = 256 << 20;
/// Largest copyright / os-release file kept.
const MAX_SMALL: u64 = 8 << 20;

const RPM_DBS: &[&str] = &[
    "var/lib/rpm/Packages",
    "var/lib/rpm/Packages.db",
    "var/lib/rpm/rpmdb.sqlite",
    "usr/lib/sysimage/rpm/Packages",
    "usr/lib/sysimage/rpm/Packages.db",
    "usr/lib/sysimage/rpm/rpmdb.sqlite",
];

/// A kept path in a layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    File(Vec<u8>),
    Symlink(String),
    /// A hard link to a path of this or a lower layer (resolved when composing).
    HardLink(String),
    Dir,
    /// Present, content not kept (RPM databases).
    Marker,
    /// Present but not read (too large, or not a regular file); the reason.
    Skipped(String),
}

/// What one layer contributes to the package view of any image that contains it.
#[derive(Clone, Debug, Default)]
pub struct LayerDelta {
    /// Kept paths (relative, no leading `/`) this layer adds or replaces.
    pub files: BTreeMap<String, Node>,
    /// Paths deleted by `.wh.<name>` (they and everything below them, in lower layers).
    pub whiteouts: Vec<String>,
    /// Directories made opaque by `.wh..wh..opq` (lower contents hidden).
    pub opaque: Vec<String>,
    /// Compressed size read (the blob size).
    pub blob_size: u64,
    /// Uncompressed tar bytes.
    pub tar_size: u64,
    /// sha256 of the uncompressed tar stream (what an image config's `rootfs.diff_ids`
    /// lists), hashed in the same pass; `None` for a layer that was not read.
    pub diff_id: Option<Digest>,
    pub warnings: Vec<String>,
}

enum Want {
    No,
    Db,
    Small,
    DocDir,
    Rpm,
}

fn wanted(path: &str) -> Want {
    if path == "var/lib/dpkg/status" || path == "lib/apk/db/installed" {
        return Want::Db;
    }
    if let Some(rest) = path.strip_prefix("var/lib/dpkg/status.d/") {
        if !rest.is_empty() && !rest.contains('/') && !rest.ends_with(".md5sums") {
            return Want::Db;
        }
        return Want::No;
    }
    if let Some(rest) = path.strip_prefix("usr/share/doc/") {
        return match rest.split_once('/') {
            None if !rest.is_empty() => Want::DocDir,
            Some((_, "copyright")) => Want::Small,
            _ => Want::No,
        };
    }
    if path == "etc/os-release" || path == "usr/lib/os-release" {
        return Want::Small;
    }
    if RPM_DBS.contains(&path) {
        return Want::Rpm;
    }
    Want::No
}

/// Normalise a tar member name: no `./`, no leading or trailing `/`; `None` for names with
/// `..` components or empty ones.
fn normalise(name: &str) -> Option<String> {
    let mut parts = Vec::new();
    for c in name.split('/') {
        match c {
            "" | "." => {}
            ".." => return None,
            c => parts.push(c),
        }
    }
    if parts.is_empty() {
        None
    } else {
        Some(parts.join("/"))
    }
}

enum Decoder<R: BufRead> {
    Gzip(flate2::bufread::MultiGzDecoder<R>),
    Zstd(zstd::Decoder<'static, R>),
    Plain(R),
}

impl<R: BufRead> Read for Decoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Decoder::Gzip(d) => d.read(buf),
            Decoder::Zstd(d) => d.read(buf),
            Decoder::Plain(d) => d.read(buf),
        }
    }
}

impl<R: BufRead> Decoder<R> {
    fn into_inner(self) -> R {
        match self {
            Decoder::Gzip(d) => d.into_inner(),
            Decoder::Zstd(d) => d.finish(),
            Decoder::Plain(d) => d,
        }
    }
}

/// Read one layer blob once, front to back: sniff gzip/zstd/plain tar from its first bytes,
/// keep only the package-database files, note whiteouts, hash the uncompressed stream (the
/// diff_id), and verify the blob's sha256 against `digest` at the end (the whole blob is
/// read, trailing padding included).
pub fn scan_layer<R: Read>(digest: &Digest, reader: R) -> Result<LayerDelta, SbomError> {
    let io_err = |source| SbomError::ReadLayer {
        digest: *digest,
        source,
    };
    let mut buffered = BufReader::with_capacity(256 << 10, HashingReader::new(reader));
    let magic = buffered.fill_buf().map_err(io_err)?;
    let dec = if magic.starts_with(&[0x1f, 0x8b]) {
        Decoder::Gzip(flate2::bufread::MultiGzDecoder::new(buffered))
    } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        let mut d = zstd::Decoder::with_buffer(buffered).map_err(io_err)?;
        d.window_log_max(31).map_err(io_err)?;
        Decoder::Zstd(d)
    } else {
        Decoder::Plain(buffered)
    };
    let mut archive = tar::Archive::new(HashingReader::new(dec));
    let mut delta = LayerDelta::default();
    // Hard links to files kept earlier in this same layer are resolved right away.
    for entry in archive.entries().map_err(io_err)? {
        let mut entry = entry.map_err(io_err)?;
        let raw = entry.path().map_err(io_err)?.to_string_lossy().into_owned();
        let Some(path) = normalise(&raw) else {
            continue;
        };
        let (parent, base) = match path.rsplit_once('/') {
            Some((p, b)) => (p, b),
            None => ("", path.as_str()),
        };
        if let Some(hidden) = base.strip_prefix(".wh.") {
            if hidden == ".wh..opq" {
                delta.opaque.push(parent.to_string());
            } else if !hidden.starts_with(".wh.") && !hidden.is_empty() {
                let p = if parent.is_empty() {
                    hidden.to_string()
                } else {
                    format!("{parent}/{hidden}")
                };
                delta.whiteouts.push(p);
            }
            continue;
        }
        let want = wanted(&path);
        if matches!(want, Want::No) {
            continue;
        }
        let kind = entry.header().entry_type();
        let node = if kind.is_symlink() {
            match entry.link_name().map_err(io_err)? {
                Some(t) => Node::Symlink(t.to_string_lossy().into_owned()),
                None => Node::Skipped("symlink without target".into()),
            }
        } else if kind.is_hard_link() {
            let target = entry
                .link_name()
                .map_err(io_err)?
                .and_then(|t| normalise(&t.to_string_lossy()));
            match target {
                Some(t) => match delta.files.get(&t) {
                    Some(n @ Node::File(_)) => n.clone(),
                    _ => Node::HardLink(t),
                },
                None => Node::Skipped("hard link without target".into()),
            }
        } else if kind.is_dir() {
            Node::Dir
        } else if kind.is_file() || kind == tar::EntryType::Continuous {
            match want {
                Want::Rpm => Node::Marker,
                Want::DocDir => {
                    Node::Skipped("a regular file where a directory was expected".into())
                }
                Want::Db | Want::Small => {
                    let cap = if matches!(want, Want::Db) {
                        MAX_DB
                    } else {
                        MAX_SMALL
                    };
                    let size = entry.size();
                    if size > cap {
                        delta.warnings.push(format!(
                            "{path}: {size} bytes, larger than the {cap}-byte limit; not read"
                        ));
                        Node::Skipped(format!("{size} bytes, over the limit"))
                    } else {
                        let mut buf = Vec::with_capacity(size as usize);
                        entry.read_to_end(&mut buf).map_err(io_err)?;
                        Node::File(buf)
                    }
                }
                Want::No => unreachable!(),
            }
        } else {
            Node::Skipped(format!("tar entry type {:?}", kind))
        };
        delta.files.insert(path, node);
    }
    // Drain what follows the tar's end marker, then the compressed stream, so the digest
    // covers the whole blob.
    let mut plain = archive.into_inner();
    io::copy(&mut plain, &mut io::sink()).map_err(io_err)?;
    let (dec, (diff_id, tar_size)) = plain.finish();
    delta.tar_size = tar_size;
    delta.diff_id = Some(diff_id);
    let mut buffered = dec.into_inner();
    io::copy(&mut buffered, &mut io::sink()).map_err(io_err)?;
    let (_, (actual, size)) = buffered.into_inner().finish();
    delta.blob_size = size;
    if actual != *digest {
        return Err(SbomError::LayerDigest {
            expected: *digest,
            actual,
            size,
        });
    }
    Ok(delta)
}

/// The merged view of kept paths while composing: path → (node, layer index).
type State = BTreeMap<String, (Node, usize)>;

fn remove_tree(state: &mut State, p: &str) {
    state.remove(p);
    remove_children(state, p);
}

fn remove_children(state: &mut State, p: &str) {
    let prefix = if p.is_empty() {
        String::new()
    } else {
        format!("{p}/")
    };
    let keys: Vec<String> = state
        .range(prefix.clone()..)
        .take_while(|(k, _)| k.starts_with(&prefix))
        .map(|(k, _)| k.clone())
        .collect();
    for k in keys {
        state.remove(&k);
    }
}

/// Join a symlink target to the directory holding the link, normalising `.` and `..`.
fn join_link(link_path: &str, target: &str) -> String {
    let base: Vec<&str> = if target.starts_with('/') {
        Vec::new()
    } else {
        let mut v: Vec<&str> = link_path.split('/').collect();
        v.pop();
        v
    };
    let mut out: Vec<&str> = base;
    for c in target.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out.join("/")
}

/// Follow symlinks (on the path and its parents, up to 16 hops) and hard links to a file.
fn resolve<'a>(state: &'a State, path: &str) -> Option<(&'a [u8], usize)> {
    let mut p = path.to_string();
    'hop: for _ in 0..16 {
        // A symlinked parent directory redirects everything below it.
        let comps: Vec<&str> = p.split('/').collect();
        for i in 1..comps.len() {
            let prefix = comps[..i].join("/");
            if let Some((Node::Symlink(t), _)) = state.get(&prefix) {
                let rest = comps[i..].join("/");
                p = format!("{}/{rest}", join_link(&prefix, t));
                continue 'hop;
            }
        }
        match state.get(&p) {
            Some((Node::File(b), l)) => return Some((b, *l)),
            Some((Node::Symlink(t), _)) => p = join_link(&p, t),
            Some((Node::HardLink(t), _)) => p = t.clone(),
            _ => return None,
        }
    }
    None
}

fn touches(delta: &LayerDelta, area: &str) -> bool {
    let under = |p: &str| p == area || p.starts_with(&format!("{area}/"));
    let above = |p: &str| p.is_empty() || area.starts_with(&format!("{p}/"));
    delta.files.keys().any(|p| under(p))
        || delta
            .whiteouts
            .iter()
            .chain(delta.opaque.iter())
            .any(|p| under(p) || above(p))
}

fn dpkg_listed(state: &State, warnings: &mut Vec<String>) -> Vec<Package> {
    let mut out = Vec::new();
    let mut files: Vec<&str> = vec!["var/lib/dpkg/status"];
    files.extend(
        state
            .range("var/lib/dpkg/status.d/".to_string()..)
            .take_while(|(k, _)| k.starts_with("var/lib/dpkg/status.d/"))
            .map(|(k, _)| k.as_str()),
    );
    for f in files {
        if let Some((data, _)) = resolve(state, f) {
            match dpkg::parse_status(data, f) {
                Ok(pkgs) => out.extend(pkgs),
                Err(e) => warnings.push(e),
            }
        }
    }
    out
}

fn apk_listed(state: &State, warnings: &mut Vec<String>) -> Vec<Package> {
    match resolve(state, "lib/apk/db/installed") {
        Some((data, _)) => match apk::parse_installed(data) {
            Ok(p) => p,
            Err(e) => {
                warnings.push(e);
                Vec::new()
            }
        },
        None => Vec::new(),
    }
}

/// Track which layer introduced each package at its current version.
fn track(
    tracked: &mut HashMap<String, (Package, usize)>,
    kind: PackageKind,
    now: Vec<Package>,
    layer: usize,
) {
    let mut next: HashMap<String, (Package, usize)> = HashMap::new();
    for p in now {
        let k = p.key();
        let idx = match tracked.get(&k) {
            Some((old, i)) if old.version == p.version => *i,
            _ => layer,
        };
        next.insert(k, (p, idx));
    }
    tracked.retain(|_, (p, _)| p.kind != kind);
    tracked.extend(next);
}

pub(super) fn compose(name: &str, layers: &[(Digest, &LayerDelta)]) -> ImageSbom {
    let mut state: State = BTreeMap::new();
    let mut tracked: HashMap<String, (Package, usize)> = HashMap::new();
    let mut warnings: Vec<String> = Vec::new();
    for (i, (digest, delta)) in layers.iter().enumerate() {
        for w in &delta.warnings {
            warnings.push(format!("layer {} ({}): {w}", i, digest.short()));
        }
        for d in &delta.opaque {
            remove_children(&mut state, d);
        }
        for w in &delta.whiteouts {
            remove_tree(&mut state, w);
        }
        for (p, node) in &delta.files {
            let node = match node {
                Node::HardLink(t) => match resolve(&state, t) {
                    Some((b, _)) => Node::File(b.to_vec()),
                    None => Node::Skipped(format!("hard link to missing {t}")),
                },
                n => n.clone(),
            };
            if node == Node::Dir {
                if let Some((n, _)) = state.get(p) {
                    if *n != Node::Dir {
                        state.remove(p);
                    }
                }
                state.entry(p.clone()).or_insert((Node::Dir, i));
            } else {
                remove_children(&mut state, p);
                state.insert(p.clone(), (node, i));
            }
        }
        if touches(delta, "var/lib/dpkg") {
            let now = dpkg_listed(&state, &mut warnings);
            track(&mut tracked, PackageKind::Deb, now, i);
        }
        if touches(delta, "lib/apk/db") {
            let now = apk_listed(&state, &mut warnings);
            track(&mut tracked, PackageKind::Apk, now, i);
        }
    }

    let mut packages: Vec<Package> = Vec::with_capacity(tracked.len());
    for (_, (mut p, idx)) in tracked {
        p.layer_index = idx;
        p.layer = layers[idx].0;
        if p.kind == PackageKind::Deb {
            let path = format!("usr/share/doc/{}/copyright", p.name);
            match resolve(&state, &path) {
                Some((text, _)) => {
                    let text = String::from_utf8_lossy(text);
                    let (lics, src) = license::from_debian_copyright(&text);
                    p.licenses = lics;
                    p.license_source = src;
                }
                None => {
                    p.license_source = LicenceSource::None;
                }
            }
        }
        packages.push(p);
    }
    packages.sort_by(|a, b| {
        (a.kind, &a.name, &a.arch, &a.version).cmp(&(b.kind, &b.name, &b.arch, &b.version))
    });

    let mut rpm = Vec::new();
    for p in RPM_DBS {
        if let Some((Node::Marker, l)) = state.get(*p) {
            rpm.push(RpmDb {
                path: format!("/{p}"),
                layer: layers[*l].0,
                layer_index: *l,
            });
        }
    }
    for (p, (n, l)) in &state {
        if let Node::Skipped(why) = n {
            warnings.push(format!("/{p} (layer {l}) not read: {why}"));
        }
    }
    let osr = resolve(&state, "etc/os-release").or_else(|| resolve(&state, "usr/lib/os-release"));
    let (os, os_id, os_version_id) = match osr {
        Some((b, _)) => parse_os_release(&String::from_utf8_lossy(b)),
        None => (None, None, None),
    };
    ImageSbom {
        name: name.to_string(),
        manifest: None,
        platform: None,
        os,
        os_id,
        os_version_id,
        layers: layers.iter().map(|(d, _)| *d).collect(),
        packages,
        rpm,
        warnings,
    }
}

fn parse_os_release(text: &str) -> (Option<String>, Option<String>, Option<String>) {
    let mut m: HashMap<&str, String> = HashMap::new();
    for line in text.lines() {
        if let Some((k, v)) = line.split_once('=') {
            let v = v.trim().trim_matches('"').trim_matches('\'').to_string();
            m.insert(k.trim(), v);
        }
    }
    (
        m.get("PRETTY_NAME").cloned(),
        m.get("ID").cloned(),
        m.get("VERSION_ID").cloned(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalise_names() {
        assert_eq!(
            normalise("./var/lib/dpkg/status").as_deref(),
            Some("var/lib/dpkg/status")
        );
        assert_eq!(
            normalise("/usr/share/doc/").as_deref(),
            Some("usr/share/doc")
        );
        assert_eq!(normalise("a/../b"), None);
        assert_eq!(normalise("./"), None);
    }

    #[test]
    fn wanted_paths() {
        assert!(matches!(wanted("var/lib/dpkg/status"), Want::Db));
        assert!(matches!(
            wanted("var/lib/dpkg/status.d/base-files"),
            Want::Db
        ));
        assert!(matches!(
            wanted("var/lib/dpkg/status.d/base-files.md5sums"),
            Want::No
        ));
        assert!(matches!(
            wanted("usr/share/doc/bash/copyright"),
            Want::Small
        ));
        assert!(matches!(wanted("usr/share/doc/bash"), Want::DocDir));
        assert!(matches!(wanted("usr/share/doc/bash/README"), Want::No));
        assert!(matches!(wanted("var/lib/rpm/rpmdb.sqlite"), Want::Rpm));
        assert!(matches!(wanted("usr/bin/bash"), Want::No));
    }

    #[test]
    fn links_resolve_through_parents() {
        let mut s: State = BTreeMap::new();
        s.insert("usr/share/doc/a".into(), (Node::Symlink("b".into()), 0));
        s.insert(
            "usr/share/doc/b/copyright".into(),
            (Node::File(b"x".to_vec()), 0),
        );
        s.insert(
            "etc/os-release".into(),
            (Node::Symlink("../usr/lib/os-release".into()), 0),
        );
        s.insert(
            "usr/lib/os-release".into(),
            (Node::File(b"ID=x".to_vec()), 1),
        );
        assert_eq!(resolve(&s, "usr/share/doc/a/copyright").unwrap().0, b"x");
        assert_eq!(resolve(&s, "etc/os-release").unwrap(), (&b"ID=x"[..], 1));
        assert!(resolve(&s, "usr/share/doc/c/copyright").is_none());
    }
}
