//! The container runtimes of a node trust the site CA for each site registry: docker and
//! podman `certs.d`, containerd `certs.d/<host>/hosts.toml` (every registry host, in the
//! node's order), and with several registry hosts a podman/skopeo `registries.conf.d` drop-in
//! that makes each a mirror of the others. The node's order (see `Site::registry_order`) puts
//! the registry it should pull from first, so an HA site's pulls spread over its registries.
//! No daemon restart is needed for any of them.

use crate::transport::shell_quote;

/// The environment variable the script reads the CA (PEM) from.
pub const CA_ENV: &str = "CA";

/// A script (run with the CA in `$CA`) that installs the trust under `trust_root` (`/`
/// normally; a prefix in tests) for every address in `registries`, which the runtimes try in
/// that order whichever of them an image names.
pub fn runtime_trust_script(trust_root: &str, registries: &[String]) -> String {
    let pre = trust_root.trim_end_matches('/');
    let mut script = String::from("set -e\n");
    for r in registries {
        for d in [
            "etc/docker/certs.d",
            "etc/containers/certs.d",
            "etc/containerd/certs.d",
        ] {
            let dir = shell_quote(&format!("{pre}/{d}/{r}"));
            script.push_str(&format!(
                "mkdir -p {dir}; printf '%s' \"${CA_ENV}\" > {dir}/ca.crt.tmp; mv -f {dir}/ca.crt.tmp {dir}/ca.crt\n"
            ));
        }
        let dir = format!("{pre}/etc/containerd/certs.d/{r}");
        script.push_str(&format!(
            "printf '%s' {} > {q}/hosts.toml.tmp; mv -f {q}/hosts.toml.tmp {q}/hosts.toml\n",
            shell_quote(&containerd_hosts(pre, r, registries)),
            q = shell_quote(&dir)
        ));
    }
    if registries.len() > 1 {
        let d = shell_quote(&format!("{pre}/etc/containers/registries.conf.d"));
        script.push_str(&format!(
            "mkdir -p {d}; printf '%s' {} > {d}/50-darkport.conf.tmp; mv -f {d}/50-darkport.conf.tmp {d}/50-darkport.conf\n",
            shell_quote(&podman_mirrors(registries))
        ));
    }
    script
}

/// containerd tries the hosts in order, then `server`: every registry host of the site in the
/// node's order (HA: they serve the same digests).
fn containerd_hosts(pre: &str, r: &str, registries: &[String]) -> String {
    let mut toml = format!("# written by darkport: the site registry\nserver = \"https://{r}\"\n");
    for h in registries {
        toml.push_str(&format!(
            "\n[host.\"https://{h}\"]\n  capabilities = [\"pull\", \"resolve\"]\n  ca = \"{pre}/etc/containerd/certs.d/{h}/ca.crt\"\n"
        ));
    }
    toml
}

/// podman/skopeo/buildah try the mirrors in order before the location itself, so every
/// location lists all the registries in the node's order (itself included: the node's first
/// registry must come first also for images named after it), and a pull by any of their names
/// still works while one is down.
fn podman_mirrors(registries: &[String]) -> String {
    let mut conf = String::from(
        "# written by darkport: the site registries serve the same images; a pull falls back\n# to the others while one is down\n",
    );
    for r in registries {
        conf.push_str(&format!("\n[[registry]]\nlocation = \"{r}\"\n"));
        for m in registries {
            conf.push_str(&format!("[[registry.mirror]]\nlocation = \"{m}\"\n"));
        }
    }
    conf
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The script, run for real under a temporary trust root, writes what each runtime reads.
    #[test]
    fn every_runtime_trusts_every_registry_host() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_str().unwrap();
        let regs = vec!["10.0.0.1:5000".to_string(), "10.0.0.2:5000".to_string()];
        let st = std::process::Command::new("sh")
            .arg("-c")
            .arg(runtime_trust_script(root, &regs))
            .env(CA_ENV, "PEM")
            .status()
            .unwrap();
        assert!(st.success());
        for r in &regs {
            for d in ["docker", "containers", "containerd"] {
                let ca = std::fs::read_to_string(format!("{root}/etc/{d}/certs.d/{r}/ca.crt"));
                assert_eq!(ca.unwrap(), "PEM", "{d} {r}");
            }
        }
        let hosts = std::fs::read_to_string(format!(
            "{root}/etc/containerd/certs.d/10.0.0.2:5000/hosts.toml"
        ))
        .unwrap();
        let first = hosts.find("https://10.0.0.1:5000\"]").unwrap();
        let second = hosts.find("https://10.0.0.2:5000\"]").unwrap();
        assert!(first < second, "the node's order: {hosts}");
        assert!(
            hosts.contains("server = \"https://10.0.0.2:5000\""),
            "{hosts}"
        );
        assert!(hosts.starts_with("# written by darkport"));
        let conf = std::fs::read_to_string(format!(
            "{root}/etc/containers/registries.conf.d/50-darkport.conf"
        ))
        .unwrap();
        assert_eq!(conf.matches("[[registry.mirror]]").count(), 4, "{conf}");
        // Under each location the node's first registry is the first mirror.
        for block in conf.split("[[registry]]").skip(1) {
            let first = block.split("[[registry.mirror]]").nth(1).unwrap_or("");
            assert!(first.contains("\"10.0.0.1:5000\""), "{conf}");
        }
    }

    #[test]
    fn one_registry_host_needs_no_mirror_file() {
        let s = runtime_trust_script("/", &["r:5000".to_string()]);
        assert!(!s.contains("registries.conf.d"));
        assert!(s.contains("mkdir -p /etc/docker/certs.d/r:5000;"), "{s}");
    }
}
