//! The one support tree of the integration tests. A test file includes it with `mod support;`
//! and uses the part it needs:
//! * [`nodes`]: real SSH test nodes (fast `sshd` processes in namespaces, or Docker containers);
//! * [`bundle`]: generated images and bundles (never downloaded), running the real binary;
//! * [`install`]: the example product's bundles and the site commands' helpers;
//! * [`registry`]: a running `darkport registry serve` and raw HTTP against it.
#![allow(dead_code, unused_imports)]

pub mod bundle;
pub mod install;
pub mod nodes;
pub mod registry;

use std::path::PathBuf;

/// The darkport binary under test.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_darkport"))
}

pub use nodes::free_port;
