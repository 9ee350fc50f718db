//! `registry: {external: URL}`: the site already runs a registry (here Debian's
//! docker-registry, over TLS with the site's own CA). `darkport install` pushes the bundle's
//! images into it from the controller (each blob once, the other repositories mount it, the
//! manifests byte for byte), seeds nothing on the nodes, makes every node trust that CA, and
//! the install playbook checks every image there with the digest the bundle signed. A re-run
//! sends nothing; a registry that does not answer stops preflight with nothing changed.

mod support;
use support::install as install_support;
use support::nodes as common;

use install_support::{json_of, site_cmd, text};
use std::path::Path;
use std::process::{Child, Command, Stdio};

struct Registry {
    child: Child,
    port: u16,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// docker-registry on 127.0.0.1 with a certificate from a CA made in `dir/extca`.
fn start_registry(dir: &Path) -> Registry {
    let ca = dir.join("extca");
    darkport::registry::tls::init_ca(&ca, "site's own CA").unwrap();
    let cert = darkport::registry::tls::issue_server_cert(
        &ca,
        &["127.0.0.1".to_string()],
        &dir.join("extcert"),
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = dir.join("registry.yml");
    std::fs::write(
        &cfg,
        format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n  tls:\n    certificate: {}\n    key: {}\n",
            dir.join("registry-data").display(),
            cert.cert.display(),
            cert.key.display()
        ),
    )
    .unwrap();
    let mut child = Command::new("docker-registry")
        .arg("serve")
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("docker-registry (Debian package docker-registry) is needed");
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Registry { child, port };
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("docker-registry did not start on port {port}");
}

#[test]
fn install_pushes_into_an_external_registry_and_seeds_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let (b10, pubkey) = install_support::build_example(t);
    let reg = start_registry(t);
    let nodes = common::Nodes::sshd(2);
    let inv = install_support::site_inventory(nodes.inventory_path(), t);
    std::fs::create_dir_all(t.join("group_vars")).unwrap();
    std::fs::write(
        t.join("group_vars/all.yml"),
        format!(
            "registry:\n  external: https://127.0.0.1:{}/site\n  ca: {}\n  parallel: 3\n",
            reg.port,
            t.join("extca/ca.crt").display()
        ),
    )
    .unwrap();
    let inspect = Command::new(install_support::bin())
        .args(["inspect", "--json", "--pubkey"])
        .arg(&pubkey)
        .arg(&b10)
        .output()
        .unwrap();
    let m = json_of(&inspect);

    let o = site_cmd(&nodes, &inv, t, &["install", "--json"], Some(&b10))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let j = json_of(&o);
    let x = &j["external_registry"];
    // Every blob crossed once (the manifests are blobs of the bundle too); the base layer the
    // five images share was sent for one and mounted for the four others.
    // The bundle's SBOM documents are no image's blobs: they are not pushed.
    let n = |k: &str| x[k].as_u64().unwrap();
    let (sbom_bytes, sboms) = support::bundle::stored_sboms(&b10);
    assert_eq!(
        n("blobs_sent") + n("manifests"),
        m["blobs_in_bundle"].as_u64().unwrap() - sboms as u64,
        "{x}"
    );
    assert_eq!(
        n("bytes_sent") + n("manifest_bytes"),
        m["stored_blob_bytes"].as_u64().unwrap() - sbom_bytes,
        "{x}"
    );
    assert_eq!(n("blobs_mounted"), 4, "{x}");
    assert_eq!(n("manifests"), 5, "{x}");
    for i in 0..2 {
        let r = nodes.node_root(i);
        assert!(!r.join("var/lib/darkport/blobs").exists(), "nothing seeded");
        assert_eq!(
            install_support::node_state(&r)["version"],
            "1.0.0",
            "node{}",
            i + 1
        );
        let trusted = r.join(format!(
            "srv/trust/etc/containers/certs.d/127.0.0.1:{}/ca.crt",
            reg.port
        ));
        assert_eq!(
            std::fs::read(&trusted).unwrap(),
            std::fs::read(t.join("extca/ca.crt")).unwrap()
        );
    }
    // The manifests are the bundle's bytes: same digests through skopeo.
    let certs = t.join("extcerts");
    std::fs::create_dir_all(&certs).unwrap();
    std::fs::copy(t.join("extca/ca.crt"), certs.join("ca.crt")).unwrap();
    for img in m["images"].as_array().unwrap() {
        let name = img["name"].as_str().unwrap();
        let o = Command::new("skopeo")
            .args(["inspect", "--format", "{{.Digest}}", "--cert-dir"])
            .arg(&certs)
            .arg(format!("docker://127.0.0.1:{}/site/{name}", reg.port))
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&o.stdout).trim(),
            img["digest"].as_str().unwrap(),
            "{name}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }

    // A re-run sends nothing: the registry already has every blob.
    let o = site_cmd(&nodes, &inv, t, &["install", "--json"], Some(&b10))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let x = &json_of(&o)["external_registry"];
    assert_eq!(x["blobs_sent"], 0, "{x}");
    assert_eq!(x["bytes_sent"], 0, "{x}");

    // The registry gone: preflight names it, nothing is changed.
    let port = reg.port;
    drop(reg);
    let before = std::fs::read(nodes.node_root(0).join("var/lib/darkport/state.json")).unwrap();
    let o = site_cmd(&nodes, &inv, t, &["install"], Some(&b10))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let msg = text(&o);
    assert!(
        msg.contains(&format!("127.0.0.1:{port}/site")) && msg.contains("does not answer"),
        "{msg}"
    );
    assert_eq!(
        std::fs::read(nodes.node_root(0).join("var/lib/darkport/state.json")).unwrap(),
        before
    );
}
