//! Our pull-conformance suite for `darkport registry serve`, written from the OCI
//! distribution spec (pull category + content discovery): status codes, headers, bodies, HEAD,
//! Range, error JSON, pagination, tags vs digests, names with several segments.
//!
//! Why not the official suite (opencontainers/distribution-spec `conformance/`): it cannot be
//! built here. Debian's golang-go is 1.19.8 (the current suite needs Go >= 1.24), and its Go
//! module dependencies (ginkgo/gomega, reggie, ...) cannot be fetched: `go install
//! github.com/opencontainers/distribution-spec/conformance@v1.1.1` fails with `dial tcp: lookup
//! proxy.golang.org ...: no such host` (only crates.io, PyPI and Debian are reachable), and
//! reggie is not packaged in Debian. This suite is the substitute.

mod support;
use support::registry as registry_support;

use darkport::digest::Digest;
use darkport::registry::index::{OCI_INDEX, OCI_MANIFEST};
use darkport::registry::{blob_path, RepoIndex};
use registry_support::*;

fn ok_headers(r: &Resp) {
    assert_eq!(
        r.header("docker-distribution-api-version"),
        Some("registry/2.0"),
        "{:?}",
        r.headers
    );
}

fn assert_error(r: &Resp, status: u16, code: &str) {
    assert_eq!(
        r.status,
        status,
        "{:?} {:?}",
        r.headers,
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.error_code(), code);
    assert!(r.json()["errors"][0]["message"].is_string());
    ok_headers(r);
}

#[test]
fn base_endpoint_and_api_version() {
    let f = fixture();
    let s = Serve::start(f.root(), &[]);
    let r = http(s.addr, "GET", "/v2/", &[]);
    assert_eq!(r.status, 200);
    ok_headers(&r);
    assert_eq!(r.json(), serde_json::json!({}));
    let r = http(s.addr, "HEAD", "/v2/", &[]);
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
    let r = http(s.addr, "GET", "/v2", &[]);
    assert_eq!(r.status, 200);
    let r = http(s.addr, "GET", "/", &[]);
    assert_eq!(r.status, 404);
}

#[test]
fn manifests_by_tag_and_digest_exact_bytes_and_headers() {
    let f = fixture();
    let s = Serve::start(f.root(), &[]);
    let len = f.app.manifest_bytes.len().to_string();
    let dg = f.app.manifest.to_string();
    for reference in ["1.0", "latest", dg.as_str()] {
        let p = format!("/v2/test/app/manifests/{reference}");
        let r = http(s.addr, "GET", &p, &[("Accept", OCI_MANIFEST)]);
        assert_eq!(r.status, 200, "{p}");
        assert_eq!(r.body, f.app.manifest_bytes, "{p}: exact bytes");
        assert_eq!(r.header("content-type"), Some(OCI_MANIFEST));
        assert_eq!(r.header("docker-content-digest"), Some(dg.as_str()));
        assert_eq!(r.header("content-length"), Some(len.as_str()));
        ok_headers(&r);
        // HEAD: same headers, exact Content-Length, no body.
        let h = http(s.addr, "HEAD", &p, &[]);
        assert_eq!(h.status, 200);
        assert!(h.body.is_empty());
        assert_eq!(
            h.header("content-length"),
            Some(len.as_str()),
            "HEAD Content-Length"
        );
        assert_eq!(h.header("docker-content-digest"), Some(dg.as_str()));
        assert_eq!(h.header("content-type"), Some(OCI_MANIFEST));
    }
    // Unknown query parameters (containerd adds `ns` for mirrors) are ignored.
    let r = http(
        s.addr,
        "GET",
        "/v2/test/app/manifests/1.0?ns=docker.io&x=1",
        &[],
    );
    assert_eq!(r.body, f.app.manifest_bytes);
    // Digest escaped by the client.
    let p = format!("/v2/test/app/manifests/{}", dg.replace(':', "%3A"));
    assert_eq!(http(s.addr, "GET", &p, &[]).status, 200);
}

#[test]
fn index_with_three_segment_name_and_child_manifests() {
    let f = fixture();
    let s = Serve::start(f.root(), &[]);
    let r = http(s.addr, "GET", "/v2/org/team/multi/manifests/2.0", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, f.multi.1);
    assert_eq!(r.header("content-type"), Some(OCI_INDEX));
    assert_eq!(
        r.header("docker-content-digest"),
        Some(f.multi.0.to_string().as_str())
    );
    for img in [&f.amd64, &f.arm64] {
        let p = format!("/v2/org/team/multi/manifests/{}", img.manifest);
        let r = http(s.addr, "GET", &p, &[]);
        assert_eq!(r.status, 200, "{p}");
        assert_eq!(Digest::of(&r.body), img.manifest);
        let p = format!("/v2/org/team/multi/blobs/{}", img.config);
        assert_eq!(http(s.addr, "GET", &p, &[]).status, 200, "{p}");
        // containerd asks for manifests on /blobs/ too.
        let p = format!("/v2/org/team/multi/blobs/{}", img.manifest);
        let r = http(s.addr, "HEAD", &p, &[]);
        assert_eq!(r.status, 200, "{p}");
        assert_eq!(
            r.header("content-length"),
            Some(img.manifest_bytes.len().to_string().as_str())
        );
    }
}

#[test]
fn unknown_and_invalid_references_give_oci_errors() {
    let f = fixture();
    let s = Serve::start(f.root(), &[]);
    let a = s.addr;
    assert_error(
        &http(a, "GET", "/v2/test/app/manifests/nope", &[]),
        404,
        "MANIFEST_UNKNOWN",
    );
    let zero = format!("sha256:{}", "0".repeat(64));
    assert_error(
        &http(a, "GET", &format!("/v2/test/app/manifests/{zero}"), &[]),
        404,
        "MANIFEST_UNKNOWN",
    );
    // A config digest is not a manifest.
    assert_error(
        &http(
            a,
            "GET",
            &format!("/v2/test/app/manifests/{}", f.app.config),
            &[],
        ),
        404,
        "MANIFEST_UNKNOWN",
    );
    let h = http(a, "HEAD", "/v2/test/app/manifests/nope", &[]);
    assert_eq!(h.status, 404);
    assert!(h.body.is_empty());
    assert_error(
        &http(a, "GET", "/v2/no/such/manifests/1", &[]),
        404,
        "NAME_UNKNOWN",
    );
    assert_error(
        &http(a, "GET", "/v2/no/such/tags/list", &[]),
        404,
        "NAME_UNKNOWN",
    );
    assert_error(
        &http(a, "GET", &format!("/v2/no/such/blobs/{zero}"), &[]),
        404,
        "NAME_UNKNOWN",
    );
    assert_error(
        &http(a, "GET", &format!("/v2/test/app/blobs/{zero}"), &[]),
        404,
        "BLOB_UNKNOWN",
    );
    assert_error(
        &http(a, "GET", "/v2/Test/App/manifests/1", &[]),
        400,
        "NAME_INVALID",
    );
    assert_error(
        &http(a, "GET", "/v2/test/app/blobs/sha256:xyz", &[]),
        400,
        "DIGEST_INVALID",
    );
    assert_error(
        &http(a, "GET", "/v2/test/app/blobs/sha512:abcd", &[]),
        404,
        "BLOB_UNKNOWN",
    );
    assert_eq!(http(a, "GET", "/v2/test/app/manifests/-x", &[]).status, 404);
    assert_eq!(http(a, "GET", "/v2/test/app/other", &[]).status, 404);
}

#[test]
fn blobs_get_head_and_range() {
    let f = fixture();
    let s = Serve::start(f.root(), &[]);
    let (d, len) = f.app.layers[1];
    let data = std::fs::read(blob_path(f.root(), &d)).unwrap();
    let p = format!("/v2/test/app/blobs/{d}");
    let r = http(s.addr, "GET", &p, &[]);
    assert_eq!(r.status, 200);
    assert!(!r.truncated);
    assert_eq!(Digest::of(&r.body), d);
    assert_eq!(r.header("content-length"), Some(len.to_string().as_str()));
    assert_eq!(
        r.header("docker-content-digest"),
        Some(d.to_string().as_str())
    );
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
    ok_headers(&r);

    let h = http(s.addr, "HEAD", &p, &[]);
    assert_eq!(h.status, 200);
    assert!(h.body.is_empty());
    assert_eq!(
        h.header("content-length"),
        Some(len.to_string().as_str()),
        "HEAD Content-Length"
    );
    assert_eq!(h.header("accept-ranges"), Some("bytes"));

    let cases: [(&str, u64, u64); 4] = [
        ("bytes=0-9", 0, 9),
        ("bytes=1000-", 1000, len - 1),
        ("bytes=-5", len - 5, len - 1),
        ("bytes=100-999999999", 100, len - 1),
    ];
    for (range, a, b) in cases {
        let r = http(s.addr, "GET", &p, &[("Range", range)]);
        assert_eq!(r.status, 206, "{range}");
        assert_eq!(
            r.header("content-range"),
            Some(format!("bytes {a}-{b}/{len}").as_str()),
            "{range}"
        );
        assert_eq!(r.body, &data[a as usize..=b as usize], "{range}");
        assert_eq!(
            r.header("content-length"),
            Some((b - a + 1).to_string().as_str())
        );
    }
    let r = http(s.addr, "GET", &p, &[("Range", &format!("bytes={len}-"))]);
    assert_eq!(r.status, 416);
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes */{len}").as_str())
    );
    // The whole range is a plain 200.
    let r = http(s.addr, "GET", &p, &[("Range", "bytes=0-")]);
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len() as u64, len);
}

#[test]
fn blobs_are_served_only_from_repositories_that_reference_them() {
    let f = fixture();
    let s = Serve::start(f.root(), &[]);
    let lonely_layer = f.lonely.layers[0].0;
    assert_error(
        &http(
            s.addr,
            "GET",
            &format!("/v2/test/app/blobs/{lonely_layer}"),
            &[],
        ),
        404,
        "BLOB_UNKNOWN",
    );
    assert_error(
        &http(
            s.addr,
            "GET",
            &format!("/v2/test/app/manifests/{}", f.lonely.manifest),
            &[],
        ),
        404,
        "MANIFEST_UNKNOWN",
    );
    let r = http(
        s.addr,
        "GET",
        &format!("/v2/lonely/blobs/{lonely_layer}"),
        &[],
    );
    assert_eq!(r.status, 200);
    assert_eq!(Digest::of(&r.body), lonely_layer);
}

#[test]
fn tags_list_and_catalog_with_pagination() {
    let f = fixture();
    let s = Serve::start(f.root(), &[]);
    let r = http(s.addr, "GET", "/v2/test/app/tags/list?ns=docker.io", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json(),
        serde_json::json!({"name": "test/app", "tags": ["1.0", "latest"]})
    );
    assert!(r.header("link").is_none());
    let r = http(s.addr, "GET", "/v2/test/app/tags/list?n=1", &[]);
    assert_eq!(r.json()["tags"], serde_json::json!(["1.0"]));
    let link = r.header("link").expect("Link header").to_string();
    assert_eq!(link, "</v2/test/app/tags/list?n=1&last=1.0>; rel=\"next\"");
    let next = link.trim_start_matches('<').split('>').next().unwrap();
    let r = http(s.addr, "GET", next, &[]);
    assert_eq!(r.json()["tags"], serde_json::json!(["latest"]));
    assert!(r.header("link").is_none());
    let r = http(s.addr, "GET", "/v2/test/app/tags/list?n=0", &[]);
    assert_eq!(r.json()["tags"], serde_json::json!([]));

    let r = http(s.addr, "GET", "/v2/_catalog", &[]);
    assert_eq!(
        r.json(),
        serde_json::json!({"repositories": ["lonely", "org/team/multi", "test/app"]})
    );
    let r = http(s.addr, "GET", "/v2/_catalog?n=2", &[]);
    assert_eq!(
        r.json()["repositories"],
        serde_json::json!(["lonely", "org/team/multi"])
    );
    let link = r.header("link").unwrap().to_string();
    assert!(link.contains("last=org%2Fteam%2Fmulti"), "{link}");
    let next = link.trim_start_matches('<').split('>').next().unwrap();
    let r = http(s.addr, "GET", next, &[]);
    assert_eq!(r.json()["repositories"], serde_json::json!(["test/app"]));
}

#[test]
fn push_methods_are_refused_with_unsupported() {
    let f = fixture();
    let s = Serve::start(f.root(), &[]);
    for (m, p) in [
        ("POST", "/v2/test/app/blobs/uploads/".to_string()),
        ("PUT", "/v2/test/app/manifests/9.9".to_string()),
        (
            "DELETE",
            format!("/v2/test/app/manifests/{}", f.app.manifest),
        ),
        ("DELETE", format!("/v2/test/app/blobs/{}", f.app.config)),
        ("PATCH", "/v2/test/app/blobs/uploads/abc".to_string()),
    ] {
        let r = http(s.addr, m, &p, &[("Content-Length", "0")]);
        assert_error(&r, 405, "UNSUPPORTED");
        assert_eq!(r.header("allow"), Some("GET, HEAD"), "{m} {p}");
    }
    // GET on the uploads endpoint is not an upload status page either.
    assert_eq!(
        http(s.addr, "GET", "/v2/test/app/blobs/uploads/x", &[]).status,
        405
    );
    // Still serving afterwards.
    assert_eq!(
        http(s.addr, "GET", "/v2/test/app/manifests/1.0", &[]).status,
        200
    );
}

#[test]
fn new_tags_appear_without_restart_and_bad_index_keeps_old_view() {
    let f = fixture();
    let mut s = Serve::start(f.root(), &[]);
    assert_eq!(
        http(s.addr, "GET", "/v2/test/app/manifests/2.0", &[]).status,
        404
    );
    let mut idx = RepoIndex::load(f.root()).unwrap();
    idx.set_tag("test/app", "2.0", f.amd64.manifest, OCI_MANIFEST);
    idx.set_tag("brand/new", "1", f.arm64.manifest, OCI_MANIFEST);
    idx.save_atomic(f.root()).unwrap();
    let r = http(s.addr, "GET", "/v2/test/app/manifests/2.0", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, f.amd64.manifest_bytes);
    assert_eq!(
        http(s.addr, "GET", "/v2/brand/new/tags/list", &[]).status,
        200
    );
    // A broken index is not adopted.
    let p = darkport::registry::index_path(f.root());
    std::fs::write(&p, b"{ not json").unwrap();
    assert_eq!(
        http(s.addr, "GET", "/v2/test/app/manifests/2.0", &[]).status,
        200
    );
    assert!(
        s.log_text().contains("still serving the previous index"),
        "{}",
        s.log_text()
    );
    // SIGHUP forces a re-read (here of a fixed file).
    idx.save_atomic(f.root()).unwrap();
    s.signal(libc::SIGHUP);
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(
        http(s.addr, "GET", "/v2/brand/new/manifests/1", &[]).status,
        200
    );
    assert_eq!(s.terminate(), Some(0), "clean exit on SIGTERM");
    let log = s.log_text();
    assert!(log.contains("SIGTERM"), "{log}");
    assert!(log.contains("stopped"), "{log}");
    // One line per request in plain mode.
    assert!(
        log.contains(" GET /v2/test/app/manifests/2.0 200 "),
        "{log}"
    );
}

#[test]
fn corrupt_blobs_and_manifests_are_never_served_as_good() {
    let f = fixture();
    let s = Serve::start(f.root(), &[]);
    let (d, len) = f.app.layers[1];
    let path = blob_path(f.root(), &d);
    let p = format!("/v2/test/app/blobs/{d}");
    // Served and verified once.
    let r = http(s.addr, "GET", &p, &[]);
    assert_eq!((r.status, Digest::of(&r.body)), (200, d));

    // Corrupt one byte in place (same size).
    let mut data = std::fs::read(&path).unwrap();
    let mid = data.len() / 2;
    data[mid] ^= 0xff;
    std::fs::write(&path, &data).unwrap();
    let r = http(s.addr, "GET", &p, &[]);
    assert!(
        r.status != 200 || r.truncated,
        "a corrupt blob was delivered complete ({} of {len} bytes)",
        r.body.len()
    );
    assert_ne!(Digest::of(&r.body), d);
    // From now on it is refused outright, for GET, HEAD and ranges.
    assert_error(&http(s.addr, "GET", &p, &[]), 404, "BLOB_UNKNOWN");
    assert_eq!(http(s.addr, "HEAD", &p, &[]).status, 404);
    assert_eq!(
        http(s.addr, "GET", &p, &[("Range", "bytes=0-9")]).status,
        404
    );
    assert!(
        s.log_text().contains("does not match its digest"),
        "{}",
        s.log_text()
    );

    // An unverified blob corrupted before its first request, asked for by range.
    let (d0, _) = f.app.layers[0];
    let p0 = blob_path(f.root(), &d0);
    let mut b0 = std::fs::read(&p0).unwrap();
    b0[0] ^= 1;
    std::fs::write(&p0, &b0).unwrap();
    let r = http(
        s.addr,
        "GET",
        &format!("/v2/test/app/blobs/{d0}"),
        &[("Range", "bytes=5-")],
    );
    assert_eq!(r.status, 404);

    // Repaired: served again (the verdict follows the file).
    data[mid] ^= 0xff;
    std::fs::write(&path, &data).unwrap();
    let r = http(s.addr, "GET", &p, &[]);
    assert_eq!((r.status, Digest::of(&r.body)), (200, d));

    // A corrupt manifest is refused.
    let mp = blob_path(f.root(), &f.app.manifest);
    let mut m = std::fs::read(&mp).unwrap();
    m[10] ^= 1;
    std::fs::write(&mp, &m).unwrap();
    assert_error(
        &http(s.addr, "GET", "/v2/test/app/manifests/1.0", &[]),
        404,
        "MANIFEST_UNKNOWN",
    );
}

#[test]
fn basic_auth() {
    use base64::Engine;
    let f = fixture();
    let pw = f.root().join("htpasswd");
    for (user, pass) in [("alice", "wonder land"), ("bob", "builder")] {
        let mut c = std::process::Command::new(bin())
            .args([
                "registry",
                "passwd",
                "--password-stdin",
                "--user",
                user,
                "--file",
            ])
            .arg(&pw)
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        writeln!(c.stdin.take().unwrap(), "{pass}").unwrap();
        assert!(c.wait().unwrap().success());
    }
    let s = Serve::start(
        f.root(),
        &["--auth", pw.to_str().unwrap(), "--realm", "site-7"],
    );
    let basic = |u: &str, p: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
        )
    };
    for path in ["/v2/", "/v2/test/app/manifests/1.0", "/v2/_catalog"] {
        let r = http(s.addr, "GET", path, &[]);
        assert_error(&r, 401, "UNAUTHORIZED");
        assert_eq!(r.header("www-authenticate"), Some("Basic realm=\"site-7\""));
    }
    let bad = basic("alice", "wrong");
    assert_eq!(
        http(s.addr, "GET", "/v2/", &[("Authorization", &bad)]).status,
        401
    );
    for (u, p) in [("alice", "wonder land"), ("bob", "builder")] {
        let good = basic(u, p);
        let r = http(
            s.addr,
            "GET",
            "/v2/test/app/manifests/1.0",
            &[("Authorization", &good)],
        );
        assert_eq!(r.status, 200, "{u}");
        assert_eq!(r.body, f.app.manifest_bytes);
    }
    assert!(s.log_text().contains("user=bob"), "{}", s.log_text());
}
