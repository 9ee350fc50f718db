//! What the engine keeps per host and per play while it runs.

use super::*;

pub(super) struct HostState {
    pub(super) name: String,
    pub(super) inv_vars: Map<String, Value>,
    pub(super) facts: Map<String, Value>,
    pub(super) include_vars: Map<String, Value>,
    pub(super) set_facts: Map<String, Value>,
    pub(super) vars_files: Map<String, Value>,
    pub(super) transport: Option<Box<dyn Transport>>,
    pub(super) failed: bool,
    pub(super) unreachable: bool,
    pub(super) ended: bool,
    pub(super) notified: Vec<String>,
    pub(super) stats: Stats,
    /// The last failed result and task name (for `ansible_failed_result` in rescue).
    pub(super) last_failed: Option<(Value, String)>,
}

impl HostState {
    /// A host as the first play that selects it finds it: its inventory vars, nothing else.
    pub(super) fn new(name: &str, inv_vars: Map<String, Value>) -> HostState {
        HostState {
            name: name.to_string(),
            inv_vars,
            facts: Map::new(),
            include_vars: Map::new(),
            set_facts: Map::new(),
            vars_files: Map::new(),
            transport: None,
            failed: false,
            unreachable: false,
            ended: false,
            notified: vec![],
            stats: Stats::default(),
            last_failed: None,
        }
    }
}

/// Read-only context of one play, shared by the worker threads.
pub(super) struct PlayCtx<'a> {
    pub(super) pb: &'a Playbook,
    pub(super) play: &'a Play,
    pub(super) opts: &'a RunOptions,
    pub(super) inv: &'a dyn HostSource,
    pub(super) conn: &'a dyn Connector,
    pub(super) rep: &'a dyn Reporter,
    pub(super) groups: Value,
    pub(super) play_hosts: Vec<String>,
    pub(super) batch: Vec<String>,
    pub(super) delegates: Mutex<HashMap<String, Box<dyn Transport>>>,
    /// The play's `role_names`: its roles and imports, then each `include_role` as it runs
    /// (shared by the play's batches, as Ansible's play object is).
    pub(super) role_names: Arc<Mutex<Vec<String>>>,
}

/// Block/role keywords inherited by the tasks inside.
#[derive(Clone, Default)]
pub(super) struct Inherit {
    pub(super) kws: Vec<Kw>,
    pub(super) role: Option<Arc<RoleCtx>>,
    /// The roles running, outermost first (a task file included at run time must not
    /// include one of them again: a loop).
    pub(super) roles: Vec<Arc<RoleCtx>>,
    /// Inside the `block:` of a block with a `rescue:` section: a failure here may yet be
    /// rescued, so it is not counted against the play until the block ends.
    pub(super) rescuable: bool,
}

impl Inherit {
    pub(super) fn push(&self, kw: &Kw, role: Option<Arc<RoleCtx>>) -> Inherit {
        let mut n = self.clone();
        n.kws.push(kw.clone());
        if role.is_some() {
            n.role = role;
        }
        n
    }
    pub(super) fn last<F: Fn(&Kw) -> Option<&Value>>(&self, task: &Kw, f: F) -> Option<Value> {
        f(task)
            .or_else(|| self.kws.iter().rev().find_map(&f))
            .cloned()
    }
    pub(super) fn tags(&self, task: &Kw, play: &Kw) -> HashSet<String> {
        let mut t: HashSet<String> = task.tags.iter().cloned().collect();
        for k in &self.kws {
            t.extend(k.tags.iter().cloned());
        }
        t.extend(play.tags.iter().cloned());
        t
    }
}

pub(super) fn fail_host_now(pc: &PlayCtx, hs: &mut HostState, msg: &str) {
    hs.failed = true;
    hs.stats.failed += 1;
    let r = HostResult {
        host: hs.name.clone(),
        task: "vars_files".into(),
        loc: pc.play.loc.to_string(),
        status: Status::Failed,
        ignored: false,
        delegated_to: None,
        verbose: false,
        result: TaskResult::failed(msg),
        items: vec![],
    };
    pc.rep.event(Event::Result(&r));
}

#[derive(Clone, Default)]
pub(super) struct HostEffects {
    pub(super) set_facts: Map<String, Value>,
    pub(super) include_vars: Map<String, Value>,
    pub(super) facts: Option<Map<String, Value>>,
    pub(super) register: Option<Value>,
    pub(super) notify: Vec<String>,
}

pub(super) fn apply_effects(hs: &mut HostState, task: &Task, _r: &HostResult, eff: HostEffects) {
    if let Some(mut f) = eff.facts {
        // A later setup (another subset) adds to `ansible_facts` instead of replacing it.
        if let Some(Value::Object(new)) = f.remove("ansible_facts") {
            let all = hs
                .facts
                .entry("ansible_facts")
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(old) = all {
                old.extend(new);
            }
        }
        hs.facts.extend(f);
    }
    hs.set_facts.extend(eff.set_facts);
    hs.include_vars.extend(eff.include_vars);
    if let (Some(name), Some(v)) = (&task.register, eff.register) {
        hs.set_facts.insert(name.clone(), v);
    }
    for n in eff.notify {
        if !hs.notified.contains(&n) {
            hs.notified.push(n);
        }
    }
}
