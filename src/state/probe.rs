//! One round trip that tells the controller what a node has: architecture, free space under
//! `darkport_root`, init system, container runtimes, and the blobs already in its CAS.

use super::StateError;
use crate::digest::Digest;
use crate::transport::{shell_quote, ExecOpts, Transport};
use serde::Serialize;
use std::collections::BTreeSet;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct NodeProbe {
    /// `uname -m`, e.g. `x86_64`.
    pub machine: String,
    /// The OCI architecture name (`amd64`, `arm64`, ...).
    pub arch: String,
    /// `ID` and `VERSION_ID` from /etc/os-release.
    pub os: String,
    /// Bytes available to darkport in the filesystem holding `darkport_root`.
    pub free_bytes: u64,
    /// systemd is PID 1.
    pub systemd: bool,
    /// Container runtimes found on the node (`docker`, `podman`, `containerd`, `skopeo`).
    pub runtimes: Vec<String>,
    /// The version each runtime reported (`docker` is the engine's, not the client's), as
    /// printed; a runtime whose version could not be read has no entry.
    pub runtime_versions: std::collections::BTreeMap<String, String>,
    /// Blobs present in `<root>/blobs/sha256/` whose content is good: named by their digest,
    /// checked on arrival, and (for the blobs a bundle needs) checked again by
    /// [`verify_blobs`] before an install or upgrade relies on them.
    pub blobs: BTreeSet<Digest>,
    /// Stored blobs [`verify_blobs`] found not matching their name (taken out of `blobs`, so
    /// they are sent again; the registry never serves them).
    pub corrupt: BTreeSet<Digest>,
    /// This controller's darkport binary is already on the node (registry hosts run it).
    pub exe_present: bool,
}

/// Map `uname -m` to the OCI architecture name.
pub fn oci_arch(machine: &str) -> &str {
    match machine {
        "x86_64" | "amd64" => "amd64",
        "aarch64" | "arm64" => "arm64",
        "armv7l" | "armv7" | "armv6l" => "arm",
        "i386" | "i686" => "386",
        "ppc64le" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        other => other,
    }
}

pub fn probe(t: &mut dyn Transport, root: &str) -> Result<NodeProbe, StateError> {
    let r = shell_quote(root.trim_end_matches('/'));
    // The nearest existing ancestor of root tells the free space even before the first install.
    let script = format!(
        r#"r={r}; d="$r"; while [ ! -d "$d" ]; do d=$(dirname "$d"); done
echo "machine=$(uname -m)"
. /etc/os-release 2>/dev/null; echo "os=${{ID:-unknown}} ${{VERSION_ID:-}}"
echo "free=$(df -Pk "$d" | awk 'NR==2 {{print $4}}')"
if [ -d /run/systemd/system ]; then echo systemd=1; else echo systemd=0; fi
for x in docker podman containerd skopeo; do command -v $x >/dev/null 2>&1 && echo "runtime=$x"; done
t=; command -v timeout >/dev/null 2>&1 && t="timeout 10"
if command -v docker >/dev/null 2>&1; then echo "version=docker $($t docker version --format '{{{{.Server.Version}}}}' 2>/dev/null)"; fi
if command -v podman >/dev/null 2>&1; then echo "version=podman $($t podman --version 2>/dev/null)"; fi
if command -v containerd >/dev/null 2>&1; then echo "version=containerd $($t containerd --version 2>/dev/null)"; fi
if [ -d "$r/blobs/sha256" ]; then ls "$r/blobs/sha256" | sed 's/^/blob=/'; fi
"#
    );
    let out = t.exec(&script, &ExecOpts::default())?;
    if !out.success() {
        return Err(StateError::Remote {
            host: t.host().to_string(),
            op: "probe".into(),
            path: root.to_string(),
            msg: out.stderr_str().trim().to_string(),
        });
    }
    let mut p = NodeProbe::default();
    for line in out.stdout_str().lines() {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        match k {
            "machine" => {
                p.machine = v.to_string();
                p.arch = oci_arch(v).to_string();
            }
            "os" => p.os = v.trim().to_string(),
            "free" => p.free_bytes = v.trim().parse::<u64>().unwrap_or(0) * 1024,
            "systemd" => p.systemd = v == "1",
            "runtime" => p.runtimes.push(v.to_string()),
            "version" => {
                if let Some((rt, ver)) = v.split_once(' ') {
                    if let Some(ver) = version_token(ver) {
                        p.runtime_versions.insert(rt.to_string(), ver.to_string());
                    }
                }
            }
            // Partial uploads (`.part`) and anything not a digest are ignored.
            "blob" => {
                if let Ok(d) = Digest::from_hex(v) {
                    p.blobs.insert(d);
                }
            }
            _ => {}
        }
    }
    Ok(p)
}

/// The first word of a runtime's version output that starts with a digit (`v` dropped):
/// `podman version 4.3.1` → `4.3.1`, `containerd github.com/containerd/containerd 1.6.20~ds1 …`
/// → `1.6.20~ds1`, `20.10.24+dfsg1` → itself.
fn version_token(s: &str) -> Option<&str> {
    s.split_whitespace()
        .map(|w| w.strip_prefix('v').unwrap_or(w))
        .find(|w| w.starts_with(|c: char| c.is_ascii_digit()))
}

/// `major.minor` of a version string such as `20.10.24+dfsg1`.
pub fn major_minor(v: &str) -> Option<(u32, u32)> {
    let mut it = v.split(|c: char| !c.is_ascii_digit());
    let major = it.next()?.parse().ok()?;
    let minor = it.next().and_then(|x| x.parse().ok()).unwrap_or(0);
    Some((major, minor))
}

/// Hash the stored copies of `wanted` that the probe found (on the node, with `sha256sum`) and
/// move any that does not match its digest from `p.blobs` to `p.corrupt`.
pub fn verify_blobs(
    t: &mut dyn Transport,
    root: &str,
    p: &mut NodeProbe,
    wanted: &BTreeSet<Digest>,
) -> Result<(), StateError> {
    let have: Vec<Digest> = wanted.intersection(&p.blobs).copied().collect();
    let dir = format!("{}/blobs/sha256", root.trim_end_matches('/'));
    for chunk in have.chunks(256) {
        let names: Vec<String> = chunk.iter().map(|d| d.hex()).collect();
        let script = format!(
            "cd {} && sha256sum -- {}",
            shell_quote(&dir),
            names.join(" ")
        );
        let out = t.exec(&script, &ExecOpts::default())?;
        let mut good = BTreeSet::new();
        for line in out.stdout_str().lines() {
            if let Some((sum, name)) = line.split_once("  ") {
                if sum == name {
                    good.insert(sum.to_string());
                }
            }
        }
        if !out.success() && good.is_empty() && !out.stderr_str().contains("No such file") {
            return Err(StateError::Remote {
                host: t.host().to_string(),
                op: "verify the stored blobs in".into(),
                path: dir,
                msg: out.stderr_str().trim().to_string(),
            });
        }
        for d in chunk {
            if !good.contains(&d.hex()) {
                p.blobs.remove(d);
                p.corrupt.insert(*d);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::local::LocalTransport;

    fn which(x: &str) -> bool {
        std::process::Command::new("sh")
            .args(["-c", &format!("command -v {x}")])
            .output()
            .is_ok_and(|o| o.status.success())
    }

    #[test]
    fn runtime_versions_are_read_from_what_each_runtime_prints() {
        assert_eq!(version_token("podman version 4.3.1"), Some("4.3.1"));
        assert_eq!(
            version_token("containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1"),
            Some("1.6.20~ds1")
        );
        assert_eq!(version_token("v1.7.2 abc"), Some("1.7.2"));
        assert_eq!(version_token(""), None);
        assert_eq!(major_minor("20.10.24+dfsg1"), Some((20, 10)));
        assert_eq!(major_minor("27"), Some((27, 0)));
        assert_eq!(major_minor("x"), None);
    }

    #[test]
    fn probes_this_machine() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("not/yet/created");
        let mut t = LocalTransport::new("local");
        let p = probe(&mut t, root.to_str().unwrap()).unwrap();
        assert_eq!(
            p.machine,
            std::process::Command::new("uname")
                .arg("-m")
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
                .unwrap()
        );
        assert!(p.free_bytes > 0);
        assert!(p.blobs.is_empty());
        for rt in p.runtime_versions.keys() {
            assert!(
                p.runtimes.contains(rt),
                "{rt} has a version but was not found"
            );
        }
        if which("podman") {
            assert!(p.runtime_versions.contains_key("podman"), "{p:?}");
        }

        let blobs = dir.path().join("dp/blobs/sha256");
        std::fs::create_dir_all(&blobs).unwrap();
        let d = Digest::of(b"x");
        std::fs::write(blobs.join(d.hex()), b"x").unwrap();
        std::fs::write(blobs.join(format!("{}.part", Digest::of(b"y").hex())), b"").unwrap();
        let p = probe(&mut t, dir.path().join("dp").to_str().unwrap()).unwrap();
        assert_eq!(p.blobs.into_iter().collect::<Vec<_>>(), vec![d]);
    }

    #[test]
    fn verify_takes_out_blobs_that_do_not_match_their_digest() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_str().unwrap();
        let blobs = dir.path().join("blobs/sha256");
        std::fs::create_dir_all(&blobs).unwrap();
        let (good, bad, other) = (Digest::of(b"good"), Digest::of(b"bad"), Digest::of(b"o"));
        std::fs::write(blobs.join(good.hex()), b"good").unwrap();
        std::fs::write(blobs.join(bad.hex()), b"b4d").unwrap();
        std::fs::write(blobs.join(other.hex()), b"not checked: not wanted").unwrap();
        let mut t = LocalTransport::new("local");
        let mut p = probe(&mut t, root).unwrap();
        assert_eq!(p.blobs.len(), 3);
        let wanted: BTreeSet<Digest> = [good, bad, Digest::of(b"absent")].into();
        verify_blobs(&mut t, root, &mut p, &wanted).unwrap();
        assert_eq!(p.blobs, [good, other].into());
        assert_eq!(p.corrupt, [bad].into());
    }

    #[test]
    fn arch_names() {
        assert_eq!(oci_arch("x86_64"), "amd64");
        assert_eq!(oci_arch("aarch64"), "arm64");
    }
}
