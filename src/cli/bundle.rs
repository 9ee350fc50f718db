//! Arguments of the bundle commands: keygen, build-bundle, verify, inspect.

use crate::source::Compression;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct KeygenArgs {
    /// Write PREFIX.key (minisign secret key) and PREFIX.pub.
    #[arg(long, value_name = "PREFIX")]
    pub out: PathBuf,
    /// Do not encrypt the secret key (otherwise: DARKPORT_KEY_PASSWORD or a prompt).
    #[arg(long)]
    pub no_password: bool,
    /// Overwrite existing key files.
    #[arg(long)]
    pub force: bool,
}

#[derive(clap::Args, Debug)]
pub struct BuildBundleArgs {
    /// The bundle spec (YAML, see docs/BUNDLE-SPEC.md).
    #[arg(short = 'f', long = "file", value_name = "SPEC")]
    pub spec: PathBuf,
    /// Output file, or directory for <product>-<version>.darkport.
    #[arg(short = 'o', long, default_value = "dist/")]
    pub out: PathBuf,
    /// minisign secret key (password: DARKPORT_KEY_PASSWORD or a prompt).
    #[arg(long, env = "DARKPORT_KEY", value_name = "KEY")]
    pub key: Option<PathBuf>,
    /// Write an unsigned bundle (refused by verify/install unless --allow-unsigned).
    #[arg(long, conflicts_with = "key")]
    pub unsigned: bool,
    /// Make a delta: leave out blobs these older bundles hold (repeatable).
    #[arg(long, value_name = "OLD.darkport")]
    pub since: Vec<PathBuf>,
    /// Public key(s) trusted for the --since bundles (default: the signing key's).
    #[arg(long, value_name = "PUB")]
    pub since_pubkey: Vec<PathBuf>,
    /// Compression for uncompressed layers (docker save, dir:); default: the spec's
    /// `layer_compression`, else gzip. zstd builds faster and smaller bundles but needs
    /// Docker >= 23.0, containerd >= 1.5 or podman on every node (preflight checks).
    #[arg(long, value_enum)]
    pub layer_compression: Option<Compression>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct VerifyArgs {
    pub bundle: PathBuf,
    /// Trusted public key(s); default: $DARKPORT_PUBKEY, ~/.config/darkport/trusted.pub,
    /// /etc/darkport/trusted.pub.
    #[arg(long, value_name = "PUB")]
    pub pubkey: Vec<PathBuf>,
    /// Accept a bundle without signature (members are still checked).
    #[arg(long)]
    pub allow_unsigned: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct InspectArgs {
    pub bundle: PathBuf,
    /// Trusted public key(s) (as for verify).
    #[arg(long, value_name = "PUB")]
    pub pubkey: Vec<PathBuf>,
    #[arg(long)]
    pub allow_unsigned: bool,
    #[arg(long)]
    pub json: bool,
    /// Also write a page with the images and the layers they share (rows × columns).
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Check only the signature of the manifest, not each member's hash (quick on a big
    /// bundle, but a changed member goes unnoticed: run verify before trusting it).
    #[arg(long)]
    pub manifest_only: bool,
}
