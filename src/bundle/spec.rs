//! The bundle spec (`bundle/darkport.yaml`), documented in `docs/BUNDLE-SPEC.md`.
//! Parsed with serde-saphyr; every error names `file:line`.

use crate::source::RegistryOptions;
use crate::source::{ImageConfigSpec, Platform, SourceRef};
use serde::Deserialize;
use serde_saphyr::Spanned;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("failed to read bundle spec {path}")]
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpec {
    product: Spanned<String>,
    version: Spanned<String>,
    #[serde(default)]
    upgrades_from: Option<Spanned<String>>,
    #[serde(default)]
    platforms: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    images: Option<Spanned<Vec<RawImage>>>,
    /// One compose file or a list (`-f` order).
    #[serde(default)]
    compose: Option<Spanned<ComposePaths>>,
    /// The compose variables (`docker compose --env-file`); default: `.env` beside the first
    /// compose file.
    #[serde(default)]
    compose_env_file: Option<Spanned<String>>,
    #[serde(default)]
    playbooks: Option<Spanned<String>>,
    #[serde(default)]
    registries: BTreeMap<String, crate::source::registry_settings::RegistrySettings>,
    #[serde(default)]
    layer_compression: Option<crate::source::Compression>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum ComposePaths {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawImage {
    name: Spanned<String>,
    source: Spanned<String>,
    #[serde(default)]
    config: Option<ImageConfigSpec>,
}

/// A validated image entry.
#[derive(Clone, Debug)]
pub struct ImageSpec {
    pub name: String,
    pub source: SourceRef,
    pub source_text: String,
    pub config: Option<ImageConfigSpec>,
    /// `file:line` of the entry, for error messages.
    pub at: String,
}

/// A validated bundle spec; relative paths are resolved against the spec's directory.
#[derive(Clone, Debug)]
pub struct Spec {
    pub path: PathBuf,
    pub product: String,
    pub version: semver::Version,
    pub upgrades_from: Option<String>,
    pub platforms: Vec<Platform>,
    pub images: Vec<ImageSpec>,
    pub playbooks: Option<PathBuf>,
    pub registry: RegistryOptions,
    /// Compression for uncompressed layers (`layer_compression:`; the CLI flag overrides).
    pub layer_compression: Option<crate::source::Compression>,
    /// `compose:` files, resolved against the spec's directory, in `-f` order.
    pub compose: Vec<PathBuf>,
    /// Line of `compose:` in the spec.
    pub compose_line: u64,
    /// `compose_env_file:`, resolved against the spec's directory.
    pub compose_env_file: Option<PathBuf>,
    /// The compose files read by [`Spec::load`] (their images are in `images`).
    pub compose_project: Option<crate::compose::Project>,
}

use crate::registry::names::valid_image_name;

/// The `images:` entries, checked: a valid and unique name, a parseable source, `config:`
/// only for `dir:` sources.
fn image_specs(raw: Vec<RawImage>, base: &Path, path: &Path) -> Result<Vec<ImageSpec>, SpecError> {
    let invalid = |line: u64, message: String| SpecError::Invalid {
        path: path.into(),
        line,
        message,
    };
    let mut images = Vec::new();
    let mut names = std::collections::HashSet::new();
    for im in raw {
        let line = im.name.referenced.line();
        if !valid_image_name(&im.name.value) {
            return Err(invalid(
                line,
                format!(
                    "image name {:?}: expected repo/path:tag (lowercase path, explicit tag)",
                    im.name.value
                ),
            ));
        }
        if !names.insert(im.name.value.clone()) {
            return Err(invalid(
                line,
                format!("image name {:?} appears twice", im.name.value),
            ));
        }
        let source = SourceRef::parse(&im.source.value, base)
            .map_err(|e| invalid(im.source.referenced.line(), e.to_string()))?;
        if im.config.is_some() && !matches!(source, SourceRef::Dir { .. }) {
            return Err(invalid(
                line,
                "config: is only allowed for dir: sources".into(),
            ));
        }
        images.push(ImageSpec {
            name: im.name.value,
            source,
            source_text: im.source.value,
            config: im.config,
            at: format!("{}:{line}", path.display()),
        });
    }
    Ok(images)
}

fn valid_product(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 64
        && n.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

impl Spec {
    pub fn load(path: &Path) -> Result<Spec, SpecError> {
        let text = crate::yaml_limits::read_to_string(path).map_err(|source| SpecError::Read {
            path: path.into(),
            source,
        })?;
        let mut spec = Self::parse(&text, path)?;
        spec.add_compose_images()?;
        Ok(spec)
    }

    /// Read the `compose:` files and add every image their services name that `images:`
    /// does not list, as a registry source (`docker://REF`); `images:` entries of the same
    /// name (e.g. built with `dir:`) are what the services get.
    fn add_compose_images(&mut self) -> Result<(), SpecError> {
        if self.compose.is_empty() {
            return Ok(());
        }
        let project = crate::compose::load(&self.compose, self.compose_env_file.as_deref())
            .map_err(|e| match e {
                crate::compose::ComposeError::Read { path, source } => {
                    SpecError::Read { path, source }
                }
                crate::compose::ComposeError::Syntax {
                    path,
                    line,
                    column,
                    message,
                } => SpecError::Syntax {
                    path,
                    line,
                    column,
                    message,
                },
                crate::compose::ComposeError::Invalid {
                    path,
                    line,
                    message,
                } => SpecError::Invalid {
                    path,
                    line,
                    message,
                },
            })?;
        let base = self.path.parent().unwrap_or(Path::new(".")).to_path_buf();
        for svc in project.images() {
            let name = crate::compose::site_name(&svc.image);
            if self.images.iter().any(|i| i.name == name) {
                continue;
            }
            let text = format!("docker://{}", svc.image);
            let source = SourceRef::parse(&text, &base).map_err(|e| SpecError::Invalid {
                path: self.path.clone(),
                line: self.compose_line,
                message: format!("service {:?} ({}): {e}", svc.name, svc.at),
            })?;
            self.images.push(ImageSpec {
                name: name.to_string(),
                source,
                source_text: text,
                config: None,
                at: svc.at.clone(),
            });
        }
        self.compose_project = Some(project);
        Ok(())
    }

    pub fn parse(text: &str, path: &Path) -> Result<Spec, SpecError> {
        let raw: RawSpec = crate::yaml_limits::from_str(text).map_err(|e| SpecError::Syntax {
            path: path.into(),
            line: e.line,
            column: e.column,
            message: e.message,
        })?;
        let invalid = |line: u64, message: String| SpecError::Invalid {
            path: path.into(),
            line,
            message,
        };
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let base = if base.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            base
        };
        if !valid_product(&raw.product.value) {
            return Err(invalid(
                raw.product.referenced.line(),
                format!(
                    "product {:?}: use lowercase letters, digits, '-' and '_'",
                    raw.product.value
                ),
            ));
        }
        let version = semver::Version::parse(&raw.version.value).map_err(|e| {
            invalid(
                raw.version.referenced.line(),
                format!("version {:?} is not semver: {e}", raw.version.value),
            )
        })?;
        let upgrades_from = match raw.upgrades_from {
            Some(u) => {
                semver::VersionReq::parse(&u.value).map_err(|e| {
                    invalid(
                        u.referenced.line(),
                        format!(
                            "upgrades_from {:?} is not a semver requirement: {e}",
                            u.value
                        ),
                    )
                })?;
                Some(u.value)
            }
            None => None,
        };
        let platforms = match raw.platforms {
            Some(ps) => {
                if ps.value.is_empty() {
                    return Err(invalid(ps.referenced.line(), "platforms is empty".into()));
                }
                ps.value
                    .iter()
                    .map(|s| {
                        Platform::parse(s).ok_or_else(|| {
                            invalid(
                                ps.referenced.line(),
                                format!("platform {s:?}: expected os/arch[/variant]"),
                            )
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?
            }
            None => vec![Platform::parse("linux/amd64").unwrap()],
        };
        let (compose, compose_line) = match &raw.compose {
            Some(c) => {
                let list = match &c.value {
                    ComposePaths::One(p) => vec![p.clone()],
                    ComposePaths::Many(v) => v.clone(),
                };
                if list.is_empty() {
                    return Err(invalid(c.referenced.line(), "compose is empty".into()));
                }
                (
                    list.iter().map(|p| base.join(p)).collect::<Vec<_>>(),
                    c.referenced.line(),
                )
            }
            None => (Vec::new(), 0),
        };
        if let (Some(e), true) = (&raw.compose_env_file, compose.is_empty()) {
            return Err(invalid(
                e.referenced.line(),
                "compose_env_file without compose: (it holds the compose files' variables)".into(),
            ));
        }
        let raw_images = match raw.images {
            Some(i) if i.value.is_empty() && compose.is_empty() => {
                return Err(invalid(i.referenced.line(), "images is empty".into()))
            }
            Some(i) => i.value,
            None if compose.is_empty() => {
                return Err(invalid(
                    1,
                    "no images: and no compose: (a bundle ships at least one image)".into(),
                ))
            }
            None => Vec::new(),
        };
        let images = image_specs(raw_images, &base, path)?;
        Ok(Spec {
            path: path.into(),
            product: raw.product.value,
            version,
            upgrades_from,
            platforms,
            images,
            playbooks: raw.playbooks.map(|p| base.join(p.value)),
            registry: RegistryOptions {
                registries: raw.registries,
            },
            layer_compression: raw.layer_compression,
            compose,
            compose_line,
            compose_env_file: raw.compose_env_file.as_ref().map(|e| base.join(&e.value)),
            compose_project: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_example_and_reports_lines() {
        let ok = "product: dockercoins\nversion: 1.1.0\nupgrades_from: \">=1.0.0, <1.1.0\"\nplatforms: [linux/amd64]\nimages:\n  - name: dockercoins/rng:1.1.0\n    source: oci:build/rng:1.1.0\nplaybooks: ../playbooks\n";
        let s = Spec::parse(ok, Path::new("/x/bundle/darkport.yaml")).unwrap();
        assert_eq!(s.images[0].name, "dockercoins/rng:1.1.0");
        assert_eq!(
            s.playbooks.unwrap(),
            PathBuf::from("/x/bundle/../playbooks")
        );

        let bad_key = "product: p\nversion: 1.0.0\nimages:\n  - name: a/b:1\n    sorce: oci:x\n";
        let e = Spec::parse(bad_key, Path::new("s.yaml"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("s.yaml:5:"), "{e}");

        let bad_ver = "product: p\nversion: one\nimages:\n  - name: a/b:1\n    source: oci:x\n";
        let e = Spec::parse(bad_ver, Path::new("s.yaml"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("s.yaml:2:"), "{e}");

        let bad_src = "product: p\nversion: 1.0.0\nimages:\n  - name: a/b:1\n    source: ftp:x\n";
        let e = Spec::parse(bad_src, Path::new("s.yaml"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("s.yaml:5:"), "{e}");

        let gz = "product: p\nversion: 1.0.0\nlayer_compression: gzip\nimages:\n  - name: a/b:1\n    source: oci:x\n";
        let s = Spec::parse(gz, Path::new("s.yaml")).unwrap();
        assert_eq!(s.layer_compression, Some(crate::source::Compression::Gzip));
        let bad = "product: p\nversion: 1.0.0\nlayer_compression: xz\nimages:\n  - name: a/b:1\n    source: oci:x\n";
        let e = Spec::parse(bad, Path::new("s.yaml"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("s.yaml:3:"), "{e}");

        let dup = "product: p\nversion: 1.0.0\nimages:\n  - name: a/b:1\n    source: oci:x\n  - name: a/b:1\n    source: oci:y\n";
        let e = Spec::parse(dup, Path::new("s.yaml"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("s.yaml:6:"), "{e}");
    }

    #[test]
    fn image_names() {
        assert!(valid_image_name("dockercoins/rng:1.1.0"));
        assert!(valid_image_name("redis:7"));
        assert!(!valid_image_name("Dockercoins/rng:1"));
        assert!(!valid_image_name("rng"));
        assert!(!valid_image_name("../x:1"));
    }
}
