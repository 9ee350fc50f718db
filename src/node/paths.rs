//! Every path darkport uses under a node's `darkport_root` (see `docs/NODE-LAYOUT.md`).

use crate::digest::Digest;

/// Default `darkport_root`.
pub const DEFAULT_ROOT: &str = "/var/lib/darkport";

/// The layout of one node's `darkport_root`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    root: String,
}

impl Layout {
    pub fn new(root: &str) -> Layout {
        let trimmed = root.trim_end_matches('/');
        Layout {
            root: if trimmed.is_empty() && root.starts_with('/') {
                "/".into()
            } else {
                trimmed.to_string()
            },
        }
    }
    /// `darkport_root` itself, without a trailing `/`.
    pub fn root(&self) -> &str {
        &self.root
    }
    fn at(&self, rel: &str) -> String {
        format!("{}/{rel}", self.root.trim_end_matches('/'))
    }
    /// `blobs/sha256/<hex>`: the CAS.
    pub fn blob(&self, d: &Digest) -> String {
        self.at(&format!("blobs/sha256/{}", d.hex()))
    }
    /// `bin/darkport-<sha256[:16]>`: the darkport binary that runs the registry.
    pub fn bin(&self, exe: &Digest) -> String {
        self.at(&format!("bin/darkport-{}", &exe.hex()[..16]))
    }
    /// `bundles/<bundle id>`: the signed manifest and the playbooks of one bundle.
    pub fn bundle_dir(&self, id: &Digest) -> String {
        self.at(&format!("bundles/{}", id.hex()))
    }
    /// `registry/`: the embedded registry's files.
    pub fn registry_dir(&self) -> String {
        self.at("registry")
    }
    /// `registry/tls`: server.crt, server.key, ca.crt, names.
    pub fn tls_dir(&self) -> String {
        self.at("registry/tls")
    }
    /// `registry/repositories.json`: the tag index.
    pub fn tag_index(&self) -> String {
        self.at("registry/repositories.json")
    }
    /// `registry/fetch-ca.crt`: the CA a later registry host trusts to copy from the first.
    pub fn fetch_ca(&self) -> String {
        self.at("registry/fetch-ca.crt")
    }
    /// `lock/owner`: who holds the site lock.
    pub fn lock_owner(&self) -> String {
        self.at("lock/owner")
    }
    /// `state.json`.
    pub fn state(&self) -> String {
        self.at("state.json")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_match_the_documented_layout() {
        let d = Digest::of(b"x");
        let l = Layout::new("/var/lib/darkport/");
        assert_eq!(l.root(), "/var/lib/darkport");
        assert_eq!(
            l.blob(&d),
            format!("/var/lib/darkport/blobs/sha256/{}", d.hex())
        );
        assert_eq!(
            l.bin(&d),
            format!("/var/lib/darkport/bin/darkport-{}", &d.hex()[..16])
        );
        assert_eq!(
            l.bundle_dir(&d),
            format!("/var/lib/darkport/bundles/{}", d.hex())
        );
        assert_eq!(l.tls_dir(), "/var/lib/darkport/registry/tls");
        assert_eq!(
            l.tag_index(),
            "/var/lib/darkport/registry/repositories.json"
        );
        assert_eq!(l.fetch_ca(), "/var/lib/darkport/registry/fetch-ca.crt");
        assert_eq!(l.lock_owner(), "/var/lib/darkport/lock/owner");
        assert_eq!(l.state(), "/var/lib/darkport/state.json");
        // Every path is also named in docs/NODE-LAYOUT.md.
        let doc = include_str!("../../docs/NODE-LAYOUT.md");
        for rel in [
            "blobs/sha256/<hex>",
            "registry/repositories.json",
            "registry/tls/",
            "registry/fetch-ca.crt",
            "bin/darkport-<sha256[:16]>",
            "bundles/<bundle id>/",
            "state.json",
            "lock/owner",
        ] {
            assert!(doc.contains(rel), "docs/NODE-LAYOUT.md does not name {rel}");
        }
    }

    #[test]
    fn a_root_of_slash_stays_absolute() {
        assert_eq!(Layout::new("/").state(), "/state.json");
    }
}
