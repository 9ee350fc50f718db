use super::*;

fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn interpolation_follows_compose() {
    let v = vars(&[("TAG", "1.1.0"), ("EMPTY", "")]);
    assert_eq!(interpolate("a:${TAG}", &v).unwrap(), "a:1.1.0");
    assert_eq!(interpolate("a:$TAG", &v).unwrap(), "a:1.1.0");
    assert_eq!(interpolate("a:${NOPE:-2}", &v).unwrap(), "a:2");
    assert_eq!(interpolate("a:${EMPTY:-2}", &v).unwrap(), "a:2");
    assert_eq!(interpolate("a:${EMPTY-2}", &v).unwrap(), "a:");
    assert_eq!(interpolate("a:${NOPE-${TAG}}", &v).unwrap(), "a:1.1.0");
    assert_eq!(interpolate("$$x", &v).unwrap(), "$x");
    assert!(interpolate("${NOPE}", &v)
        .unwrap_err()
        .contains("NOPE is not set"));
    assert!(interpolate("${NOPE:?say it}", &v)
        .unwrap_err()
        .contains("say it"));
    assert!(interpolate("${TAG", &v).is_err());
}

#[test]
fn env_files_parse() {
    let v = parse_env_file("# c\nexport TAG=1.0\nA=\"q x\"\nB='s'\nC=v # note\n\nbad\n");
    assert_eq!(
        v,
        vars(&[("TAG", "1.0"), ("A", "q x"), ("B", "s"), ("C", "v")])
    );
}

#[test]
fn images_are_normalized_and_digests_refused() {
    assert_eq!(normalize_image("redis").unwrap(), "redis:latest");
    assert_eq!(
        normalize_image("127.0.0.1:5000/a/b").unwrap(),
        "127.0.0.1:5000/a/b:latest"
    );
    assert_eq!(normalize_image("a/b:1.0").unwrap(), "a/b:1.0");
    assert_eq!(site_name("docker.io/library/redis:7"), "library/redis:7");
    assert_eq!(site_name("dockercoins/rng:1"), "dockercoins/rng:1");
    assert!(normalize_image("a@sha256:00").is_err());
    assert!(normalize_image("Upper/x:1").is_err());
}

#[test]
fn services_name_their_line() {
    let text = "x-common: &c\n  restart: always\nservices:\n  rng:\n    <<: *c\n    image: dockercoins/rng:${TAG}\n  webui:\n    image: dockercoins/webui:1.0.0\n    env_file: web.env\n  store:\n    build: ./store\n";
    let e = parse_services(text, Path::new("c.yml"), &vars(&[("TAG", "1")]))
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("c.yml:11:"), "{e}");
    assert!(e.contains("\"store\" has only build:"), "{e}");
    let ok = text.replace("    build: ./store\n", "    image: redis\n");
    let (s, env) = parse_services(&ok, Path::new("c.yml"), &vars(&[("TAG", "1")])).unwrap();
    let got: Vec<_> = s
        .iter()
        .map(|s| (s.name.as_str(), s.image.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("rng", "dockercoins/rng:1"),
            ("store", "redis:latest"),
            ("webui", "dockercoins/webui:1.0.0")
        ]
    );
    assert!(s[0].at.starts_with("c.yml:"), "{}", s[0].at);
    assert_eq!(env, [("web.env".to_string(), 9)]);
    let e = parse_services(&ok, Path::new("c.yml"), &BTreeMap::new())
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("c.yml:6:") && e.contains("TAG is not set"),
        "{e}"
    );
}

#[test]
fn load_takes_env_and_env_files_and_refuses_escapes() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("docker-compose.yml");
    std::fs::write(d.path().join(".env"), "TAG=1.0.0\n").unwrap();
    std::fs::write(d.path().join("web.env"), "PORT=8000\n").unwrap();
    std::fs::write(
        &p,
        "services:\n  web:\n    image: a/web:${TAG}\n    env_file: [./web.env]\n",
    )
    .unwrap();
    let over = d.path().join("override.yml");
    std::fs::write(&over, "services:\n  web:\n    image: a/web:1.0.1\n").unwrap();
    let pr = load(&[p.clone(), over], None).unwrap();
    let imgs: Vec<_> = pr.images().iter().map(|s| s.image.clone()).collect();
    // The override's image replaces the first file's, as with `docker compose -f a -f b`:
    // only the image the service runs is shipped.
    assert_eq!(imgs, ["a/web:1.0.1"]);
    let names: Vec<_> = pr.members().into_iter().map(|m| m.0).collect();
    assert_eq!(
        names,
        [
            "compose/docker-compose.yml",
            "compose/override.yml",
            "compose/.env",
            "compose/web.env"
        ]
    );
    std::fs::write(
        &p,
        "services:\n  web:\n    image: a/web:1\n    env_file: ../secret.env\n",
    )
    .unwrap();
    let e = load(std::slice::from_ref(&p), None)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(":4:") && e.contains("inside the project directory"),
        "{e}"
    );
    std::fs::write(&p, "services:\n  web:\n    image: a/web:1\n").unwrap();
    let outside = tempfile::tempdir().unwrap();
    let q = outside.path().join("c.yml");
    std::fs::write(&q, "services: {}\n").unwrap();
    assert!(load(&[p, q], None)
        .unwrap_err()
        .to_string()
        .contains("directory of the first one"));
}
