//! Each node's journal (`state.json`: the operation and its steps, written before and after
//! each step) and the site lock.

use super::{Node, Site};
use crate::state::{self, LockOwner, LockPolicy, NodeState};
use anyhow::bail;

/// Write the node's state (temp file, fsync, rename on the node).
pub(crate) fn write_state(n: &mut Node) -> anyhow::Result<()> {
    let mut t = n.t();
    let st = n.state.as_ref().expect("state");
    state::write(&mut t, &n.root, st)?;
    crash_point(st);
    Ok(())
}

/// Fault injection for the crash tests: with `DARKPORT_CRASH_AT=STEP:started` (or `:finished`)
/// the controller dies, as a SIGKILL would leave it (no cleanup, lock held, sessions cut), right
/// after a node's journal recorded STEP so. Steps: `push`, `seed`, `trust`, `playbook`,
/// `migration:ID`, `migration-run` (a migration's playbook). Only with the test-only
/// `fault-injection` feature.
#[cfg(feature = "fault-injection")]
fn crash_point(st: &NodeState) {
    let Ok(at) = std::env::var("DARKPORT_CRASH_AT") else {
        return;
    };
    let Some((name, status)) = at.rsplit_once(':') else {
        return;
    };
    let hit = match st.step_status(name) {
        Some(state::StepStatus::Started) => status == "started",
        Some(state::StepStatus::Finished) => status == "finished",
        None => false,
    };
    if hit {
        eprintln!("DARKPORT_CRASH_AT={at}: the controller stops here");
        std::process::exit(137);
    }
}

#[cfg(not(feature = "fault-injection"))]
fn crash_point(_st: &NodeState) {}

/// Run `f` as journal step `name`: recorded as started before, finished after.
pub(crate) fn step<F>(n: &mut Node, name: &str, f: F) -> anyhow::Result<()>
where
    F: FnOnce(&mut Node) -> anyhow::Result<()>,
{
    n.state.as_mut().unwrap().begin_step(name);
    write_state(n)?;
    f(n)?;
    n.state.as_mut().unwrap().finish_step(name);
    write_state(n)
}

/// Take the lock on every node in inventory order; on a refusal, release what was taken.
pub(crate) fn lock_all(site: &mut Site, me: &LockOwner) -> anyhow::Result<()> {
    for i in 0..site.nodes.len() {
        let n = &site.nodes[i];
        let mut t = n.t();
        if let Err(e) = state::lock(&mut t, &n.root, me, LockPolicy::TakeOverStale) {
            let msg = e.to_string();
            unlock_all(site, me);
            bail!("cannot take the site lock: {msg}; nothing was changed");
        }
    }
    Ok(())
}

pub(crate) fn unlock_all(site: &mut Site, me: &LockOwner) {
    for n in site.nodes.iter_mut() {
        if let Some(t) = &n.t {
            let mut t = t.clone();
            let _ = state::unlock(&mut t, &n.root, me);
        }
    }
}

/// Run `f` with the site locked; the lock is released whatever `f` returns.
pub(crate) fn locked<R>(
    site: &mut Site,
    action: &str,
    f: impl FnOnce(&mut Site) -> R,
) -> anyhow::Result<R> {
    let me = LockOwner::this_process(action);
    lock_all(site, &me)?;
    let r = f(site);
    unlock_all(site, &me);
    Ok(r)
}
