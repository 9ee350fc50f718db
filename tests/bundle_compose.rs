//! `compose:` in the bundle spec: the images the services name are the bundle's images (no
//! second list), the compose files travel signed as `compose/` members, and a service whose
//! image cannot be had is an error naming the service and the compose file's line.

mod support;
use bundle_common::*;
use std::path::Path;
use support::bundle as bundle_common;

/// A spec whose `images:` builds two of the three images the compose file names.
fn project(dir: &Path, compose: &str) -> std::path::PathBuf {
    let layout = dir.join("layout");
    write_oci_layout(&layout, &product_images(1, 2));
    std::fs::create_dir_all(dir.join("app")).unwrap();
    std::fs::write(dir.join("app/docker-compose.yml"), compose).unwrap();
    std::fs::write(dir.join("app/.env"), "TAG=1.0.0\n").unwrap();
    std::fs::write(dir.join("app/web.env"), "PORT=8000\n").unwrap();
    let spec = dir.join("darkport.yaml");
    write_spec(
        &spec,
        "1.0.0",
        &[
            (
                "demo/web:1.0.0".into(),
                format!("oci:{}:app0-v1", layout.display()),
            ),
            (
                "demo/api:1.0.0".into(),
                format!("oci:{}:app1-v1", layout.display()),
            ),
        ],
        "compose: app/docker-compose.yml\n",
    );
    spec
}

/// `build-bundle -f SPEC -o OUT/ --unsigned`.
fn build_unsigned(spec: &Path, out: &Path) -> std::process::Output {
    run(&[
        "build-bundle",
        "-f",
        spec.to_str().unwrap(),
        "-o",
        &format!("{}/", out.display()),
        "--unsigned",
    ])
}

const COMPOSE: &str = "services:\n  web:\n    image: demo/web:${TAG}\n    env_file: web.env\n    ports: [\"8000:8000\"]\n  api:\n    image: demo/api:${TAG:-9}\n";

#[test]
fn compose_images_and_files_are_bundled() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let spec = project(dir, COMPOSE);
    let (key, pubkey) = keys(dir, "k");
    let out = dir.join("dist");
    ok(&run(&[
        "build-bundle",
        "-f",
        spec.to_str().unwrap(),
        "-o",
        &format!("{}/", out.display()),
        "--key",
        key.to_str().unwrap(),
    ]));
    let b = out.join("testprod-1.0.0.darkport");
    let j = inspect_json(&b, &pubkey);
    assert_eq!(
        j["compose"],
        serde_json::json!(["compose/docker-compose.yml"])
    );
    let names: Vec<_> = j["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["demo/web:1.0.0", "demo/api:1.0.0"]);
    // The members are the files, byte for byte, and the signature covers them.
    let x = dir.join("x");
    std::fs::create_dir_all(&x).unwrap();
    let st = std::process::Command::new("tar")
        .arg("-C")
        .arg(&x)
        .arg("-xf")
        .arg(&b)
        .args([
            "compose/docker-compose.yml",
            "compose/.env",
            "compose/web.env",
        ])
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(
        std::fs::read_to_string(x.join("compose/docker-compose.yml")).unwrap(),
        COMPOSE
    );
    assert_eq!(
        std::fs::read_to_string(x.join("compose/web.env")).unwrap(),
        "PORT=8000\n"
    );
    ok(&run(&[
        "verify",
        "--pubkey",
        pubkey.to_str().unwrap(),
        b.to_str().unwrap(),
    ]));
}

#[test]
fn a_service_without_an_image_names_its_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let bad = format!("{COMPOSE}  cache:\n    build: ./cache\n");
    let spec = project(dir, &bad);
    let err = fails(&build_unsigned(&spec, &dir.join("dist")));
    assert!(
        err.contains("app/docker-compose.yml:9: service \"cache\" has only build:"),
        "{err}"
    );
    assert!(!dir.join("dist/testprod-1.0.0.darkport").exists());

    // A YAML error in the compose file: file:line:col, the crate's own prefix dropped.
    let spec = project(dir, "services:\n  web:\n    image: [a\n");
    let err = fails(&build_unsigned(&spec, &dir.join("dist")));
    assert!(err.contains("app/docker-compose.yml:3:"), "{err}");
    assert!(!err.contains("error: line"), "{err}");

    // An image neither built (images:) nor in a registry that answers: the pull fails and
    // the error names the service's place in the compose file.
    let bad = format!("{COMPOSE}  cache:\n    image: 127.0.0.1:1/cache:7\n");
    let spec = project(dir, &bad);
    let err = fails(&build_unsigned(&spec, &dir.join("dist")));
    assert!(err.contains("app/docker-compose.yml:9"), "{err}");
    assert!(err.contains("cache:7"), "{err}");
}

/// The file a site deploys (images pinned, variables resolved) is one the real Compose reads:
/// `docker-compose config` on the example product's file gives back the pinned images.
#[test]
fn the_pinned_example_is_read_by_docker_compose() {
    if !have_tool("docker-compose") {
        return;
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let src = repo.join("bundle/compose/docker-compose.yml");
    let text = std::fs::read_to_string(&src).unwrap();
    let services = ["rng", "hasher", "store", "worker", "webui"];
    let digests: std::collections::BTreeMap<String, darkport::digest::Digest> = services
        .iter()
        .map(|s| {
            (
                format!("dockercoins/{s}:1.0.0"),
                darkport::digest::Digest::of(s.as_bytes()),
            )
        })
        .collect();
    let env = std::fs::read_to_string(repo.join("bundle/compose/1.0.0.env")).unwrap();
    let vars = darkport::compose::parse_env_file(&env);
    let out = darkport::compose::pin::pin(&text, &src, &vars, "127.0.0.9:5000", &digests).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("docker-compose.yml");
    std::fs::write(&f, out).unwrap();
    let o = std::process::Command::new("docker-compose")
        .arg("-f")
        .arg(&f)
        .args(["config"])
        .output()
        .unwrap();
    let cfg = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for s in services {
        let want = format!(
            "image: 127.0.0.9:5000/dockercoins/{s}@{}",
            darkport::digest::Digest::of(s.as_bytes())
        );
        assert!(cfg.contains(&want), "{want} not in\n{cfg}");
    }
    assert!(
        cfg.contains("RNG_URL: http://rng:8001/cgi-bin/rng?32"),
        "{cfg}"
    );
    assert!(cfg.contains("condition: any"), "{cfg}");
    // docker stack deploy's reader (the docker CLI's), where the CLI has `stack config`.
    let o = std::process::Command::new("docker")
        .args(["stack", "config", "-c"])
        .arg(&f)
        .output();
    if let Some(o) = o.ok().filter(|o| o.status.success()) {
        let cfg = String::from_utf8_lossy(&o.stdout);
        let want = format!(
            "image: 127.0.0.9:5000/dockercoins/webui@{}",
            darkport::digest::Digest::of(b"webui")
        );
        assert!(cfg.contains(&want), "{want} not in\n{cfg}");
    }
}
