//! `support-bundle`'s report: the index written into the bundle, and where it went.

use serde::Serialize;
use std::path::PathBuf;

/// `index.json` of a support bundle.
#[derive(Debug, Serialize)]
pub struct SupportIndex {
    pub format: u32,
    pub tool: String,
    pub created: String,
    pub inventory: Vec<PathBuf>,
    pub lines: usize,
    pub redaction: RedactionInfo,
    pub nodes: Vec<NodeEntry>,
    pub unreachable: Vec<Unreachable>,
}

#[derive(Debug, Serialize)]
pub struct RedactionInfo {
    /// Names of the inventory variables whose values were replaced by `[REDACTED]`.
    pub variables: Vec<String>,
    /// Distinct secret values redacted (the values themselves are never written).
    pub secret_values: usize,
    /// Always also redacted: `Authorization:` header values and PEM private keys.
    pub patterns: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct NodeEntry {
    pub host: String,
    pub address: String,
    /// `collected`, or `partial` when the node was lost during the collection.
    pub status: String,
    pub darkport_root: String,
    pub files: Vec<FileEntry>,
    /// Items that do not exist on this node (e.g. no state.json before the first install).
    pub absent: Vec<String>,
    pub errors: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct FileEntry {
    /// Path inside the support bundle.
    pub path: String,
    /// What was collected (a file path on the node or the command run).
    pub source: String,
    pub bytes: u64,
    pub exit_code: i32,
}

#[derive(Debug, Serialize)]
pub struct Unreachable {
    pub host: String,
    pub address: String,
    pub error: String,
}

pub struct SupportReport {
    pub output: PathBuf,
    pub bundle_bytes: u64,
    pub index: SupportIndex,
}

/// Progress of a collection, one node at a time (implemented in `ui/`).
pub trait SupportReporter: Sync {
    fn start(&self, _nodes: u64) {}
    /// One node finished; `line` says how (`web1: 12 files`, `web2: unreachable: …`).
    fn node_done(&self, _line: &str) {}
    fn finish(&self) {}
}

impl SupportReporter for () {}
