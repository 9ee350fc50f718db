//! Handlers: flushed at the end of each section and on `meta: flush_handlers`.

use super::*;

pub(super) fn flush_handlers(pc: &PlayCtx, hosts: &mut BTreeMap<String, HostState>) {
    let handlers = &pc.play.handlers;
    loop {
        // What each host was notified of so far: every handler that answers to a name or a
        // `listen:` topic of it runs (several handlers may listen to one topic), in the order
        // the handlers are defined. Notifications made by these handlers run in the next pass.
        let pending: BTreeMap<String, Vec<String>> = pc
            .batch
            .iter()
            .map(|n| {
                let s = hosts.get_mut(n).unwrap();
                (n.clone(), std::mem::take(&mut s.notified))
            })
            .collect();
        if pending.values().all(Vec::is_empty) {
            break;
        }
        let runs: BTreeMap<&String, HashSet<usize>> = pending
            .iter()
            .map(|(n, topics)| {
                let idx = topics
                    .iter()
                    .flat_map(|t| notified_by(handlers, t))
                    .collect();
                (n, idx)
            })
            .collect();
        for (i, h) in handlers.iter().enumerate() {
            let who: Vec<String> = pc
                .batch
                .iter()
                .filter(|n| {
                    let s = &hosts[*n];
                    let ok = !s.unreachable && (pc.play.force_handlers || !s.failed);
                    ok && runs[n].contains(&i)
                })
                .cloned()
                .collect();
            if who.is_empty() {
                continue;
            }
            pc.rep.event(Event::TaskStart {
                name: &h.display_name(),
                handler: true,
            });
            let failed = run_handler(pc, hosts, h, &who);
            for f in failed {
                hosts.get_mut(&f).unwrap().failed = true;
            }
        }
        if !pc
            .batch
            .iter()
            .any(|n| !hosts[n].notified.is_empty() && !hosts[n].failed)
        {
            break;
        }
    }
    for n in &pc.batch {
        hosts.get_mut(n).unwrap().notified.clear();
    }
}

/// The handlers (indices, in load order) notification `n` runs, as Ansible finds them: the
/// last one loaded whose name (or `role : name`) it is, and every handler that `listen`s to
/// it, of listeners sharing a name only the last loaded.
fn notified_by(handlers: &[Task], n: &str) -> Vec<usize> {
    let mut out = Vec::new();
    let named = handlers.iter().rposition(|h| {
        let name = h.name.as_deref().unwrap_or("");
        !name.is_empty()
            && (name == n
                || h.role
                    .as_ref()
                    .is_some_and(|r| format!("{} : {name}", r.name) == n))
    });
    out.extend(named);
    let mut seen = HashSet::new();
    for (i, h) in handlers.iter().enumerate().rev() {
        if !h.listen.iter().any(|l| l == n) {
            continue;
        }
        if let Some(name) = h.name.as_deref().filter(|s| !s.is_empty()) {
            if !seen.insert(name) {
                continue;
            }
        }
        if !out.contains(&i) {
            out.push(i);
        }
    }
    out
}

pub(super) fn run_handler(
    pc: &PlayCtx,
    hosts: &mut BTreeMap<String, HostState>,
    h: &Task,
    who: &[String],
) -> Vec<String> {
    // Reuse run_task's machinery without printing a second TASK header.
    struct Quiet<'a>(&'a dyn Reporter);
    impl Reporter for Quiet<'_> {
        fn event(&self, ev: Event<'_>) {
            if !matches!(ev, Event::TaskStart { .. }) {
                self.0.event(ev)
            }
        }
    }
    let q = Quiet(pc.rep);
    let pc2 = PlayCtx {
        pb: pc.pb,
        play: pc.play,
        opts: pc.opts,
        inv: pc.inv,
        conn: pc.conn,
        rep: &q,
        groups: pc.groups.clone(),
        play_hosts: pc.play_hosts.clone(),
        batch: pc.batch.clone(),
        delegates: Mutex::new(HashMap::new()),
        role_names: pc.role_names.clone(),
    };
    match &h.kind {
        TaskKind::Module { .. } => run_task(&pc2, hosts, h, &Inherit::default(), who),
        _ => {
            run_list(
                &pc2,
                hosts,
                std::slice::from_ref(h),
                &Inherit::default(),
                who,
            )
            .failed
        }
    }
}
