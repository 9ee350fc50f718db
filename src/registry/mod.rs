//! The embedded pull-only OCI registry (`darkport registry serve`) and the site CA.
//!
//! # On-node storage (written by the install flow, read by the server)
//!
//! ```text
//! <root>/blobs/sha256/<hex>            content-addressed store: layers, configs, manifests and
//!                                      indexes, each the exact bytes whose sha256 is <hex>
//! <root>/registry/repositories.json    repository name → tag → manifest digest + media type
//! ```
//!
//! `repositories.json` (see [`index::RepoIndex`]; written atomically with
//! [`index::RepoIndex::save_atomic`]: temp file, fsync, rename):
//!
//! ```json
//! { "version": 1,
//!   "repositories": {
//!     "dockercoins/rng": { "tags": { "1.1.0": {
//!         "digest": "sha256:…", "mediaType": "application/vnd.oci.image.index.v1+json" } } } } }
//! ```
//!
//! The server `stat`s the file on every request and rebuilds its view when it changed (or on
//! SIGHUP), so an upgrade adds tags without a restart. If the new file is invalid the previous
//! view is kept and a notice is logged.
//!
//! # What is served
//! A repository serves exactly the digests reachable from its tags: the tagged manifests, the
//! child manifests of an index, and their configs and layers (`blobs[]` of artifact manifests
//! too). A blob that is in the CAS but not reachable from the repository is `BLOB_UNKNOWN`
//! there, like in any registry. Manifests are also answered on `/blobs/` (containerd asks
//! there for digest references).
//!
//! # Integrity
//! See [`blobs`]: every blob's sha256 is checked the first time it is served after a start
//! (while streaming), cached by file identity; a corrupt blob is never delivered complete and is
//! then answered `BLOB_UNKNOWN`. Manifests are small and are hashed on every request.
//!
//! # Auth and TLS
//! Optional basic auth from a password file ([`auth`]: PBKDF2-SHA256 via OpenSSL); TLS with a
//! certificate issued by the site CA ([`tls`]).

pub mod auth;
pub mod blobs;
pub mod client;
pub mod events;
pub mod fetch;
pub mod index;
pub mod limits;
mod listen;
pub mod names;
pub mod range;
pub mod receive;
pub mod server;
pub mod tls;

pub use events::{RequestRecord, ServerEvents};
pub use index::{blob_path, index_path, RepoIndex, TagEntry};
pub use limits::Limits;
pub use server::{ServeConfig, Server};

use std::net::SocketAddr;
use std::path::PathBuf;

/// Errors of the registry module.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("failed to {op} {}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to parse the tag index {}", path.display())]
    IndexParse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("invalid tag index {}: {reason}", path.display())]
    IndexInvalid { path: PathBuf, reason: String },
    #[error("registry root {} is not a directory", .0.display())]
    RootMissing(PathBuf),
    #[error("failed to listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("password file: {0}")]
    Auth(String),
    #[error("failed to {op} ({})", path.display())]
    Tls {
        op: String,
        path: PathBuf,
        #[source]
        source: openssl::error::ErrorStack,
    },
    #[error("cannot set up TLS with {}: {reason}", cert.display())]
    TlsSetup { cert: PathBuf, reason: String },
    #[error("certificate authority {}: {reason}", dir.display())]
    CaInvalid { dir: PathBuf, reason: String },
}
