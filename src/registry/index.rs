//! `<root>/registry/repositories.json`: repository → tag → manifest digest (+ media type),
//! written atomically by installers; and the server's read-only [`View`] built from it and the
//! CAS (which digests each repository may serve).

use super::names::{valid_name, valid_tag};
use super::RegistryError;
use crate::digest::Digest;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Current `version` of repositories.json.
pub const INDEX_VERSION: u32 = 1;

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// Path of the CAS file of a digest: `<root>/blobs/sha256/<hex>`.
pub fn blob_path(root: &Path, d: &Digest) -> PathBuf {
    root.join("blobs").join("sha256").join(d.hex())
}

/// Path of the tag index: `<root>/registry/repositories.json`.
pub fn index_path(root: &Path) -> PathBuf {
    root.join("registry").join("repositories.json")
}

/// The whole tag index file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepoIndex {
    pub version: u32,
    pub repositories: BTreeMap<String, Repository>,
}

impl Default for RepoIndex {
    fn default() -> Self {
        RepoIndex {
            version: INDEX_VERSION,
            repositories: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Repository {
    pub tags: BTreeMap<String, TagEntry>,
}

/// What a tag points to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TagEntry {
    pub digest: Digest,
    #[serde(rename = "mediaType")]
    pub media_type: String,
}

impl RepoIndex {
    /// Read `<root>/registry/repositories.json`; a missing file is an empty index.
    pub fn load(root: &Path) -> Result<RepoIndex, RegistryError> {
        let path = index_path(root);
        let data = match std::fs::read(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(RepoIndex::default()),
            Err(source) => {
                return Err(RegistryError::Io {
                    op: "read",
                    path,
                    source,
                })
            }
        };
        Self::parse(&data, &path)
    }

    /// Parse and validate the bytes of an index file (`path` is for messages).
    pub fn parse(data: &[u8], path: &Path) -> Result<RepoIndex, RegistryError> {
        let idx: RepoIndex =
            serde_json::from_slice(data).map_err(|source| RegistryError::IndexParse {
                path: path.to_path_buf(),
                source,
            })?;
        idx.validate()
            .map_err(|reason| RegistryError::IndexInvalid {
                path: path.to_path_buf(),
                reason,
            })?;
        Ok(idx)
    }

    fn validate(&self) -> Result<(), String> {
        if self.version != INDEX_VERSION {
            return Err(format!(
                "unsupported version {} (this darkport reads {INDEX_VERSION})",
                self.version
            ));
        }
        for (name, repo) in &self.repositories {
            if !valid_name(name) {
                return Err(format!("invalid repository name {name:?}"));
            }
            for tag in repo.tags.keys() {
                if !valid_tag(tag) {
                    return Err(format!("invalid tag {tag:?} in repository {name}"));
                }
            }
        }
        Ok(())
    }

    /// Point `name:tag` at a manifest (adds the repository if needed).
    pub fn set_tag(&mut self, name: &str, tag: &str, digest: Digest, media_type: &str) {
        self.repositories
            .entry(name.to_string())
            .or_default()
            .tags
            .insert(
                tag.to_string(),
                TagEntry {
                    digest,
                    media_type: media_type.to_string(),
                },
            );
    }

    /// The exact bytes of the file (pretty JSON + newline), validated: what an installer
    /// writes to a remote node with its own atomic write.
    pub fn to_bytes(&self) -> Result<Vec<u8>, String> {
        self.validate()?;
        let mut data = serde_json::to_vec_pretty(self).expect("index serialises");
        data.push(b'\n');
        Ok(data)
    }

    /// Write `<root>/registry/repositories.json` atomically: temp file, fsync, rename, fsync dir.
    /// A running server picks the change up on its next request.
    pub fn save_atomic(&self, root: &Path) -> Result<(), RegistryError> {
        let data = self
            .to_bytes()
            .map_err(|reason| RegistryError::IndexInvalid {
                path: index_path(root),
                reason,
            })?;
        let path = index_path(root);
        let dir = path
            .parent()
            .expect("index path has a parent")
            .to_path_buf();
        let io = |op: &'static str, p: &Path| {
            let p = p.to_path_buf();
            move |source| RegistryError::Io {
                op,
                path: p,
                source,
            }
        };
        std::fs::create_dir_all(&dir).map_err(io("create directory", &dir))?;
        let mut tmp =
            tempfile::NamedTempFile::new_in(&dir).map_err(io("create temp file in", &dir))?;
        tmp.write_all(&data).map_err(io("write", tmp.path()))?;
        tmp.as_file().sync_all().map_err(io("fsync", &path))?;
        tmp.persist(&path).map_err(|e| RegistryError::Io {
            op: "rename into",
            path: path.clone(),
            source: e.error,
        })?;
        if let Ok(d) = std::fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

/// What a digest is within one repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A manifest or index, with the media type its parent (or the tag entry) declared.
    Manifest { media_type: String },
    /// A config or layer blob.
    Blob,
}

/// One repository as the server sees it.
#[derive(Debug, Default)]
pub struct RepoView {
    pub tags: BTreeMap<String, TagEntry>,
    /// Every digest reachable from the repository's tags.
    pub reachable: HashMap<Digest, Kind>,
}

/// The read-only snapshot the server answers from; rebuilt when repositories.json changes.
#[derive(Debug, Default)]
pub struct View {
    pub repos: BTreeMap<String, RepoView>,
    /// Problems found while building (unreadable or corrupt manifests), for the log.
    pub warnings: Vec<String>,
}

impl View {
    /// Build the view: walk every tag's manifest graph in the CAS (index → manifests → config
    /// and layers). A manifest missing from the CAS stays reachable (it may arrive later; a
    /// request then reads it); one whose bytes do not match its digest is not walked.
    pub fn build(root: &Path, index: &RepoIndex) -> View {
        let mut view = View::default();
        // Parsed children per manifest digest, shared across repositories.
        let mut children: HashMap<Digest, Option<Vec<(Digest, Kind)>>> = HashMap::new();
        for (name, repo) in &index.repositories {
            let mut rv = RepoView {
                tags: repo.tags.clone(),
                reachable: HashMap::new(),
            };
            let mut stack: Vec<(Digest, String)> = repo
                .tags
                .values()
                .map(|t| (t.digest, t.media_type.clone()))
                .collect();
            while let Some((d, mt)) = stack.pop() {
                if rv.reachable.contains_key(&d) {
                    continue;
                }
                rv.reachable.insert(d, Kind::Manifest { media_type: mt });
                let kids = children
                    .entry(d)
                    .or_insert_with(|| manifest_children(root, &d, &mut view.warnings));
                for (c, kind) in kids.iter().flatten() {
                    match kind {
                        Kind::Manifest { media_type } => stack.push((*c, media_type.clone())),
                        Kind::Blob => {
                            rv.reachable.entry(*c).or_insert(Kind::Blob);
                        }
                    }
                }
            }
            view.repos.insert(name.clone(), rv);
        }
        view
    }
}

/// Read a manifest from the CAS, check its digest and list what it references.
fn manifest_children(
    root: &Path,
    d: &Digest,
    warnings: &mut Vec<String>,
) -> Option<Vec<(Digest, Kind)>> {
    let path = blob_path(root, d);
    let data = match std::fs::read(&path) {
        Ok(data) => data,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            warnings.push(format!(
                "cannot read manifest {d} at {}: {e}",
                path.display()
            ));
            return None;
        }
    };
    if Digest::of(&data) != *d {
        warnings.push(format!(
            "manifest {d} at {} does not match its digest: not served",
            path.display()
        ));
        return None;
    }
    match references(&data) {
        Ok(r) => Some(r),
        Err(e) => {
            warnings.push(format!(
                "manifest {d} at {} is not valid JSON: {e}",
                path.display()
            ));
            None
        }
    }
}

/// The digests a manifest or index refers to: child manifests (`manifests[]`), `config`,
/// `layers[]` and `blobs[]` (artifact manifests). Non-sha256 or malformed entries are skipped.
pub fn references(manifest: &[u8]) -> Result<Vec<(Digest, Kind)>, serde_json::Error> {
    let v: serde_json::Value = serde_json::from_slice(manifest)?;
    let mut out = Vec::new();
    let digest_of = |e: &serde_json::Value| {
        e.get("digest")
            .and_then(|d| d.as_str())
            .and_then(|d| d.parse::<Digest>().ok())
    };
    if let Some(ms) = v.get("manifests").and_then(|m| m.as_array()) {
        for m in ms {
            if let Some(d) = digest_of(m) {
                let mt = m
                    .get("mediaType")
                    .and_then(|x| x.as_str())
                    .unwrap_or(OCI_MANIFEST)
                    .to_string();
                out.push((d, Kind::Manifest { media_type: mt }));
            }
        }
    }
    if let Some(d) = v.get("config").and_then(digest_of) {
        out.push((d, Kind::Blob));
    }
    for key in ["layers", "blobs"] {
        if let Some(ls) = v.get(key).and_then(|l| l.as_array()) {
            out.extend(ls.iter().filter_map(digest_of).map(|d| (d, Kind::Blob)));
        }
    }
    Ok(out)
}

/// The `Content-Type` to serve a manifest with: its own `mediaType` field, else the type its
/// referrer declared, else a guess from its shape (index vs manifest).
pub fn manifest_content_type(bytes: &[u8], declared: &str) -> String {
    let v: Option<serde_json::Value> = serde_json::from_slice(bytes).ok();
    if let Some(mt) = v
        .as_ref()
        .and_then(|v| v.get("mediaType"))
        .and_then(|m| m.as_str())
    {
        return mt.to_string();
    }
    if !declared.is_empty() {
        return declared.to_string();
    }
    match v.as_ref().and_then(|v| v.get("manifests")) {
        Some(_) => OCI_INDEX.to_string(),
        None => OCI_MANIFEST.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(root: &Path, data: &[u8]) -> Digest {
        let d = Digest::of(data);
        let p = blob_path(root, &d);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
        d
    }

    #[test]
    fn roundtrip_and_validation() {
        let dir = tempfile::tempdir().unwrap();
        let mut idx = RepoIndex::default();
        idx.set_tag("a/b/c", "1.0", Digest::of(b"x"), OCI_MANIFEST);
        idx.save_atomic(dir.path()).unwrap();
        assert_eq!(RepoIndex::load(dir.path()).unwrap(), idx);
        let text = std::fs::read_to_string(index_path(dir.path())).unwrap();
        assert!(text.contains("\"mediaType\""), "{text}");

        idx.set_tag("Bad", "1", Digest::of(b"x"), OCI_MANIFEST);
        assert!(matches!(
            idx.save_atomic(dir.path()),
            Err(RegistryError::IndexInvalid { .. })
        ));
        let bad = br#"{"version":2,"repositories":{}}"#;
        assert!(RepoIndex::parse(bad, Path::new("x")).is_err());
        let unknown = br#"{"version":1,"repositories":{},"extra":1}"#;
        assert!(RepoIndex::parse(unknown, Path::new("x")).is_err());
        // Missing file = empty index.
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(RepoIndex::load(empty.path()).unwrap(), RepoIndex::default());
    }

    #[test]
    fn view_walks_index_manifest_config_layers() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let layer = put(root, b"layer");
        let config = put(root, b"{}");
        let m = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"digest":"{config}","size":2}},"layers":[{{"digest":"{layer}","size":5}}]}}"#
        );
        let md = put(root, m.as_bytes());
        let missing = Digest::of(b"not here");
        let i = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{md}","size":1}},{{"mediaType":"{DOCKER_MANIFEST}","digest":"{missing}","size":1}}]}}"#
        );
        let id = put(root, i.as_bytes());
        let other = put(root, b"other repo blob");
        let corrupt = Digest::of(b"original");
        std::fs::write(blob_path(root, &corrupt), b"tampered").unwrap();

        let mut idx = RepoIndex::default();
        idx.set_tag("app", "1", id, OCI_INDEX);
        idx.set_tag("bad", "1", corrupt, OCI_MANIFEST);
        let v = View::build(root, &idx);
        let app = &v.repos["app"];
        assert_eq!(app.reachable.len(), 5);
        assert_eq!(app.reachable[&layer], Kind::Blob);
        assert_eq!(app.reachable[&config], Kind::Blob);
        assert_eq!(
            app.reachable[&missing],
            Kind::Manifest {
                media_type: DOCKER_MANIFEST.into()
            }
        );
        assert!(!app.reachable.contains_key(&other));
        assert_eq!(v.repos["bad"].reachable.len(), 1);
        assert_eq!(v.warnings.len(), 1, "{:?}", v.warnings);
        assert!(v.warnings[0].contains("does not match"));
    }

    #[test]
    fn content_type_precedence() {
        assert_eq!(
            manifest_content_type(br#"{"mediaType":"x/y"}"#, "a/b"),
            "x/y"
        );
        assert_eq!(manifest_content_type(br#"{}"#, "a/b"), "a/b");
        assert_eq!(manifest_content_type(br#"{"manifests":[]}"#, ""), OCI_INDEX);
        assert_eq!(manifest_content_type(br#"{"layers":[]}"#, ""), OCI_MANIFEST);
    }
}
