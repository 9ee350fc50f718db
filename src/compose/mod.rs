//! Compose files a product is described by (`compose:` in the bundle spec): the services and
//! the images they name, read at build time so the bundle carries exactly those images and
//! the files themselves (signed, as `compose/<file>` members).
//!
//! Variables (`${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?message}`, `$VAR`, `$$`)
//! come from the `.env` file beside the first compose file, never from the environment of
//! the machine that builds: the bundle must not depend on who built it (documented in
//! docs/BUNDLE-SPEC.md).

mod interpolate;
pub mod pin;
pub mod place;
pub mod stack;

pub use interpolate::{interpolate, parse_env_file};

use serde::Deserialize;
use serde_saphyr::Spanned;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    #[error("failed to read compose file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {message}")]
    Syntax {
        path: PathBuf,
        line: u64,
        column: u64,
        message: String,
    },
    #[error("{path}:{line}: {message}")]
    Invalid {
        path: PathBuf,
        line: u64,
        message: String,
    },
}

/// One service of a compose file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service {
    pub name: String,
    /// The image reference, variables substituted, `:latest` added where no tag is given.
    pub image: String,
    /// `file:line` of the service, for error messages.
    pub at: String,
}

/// A compose file as the bundle stores it.
#[derive(Clone, Debug)]
pub struct ComposeFile {
    /// The member path relative to `compose/` (e.g. `docker-compose.yml`).
    pub rel: String,
    pub bytes: Vec<u8>,
    pub services: Vec<Service>,
}

/// Every file the product's compose deployment needs: the compose files in `-f` order, the
/// `.env` beside the first one, the `env_file:`s the services name.
#[derive(Clone, Debug, Default)]
pub struct Project {
    pub files: Vec<ComposeFile>,
    /// Other members (`.env`, env files): path relative to `compose/`, bytes.
    pub extra: Vec<(String, Vec<u8>)>,
}

impl Project {
    /// Every image the services run, each once, in order of first use: a later file's
    /// `image:` for a service replaces an earlier one's, as with `docker compose -f a -f b`.
    pub fn images(&self) -> Vec<&Service> {
        let mut last: BTreeMap<&str, usize> = BTreeMap::new();
        let all: Vec<&Service> = self.files.iter().flat_map(|f| f.services.iter()).collect();
        for (i, s) in all.iter().enumerate() {
            last.insert(&s.name, i);
        }
        let mut seen = std::collections::HashSet::new();
        all.iter()
            .enumerate()
            .filter(|(i, s)| last.get(s.name.as_str()) == Some(i))
            .map(|(_, s)| *s)
            .filter(|s| seen.insert(s.image.clone()))
            .collect()
    }

    /// Every member (`compose/<rel>`, bytes), compose files first.
    pub fn members(&self) -> Vec<(String, Vec<u8>)> {
        self.files
            .iter()
            .map(|f| (format!("compose/{}", f.rel), f.bytes.clone()))
            .chain(
                self.extra
                    .iter()
                    .map(|(r, b)| (format!("compose/{r}"), b.clone())),
            )
            .collect()
    }
}

#[derive(Deserialize)]
struct RawCompose {
    #[serde(default)]
    services: BTreeMap<String, Spanned<RawService>>,
}

#[derive(Deserialize)]
struct RawService {
    #[serde(default)]
    image: Option<Spanned<String>>,
    #[serde(default)]
    build: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    env_file: Option<Spanned<OneOrMany>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<EnvFileEntry>),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum EnvFileEntry {
    Path(String),
    Long { path: String },
}

impl OneOrMany {
    fn paths(&self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s.clone()],
            OneOrMany::Many(v) => v
                .iter()
                .map(|e| match e {
                    EnvFileEntry::Path(p) | EnvFileEntry::Long { path: p } => p.clone(),
                })
                .collect(),
        }
    }
}

/// Load the compose files `paths` (the first one's directory is the project directory; the
/// others must be inside it).
///
/// Variables come from `env_file` when given (as `docker compose --env-file`), else from the
/// `.env` beside the first file; either way the bundle carries them as the project's `.env`.
pub fn load(paths: &[PathBuf], env_file: Option<&Path>) -> Result<Project, ComposeError> {
    let Some(first) = paths.first() else {
        return Ok(Project::default());
    };
    let dir = first.parent().unwrap_or(Path::new(".")).to_path_buf();
    let env_path = env_file
        .map(Path::to_path_buf)
        .unwrap_or_else(|| dir.join(".env"));
    let mut project = Project::default();
    let vars = match std::fs::read(&env_path) {
        Ok(b) => {
            let text = String::from_utf8_lossy(&b).to_string();
            project.extra.push((".env".into(), b));
            parse_env_file(&text)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && env_file.is_none() => BTreeMap::new(),
        Err(source) => {
            return Err(ComposeError::Read {
                path: env_path,
                source,
            })
        }
    };
    for p in paths {
        let rel = relative_member(&dir, p).ok_or_else(|| ComposeError::Invalid {
            path: p.clone(),
            line: 0,
            message: format!(
                "a compose file must be in the directory of the first one ({})",
                dir.display()
            ),
        })?;
        let text = crate::yaml_limits::read_to_string(p).map_err(|source| ComposeError::Read {
            path: p.clone(),
            source,
        })?;
        let (services, env_files) = parse_services(&text, p, &vars)?;
        for (ef, line) in env_files {
            let member = Path::new(&ef);
            let ok = !member.is_absolute()
                && member.components().all(|c| {
                    matches!(
                        c,
                        std::path::Component::Normal(_) | std::path::Component::CurDir
                    )
                });
            let invalid = |message: String| ComposeError::Invalid {
                path: p.clone(),
                line,
                message,
            };
            if !ok {
                return Err(invalid(format!(
                    "env_file {ef:?}: give a path inside the project directory (no '..', not absolute); the bundle carries it"
                )));
            }
            let clean: PathBuf = member
                .components()
                .filter(|c| matches!(c, std::path::Component::Normal(_)))
                .collect();
            let clean = clean.to_string_lossy().to_string();
            if project.extra.iter().any(|(r, _)| *r == clean) {
                continue;
            }
            let data = std::fs::read(dir.join(&clean))
                .map_err(|e| invalid(format!("env_file {ef:?}: {e}")))?;
            project.extra.push((clean, data));
        }
        project.files.push(ComposeFile {
            rel,
            bytes: text.into_bytes(),
            services,
        });
    }
    Ok(project)
}

/// `p` relative to `dir`, when it is a plain path below it.
fn relative_member(dir: &Path, p: &Path) -> Option<String> {
    let rel = p.strip_prefix(dir).ok()?;
    let ok = rel
        .components()
        .all(|c| matches!(c, std::path::Component::Normal(_)));
    (ok && !rel.as_os_str().is_empty()).then(|| rel.to_string_lossy().to_string())
}

/// An `env_file:` a service names, and its line.
pub type EnvFileRef = (String, u64);

/// The services of one compose file and the env files they name (with their lines).
pub fn parse_services(
    text: &str,
    path: &Path,
    vars: &BTreeMap<String, String>,
) -> Result<(Vec<Service>, Vec<EnvFileRef>), ComposeError> {
    let invalid = |line: u64, message: String| ComposeError::Invalid {
        path: path.into(),
        line,
        message,
    };
    let raw: RawCompose = read_yaml(text, path)?;
    let mut services = Vec::new();
    let mut env_files = Vec::new();
    for (name, svc) in raw.services {
        let line = svc.referenced.line();
        let at = format!("{}:{line}", path.display());
        let Some(image) = svc.value.image else {
            let why = if svc.value.build.is_some() {
                "has only build:; darkport ships images, it does not build them on the site: build the image at release time, name it in image: and list it under images: in the bundle spec (e.g. a dir: or oci: source)"
            } else {
                "names no image:"
            };
            return Err(invalid(line, format!("service {name:?} {why}")));
        };
        let iline = image.referenced.line();
        let reference = interpolate(&image.value, vars)
            .map_err(|m| invalid(iline, format!("service {name:?}: image: {m}")))?;
        let image = normalize_image(&reference)
            .map_err(|m| invalid(iline, format!("service {name:?}: image {reference:?}: {m}")))?;
        if let Some(ef) = svc.value.env_file {
            for p in ef.value.paths() {
                let p = interpolate(&p, vars)
                    .map_err(|m| invalid(ef.referenced.line(), format!("env_file: {m}")))?;
                env_files.push((p, ef.referenced.line()));
            }
        }
        services.push(Service { name, image, at });
    }
    Ok((services, env_files))
}

/// The name the site registry serves a compose image under: the reference without its
/// registry host (`docker.io/library/redis:7` → `library/redis:7`).
pub fn site_name(image: &str) -> &str {
    match image.split_once('/') {
        Some((first, rest)) if is_registry_host(first) => rest,
        _ => image,
    }
}

/// The first component of a reference names a registry when it has a `.` or a `:` or is
/// `localhost` (the rule docker uses).
fn is_registry_host(first: &str) -> bool {
    first.contains('.') || first.contains(':') || first == "localhost"
}

/// `text` (the file at `path`) deserialized within the YAML bounds; errors name `file:line:col`.
fn read_yaml<T: serde::de::DeserializeOwned>(text: &str, path: &Path) -> Result<T, ComposeError> {
    crate::yaml_limits::from_str(text).map_err(|e| ComposeError::Syntax {
        path: path.into(),
        line: e.line,
        column: e.column,
        message: e.message,
    })
}

/// `redis` → `redis:latest`; a digest reference or an invalid name is refused.
pub fn normalize_image(r: &str) -> Result<String, String> {
    if r.contains('@') {
        return Err(
            "pinned by digest: name it by tag; darkport pins every image by the digest it ships"
                .into(),
        );
    }
    let last = r.rsplit('/').next().unwrap_or(r);
    let full = if last.contains(':') {
        r.to_string()
    } else {
        format!("{r}:latest")
    };
    if crate::registry::names::valid_image_name(site_name(&full)) {
        Ok(full)
    } else {
        Err("expected [host/]path[:tag] with a lowercase path".into())
    }
}

#[cfg(test)]
mod tests;
