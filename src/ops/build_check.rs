//! What `build-bundle` checks in the playbooks before it signs them: everything a site would
//! otherwise find only at install time. The install playbook exists; every playbook the
//! bundle runs (install, upgrade, each migration and its rollback) loads (YAML, keywords,
//! modules, template and expression syntax, roles, static imports); every `include_tasks` of a
//! literal file loads; every migration declares itself correctly; every template file under a
//! `templates/` directory compiles. All problems are reported at once, each with the source
//! file and line.

use crate::ops::migrate::migration_spec;
use crate::playbook::model::{Playbook, Task, TaskKind};
use crate::playbook::template;
use std::path::{Path, PathBuf};

/// How many files the check read, for the build report.
#[derive(Debug, Default)]
pub(crate) struct Checked {
    pub playbooks: usize,
    pub task_files: usize,
    pub templates: usize,
}

/// Check the playbooks directory `dir` (as the spec names it) and its `migrations`
/// (bundle-relative paths); every problem found is in the error, one per line.
pub(crate) fn check_playbooks(dir: &Path, migrations: &[String]) -> anyhow::Result<Checked> {
    let mut c = Checked::default();
    let mut problems: Vec<String> = Vec::new();
    let show = |rel: &str| dir.join(rel).display().to_string();
    let mut to_load: Vec<String> = Vec::new();
    if dir.join("install.yml").is_file() {
        to_load.push("install.yml".into());
    } else {
        problems.push(format!(
            "{}: missing: `darkport install` runs it on every node",
            show("install.yml")
        ));
    }
    if dir.join("upgrade.yml").is_file() {
        to_load.push("upgrade.yml".into());
    }
    let mut loaded: Vec<Playbook> = Vec::new();
    for rel in to_load.iter().chain(migrations) {
        match Playbook::load(&dir.join(rel)) {
            Ok(pb) => {
                c.playbooks += 1;
                if migrations.contains(rel) {
                    check_migration(dir, rel, &pb, &mut problems, &mut loaded, &mut c);
                }
                loaded.push(pb);
            }
            Err(e) => problems.push(e.to_string()),
        }
    }
    for pb in &loaded {
        let mut seen = Vec::new();
        for play in &pb.plays {
            for list in [
                &play.pre_tasks,
                &play.role_tasks,
                &play.tasks,
                &play.post_tasks,
                &play.handlers,
            ] {
                check_includes(pb, list, 0, &mut seen, &mut problems, &mut c);
            }
        }
    }
    check_template_files(dir, dir, &mut problems, &mut c);
    if problems.is_empty() {
        return Ok(c);
    }
    anyhow::bail!(
        "the playbooks are not fit to ship ({} problem{}); nothing was written:\n  {}",
        problems.len(),
        if problems.len() == 1 { "" } else { "s" },
        problems.join("\n  ")
    )
}

/// A migration's `darkport_migration` declaration, and its rollback playbook if it names one.
fn check_migration(
    dir: &Path,
    rel: &str,
    pb: &Playbook,
    problems: &mut Vec<String>,
    loaded: &mut Vec<Playbook>,
    c: &mut Checked,
) {
    let spec = match migration_spec(rel, pb) {
        Ok(s) => s,
        Err(e) => {
            let msg = format!("{e:#}");
            let msg = msg.strip_prefix(&format!("{rel}: ")).unwrap_or(&msg);
            problems.push(format!("{}: {msg}", dir.join(rel).display()));
            return;
        }
    };
    let Some(rb) = spec.rollback else {
        return;
    };
    let p = dir.join(&rb);
    if !p.is_file() {
        problems.push(format!(
            "{}: darkport_migration.rollback names {rb}, which is not in {}",
            dir.join(rel).display(),
            dir.display()
        ));
        return;
    }
    match Playbook::load(&p) {
        Ok(pb) => {
            c.playbooks += 1;
            loaded.push(pb);
        }
        Err(e) => problems.push(e.to_string()),
    }
}

/// Every `include_tasks` of a literal file (no `{{`) loads, resolved as the engine does
/// (next to the including file, the role's `tasks/`, the playbook's directory).
fn check_includes(
    pb: &Playbook,
    tasks: &[Task],
    depth: usize,
    seen: &mut Vec<PathBuf>,
    problems: &mut Vec<String>,
    c: &mut Checked,
) {
    if depth > 16 {
        return;
    }
    for t in tasks {
        match &t.kind {
            TaskKind::Block {
                block,
                rescue,
                always,
            } => {
                for l in [block, rescue, always] {
                    check_includes(pb, l, depth, seen, problems, c);
                }
            }
            TaskKind::Role { tasks, .. } | TaskKind::IncludeRole { tasks, .. } => {
                check_includes(pb, tasks, depth, seen, problems, c);
            }
            TaskKind::Include { file, base, .. } => {
                let Some(f) = file.as_str().filter(|f| !f.contains("{{")) else {
                    continue;
                };
                let cands = [
                    base.join(f),
                    t.role
                        .as_ref()
                        .map(|r| r.path.join("tasks").join(f))
                        .unwrap_or_default(),
                    pb.dir.join(f),
                ];
                let Some(p) = cands.iter().find(|p| p.is_file()) else {
                    problems.push(format!("{}: include_tasks: {f} not found", t.loc));
                    continue;
                };
                if seen.contains(p) {
                    continue;
                }
                seen.push(p.clone());
                match Playbook::load_tasks(&pb.dir, p, &t.role, &[]) {
                    Ok(inner) => {
                        c.task_files += 1;
                        check_includes(pb, &inner, depth + 1, seen, problems, c);
                    }
                    Err(e) => problems.push(e.to_string()),
                }
            }
            TaskKind::Module { .. } | TaskKind::Meta(_) => {}
        }
    }
}

/// Every text file below a `templates/` directory (the play's or a role's) compiles.
fn check_template_files(root: &Path, d: &Path, problems: &mut Vec<String>, c: &mut Checked) {
    let Ok(rd) = std::fs::read_dir(d) else {
        return;
    };
    let mut entries: Vec<_> = rd.filter_map(Result::ok).map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            check_template_files(root, &p, problems, c);
            continue;
        }
        let in_templates = p
            .strip_prefix(root)
            .map(|r| r.components().any(|x| x.as_os_str() == "templates"))
            .unwrap_or(false);
        if !in_templates {
            continue;
        }
        // A binary file is copied, not rendered: not a template problem.
        let Ok(src) = std::fs::read_to_string(&p) else {
            continue;
        };
        c.templates += 1;
        if let Err((line, msg)) = template::check_file_syntax(&src) {
            problems.push(format!("{}:{line}: {msg}", p.display()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, rel: &str, s: &str) {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, s).unwrap();
    }

    #[test]
    fn a_sound_directory_passes_and_counts_what_it_read() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        write(p, "install.yml", "- hosts: all\n  tasks:\n    - include_tasks: tasks/a.yml\n    - template: src=x.j2 dest=/tmp/x\n");
        write(p, "tasks/a.yml", "- debug: msg=hi\n");
        write(
            p,
            "templates/x.j2",
            "{% for i in range(3) %}{{ i }}\n{% endfor %}\n",
        );
        write(p, "templates/logo.png", "\u{0}");
        let c = check_playbooks(p, &[]).unwrap();
        assert_eq!((c.playbooks, c.task_files, c.templates), (1, 1, 2));
    }

    #[test]
    fn every_problem_is_reported_with_its_file_and_line() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        write(
            p,
            "upgrade.yml",
            "- hosts: all\n  tasks:\n    - name: x\n      no_such_module: a=b\n",
        );
        write(
            p,
            "roles/web/templates/site.conf.j2",
            "ok\n{% if x %}\nnever closed\n",
        );
        write(
            p,
            "migrations/0001-x.yml",
            "- hosts: all\n  tasks:\n    - include_tasks: missing.yml\n",
        );
        write(p, "migrations/0002-y.yml", "- hosts: all\n  tasks: []\n");
        let e = check_playbooks(
            p,
            &[
                "migrations/0001-x.yml".into(),
                "migrations/0002-y.yml".into(),
            ],
        )
        .unwrap_err()
        .to_string();
        let root = p.display().to_string();
        assert!(e.contains("(5 problems)"), "{e}");
        assert!(
            e.contains(&format!("cannot read {root}/migrations/missing.yml")),
            "{e}"
        );
        assert!(e.contains(&format!("{root}/install.yml: missing")), "{e}");
        assert!(e.contains(&format!("{root}/upgrade.yml:4:")), "{e}");
        assert!(e.contains("no_such_module"), "{e}");
        assert!(
            e.contains(&format!(
                "{root}/migrations/0002-y.yml: the first play must declare"
            )),
            "{e}"
        );
        assert!(
            e.contains(&format!("{root}/roles/web/templates/site.conf.j2:")),
            "{e}"
        );
    }
}
