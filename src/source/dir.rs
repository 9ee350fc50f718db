//! `dir:` — an image built from local directories, one layer per directory, with the
//! config (Entrypoint, Cmd, Env, ExposedPorts, ...) taken from the bundle spec. Layer tars
//! are deterministic (sorted, uid/gid 0, fixed mtime, normalized modes), so the same files
//! always give the same digests.

use super::archive::compress_into_store;
use super::{BlobRef, FetchContext, ResolvedImage, SourceError};
use crate::digest::Digest;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The image config of a `dir:` image (OCI config field names; lowercase also accepted).
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ImageConfigSpec {
    #[serde(rename = "Entrypoint", alias = "entrypoint", default)]
    pub entrypoint: Option<Vec<String>>,
    #[serde(rename = "Cmd", alias = "cmd", default)]
    pub cmd: Option<Vec<String>>,
    #[serde(rename = "Env", alias = "env", default)]
    pub env: Vec<String>,
    /// e.g. `["8080/tcp"]`
    #[serde(rename = "ExposedPorts", alias = "exposed_ports", default)]
    pub exposed_ports: Vec<String>,
    #[serde(rename = "WorkingDir", alias = "workdir", default)]
    pub working_dir: Option<String>,
    #[serde(rename = "User", alias = "user", default)]
    pub user: Option<String>,
    #[serde(rename = "Labels", alias = "labels", default)]
    pub labels: BTreeMap<String, String>,
    #[serde(rename = "StopSignal", alias = "stop_signal", default)]
    pub stop_signal: Option<String>,
}

/// Fixed timestamp of layer entries and config: `SOURCE_DATE_EPOCH` or 0.
pub fn source_date_epoch() -> u64 {
    std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn rfc3339(secs: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
        .to_string()
}

/// Write a deterministic tar of `root` to `w`.
pub fn write_layer_tar(root: &Path, w: &mut dyn Write) -> io::Result<()> {
    let mtime = source_date_epoch();
    let mut b = tar::Builder::new(w);
    b.follow_symlinks(false);
    let mut stack: Vec<(PathBuf, String)> = vec![(root.to_path_buf(), String::new())];
    // Depth-first, names sorted bytewise: stable across filesystems.
    let mut entries: Vec<(PathBuf, String)> = Vec::new();
    while let Some((dir, rel)) = stack.pop() {
        let mut kids: Vec<(PathBuf, String)> = std::fs::read_dir(&dir)?
            .map(|e| {
                let e = e?;
                let name = e.file_name().to_string_lossy().to_string();
                let r = if rel.is_empty() {
                    name
                } else {
                    format!("{rel}/{name}")
                };
                Ok((e.path(), r))
            })
            .collect::<io::Result<_>>()?;
        kids.sort_by(|a, b| a.1.cmp(&b.1));
        entries.extend(kids.iter().cloned());
        for (p, r) in kids.into_iter().rev() {
            if std::fs::symlink_metadata(&p)?.is_dir() {
                stack.push((p, r));
            }
        }
    }
    entries.sort_by(|a, b| a.1.cmp(&b.1));
    for (p, rel) in entries {
        let md = std::fs::symlink_metadata(&p)?;
        let mut h = tar::Header::new_gnu();
        h.set_mtime(mtime);
        h.set_uid(0);
        h.set_gid(0);
        let ft = md.file_type();
        if ft.is_dir() {
            h.set_entry_type(tar::EntryType::Directory);
            h.set_mode(0o755);
            h.set_size(0);
            b.append_data(&mut h, format!("{rel}/"), io::empty())?;
        } else if ft.is_symlink() {
            let target = std::fs::read_link(&p)?;
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_mode(0o777);
            h.set_size(0);
            b.append_link(&mut h, &rel, &target)?;
        } else if ft.is_file() {
            use std::os::unix::fs::PermissionsExt;
            let exec = md.permissions().mode() & 0o100 != 0;
            h.set_entry_type(tar::EntryType::Regular);
            h.set_mode(if exec { 0o755 } else { 0o644 });
            h.set_size(md.len());
            let f = std::fs::File::open(&p)?;
            b.append_data(&mut h, &rel, io::BufReader::with_capacity(1 << 20, f))?;
        } else {
            return Err(io::Error::other(format!(
                "{}: only directories, regular files and symlinks can go into a layer",
                p.display()
            )));
        }
    }
    b.into_inner()?;
    Ok(())
}

pub(crate) fn fetch_dir(
    layers: &[PathBuf],
    cx: &mut FetchContext,
) -> Result<ResolvedImage, SourceError> {
    let location = format!(
        "dir:{}",
        layers
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(",")
    );
    let platform = cx
        .platforms
        .first()
        .cloned()
        .ok_or_else(|| SourceError::Malformed {
            what: "bundle spec".into(),
            location: location.clone(),
            reason: "no platform to build a dir: image for".into(),
        })?;
    let mut diff_ids: Vec<Digest> = Vec::new();
    let mut blobs_layers: Vec<BlobRef> = Vec::new();
    for dir in layers {
        let (diff, blob) = dir_layer(cx, dir, &location)?;
        diff_ids.push(diff);
        blobs_layers.push(blob);
    }
    let config = container_config(&cx.config.cloned().unwrap_or_default());
    let created = rfc3339(source_date_epoch());
    let mut cfg = serde_json::json!({
        "created": created,
        "architecture": platform.architecture,
        "os": platform.os,
    });
    if let Some(v) = &platform.variant {
        cfg["variant"] = serde_json::json!(v);
    }
    cfg["config"] = serde_json::Value::Object(config);
    cfg["rootfs"] = serde_json::json!({
        "type": "layers",
        "diff_ids": diff_ids.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
    });
    cfg["history"] = serde_json::Value::Array(
        layers
            .iter()
            .map(|l| {
                serde_json::json!({
                    "created": created,
                    "created_by": format!("darkport dir: {}", l.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default()),
                })
            })
            .collect(),
    );
    let cfg_bytes = serde_json::to_vec(&cfg).expect("json");
    let st = |source| SourceError::StoreOp {
        location: location.clone(),
        source: Box::new(source),
    };
    let cfg_digest = cx.store.put_bytes(&cfg_bytes).map_err(st)?;
    super::single_image(
        cx,
        cfg_digest,
        cfg_bytes.len(),
        blobs_layers,
        platform.to_string(),
        &location,
    )
}

/// One layer directory as a layer blob (compressed once per directory and compression,
/// cached) and its diff_id. Refuses a path that is not a directory.
fn dir_layer(
    cx: &mut FetchContext,
    dir: &Path,
    location: &str,
) -> Result<(Digest, BlobRef), SourceError> {
    let canon = dir.canonicalize().map_err(|source| SourceError::Io {
        what: "layer directory",
        path: dir.to_path_buf(),
        source,
    })?;
    if !canon.is_dir() {
        return Err(SourceError::Malformed {
            what: "layer".into(),
            location: location.to_string(),
            reason: format!("{} is not a directory", dir.display()),
        });
    }
    let key = format!("dir:{}+{:?}", canon.display(), cx.compression);
    let diff_key = format!("{key}#diff");
    Ok(
        match (cx.layer_cache.get(&key), cx.layer_cache.get(&diff_key)) {
            (Some(b), Some(d)) => (d.digest, b.clone()),
            _ => {
                let (diff, b) = compress_into_store(cx, &canon.display().to_string(), &mut |w| {
                    write_layer_tar(&canon, w)
                })?;
                cx.layer_cache.insert(key, b.clone());
                cx.layer_cache.insert(
                    diff_key,
                    BlobRef {
                        digest: diff,
                        size: 0,
                        media_type: String::new(),
                    },
                );
                (diff, b)
            }
        },
    )
}

/// The image config's `config` object from the spec's `config:` (Env, Entrypoint, Cmd,
/// ExposedPorts with /tcp by default, WorkingDir, User, Labels, StopSignal).
fn container_config(spec: &ImageConfigSpec) -> serde_json::Map<String, serde_json::Value> {
    let mut config = serde_json::Map::new();
    if !spec.env.is_empty() {
        config.insert("Env".into(), serde_json::json!(spec.env));
    }
    if let Some(e) = &spec.entrypoint {
        config.insert("Entrypoint".into(), serde_json::json!(e));
    }
    if let Some(c) = &spec.cmd {
        config.insert("Cmd".into(), serde_json::json!(c));
    }
    if !spec.exposed_ports.is_empty() {
        let ports: serde_json::Map<String, serde_json::Value> = spec
            .exposed_ports
            .iter()
            .map(|p| {
                let p = if p.contains('/') {
                    p.clone()
                } else {
                    format!("{p}/tcp")
                };
                (p, serde_json::json!({}))
            })
            .collect();
        config.insert("ExposedPorts".into(), serde_json::Value::Object(ports));
    }
    if let Some(w) = &spec.working_dir {
        config.insert("WorkingDir".into(), serde_json::json!(w));
    }
    if let Some(u) = &spec.user {
        config.insert("User".into(), serde_json::json!(u));
    }
    if !spec.labels.is_empty() {
        config.insert("Labels".into(), serde_json::json!(spec.labels));
    }
    if let Some(s) = &spec.stop_signal {
        config.insert("StopSignal".into(), serde_json::json!(s));
    }
    config
}
