//! `darkport registry ...`: the embedded pull-only registry and the site CA.

use clap::{Args, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Args, Debug)]
pub struct RegistryArgs {
    #[command(subcommand)]
    pub command: RegistryCommand,
}

#[derive(Subcommand, Debug)]
pub enum RegistryCommand {
    /// Serve the OCI distribution pull API from a node's CAS (`<root>/blobs/sha256`) and tag
    /// index (`<root>/registry/repositories.json`, re-read when it changes or on SIGHUP).
    Serve(ServeArgs),
    /// Site certificate authority.
    #[command(subcommand)]
    Ca(CaCommand),
    /// Issue a server certificate signed by the site CA (SANs for every --host).
    Cert(CertArgs),
    /// Add or replace a user in a registry password file (PBKDF2-SHA256).
    Passwd(PasswdArgs),
    /// Copy blobs into this node's CAS from another darkport registry (TLS, site CA), each
    /// verified by digest before it is stored: how a second registry host of a site gets
    /// the blobs without them crossing the operator's link again.
    Fetch(FetchArgs),
    /// Store blobs streamed on standard input into this node's CAS, each hashed while it
    /// arrives and renamed into place only when it matches its name: how the installer pushes
    /// blobs to a registry host (frame format in `src/registry/receive.rs`).
    Receive(ReceiveArgs),
}

#[derive(Args, Debug)]
pub struct ReceiveArgs {
    /// The darkport root whose blobs/sha256 receives them.
    #[arg(long, default_value = "/var/lib/darkport")]
    pub root: PathBuf,
}

#[derive(Args, Debug)]
pub struct FetchArgs {
    /// The darkport root whose blobs/sha256 receives them.
    #[arg(long, default_value = "/var/lib/darkport")]
    pub root: PathBuf,
    /// The registry to copy from, HOST:PORT.
    #[arg(long)]
    pub from: String,
    /// CA certificate (PEM) the source registry's certificate must chain to.
    #[arg(long)]
    pub ca: PathBuf,
    /// Downloads at once.
    #[arg(long, default_value_t = 4)]
    pub parallel: usize,
    /// Blobs to copy, each as REPOSITORY@sha256:HEX (a repository the source serves it in);
    /// blobs already stored are skipped.
    #[arg(required = true)]
    pub blobs: Vec<String>,
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// The darkport root holding blobs/ and registry/.
    #[arg(long, default_value = "/var/lib/darkport")]
    pub root: PathBuf,
    /// Address and port to listen on (port 0 picks a free one; the URL is printed).
    #[arg(long, default_value = "0.0.0.0:5000")]
    pub listen: SocketAddr,
    /// PEM certificate (chain) for TLS; needs --tls-key.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for TLS.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Require basic auth with users from this password file (see `registry passwd`).
    #[arg(long)]
    pub auth: Option<PathBuf>,
    /// Realm named in the basic auth challenge.
    #[arg(long, default_value = "darkport-registry")]
    pub realm: String,
    /// Log one line per request even on a terminal (always on with --progress plain).
    #[arg(long)]
    pub log_requests: bool,
    /// Close a connection that starts no request for this long (after its TLS handshake or
    /// its last response), e.g. 30s, 2m.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub idle_timeout: Duration,
    /// A request head (and a TLS handshake) must arrive whole within this time of its first
    /// byte, or the connection is closed.
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    pub header_timeout: Duration,
    /// Close a connection whose client reads none of its response for this long (a client
    /// that keeps reading, however slowly, is never cut), e.g. 60s, 5m.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub send_timeout: Duration,
    /// Largest request head (request line and headers) in bytes; larger ones get 431.
    #[arg(long, default_value_t = 32 * 1024)]
    pub max_header_bytes: usize,
    /// Connections open at once (TLS handshakes included); more are closed at once (503 on
    /// plain HTTP). Lowered to what the open-files limit holds.
    #[arg(long, default_value_t = 2048, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,
}

#[derive(Subcommand, Debug)]
pub enum CaCommand {
    /// Create the site CA in DIR (ca.crt, ca.key), or keep and show the one already there.
    Init(CaInitArgs),
}

#[derive(Args, Debug)]
pub struct CaInitArgs {
    /// Directory of the CA (kept for the life of the site).
    #[arg(long)]
    pub dir: PathBuf,
    /// Common name of a new CA.
    #[arg(long, default_value = "darkport site CA")]
    pub name: String,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct CertArgs {
    /// Directory of the site CA (from `registry ca init`).
    #[arg(long)]
    pub ca: PathBuf,
    /// Host name or IP address the registry is reached at (repeat, or comma-separate).
    #[arg(long = "host", required = true, value_delimiter = ',')]
    pub hosts: Vec<String>,
    /// Output directory: server.crt, server.key, ca.crt.
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct PasswdArgs {
    /// The password file (created if missing).
    #[arg(long)]
    pub file: PathBuf,
    #[arg(long)]
    pub user: String,
    /// Read the password from the first line of standard input instead of prompting.
    #[arg(long)]
    pub password_stdin: bool,
}
