//! Which layer compressions a node's container runtime can pull, from the runtime's version.
//!
//! Docker Engine decompresses zstd layers from 23.0 on (20.10, Debian 12's `docker.io`, fails
//! with `archive/tar: invalid tar header`), containerd from 1.5, podman (containers/image) from
//! well before 3.0. gzip layers every runtime pulls. The preflight asks this before an install
//! or upgrade changes anything.

use crate::state::probe::major_minor;

/// The container runtimes whose pulls the preflight checks, in the order it reports them.
pub const PULLING_RUNTIMES: [&str; 3] = ["docker", "podman", "containerd"];

/// The oldest version of `runtime` that pulls zstd layers.
fn zstd_since(runtime: &str) -> Option<(u32, u32)> {
    match runtime {
        "docker" => Some((23, 0)),
        "containerd" => Some((1, 5)),
        "podman" => Some((3, 0)),
        _ => None,
    }
}

/// Why `runtime` at `version` cannot pull layers of `media_type`, or `None` when it can (or
/// when its version is unknown: darkport does not refuse what it cannot tell).
pub fn cannot_pull(runtime: &str, version: &str, media_type: &str) -> Option<String> {
    if !media_type.ends_with("+zstd") {
        return None;
    }
    let since = zstd_since(runtime)?;
    let have = major_minor(version)?;
    (have < since).then(|| {
        format!(
            "{runtime} {version} cannot pull zstd layers (needs {runtime} >= {}.{}); rebuild the bundle with `layer_compression: gzip` (the default), or set darkport_runtime to the runtime that runs the product on this node",
            since.0, since.1
        )
    })
}

/// The runtimes the preflight checks on a node: the one the inventory names
/// (`darkport_runtime`; `none` for a node that runs no container), else every pulling runtime
/// the probe found.
pub fn checked<'a>(named: Option<&'a str>, found: &'a [String]) -> Vec<&'a str> {
    match named {
        Some("none") => vec![],
        Some(rt) => vec![rt],
        None => PULLING_RUNTIMES
            .iter()
            .copied()
            .filter(|rt| found.iter().any(|f| f == rt))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
    const GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

    #[test]
    fn docker_before_23_cannot_pull_zstd_but_pulls_gzip() {
        let why = cannot_pull("docker", "20.10.24+dfsg1", ZSTD).unwrap();
        assert!(
            why.starts_with("docker 20.10.24+dfsg1 cannot pull zstd layers (needs docker >= 23.0)")
        );
        assert!(why.contains("layer_compression: gzip"));
        assert_eq!(cannot_pull("docker", "20.10.24+dfsg1", GZIP), None);
        assert_eq!(cannot_pull("docker", "23.0.1", ZSTD), None);
        assert_eq!(cannot_pull("docker", "28.2.2", ZSTD), None);
    }

    #[test]
    fn containerd_podman_and_unknown_versions() {
        assert!(cannot_pull("containerd", "1.4.13~ds1", ZSTD).is_some());
        assert_eq!(cannot_pull("containerd", "1.6.20~ds1", ZSTD), None);
        assert!(cannot_pull("podman", "1.9.3", ZSTD).is_some());
        assert_eq!(cannot_pull("podman", "4.3.1", ZSTD), None);
        assert_eq!(cannot_pull("docker", "", ZSTD), None);
        assert_eq!(cannot_pull("skopeo", "1.0", ZSTD), None);
    }

    #[test]
    fn the_inventory_names_the_runtime_or_every_found_one_is_checked() {
        let found = vec!["skopeo".to_string(), "podman".into(), "docker".into()];
        assert_eq!(checked(None, &found), vec!["docker", "podman"]);
        assert_eq!(checked(Some("podman"), &found), vec!["podman"]);
        assert!(checked(Some("none"), &found).is_empty());
    }
}
