//! Per-node state in `darkport_root`: what is installed (`state.json`), the journal of the
//! operation in progress, the history of transitions, and the site lock.
//!
//! On-node files (all written temp → fsync → rename, see [`write_atomic`]):
//! - `<root>/state.json`: [`NodeState`].
//! - `<root>/lock/owner`: the holder of the site lock ([`LockOwner`]); the directory is created
//!   with `mkdir`, which is atomic, so two controllers can never both hold it.
//!
//! The state is the single source of truth for resuming: an operation records each step as
//! `started` before and `finished` after it runs ([`NodeState::begin_step`],
//! [`NodeState::finish_step`]), and a re-run skips finished steps.

pub mod plan;
pub mod probe;

use crate::digest::Digest;
use crate::transport::{shell_quote, ExecOpts, Transport, TransportError};
use serde::{Deserialize, Serialize};
use std::time::SystemTime;

pub const STATE_FORMAT: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error("failed to {op} {path} on {host}: {msg}")]
    Remote {
        host: String,
        op: String,
        path: String,
        msg: String,
    },
    #[error("state file {path} on {host} is corrupt")]
    Corrupt {
        host: String,
        path: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("state file {path} on {host} has format {found}, this darkport understands up to {STATE_FORMAT}")]
    TooNew {
        host: String,
        path: String,
        found: u32,
    },
    #[error("the site lock on {host} is held by {owner}")]
    Locked { host: String, owner: String },
}

/// Now, as an RFC 3339 UTC timestamp with seconds.
pub fn now() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

/// What one node knows about the product installed on it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeState {
    pub format: u32,
    /// The installed product and version; `None` before the first install finished.
    pub product: Option<String>,
    pub version: Option<String>,
    /// Digest of the signed manifest of the bundle that installed `version`.
    pub bundle_digest: Option<Digest>,
    pub installed_at: Option<String>,
    /// The version before the last finished upgrade, for rollback.
    #[serde(default)]
    pub previous: Option<Installed>,
    /// Migrations applied on this node (or, for per-site migrations, on the site through it).
    #[serde(default)]
    pub migrations: Vec<AppliedMigration>,
    /// The operation in progress, if any (cleared when it finishes).
    #[serde(default)]
    pub operation: Option<Operation>,
    /// Every finished transition, oldest first.
    #[serde(default)]
    pub history: Vec<Transition>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Installed {
    pub version: String,
    pub bundle_digest: Digest,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AppliedMigration {
    pub id: String,
    pub bundle_digest: Digest,
    pub started_at: String,
    pub finished_at: String,
    /// Recorded by the operator (`darkport upgrade --mark-done`) after an interrupted run,
    /// not by a finished run of the migration.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub marked_done: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Transition {
    pub action: String,
    pub from: Option<String>,
    pub to: String,
    pub bundle_digest: Digest,
    pub started_at: String,
    pub finished_at: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StepStatus {
    Started,
    Finished,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Step {
    pub name: String,
    pub status: StepStatus,
    pub started_at: String,
    pub finished_at: Option<String>,
}

/// An install or upgrade in progress: its target and its journal of steps.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Operation {
    pub action: String,
    pub from: Option<String>,
    pub to: String,
    pub bundle_digest: Digest,
    pub started_at: String,
    pub steps: Vec<Step>,
}

impl NodeState {
    pub fn new() -> Self {
        NodeState {
            format: STATE_FORMAT,
            ..Default::default()
        }
    }

    /// Start (or resume) an operation. Resuming requires the same action and bundle; a
    /// different operation in progress is an error the caller reports.
    pub fn begin_operation(
        &mut self,
        action: &str,
        to: &str,
        bundle: Digest,
    ) -> Result<bool, String> {
        if let Some(op) = &self.operation {
            if op.action == action && op.bundle_digest == bundle {
                return Ok(true);
            }
            return Err(format!(
                "an unfinished {} to {} (bundle {}) is in progress since {}",
                op.action,
                op.to,
                op.bundle_digest.short(),
                op.started_at
            ));
        }
        self.operation = Some(Operation {
            action: action.to_string(),
            from: self.version.clone(),
            to: to.to_string(),
            bundle_digest: bundle,
            started_at: now(),
            steps: Vec::new(),
        });
        Ok(false)
    }

    /// The status of a step of the current operation.
    pub fn step_status(&self, name: &str) -> Option<StepStatus> {
        self.operation
            .as_ref()?
            .steps
            .iter()
            .find(|s| s.name == name)
            .map(|s| s.status)
    }

    /// Record that a step started (before running it).
    pub fn begin_step(&mut self, name: &str) {
        let op = self
            .operation
            .as_mut()
            .expect("begin_step without an operation");
        match op.steps.iter_mut().find(|s| s.name == name) {
            Some(s) => {
                s.status = StepStatus::Started;
                s.started_at = now();
                s.finished_at = None;
            }
            None => op.steps.push(Step {
                name: name.to_string(),
                status: StepStatus::Started,
                started_at: now(),
                finished_at: None,
            }),
        }
    }

    /// Record that a step finished (after it ran).
    pub fn finish_step(&mut self, name: &str) {
        let op = self
            .operation
            .as_mut()
            .expect("finish_step without an operation");
        if let Some(s) = op.steps.iter_mut().find(|s| s.name == name) {
            s.status = StepStatus::Finished;
            s.finished_at = Some(now());
        }
    }

    pub fn migration_applied(&self, id: &str) -> bool {
        self.migrations.iter().any(|m| m.id == id)
    }

    /// Finish the operation: record the new version, history and previous version.
    pub fn complete_operation(&mut self, product: &str) {
        let op = self
            .operation
            .take()
            .expect("complete_operation without an operation");
        if let (Some(v), Some(d)) = (&self.version, self.bundle_digest) {
            if v != &op.to || d != op.bundle_digest {
                self.previous = Some(Installed {
                    version: v.clone(),
                    bundle_digest: d,
                });
            }
        }
        let finished = now();
        self.product = Some(product.to_string());
        self.version = Some(op.to.clone());
        self.bundle_digest = Some(op.bundle_digest);
        self.installed_at = Some(finished.clone());
        self.history.push(Transition {
            action: op.action,
            from: op.from,
            to: op.to,
            bundle_digest: op.bundle_digest,
            started_at: op.started_at,
            finished_at: finished,
        });
    }
}

impl NodeState {
    /// Finish a rollback (an operation whose target is `previous`): the previous version is
    /// the current one again, with no previous recorded (a rollback undoes one upgrade; going
    /// forward again is `darkport upgrade`, which runs the undone migrations again), and the
    /// migrations the undone bundle `undone` applied are forgotten.
    pub fn complete_rollback(&mut self, product: &str, undone: Digest) {
        self.complete_operation(product);
        self.previous = None;
        self.migrations.retain(|m| m.bundle_digest != undone);
    }
}

fn state_path(root: &str) -> String {
    format!("{}/state.json", root.trim_end_matches('/'))
}

/// Read a node's state; `None` when darkport never completed or started anything there.
pub fn read(t: &mut dyn Transport, root: &str) -> Result<Option<NodeState>, StateError> {
    let path = state_path(root);
    let q = shell_quote(&path);
    let out = t.exec(
        &format!("if [ -f {q} ]; then cat {q}; else exit 3; fi"),
        &ExecOpts::default(),
    )?;
    match out.exit_code {
        0 => {}
        3 => return Ok(None),
        _ => {
            return Err(StateError::Remote {
                host: t.host().to_string(),
                op: "read".into(),
                path,
                msg: out.stderr_str().trim().to_string(),
            })
        }
    }
    let st: NodeState =
        serde_json::from_slice(&out.stdout).map_err(|source| StateError::Corrupt {
            host: t.host().to_string(),
            path: path.clone(),
            source,
        })?;
    if st.format > STATE_FORMAT {
        return Err(StateError::TooNew {
            host: t.host().to_string(),
            path,
            found: st.format,
        });
    }
    Ok(Some(st))
}

/// Write a node's state atomically.
pub fn write(t: &mut dyn Transport, root: &str, st: &NodeState) -> Result<(), StateError> {
    let data = serde_json::to_vec_pretty(st).expect("state serializes");
    write_atomic(t, &state_path(root), &data, 0o644)
}

/// Write `data` to `path` on the node: to a temp file in the same directory, fsync, rename,
/// fsync the directory. A crash leaves either the old or the new content, never a mix.
pub fn write_atomic(
    t: &mut dyn Transport,
    path: &str,
    data: &[u8],
    mode: u32,
) -> Result<(), StateError> {
    let q = shell_quote(path);
    let dir = shell_quote(
        std::path::Path::new(path)
            .parent()
            .and_then(|p| p.to_str())
            .unwrap_or("."),
    );
    let script = format!(
        "set -e; mkdir -p {dir}; tmp={q}.tmp.$$; {recv}; chmod {mode:o} \"$tmp\"; \
         sync \"$tmp\" 2>/dev/null || sync; mv -f \"$tmp\" {q}; sync {dir} 2>/dev/null || true",
        recv = crate::transport::stdin_to_file("\"$tmp\"", data.len())
    );
    let out = t.exec(
        &script,
        &ExecOpts {
            stdin: Some(data.to_vec()),
            ..Default::default()
        },
    )?;
    if !out.success() {
        return Err(StateError::Remote {
            host: t.host().to_string(),
            op: "write".into(),
            path: path.to_string(),
            msg: out.stderr_str().trim().to_string(),
        });
    }
    Ok(())
}

/// Write several files on the node in one round trip, each like [`write_atomic`] (temp file
/// in place, fsync, rename), in the order given: a marker listed last is renamed into place
/// only after every file before it. The bytes travel as one tar; a node without `tar` gets one
/// [`write_atomic`] per file.
pub fn write_many_atomic(
    t: &mut dyn Transport,
    files: &[(String, Vec<u8>, u32)],
) -> Result<(), StateError> {
    let Some(first) = files.first() else {
        return Ok(());
    };
    let mut tarball = tar::Builder::new(Vec::new());
    for (i, (_, data, mode)) in files.iter().enumerate() {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(*mode);
        h.set_mtime(0);
        h.set_entry_type(tar::EntryType::Regular);
        tarball
            .append_data(&mut h, i.to_string(), data.as_slice())
            .expect("tar into memory");
    }
    let data = tarball.into_inner().expect("tar into memory");
    let parent = |p: &str| {
        std::path::Path::new(p)
            .parent()
            .and_then(|p| p.to_str())
            .map(|p| if p.is_empty() { "." } else { p })
            .unwrap_or(".")
            .to_string()
    };
    let mut dirs: Vec<String> = files.iter().map(|f| parent(&f.0)).collect();
    dirs.sort();
    dirs.dedup();
    let qdirs: Vec<String> = dirs.iter().map(|d| shell_quote(d)).collect();
    let mut script = format!(
        "command -v tar >/dev/null 2>&1 || exit 127\nset -e\nmkdir -p {dirs}\n\
         x=$(mktemp -d {tmpl})\ntrap 'rm -rf \"$x\"' EXIT\n{recv}\n\
         tar -xf \"$x/.t\" -C \"$x\"\nsync \"$x\"/* 2>/dev/null || sync\n",
        dirs = qdirs.join(" "),
        tmpl = shell_quote(&format!("{}/.dp-put.XXXXXX", parent(&first.0))),
        recv = crate::transport::stdin_to_file("\"$x/.t\"", data.len()),
    );
    for (i, (path, _, mode)) in files.iter().enumerate() {
        script.push_str(&format!(
            "chmod {mode:o} \"$x/{i}\"; mv -f \"$x/{i}\" {}\n",
            shell_quote(path)
        ));
    }
    script.push_str(&format!("sync {} 2>/dev/null || true\n", qdirs.join(" ")));
    let out = t.exec(
        &script,
        &ExecOpts {
            stdin: Some(data),
            ..Default::default()
        },
    )?;
    match out.exit_code {
        0 => Ok(()),
        127 => {
            for (path, data, mode) in files {
                write_atomic(t, path, data, *mode)?;
            }
            Ok(())
        }
        _ => Err(StateError::Remote {
            host: t.host().to_string(),
            op: "write".into(),
            path: files
                .iter()
                .map(|f| f.0.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            msg: out.stderr_str().trim().to_string(),
        }),
    }
}

/// Who holds a node's lock: enough to tell a live holder from a crashed one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockOwner {
    pub controller: String,
    pub pid: u32,
    pub operation: String,
    pub since: String,
}

impl LockOwner {
    pub fn this_process(operation: &str) -> Self {
        LockOwner {
            controller: controller_name(),
            pid: std::process::id(),
            operation: operation.to_string(),
            since: now(),
        }
    }

    /// True when the holder ran on this controller machine and its process is gone.
    pub fn is_stale_here(&self) -> bool {
        self.controller == controller_name() && !pid_alive(self.pid)
    }
}

impl std::fmt::Display for LockOwner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (pid {} on {}, since {})",
            self.operation, self.pid, self.controller, self.since
        )
    }
}

fn controller_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

fn pid_alive(pid: u32) -> bool {
    // Signal 0 checks existence; EPERM still means the process exists.
    // SAFETY: kill(2) with signal 0 takes plain integers, sends nothing and touches no
    // memory of ours.
    let r = unsafe { libc::kill(pid as i32, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// How [`lock`] treats a lock that is already held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockPolicy {
    /// Take over only a lock whose holder crashed on this same controller.
    TakeOverStale,
    /// Take over any lock (the operator said `--break-lock`).
    Break,
}

/// Take the lock on one node. Returns the previous owner when a stale or broken lock was
/// taken over.
pub fn lock(
    t: &mut dyn Transport,
    root: &str,
    me: &LockOwner,
    policy: LockPolicy,
) -> Result<Option<LockOwner>, StateError> {
    let dir = format!("{}/lock", root.trim_end_matches('/'));
    let qd = shell_quote(&dir);
    let owner_json = serde_json::to_vec(me).expect("owner serializes");
    let root_q = shell_quote(root);
    // mkdir is atomic: exit 0 = we hold it now; exit 4 = held, its owner on stdout.
    let script = format!(
        "mkdir -p {root_q} && if mkdir {qd} 2>/dev/null; then {recv} || {{ rm -rf {qd}; exit 1; }}; else cat {qd}/owner 2>/dev/null; exit 4; fi",
        recv = crate::transport::stdin_to_file(&format!("{qd}/owner"), owner_json.len())
    );
    let out = t.exec(
        &script,
        &ExecOpts {
            stdin: Some(owner_json.clone()),
            ..Default::default()
        },
    )?;
    match out.exit_code {
        0 => return Ok(None),
        4 => {}
        _ => {
            return Err(StateError::Remote {
                host: t.host().to_string(),
                op: "lock".into(),
                path: dir,
                msg: out.stderr_str().trim().to_string(),
            })
        }
    }
    let holder: Option<LockOwner> = serde_json::from_slice(&out.stdout).ok();
    let take_over = match (&holder, policy) {
        (_, LockPolicy::Break) => true,
        (Some(h), LockPolicy::TakeOverStale) => h == me || h.is_stale_here(),
        (None, LockPolicy::TakeOverStale) => false,
    };
    if !take_over {
        return Err(StateError::Locked {
            host: t.host().to_string(),
            owner: holder
                .map(|h| h.to_string())
                .unwrap_or_else(|| "an unknown holder (lock/owner unreadable)".into()),
        });
    }
    write_atomic(t, &format!("{dir}/owner"), &owner_json, 0o644)?;
    Ok(holder)
}

/// Release a node's lock if we hold it.
pub fn unlock(t: &mut dyn Transport, root: &str, me: &LockOwner) -> Result<(), StateError> {
    let dir = format!("{}/lock", root.trim_end_matches('/'));
    let qd = shell_quote(&dir);
    let out = t.exec(&format!("cat {qd}/owner 2>/dev/null"), &ExecOpts::default())?;
    let holder: Option<LockOwner> = serde_json::from_slice(&out.stdout).ok();
    if holder.as_ref() == Some(me) {
        let out = t.exec(&format!("rm -rf {qd}"), &ExecOpts::default())?;
        if !out.success() {
            return Err(StateError::Remote {
                host: t.host().to_string(),
                op: "unlock".into(),
                path: dir,
                msg: out.stderr_str().trim().to_string(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::local::LocalTransport;

    fn d(n: u8) -> Digest {
        Digest::from_bytes([n; 32])
    }

    #[test]
    fn write_many_atomic_writes_every_file_with_its_mode_in_one_go() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = |rel: &str| dir.path().join(rel).to_str().unwrap().to_string();
        std::fs::create_dir_all(dir.path().join("a")).unwrap();
        std::fs::write(p("a/old"), b"replaced").unwrap();
        let binary: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
        let files = vec![
            (p("a/old"), b"new content\n".to_vec(), 0o644),
            (p("b/c/key"), binary.clone(), 0o600),
            (p("a/it's quoted"), Vec::new(), 0o755),
            (p("b/.complete"), Vec::new(), 0o644),
        ];
        let mut t = LocalTransport::new("n1");
        write_many_atomic(&mut t, &files).unwrap();
        assert_eq!(std::fs::read(p("a/old")).unwrap(), b"new content\n");
        assert_eq!(std::fs::read(p("b/c/key")).unwrap(), binary);
        for (path, _, mode) in &files {
            let m = std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
            assert_eq!(m, *mode, "{path}");
        }
        // Nothing of the transfer is left behind.
        let left: Vec<String> = std::fs::read_dir(dir.path().join("a"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(left.len(), 2, "{left:?}");
        // A target that cannot be written fails with the paths named, the others untouched.
        std::fs::create_dir_all(dir.path().join("ro")).unwrap();
        std::fs::write(p("ro/x"), b"kept").unwrap();
        let e = write_many_atomic(
            &mut t,
            &[
                (p("ro/x"), b"changed".to_vec(), 0o644),
                (p("a/old/under-a-file/y"), b"y".to_vec(), 0o644),
            ],
        )
        .unwrap_err();
        assert!(e.to_string().contains("under-a-file"), "{e}");
        assert_eq!(std::fs::read(p("ro/x")).unwrap(), b"kept");
    }

    #[test]
    fn rollback_returns_to_previous_and_forgets_the_undone_migrations() {
        let mut st = NodeState::new();
        st.begin_operation("install", "1.0.0", d(1)).unwrap();
        st.complete_operation("p");
        st.begin_operation("upgrade", "1.1.0", d(2)).unwrap();
        let applied = |id: &str, b| AppliedMigration {
            id: id.into(),
            bundle_digest: b,
            started_at: now(),
            finished_at: now(),
            marked_done: false,
        };
        st.migrations.push(applied("0001-old", d(1)));
        st.migrations.push(applied("0002-new", d(2)));
        st.complete_operation("p");
        assert_eq!(st.previous.as_ref().unwrap().version, "1.0.0");
        st.begin_operation("rollback", "1.0.0", d(1)).unwrap();
        st.complete_rollback("p", d(2));
        assert_eq!(st.version.as_deref(), Some("1.0.0"));
        assert_eq!(st.bundle_digest, Some(d(1)));
        assert_eq!(st.previous, None);
        let ids: Vec<&str> = st.migrations.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, ["0001-old"]);
        let last = st.history.last().unwrap();
        assert_eq!(
            (last.action.as_str(), last.from.as_deref(), last.to.as_str()),
            ("rollback", Some("1.1.0"), "1.0.0")
        );
    }

    #[test]
    fn state_round_trip_and_journal() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("dp");
        let root = root.to_str().unwrap();
        let mut t = LocalTransport::new("n1");
        assert_eq!(read(&mut t, root).unwrap(), None);

        let mut st = NodeState::new();
        assert_eq!(st.begin_operation("install", "1.0.0", d(1)), Ok(false));
        st.begin_step("push");
        write(&mut t, root, &st).unwrap();
        // A "crash" here: the re-run reads the journal and resumes the same operation.
        let mut st2 = read(&mut t, root).unwrap().unwrap();
        assert_eq!(st2.step_status("push"), Some(StepStatus::Started));
        assert_eq!(st2.begin_operation("install", "1.0.0", d(1)), Ok(true));
        assert!(st2.begin_operation("upgrade", "2.0.0", d(2)).is_err());
        st2.finish_step("push");
        st2.complete_operation("demo");
        write(&mut t, root, &st2).unwrap();
        let st3 = read(&mut t, root).unwrap().unwrap();
        assert_eq!(st3.version.as_deref(), Some("1.0.0"));
        assert_eq!(st3.operation, None);
        assert_eq!(st3.history.len(), 1);
        assert_eq!(st3.previous, None);

        let mut st4 = st3.clone();
        st4.begin_operation("upgrade", "1.1.0", d(2)).unwrap();
        st4.complete_operation("demo");
        assert_eq!(
            st4.previous,
            Some(Installed {
                version: "1.0.0".into(),
                bundle_digest: d(1)
            })
        );
        assert_eq!(st4.history.len(), 2);
        // No temp files are left behind.
        let names: Vec<_> = std::fs::read_dir(root)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("state.json")]);
    }

    #[test]
    fn corrupt_state_is_reported_with_path() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("state.json"), b"{not json").unwrap();
        let mut t = LocalTransport::new("n1");
        let e = read(&mut t, dir.path().to_str().unwrap()).unwrap_err();
        assert!(e.to_string().contains("state.json on n1 is corrupt"), "{e}");
    }

    #[test]
    fn lock_is_exclusive_and_stale_locks_are_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_str().unwrap();
        let mut t = LocalTransport::new("n1");
        let me = LockOwner::this_process("install");
        assert_eq!(
            lock(&mut t, root, &me, LockPolicy::TakeOverStale).unwrap(),
            None
        );
        // Another live holder on this controller: refused.
        let other = LockOwner {
            pid: 1,
            ..LockOwner::this_process("upgrade")
        };
        unlock(&mut t, root, &me).unwrap();
        lock(&mut t, root, &other, LockPolicy::TakeOverStale).unwrap();
        let e = lock(&mut t, root, &me, LockPolicy::TakeOverStale).unwrap_err();
        assert!(matches!(e, StateError::Locked { .. }), "{e}");
        assert!(e.to_string().contains("upgrade (pid 1"), "{e}");
        // Unlock by a non-holder does nothing.
        unlock(&mut t, root, &me).unwrap();
        assert!(dir.path().join("lock/owner").exists());
        // A holder whose process is gone (crashed controller) is taken over.
        let dead = LockOwner {
            pid: 999_999_999,
            ..LockOwner::this_process("upgrade")
        };
        lock(&mut t, root, &dead, LockPolicy::Break).unwrap();
        let prev = lock(&mut t, root, &me, LockPolicy::TakeOverStale).unwrap();
        assert_eq!(prev.map(|p| p.pid), Some(999_999_999));
        unlock(&mut t, root, &me).unwrap();
        assert!(!dir.path().join("lock").exists());
    }
}
