//! darkport: ship a containerised product to dark (offline) sites.
//!
//! # Architecture map
//!
//! Layers, each importing only the ones below it (no import cycle anywhere; the guide is
//! `../shared/DESIGN.md` §2):
//!
//! ```text
//! main.rs ─► commands/ ─► { ui/ , ops/ } ─► report/ ─► domain modules ─► digest, fanout
//! ```
//!
//! - [`cli`]: clap types only. [`commands`]: map clap args to an op's options struct, hand
//!   it a reporter from [`ui`], print the op's report as text or `--json`.
//! - [`ui`]: progress bars (indicatif on a TTY, plain lines otherwise), tables, error
//!   rendering, the `--json` envelope (`ui::json`, docs/JSON.md), the inspect page;
//!   implements the reporter traits. Does not import `ops`.
//! - [`ops`]: the flows; take options structs (never clap types) and a reporter, return a
//!   `Serialize` report from [`report`], never print. `ops/site/` holds the site model
//!   (`Site`, `Node`, the journal and locks); `install`, `upgrade`, `rollback`, `prune`,
//!   `preflight` (pure `evaluate`), `seed`, `migrate`, `status`, `build`, `run`, `playbooks`,
//!   `support`, `sbom`, `hash`, `keys`, `inventory`, `trust`, `bundle_info`, `kept`,
//!   `uninstall`, `build_check` (what build-bundle checks in the playbooks before signing),
//!   `build_sbom` (each distinct layer read once: digest, diff_id, package databases),
//!   `deploy/` (a compose product onto the `compose` or `swarm` target), `external`
//!   (pushing to a site's own registry), `conn` (Ansible's -u/--private-key/-k/-K and ansible.cfg/ANSIBLE_* merged, checked).
//! - [`report`]: the report types ops return (and `Hint` for error advice).
//! - Domain: [`bundle`] (spec, writer, signature-first reader in `scan.rs`), [`source`]
//!   (registries, `docker save` archives, OCI layouts, layer dirs), [`store`] (CAS),
//!   [`registry`] (site registry: request routing in `names`, server and listener sharing
//!   `events`, client, receive/fetch), [`compose`] (compose files read, pinned by digest,
//!   placed on hosts, stack state), [`inventory`] (INI/YAML
//!   sources, host patterns, `ansible_cfg`, `connvars`: Ansible connection variables into a
//!   `transport::ConnSpec`), [`transport`] (`spec`, `session`, `ssh`, `jump`, `local`),
//!   [`node`] (remote paths, service units, runtime trust, blob push, which layer
//!   compressions a runtime pulls, what uninstall removes), [`state`] (node
//!   state, plan, probes), [`sbom`], [`playbook`] (yaml, template/, model/, modules/,
//!   engine/).
//! - Base: [`digest`] (sha256), [`fanout`] (the one bounded worker pool, panics caught per
//!   item) used by ops, transport and the playbook engine.
//!   [`yaml_limits`]: the bounds every YAML loader shares (document size, alias expansion).
//! - [`fuzzing`]: the entry points of the `fuzz/` targets, which `tests/fuzz_corpus.rs`
//!   replays on stable; nothing in the product calls it.
//!
//! ```text
//! build:   spec ─► source/ ─► store/ (CAS, sha256) ─► bundle/ (writer + minisign) ─► FILE
//! install: FILE ─► bundle/ (verify first) ─► inventory/ ─► transport/ ─► registry/ ─► playbook/ ─► state/
//! ```
//!
//! Domain modules never print; they report through small `Reporter` traits implemented in
//! [`ui`], and keep typed errors (`thiserror`) that name the operation and the object.

/// `darkport --version`: the package version and the commit it was built from.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("DARKPORT_COMMIT"),
    ")"
);

pub mod bundle;
pub mod cli;
pub mod commands;
pub mod compose;
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
pub mod yaml_limits;

/// Entry points of the fuzz targets and of their stable corpus replay (`docs/FUZZING.md`).
#[doc(hidden)]
pub mod fuzzing;
