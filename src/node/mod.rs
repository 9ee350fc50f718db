//! What darkport keeps and runs on a node, as pure builders over a [`Transport`]-free model:
//! every remote path ([`paths`], matching `docs/NODE-LAYOUT.md`), the registry service
//! ([`service`]: systemd unit or supervised process), the runtimes' trust of the site CA
//! ([`trust`]), the blob push into the node's CAS ([`push`]), and which layer compressions
//! its container runtime pulls ([`runtime`]).
//!
//! [`Transport`]: crate::transport::Transport

pub mod paths;
pub mod push;
pub mod runtime;
pub mod service;
pub mod trust;
pub mod uninstall;

pub use paths::Layout;
