//! The flows (build, install, upgrade, ...): the only place that sequences domain modules.
//! `anyhow` is allowed here; domain modules keep their own error types.

pub mod build;
pub mod bundle_blobs;
pub mod external;
pub mod install;
pub mod push;
pub mod rollback;
pub mod run;
pub mod support;
pub mod trust;
pub mod upgrade;
