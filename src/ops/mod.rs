//! The flows (build, install, upgrade, ...): the only place that sequences domain modules.
//! Each takes an options struct and a reporter (see [`crate::report`]) and returns a
//! `Serialize` report; none prints. `anyhow` is allowed here; domain modules keep their own
//! error types.

pub mod build;
pub(crate) mod build_check;
mod build_sbom;
pub mod bundle_blobs;
pub mod bundle_info;
pub mod conn;
mod deploy;
pub mod external;
pub mod hash;
pub mod install;
pub mod inventory;
pub mod kept;
pub mod keys;
pub mod migrate;
pub mod playbooks;
pub mod preflight;
pub mod prune;
pub mod registry;
pub mod rollback;
pub mod run;
pub mod sbom;
pub mod seed;
pub mod site;
pub mod status;
pub mod support;
pub mod trust;
pub mod uninstall;
pub mod upgrade;

/// What an operation that can stop part-way hands back: the report of what it did (always
/// printed, also on failure) and the error that stopped it, if any.
pub struct Outcome<R> {
    pub report: R,
    pub error: Option<anyhow::Error>,
}

impl<R> Outcome<R> {
    pub fn ok(report: R) -> Outcome<R> {
        Outcome {
            report,
            error: None,
        }
    }
    pub fn failed(report: R, error: anyhow::Error) -> Outcome<R> {
        Outcome {
            report,
            error: Some(error),
        }
    }
}
