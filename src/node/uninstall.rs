//! What `darkport uninstall` removes from a node, as one script: the registry service (systemd
//! unit or supervised process), the runtimes' trust of the site registries (what
//! [`super::trust::runtime_trust_script`] wrote), and `darkport_root` (blobs, bundles, state,
//! the darkport binary). The product's data is not darkport's: its `uninstall.yml` decides.

use super::service::UNIT;
use super::Layout;
use crate::transport::shell_quote;

/// Refuse a `darkport_root` whose removal would take more than darkport's own files.
pub fn root_is_removable(root: &str) -> Result<(), String> {
    let r = root.trim_end_matches('/');
    let depth = r.split('/').filter(|c| !c.is_empty()).count();
    if !r.starts_with('/') || depth < 2 || r.split('/').any(|c| c == "..") {
        return Err(format!(
            "darkport_root={root:?} is not a directory darkport can remove as a whole (absolute, at least two levels deep)"
        ));
    }
    Ok(())
}

/// The script; `registries` are the `host:port` addresses the node trusts.
pub fn remove_script(layout: &Layout, trust_root: &str, registries: &[String]) -> String {
    let pre = trust_root.trim_end_matches('/');
    let root = shell_quote(layout.root());
    let reg = shell_quote(&layout.registry_dir());
    let mut s = format!(
        r#"set -e
if [ -f /etc/systemd/system/{UNIT}.service ]; then
  systemctl disable --now {UNIT} >/dev/null 2>&1 || true
  rm -f /etc/systemd/system/{UNIT}.service
  systemctl daemon-reload >/dev/null 2>&1 || true
  echo "stopped and removed the {UNIT} unit"
fi
pid=$(cat {reg}/supervise.pid 2>/dev/null || true)
if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
  kill -TERM -- -"$pid" 2>/dev/null || kill "$pid" 2>/dev/null || true
  echo "stopped the supervised registry"
fi
"#
    );
    for r in registries {
        for d in [
            "etc/docker/certs.d",
            "etc/containers/certs.d",
            "etc/containerd/certs.d",
        ] {
            s.push_str(&format!(
                "rm -rf {}\n",
                shell_quote(&format!("{pre}/{d}/{r}"))
            ));
        }
    }
    s.push_str(&format!(
        "rm -f {}\n",
        shell_quote(&format!(
            "{pre}/etc/containers/registries.conf.d/50-darkport.conf"
        ))
    ));
    // Its contents, then the directory itself unless it is a mount point (kept, empty).
    s.push_str(&format!(
        "if [ -e {root} ]; then find {root} -mindepth 1 -maxdepth 1 -exec rm -rf {{}} +; rmdir {root} 2>/dev/null || true; echo \"removed {}\"; fi\n",
        layout.root()
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_dedicated_root_is_removed() {
        assert!(root_is_removable("/var/lib/darkport").is_ok());
        assert!(root_is_removable("/srv/x/").is_ok());
        for bad in ["/", "/var", "var/lib/darkport", "/var/../etc", ""] {
            assert!(root_is_removable(bad).is_err(), "{bad}");
        }
    }

    /// Run for real under a temporary root: the trust files and the root go, others stay.
    #[test]
    fn the_script_removes_the_trust_and_the_root_and_nothing_else() {
        let d = tempfile::tempdir().unwrap();
        let base = d.path().display().to_string();
        let root = format!("{base}/var/lib/darkport");
        std::fs::create_dir_all(format!("{root}/blobs/sha256")).unwrap();
        let regs = vec!["10.0.0.1:5000".to_string()];
        let trust = crate::node::trust::runtime_trust_script(&base, &regs);
        let st = std::process::Command::new("sh")
            .arg("-c")
            .arg(&trust)
            .env(crate::node::trust::CA_ENV, "PEM")
            .status()
            .unwrap();
        assert!(st.success());
        std::fs::create_dir_all(format!("{base}/etc/docker/certs.d/other:5000")).unwrap();
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(remove_script(&Layout::new(&root), &base, &regs))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!std::path::Path::new(&root).exists());
        assert!(
            !std::path::Path::new(&format!("{base}/etc/docker/certs.d/10.0.0.1:5000")).exists()
        );
        assert!(
            !std::path::Path::new(&format!("{base}/etc/containerd/certs.d/10.0.0.1:5000")).exists()
        );
        assert!(std::path::Path::new(&format!("{base}/etc/docker/certs.d/other:5000")).exists());
        assert!(String::from_utf8_lossy(&out.stdout).contains("removed"));
    }
}
