//! Request routing for the pull API: split `/v2/<name>/<endpoint>/<ref>` from the right and
//! validate every part with the distribution spec's grammar. Pure functions (fuzzable).
//!
//! `<name>` may hold any number of `/` segments, and a segment may itself be called
//! `manifests` or `blobs`: the endpoint is the LAST such marker in the path.

use crate::digest::Digest;
use regex::Regex;
use std::sync::OnceLock;

/// Longest repository name accepted (the spec lets registries cap it; clients use 255 with host).
pub const MAX_NAME_LEN: usize = 255;

/// One parsed `/v2/...` request path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `/v2/`: the API version check.
    Base,
    /// `/v2/_catalog`.
    Catalog,
    /// `/v2/<name>/tags/list`.
    Tags { name: String },
    /// `/v2/<name>/manifests/<tag|digest>`.
    Manifest { name: String, reference: Reference },
    /// `/v2/<name>/blobs/<digest>`.
    Blob { name: String, digest: BlobRef },
    /// `/v2/<name>/blobs/uploads/...`: push API, never supported here.
    Upload { name: String },
    /// `/v2/<name>/referrers/<digest>`: not implemented (the spec's answer is then 404).
    Referrers { name: String },
}

/// A manifest reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    Tag(String),
    Digest(BlobRef),
}

/// A digest in a request: sha256 is the only algorithm darkport stores; another well-formed
/// algorithm is simply unknown content (404), not a malformed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobRef {
    Sha256(Digest),
    OtherAlgorithm(String),
}

/// Why a path could not be routed; each maps to one OCI error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("invalid repository name {0:?}")]
    NameInvalid(String),
    #[error("invalid tag {0:?}")]
    TagInvalid(String),
    #[error("invalid digest {0:?}")]
    DigestInvalid(String),
    #[error("no such endpoint {0:?}")]
    NotFound(String),
}

impl RouteError {
    /// The OCI error code for the response body.
    pub fn code(&self) -> &'static str {
        match self {
            RouteError::NameInvalid(_) => "NAME_INVALID",
            RouteError::TagInvalid(_) => "MANIFEST_INVALID",
            RouteError::DigestInvalid(_) => "DIGEST_INVALID",
            RouteError::NotFound(_) => "NOT_FOUND",
        }
    }
}

fn name_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(
            r"^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$",
        )
        .expect("name regex")
    })
}

fn tag_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$").expect("tag regex"))
}

fn digest_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$").expect("digest regex")
    })
}

/// Is `name` a valid repository name (the spec's `<name>` grammar, at most [`MAX_NAME_LEN`])?
pub fn valid_name(name: &str) -> bool {
    name.len() <= MAX_NAME_LEN && name_re().is_match(name)
}

/// Is `tag` a valid tag (`[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`)?
pub fn valid_tag(tag: &str) -> bool {
    tag_re().is_match(tag)
}

/// Is `n` an image name as bundle specs and compose files write it:
/// `[host[:port]/]path:tag`, lowercase path components, a tag, no digest?
pub fn valid_image_name(n: &str) -> bool {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(
            r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$",
        )
        .expect("image name regex")
    })
    .is_match(n)
}

/// Parse a digest string from a request.
pub fn parse_digest(s: &str) -> Result<BlobRef, RouteError> {
    if !digest_re().is_match(s) {
        return Err(RouteError::DigestInvalid(s.to_string()));
    }
    match s.split_once(':') {
        Some(("sha256", _)) => s
            .parse::<Digest>()
            .map(BlobRef::Sha256)
            .map_err(|_| RouteError::DigestInvalid(s.to_string())),
        _ => Ok(BlobRef::OtherAlgorithm(s.to_string())),
    }
}

fn check_name(name: &str) -> Result<String, RouteError> {
    if valid_name(name) {
        Ok(name.to_string())
    } else {
        Err(RouteError::NameInvalid(name.to_string()))
    }
}

/// Decode `%XX` escapes (some clients escape the `:` of a digest). `None` if malformed or
/// not UTF-8.
pub(crate) fn percent_decode(path: &str) -> Option<String> {
    if !path.contains('%') {
        return Some(path.to_string());
    }
    let b = path.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let h = b.get(i + 1..i + 3)?;
            let h = std::str::from_utf8(h).ok()?;
            out.push(u8::from_str_radix(h, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Escape a value for a query string (`/` and anything outside `[A-Za-z0-9._-]`).
pub(crate) fn percent_encode_query(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Route a request path (the URI path, without the query).
pub fn route(path: &str) -> Result<Route, RouteError> {
    let not_found = || RouteError::NotFound(path.to_string());
    let decoded = percent_decode(path).ok_or_else(not_found)?;
    let rest = match decoded.strip_prefix("/v2") {
        Some(r) => r,
        None => return Err(not_found()),
    };
    if rest.is_empty() || rest == "/" {
        return Ok(Route::Base);
    }
    let rest = rest.strip_prefix('/').ok_or_else(not_found)?;
    if rest == "_catalog" {
        return Ok(Route::Catalog);
    }
    if let Some(name) = rest.strip_suffix("/tags/list") {
        return Ok(Route::Tags {
            name: check_name(name)?,
        });
    }
    // The endpoint marker is the right-most one, so names may contain any segment.
    let markers = ["/manifests/", "/blobs/", "/referrers/"];
    let (pos, marker) = markers
        .iter()
        .filter_map(|m| rest.rfind(m).map(|p| (p, *m)))
        .max_by_key(|(p, _)| *p)
        .ok_or_else(not_found)?;
    let name = &rest[..pos];
    let tail = &rest[pos + marker.len()..];
    match marker {
        "/blobs/" if tail == "uploads" || tail.starts_with("uploads/") => Ok(Route::Upload {
            name: check_name(name)?,
        }),
        "/manifests/" if !tail.is_empty() && !tail.contains('/') => {
            let name = check_name(name)?;
            let reference = if tail.contains(':') {
                Reference::Digest(parse_digest(tail)?)
            } else if valid_tag(tail) {
                Reference::Tag(tail.to_string())
            } else {
                return Err(RouteError::TagInvalid(tail.to_string()));
            };
            Ok(Route::Manifest { name, reference })
        }
        "/blobs/" if !tail.is_empty() && !tail.contains('/') => {
            let name = check_name(name)?;
            Ok(Route::Blob {
                name,
                digest: parse_digest(tail)?,
            })
        }
        "/referrers/" if !tail.is_empty() && !tail.contains('/') => Ok(Route::Referrers {
            name: check_name(name)?,
        }),
        _ => Err(not_found()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn dig() -> BlobRef {
        BlobRef::Sha256(D.parse().unwrap())
    }

    #[test]
    fn base_and_catalog() {
        assert_eq!(route("/v2/"), Ok(Route::Base));
        assert_eq!(route("/v2"), Ok(Route::Base));
        assert_eq!(route("/v2/_catalog"), Ok(Route::Catalog));
        assert!(matches!(route("/v3/"), Err(RouteError::NotFound(_))));
        assert!(matches!(route("/"), Err(RouteError::NotFound(_))));
    }

    #[test]
    fn names_with_many_segments_split_from_the_right() {
        assert_eq!(
            route("/v2/a/b/c/manifests/1.0"),
            Ok(Route::Manifest {
                name: "a/b/c".into(),
                reference: Reference::Tag("1.0".into())
            })
        );
        // A segment named like an endpoint is part of the name.
        assert_eq!(
            route(&format!("/v2/x/manifests/blobs/y/blobs/{D}")),
            Ok(Route::Blob {
                name: "x/manifests/blobs/y".into(),
                digest: dig()
            })
        );
        assert_eq!(
            route("/v2/x/blobs/manifests/manifests/latest"),
            Ok(Route::Manifest {
                name: "x/blobs/manifests".into(),
                reference: Reference::Tag("latest".into())
            })
        );
        assert_eq!(
            route("/v2/org/team/app/tags/list"),
            Ok(Route::Tags {
                name: "org/team/app".into()
            })
        );
    }

    #[test]
    fn digests_references_and_escapes() {
        assert_eq!(
            route(&format!("/v2/a/manifests/{D}")),
            Ok(Route::Manifest {
                name: "a".into(),
                reference: Reference::Digest(dig())
            })
        );
        assert_eq!(
            route(&format!("/v2/a/manifests/{}", D.replace(':', "%3A"))),
            Ok(Route::Manifest {
                name: "a".into(),
                reference: Reference::Digest(dig())
            })
        );
        assert!(matches!(
            route("/v2/a/blobs/sha256:abc"),
            Err(RouteError::DigestInvalid(_))
        ));
        assert!(matches!(
            route("/v2/a/blobs/sha256:ABC"),
            Err(RouteError::DigestInvalid(_))
        ));
        assert_eq!(
            route("/v2/a/blobs/sha512:abcd"),
            Ok(Route::Blob {
                name: "a".into(),
                digest: BlobRef::OtherAlgorithm("sha512:abcd".into())
            })
        );
        assert!(matches!(
            route("/v2/a/manifests/-bad"),
            Err(RouteError::TagInvalid(_))
        ));
        assert!(matches!(
            route(&format!("/v2/a/manifests/{}", "t".repeat(129))),
            Err(RouteError::TagInvalid(_))
        ));
        assert!(matches!(
            route("/v2/a/manifests/%zz"),
            Err(RouteError::NotFound(_))
        ));
    }

    #[test]
    fn invalid_names() {
        for bad in ["A/b", "a//b", "a/", "-a", "a..b", "a/-b", "a:b", ""] {
            let p = format!("/v2/{bad}/manifests/latest");
            assert!(
                matches!(
                    route(&p),
                    Err(RouteError::NameInvalid(_)) | Err(RouteError::NotFound(_))
                ),
                "{p} -> {:?}",
                route(&p)
            );
        }
        assert!(valid_name("a__b/c-d/e.f/g---h"));
        assert!(!valid_name("a___b"));
        assert!(!valid_name(&"a".repeat(256)));
    }

    #[test]
    fn uploads_and_unknown() {
        assert_eq!(
            route("/v2/a/b/blobs/uploads/"),
            Ok(Route::Upload { name: "a/b".into() })
        );
        assert_eq!(
            route("/v2/a/blobs/uploads/1234-5678"),
            Ok(Route::Upload { name: "a".into() })
        );
        assert!(matches!(route("/v2/a/b"), Err(RouteError::NotFound(_))));
        assert!(matches!(
            route("/v2/a/manifests/"),
            Err(RouteError::NotFound(_))
        ));
        assert!(matches!(
            route("/v2/a/manifests/x/y"),
            Err(RouteError::NotFound(_))
        ));
        assert_eq!(
            route(&format!("/v2/a/referrers/{D}")),
            Ok(Route::Referrers { name: "a".into() })
        );
    }

    #[test]
    fn never_panics_on_odd_input() {
        // A tiny deterministic fuzz over awkward byte patterns.
        let parts = [
            "/v2",
            "/",
            "manifests",
            "blobs",
            "tags",
            "list",
            "%",
            "%3a",
            "sha256:",
            "a",
            "..",
            "uploads",
            "_catalog",
            "é",
            "\u{0}",
        ];
        let mut seed = 0x2545F4914F6CDD1Du64;
        for _ in 0..20_000 {
            let mut p = String::new();
            for _ in 0..(seed % 9) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                p.push_str(parts[(seed % parts.len() as u64) as usize]);
            }
            seed = seed.wrapping_add(0x9E3779B97F4A7C15);
            let _ = route(&p);
        }
    }
}
