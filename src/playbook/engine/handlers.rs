//! Handlers: flushed at the end of each section and on `meta: flush_handlers`.

use super::*;

pub(super) fn flush_handlers(pc: &PlayCtx, hosts: &mut BTreeMap<String, HostState>) {
    let handlers = &pc.play.handlers;
    let mut last_named: BTreeMap<String, usize> = BTreeMap::new();
    for (i, h) in handlers.iter().enumerate() {
        let name = h.name.clone().unwrap_or_default();
        if let Some(r) = &h.role {
            last_named.insert(format!("{} : {name}", r.name), i);
        }
        last_named.insert(name, i);
    }
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
        for (i, h) in handlers.iter().enumerate() {
            let hname = h.name.clone().unwrap_or_default();
            let by_name = |x: &String| {
                *x == hname
                    || h.role
                        .as_ref()
                        .is_some_and(|r| format!("{} : {hname}", r.name) == *x)
            };
            // A name notifies one handler, the last one loaded with it (a role included twice
            // loads its handlers twice); a `listen:` topic notifies every listener.
            let answers = |x: &String| h.listen.contains(x) || (by_name(x) && last_named[x] == i);
            let who: Vec<String> = pc
                .batch
                .iter()
                .filter(|n| {
                    let s = &hosts[*n];
                    let ok = !s.unreachable && (pc.play.force_handlers || !s.failed);
                    ok && pending[*n].iter().any(answers)
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
