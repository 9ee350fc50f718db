//! The HTTP(S) server: one catch-all axum handler for the OCI distribution pull API.

use super::auth::Htpasswd;
use super::blobs::{self, IntegrityCache, OnVerdict, Verdict};
use super::events::{Peer, RequestRecord, ServerEvents};
use super::index::{blob_path, index_path, manifest_content_type, Kind, RepoIndex, View};
use super::limits::Limits;
use super::names::{self, BlobRef, Reference, Route, RouteError};
use super::range::{parse_range, RangeReq};
use super::RegistryError;
use crate::digest::Digest;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::Response;
use std::future::Future;
use std::net::SocketAddr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

/// How to run the server.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// The node's darkport root: `blobs/sha256/` and `registry/repositories.json`.
    pub root: PathBuf,
    pub listen: SocketAddr,
    /// PEM certificate chain and private key; plain HTTP when absent.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Password file (see [`super::auth`]); no auth when absent.
    pub auth: Option<PathBuf>,
    pub realm: String,
    /// Timeouts, header size and connection cap (see [`super::limits`]).
    pub limits: Limits,
}

/// File identity of repositories.json (`None` = missing).
type Sig = Option<(u64, u64, u64, i64, i64)>;

fn index_sig(path: &Path) -> Sig {
    std::fs::metadata(path)
        .ok()
        .map(|m| (m.dev(), m.ino(), m.size(), m.mtime(), m.mtime_nsec()))
}

/// repositories.json + the CAS, re-read when the file changes (checked on every request: one
/// `stat`) or when forced (SIGHUP).
struct Catalog {
    root: PathBuf,
    /// (signature the view was built from, or None to force a reload; the view)
    current: RwLock<(Option<Sig>, Arc<View>)>,
    reload: Mutex<()>,
}

impl Catalog {
    fn new(root: PathBuf) -> Catalog {
        Catalog {
            root,
            current: RwLock::new((None, Arc::new(View::default()))),
            reload: Mutex::new(()),
        }
    }

    /// Load now; errors are returned (used at start-up, where a bad index must stop us).
    fn load_strict(&self) -> Result<Arc<View>, RegistryError> {
        let path = index_path(&self.root);
        let sig = index_sig(&path);
        let idx = RepoIndex::load(&self.root)?;
        let view = Arc::new(View::build(&self.root, &idx));
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = (Some(sig), view.clone());
        Ok(view)
    }

    fn force_reload(&self) {
        self.current.write().unwrap_or_else(|e| e.into_inner()).0 = None;
    }

    fn view(&self, events: &dyn ServerEvents) -> Arc<View> {
        let path = index_path(&self.root);
        let sig = index_sig(&path);
        {
            let cur = self.current.read().unwrap_or_else(|e| e.into_inner());
            if cur.0 == Some(sig) {
                return cur.1.clone();
            }
        }
        let _g = self.reload.lock().unwrap_or_else(|e| e.into_inner());
        {
            let cur = self.current.read().unwrap_or_else(|e| e.into_inner());
            if cur.0 == Some(sig) {
                return cur.1.clone();
            }
        }
        let old = self
            .current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .1
            .clone();
        let view = match RepoIndex::load(&self.root) {
            Ok(idx) => {
                let v = Arc::new(View::build(&self.root, &idx));
                let tags: usize = v.repos.values().map(|r| r.tags.len()).sum();
                events.notice(&format!(
                    "loaded {}: {} repositories, {tags} tags",
                    path.display(),
                    v.repos.len()
                ));
                for w in &v.warnings {
                    events.notice(w);
                }
                v
            }
            Err(e) => {
                events.notice(&format!("{e}; still serving the previous index"));
                old
            }
        };
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = (Some(sig), view.clone());
        view
    }
}

struct Shared {
    root: PathBuf,
    catalog: Catalog,
    integrity: IntegrityCache,
    auth_path: Option<PathBuf>,
    auth: RwLock<Option<Arc<Htpasswd>>>,
    realm: String,
    events: Arc<dyn ServerEvents>,
}

/// Forces a re-read of repositories.json and of the password file (what SIGHUP does).
#[derive(Clone)]
pub struct Reloader(Arc<Shared>);

impl Reloader {
    pub fn reload(&self) {
        let s = &self.0;
        s.catalog.force_reload();
        if let Some(p) = &s.auth_path {
            match Htpasswd::load(p) {
                Ok(h) => {
                    *s.auth.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(h));
                    s.events
                        .notice(&format!("reloaded password file {}", p.display()));
                }
                Err(e) => s
                    .events
                    .notice(&format!("{e}; keeping the previous password file")),
            }
        }
    }
}

/// A bound, not yet running server.
pub struct Server {
    tcp: tokio::net::TcpListener,
    tls: Option<tokio_native_tls::TlsAcceptor>,
    limits: Limits,
    local: SocketAddr,
    shared: Arc<Shared>,
    url: String,
}

impl Server {
    /// Check the root, load the index and password file, build TLS, bind the port.
    pub async fn bind(
        cfg: ServeConfig,
        events: Arc<dyn ServerEvents>,
    ) -> Result<Server, RegistryError> {
        if !cfg.root.is_dir() {
            return Err(RegistryError::RootMissing(cfg.root.clone()));
        }
        let catalog = Catalog::new(cfg.root.clone());
        let view = catalog.load_strict()?;
        for w in &view.warnings {
            events.notice(w);
        }
        let auth = match &cfg.auth {
            Some(p) => {
                let h = Htpasswd::load(p)?;
                if h.is_empty() {
                    return Err(RegistryError::Auth(format!(
                        "password file {} has no users: nobody could pull",
                        p.display()
                    )));
                }
                Some(Arc::new(h))
            }
            None => None,
        };
        let tls = match &cfg.tls {
            Some((c, k)) => Some(tokio_native_tls::TlsAcceptor::from(super::tls::acceptor(
                c, k,
            )?)),
            None => None,
        };
        let tcp = tokio::net::TcpListener::bind(cfg.listen)
            .await
            .map_err(|source| RegistryError::Bind {
                addr: cfg.listen,
                source,
            })?;
        let local = tcp.local_addr().map_err(|source| RegistryError::Bind {
            addr: cfg.listen,
            source,
        })?;
        let url = format!("{}://{local}", if tls.is_some() { "https" } else { "http" });
        let limits = fit_limits(cfg.limits, events.as_ref());
        let shared = Arc::new(Shared {
            root: cfg.root,
            catalog,
            integrity: IntegrityCache::default(),
            auth_path: cfg.auth,
            auth: RwLock::new(auth),
            realm: cfg.realm,
            events,
        });
        Ok(Server {
            tcp,
            tls,
            limits,
            local,
            shared,
            url,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// `http://ADDR` or `https://ADDR`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Repositories and tags currently loaded.
    pub fn summary(&self) -> (usize, usize) {
        let v = self.shared.catalog.view(self.shared.events.as_ref());
        (v.repos.len(), v.repos.values().map(|r| r.tags.len()).sum())
    }

    pub fn reloader(&self) -> Reloader {
        Reloader(self.shared.clone())
    }

    /// Serve until `shutdown` completes, then stop accepting and let in-flight requests end.
    pub async fn run<F>(self, shutdown: F) -> Result<(), RegistryError>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(self.shared.clone());
        let events = self.shared.events.clone();
        super::listen::serve(self.tcp, self.tls, app, self.limits, events, shutdown).await;
        Ok(())
    }
}

/// The configured limits, with the connection cap lowered to what the open-files limit
/// holds (raised to its hard limit first).
fn fit_limits(mut limits: Limits, events: &dyn ServerEvents) -> Limits {
    let nofile = super::limits::raise_nofile_limit();
    let fits = super::limits::connections_for_fds(nofile);
    if limits.max_connections > fits {
        events.notice(&format!(
            "the open-files limit ({nofile}) holds {fits} connections: serving at most {fits} \
             instead of --max-connections {} (raise LimitNOFILE / ulimit -n)",
            limits.max_connections
        ));
        limits.max_connections = fits;
    }
    limits
}

// ---------------------------------------------------------------------------------------
// Request handling

const API_VERSION: &str = "registry/2.0";

fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    let body = serde_json::json!({"errors": [{"code": code, "message": message, "detail": {}}]});
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .expect("static response parts are valid")
}

fn json_response(v: &serde_json::Value) -> Response {
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(v.to_string()))
        .expect("static response parts are valid")
}

fn route_error(e: &RouteError) -> Response {
    match e {
        RouteError::NameInvalid(_) => {
            error_response(StatusCode::BAD_REQUEST, "NAME_INVALID", &e.to_string())
        }
        RouteError::DigestInvalid(_) => {
            error_response(StatusCode::BAD_REQUEST, "DIGEST_INVALID", &e.to_string())
        }
        RouteError::TagInvalid(_) => {
            error_response(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN", &e.to_string())
        }
        RouteError::NotFound(_) => error_response(
            StatusCode::NOT_FOUND,
            "UNSUPPORTED",
            "no such endpoint in this pull-only registry",
        ),
    }
}

fn query_params(q: Option<&str>) -> Vec<(String, String)> {
    q.unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let dec = |s: &str| names::percent_decode(&s.replace('+', " ")).unwrap_or_default();
            (dec(k), dec(v))
        })
        .collect()
}

/// `n`/`last` pagination over a sorted list; returns the page and the `Link` for the next one.
pub(crate) fn paginate<'a>(
    items: impl Iterator<Item = &'a String>,
    query: Option<&str>,
    base: &str,
) -> (Vec<String>, Option<String>) {
    let params = query_params(query);
    let get = |k: &str| {
        params
            .iter()
            .find(|(pk, _)| pk == k)
            .map(|(_, v)| v.clone())
    };
    let n: Option<usize> = get("n").and_then(|n| n.parse().ok());
    let last = get("last");
    let mut rest = items.filter(|t| last.as_ref().map_or(true, |l| t.as_str() > l.as_str()));
    let page: Vec<String> = match n {
        Some(n) => rest.by_ref().take(n).cloned().collect(),
        None => rest.by_ref().cloned().collect(),
    };
    let link = match (n, page.last()) {
        (Some(n), Some(l)) if n > 0 && rest.next().is_some() => Some(format!(
            "<{base}?n={n}&last={}>; rel=\"next\"",
            names::percent_encode_query(l)
        )),
        _ => None,
    };
    (page, link)
}

async fn handle(
    State(st): State<Arc<Shared>>,
    ConnectInfo(Peer(peer)): ConnectInfo<Peer>,
    req: Request,
) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let (parts, _body) = req.into_parts();
    let (mut resp, user) = respond(&st, &parts).await;
    resp.headers_mut().insert(
        "docker-distribution-api-version",
        HeaderValue::from_static(API_VERSION),
    );
    let bytes = resp
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    st.events.request(&RequestRecord {
        peer,
        method: method.as_str(),
        path: &path,
        status: resp.status().as_u16(),
        bytes,
        elapsed: start.elapsed(),
        user: user.as_deref(),
    });
    resp
}

async fn respond(st: &Arc<Shared>, req: &Parts) -> (Response, Option<String>) {
    let path = req.uri.path();
    if !(path == "/v2" || path.starts_with("/v2/")) {
        return (
            error_response(
                StatusCode::NOT_FOUND,
                "UNSUPPORTED",
                "not a registry API path",
            ),
            None,
        );
    }
    // Authentication first, for every /v2 endpoint.
    let auth = st.auth.read().unwrap_or_else(|e| e.into_inner()).clone();
    let mut user = None;
    if let Some(h) = auth {
        let hv = req
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        match h.check(hv) {
            Some(u) => user = Some(u),
            None => {
                let mut r = error_response(
                    StatusCode::UNAUTHORIZED,
                    "UNAUTHORIZED",
                    "authentication required",
                );
                let challenge = format!("Basic realm=\"{}\"", st.realm.replace('"', ""));
                if let Ok(v) = HeaderValue::from_str(&challenge) {
                    r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
                }
                return (r, None);
            }
        }
    }
    let method = &req.method;
    if method != Method::GET && method != Method::HEAD {
        let mut r = error_response(
            StatusCode::METHOD_NOT_ALLOWED,
            "UNSUPPORTED",
            "this registry is pull-only: only GET and HEAD are supported",
        );
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return (r, user);
    }
    let head = method == Method::HEAD;
    let route = match names::route(path) {
        Ok(r) => r,
        Err(e) => return (route_error(&e), user),
    };
    let view = st.catalog.view(st.events.as_ref());
    let query = req.uri.query();
    let resp = match route {
        Route::Base => json_response(&serde_json::json!({})),
        Route::Catalog => {
            let (page, link) = paginate(view.repos.keys(), query, "/v2/_catalog");
            with_link(
                json_response(&serde_json::json!({ "repositories": page })),
                link,
            )
        }
        Route::Tags { name } => match view.repos.get(&name) {
            None => name_unknown(&name),
            Some(repo) => {
                let base = format!("/v2/{name}/tags/list");
                let (page, link) = paginate(repo.tags.keys(), query, &base);
                with_link(
                    json_response(&serde_json::json!({ "name": name, "tags": page })),
                    link,
                )
            }
        },
        Route::Manifest { name, reference } => match view.repos.get(&name) {
            None => name_unknown(&name),
            Some(repo) => {
                let found = match &reference {
                    Reference::Tag(t) => repo.tags.get(t).map(|e| (e.digest, e.media_type.clone())),
                    Reference::Digest(BlobRef::Sha256(d)) => match repo.reachable.get(d) {
                        Some(Kind::Manifest { media_type }) => Some((*d, media_type.clone())),
                        _ => None,
                    },
                    Reference::Digest(BlobRef::OtherAlgorithm(_)) => None,
                };
                match found {
                    None => error_response(
                        StatusCode::NOT_FOUND,
                        "MANIFEST_UNKNOWN",
                        &format!("manifest unknown to repository {name}"),
                    ),
                    Some((d, mt)) => serve_manifest(st, &d, &mt, head).await,
                }
            }
        },
        Route::Blob { name, digest } => match view.repos.get(&name) {
            None => name_unknown(&name),
            Some(repo) => match digest {
                BlobRef::Sha256(d) if repo.reachable.contains_key(&d) => {
                    serve_blob(st, d, head, &req.headers).await
                }
                _ => blob_unknown(&name),
            },
        },
        Route::Upload { .. } => {
            let mut r = error_response(
                StatusCode::METHOD_NOT_ALLOWED,
                "UNSUPPORTED",
                "this registry is pull-only: uploads are not supported",
            );
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            r
        }
        Route::Referrers { .. } => error_response(
            StatusCode::NOT_FOUND,
            "UNSUPPORTED",
            "the referrers API is not supported by this registry",
        ),
    };
    (resp, user)
}

fn with_link(mut r: Response, link: Option<String>) -> Response {
    if let Some(l) = link.and_then(|l| HeaderValue::from_str(&l).ok()) {
        r.headers_mut().insert(header::LINK, l);
    }
    r
}

fn name_unknown(name: &str) -> Response {
    error_response(
        StatusCode::NOT_FOUND,
        "NAME_UNKNOWN",
        &format!("repository {name} is not known to this registry"),
    )
}

fn blob_unknown(name: &str) -> Response {
    error_response(
        StatusCode::NOT_FOUND,
        "BLOB_UNKNOWN",
        &format!("blob unknown to repository {name}"),
    )
}

fn content_headers(
    b: axum::http::response::Builder,
    d: &Digest,
    len: u64,
) -> axum::http::response::Builder {
    b.header(header::CONTENT_LENGTH, len)
        .header("docker-content-digest", d.to_string())
        .header(header::ETAG, format!("\"{d}\""))
}

async fn serve_manifest(st: &Shared, d: &Digest, declared: &str, head: bool) -> Response {
    let path = blob_path(&st.root, d);
    let data = match tokio::fs::read(&path).await {
        Ok(data) => data,
        Err(e) => {
            if e.kind() != std::io::ErrorKind::NotFound {
                st.events.notice(&format!(
                    "cannot read manifest {d} at {}: {e}",
                    path.display()
                ));
            }
            return error_response(
                StatusCode::NOT_FOUND,
                "MANIFEST_UNKNOWN",
                &format!("manifest {d} is not stored on this registry"),
            );
        }
    };
    if Digest::of(&data) != *d {
        st.events.notice(&format!(
            "manifest {d} at {} does not match its digest: refusing to serve it",
            path.display()
        ));
        return error_response(
            StatusCode::NOT_FOUND,
            "MANIFEST_UNKNOWN",
            &format!("the stored copy of manifest {d} is corrupt"),
        );
    }
    let ct = manifest_content_type(&data, declared);
    let b = content_headers(
        Response::builder().status(StatusCode::OK),
        d,
        data.len() as u64,
    )
    .header(header::CONTENT_TYPE, ct);
    let body = if head {
        Body::empty()
    } else {
        Body::from(data)
    };
    b.body(body).expect("valid manifest response")
}

async fn serve_blob(st: &Arc<Shared>, d: Digest, head: bool, headers: &HeaderMap) -> Response {
    let path = blob_path(&st.root, &d);
    let unknown = || {
        error_response(
            StatusCode::NOT_FOUND,
            "BLOB_UNKNOWN",
            &format!("blob {d} is not stored on this registry"),
        )
    };
    let p2 = path.clone();
    let blob = match tokio::task::spawn_blocking(move || blobs::open_blob(&p2)).await {
        Ok(Ok(Some(b))) => b,
        Ok(Ok(None)) => return unknown(),
        Ok(Err(e)) => {
            st.events
                .notice(&format!("cannot open blob {d} at {}: {e}", path.display()));
            return unknown();
        }
        Err(_) => return unknown(),
    };
    let corrupt = || {
        st.events.notice(&format!(
            "blob {d} at {} does not match its digest: refusing to serve it",
            path.display()
        ));
        error_response(
            StatusCode::NOT_FOUND,
            "BLOB_UNKNOWN",
            &format!("the stored copy of blob {d} is corrupt"),
        )
    };
    let mut verdict = st.integrity.get(&d, &blob.key);
    if verdict == Some(Verdict::Bad) {
        return corrupt();
    }
    let len = blob.len;
    let base = |status| {
        content_headers(Response::builder().status(status), &d, len)
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .header(header::ACCEPT_RANGES, "bytes")
    };
    if head {
        return base(StatusCode::OK)
            .body(Body::empty())
            .expect("valid blob response");
    }
    let range = parse_range(
        headers.get(header::RANGE).and_then(|v| v.to_str().ok()),
        len,
    );
    match range {
        RangeReq::Unsatisfiable => Response::builder()
            .status(StatusCode::RANGE_NOT_SATISFIABLE)
            .header(header::CONTENT_RANGE, format!("bytes */{len}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(
                serde_json::json!({"errors":[{"code":"BLOB_UNKNOWN","message":"requested range not satisfiable","detail":{}}]}).to_string(),
            ))
            .expect("valid 416"),
        RangeReq::Partial { start, end } => {
            if verdict.is_none() {
                // A part cannot be checked on its own: hash the whole file once first.
                let file = match blob.file.try_clone() {
                    Ok(f) => f,
                    Err(_) => return unknown(),
                };
                let ok = tokio::task::spawn_blocking(move || blobs::verify_file(&file, &d))
                    .await
                    .ok()
                    .and_then(|r| r.ok())
                    .unwrap_or(false);
                let v = if ok { Verdict::Good } else { Verdict::Bad };
                st.integrity.set(d, blob.key, v);
                verdict = Some(v);
            }
            if verdict != Some(Verdict::Good) {
                return corrupt();
            }
            let n = end - start + 1;
            let body = Body::from_stream(blobs::stream(blob, start, n, None));
            Response::builder()
                .status(StatusCode::PARTIAL_CONTENT)
                .header(header::CONTENT_LENGTH, n)
                .header(header::CONTENT_RANGE, format!("bytes {start}-{end}/{len}"))
                .header("docker-content-digest", d.to_string())
                .header(header::CONTENT_TYPE, "application/octet-stream")
                .header(header::ACCEPT_RANGES, "bytes")
                .body(body)
                .expect("valid 206")
        }
        RangeReq::Full => {
            let verify = if verdict == Some(Verdict::Good) {
                None
            } else {
                let (st2, key) = (st.clone(), blob.key);
                let on: OnVerdict = Box::new(move |v| {
                    st2.integrity.set(d, key, v);
                    if v == Verdict::Bad {
                        st2.events.notice(&format!(
                            "blob {d} does not match its digest: transfer aborted before its end"
                        ));
                    }
                });
                Some((d, on))
            };
            let body = Body::from_stream(blobs::stream(blob, 0, len, verify));
            base(StatusCode::OK).body(body).expect("valid blob response")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pagination() {
        let items: Vec<String> = ["a", "b", "c", "d"].iter().map(|s| s.to_string()).collect();
        let (p, l) = paginate(items.iter(), None, "/x");
        assert_eq!(p, items);
        assert!(l.is_none());
        let (p, l) = paginate(items.iter(), Some("n=2"), "/x");
        assert_eq!(p, vec!["a", "b"]);
        assert_eq!(l.as_deref(), Some("</x?n=2&last=b>; rel=\"next\""));
        let (p, l) = paginate(items.iter(), Some("n=2&last=b&ns=docker.io"), "/x");
        assert_eq!(p, vec!["c", "d"]);
        assert!(l.is_none());
        let (p, _) = paginate(items.iter(), Some("n=0"), "/x");
        assert!(p.is_empty());
        let (p, _) = paginate(items.iter(), Some("last=c"), "/x");
        assert_eq!(p, vec!["d"]);
        let (p, _) = paginate(items.iter(), Some("last=a%2Fb&n=x"), "/x");
        assert_eq!(p, vec!["b", "c", "d"]);
    }
}
