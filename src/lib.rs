//! darkport: ship a containerised product to dark (offline) sites.
//!
//! Architecture map (see `docs/` and `../shared/DESIGN.md`):
//!
//! ```text
//! build:   spec ─► source/ ─► store/ (CAS, sha256) ─► bundle/ (writer + minisign) ─► FILE
//! install: FILE ─► bundle/ (verify first) ─► inventory/ ─► transport/ ─► registry/ ─► playbook/ ─► state/
//! ```
//!
//! Module boundaries are as strict as crate boundaries: domain modules never print; they
//! report through small `Reporter` traits implemented in [`ui`]. Only [`ops`] sequences
//! domain modules; [`commands`] are thin wrappers from CLI types to ops.

pub mod bundle;
pub mod cli;
pub mod commands;
pub mod digest;
pub mod fanout;
pub mod inventory;
pub mod node;
pub mod ops;
pub mod playbook;
pub mod registry;
pub mod report;
pub mod sbom;
pub mod source;
pub mod state;
pub mod store;
pub mod transport;
pub mod ui;
