//! `import_playbook`: the plays of another file, loaded in its place.

use super::*;

pub(super) fn abs_path(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

/// The plays of a playbook file, `import_playbook` entries replaced by the plays of the
/// file they name (`chain`: the files being loaded, outermost first; one met again is a
/// loop, refused).
pub(super) fn load_plays(
    dir: &Path,
    file: &Arc<str>,
    node: &YNode,
    chain: &mut Vec<PathBuf>,
    out: &mut Vec<Play>,
) -> Result<(), LoadError> {
    let Some(items) = node.as_seq() else {
        return Err(invalid(
            &loc_of(file, node),
            "a playbook must be a list of plays",
        ));
    };
    let loader = Loader::new(dir.to_path_buf(), 0);
    for it in items {
        let key = ["import_playbook", "ansible.builtin.import_playbook"]
            .into_iter()
            .find(|k| it.get(k).is_some());
        match key {
            Some(k) => import_playbook(dir, file, it, k, chain, out)?,
            None => out.push(loader.load_play(it, file)?),
        }
    }
    Ok(())
}

/// One `import_playbook` entry: the plays of the file it names (relative to the importing
/// file's directory; their roles and files are found beside it), each with the entry's
/// `vars` over its own, its `tags` added and its `when` before every task's, as Ansible
/// loads them.
fn import_playbook(
    dir: &Path,
    file: &Arc<str>,
    it: &YNode,
    key: &str,
    chain: &mut Vec<PathBuf>,
    out: &mut Vec<Play>,
) -> Result<(), LoadError> {
    let loc = loc_of(file, it);
    for (k, v) in it.as_map().unwrap_or(&[]) {
        let name = k.key_string();
        if !["name", "vars", "tags", "when", key].contains(&name.as_str()) {
            return Err(invalid(
                &loc_of(file, k),
                format!("'{name}' is not a valid attribute for a PlaybookInclude"),
            ));
        }
        if name == key && template::is_template(&template::py_str(&v.to_json())) {
            return Err(invalid(
                &loc_of(file, v),
                "import_playbook: a templated playbook name is not supported by darkport",
            ));
        }
    }
    let name = template::py_str(&it.get(key).map(|n| n.to_json()).unwrap_or_default());
    if name.is_empty() {
        return Err(invalid(&loc, "import_playbook: no playbook named"));
    }
    let path = dir.join(&name);
    let key_path = abs_path(&path);
    if chain.contains(&key_path) {
        return Err(invalid(
            &loc,
            format!(
                "import_playbook: {name} imports itself ({} -> {name})",
                chain
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(" -> ")
            ),
        ));
    }
    if chain.len() > 20 {
        return Err(invalid(&loc, "import_playbook: imports nested too deeply"));
    }
    let kw = kw_from(it.as_map().unwrap_or(&[]), file)?;
    let (sub_file, sub_node) = read_yaml(&path).map_err(|e| match e {
        LoadError::Read { .. } => invalid(&loc, format!("import_playbook: cannot read {name}")),
        other => other,
    })?;
    let sub_dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
    let first = out.len();
    chain.push(key_path);
    load_plays(&sub_dir, &sub_file, &sub_node, chain, out)?;
    chain.pop();
    for play in &mut out[first..] {
        play.vars.extend(kw.vars.clone());
        for t in &kw.tags {
            if !play.kw.tags.contains(t) {
                play.kw.tags.push(t.clone());
            }
        }
        if !kw.when.is_empty() {
            let mut w = kw.when.clone();
            w.extend(std::mem::take(&mut play.when));
            play.when = w;
            for t in play
                .pre_tasks
                .iter_mut()
                .chain(play.role_tasks.iter_mut())
                .chain(play.tasks.iter_mut())
                .chain(play.post_tasks.iter_mut())
            {
                let mut w = kw.when.clone();
                w.append(&mut t.kw.when);
                t.kw.when = w;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, s: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, s).unwrap();
        p
    }

    #[test]
    fn imported_plays_take_the_entry_vars_tags_and_when() {
        let d = tempfile::tempdir().unwrap();
        let p = write(
            d.path(),
            "pb.yml",
            "- import_playbook: sub/other.yml\n  vars: {a: 2}\n  tags: t\n  when: x is defined\n- hosts: all\n  tasks: []\n",
        );
        write(
            d.path(),
            "sub/other.yml",
            "- hosts: all\n  vars: {a: 1, b: 1}\n  roles: [r]\n  tasks:\n    - debug: msg=hi\n      when: y\n",
        );
        write(d.path(), "sub/roles/r/tasks/main.yml", "- debug: msg=r\n");
        let pb = Playbook::load(&p).unwrap();
        assert_eq!(pb.plays.len(), 2);
        let first = &pb.plays[0];
        assert_eq!(first.vars["a"], 2);
        assert_eq!(first.vars["b"], 1);
        assert_eq!(first.kw.tags, vec!["t"]);
        assert_eq!(first.dir, d.path().join("sub"));
        assert_eq!(first.when, vec![Value::from("x is defined")]);
        assert_eq!(
            first.tasks[0].kw.when,
            vec![Value::from("x is defined"), Value::from("y")]
        );
        assert_eq!(
            first.role_tasks[0].kw.when,
            vec![Value::from("x is defined")]
        );
    }

    #[test]
    fn unsupported_includes_are_refused_at_load() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "roles/r/tasks/main.yml", "- debug: msg=r\n");
        write(d.path(), "t.yml", "- debug: msg=t\n");
        write(d.path(), "self.yml", "- import_playbook: self.yml\n");
        let cases = [
            ("- import_playbook: self.yml\n", "imports itself"),
            ("- import_playbook: \"{{ x }}.yml\"\n", "templated playbook name"),
            ("- import_playbook: t.yml\n  serial: 1\n", "PlaybookInclude"),
            (
                "- hosts: all\n  tasks:\n    - import_tasks: t.yml\n      loop: [1]\n",
                "loops on 'import_tasks'",
            ),
            (
                "- hosts: all\n  tasks:\n    - import_role:\n        name: r\n        apply: {tags: x}\n",
                "Invalid options for import_role: apply",
            ),
            (
                "- hosts: all\n  tasks:\n    - include_role:\n        name: r\n        vars_from: x\n",
                "'vars_from' is not supported",
            ),
            (
                "- hosts: all\n  tasks:\n    - include_tasks:\n        file: t.yml\n        apply: {loop: [1]}\n",
                "'loop' is not a keyword apply",
            ),
        ];
        for (src, what) in cases {
            let p = write(d.path(), "pb.yml", src);
            let e = Playbook::load(&p).unwrap_err().to_string();
            assert!(
                e.contains("pb.yml:") || e.contains("self.yml:"),
                "{src:?} gave {e}"
            );
            assert!(e.contains(what), "{src:?} gave {e}");
        }
    }

    #[test]
    fn handlers_are_listed_in_ansible_order() {
        let d = tempfile::tempdir().unwrap();
        for r in ["a", "dep", "imp", "inc"] {
            write(
                d.path(),
                &format!("roles/{r}/handlers/main.yml"),
                &format!("- name: {r}\n  debug: msg={r}\n"),
            );
            write(
                d.path(),
                &format!("roles/{r}/tasks/main.yml"),
                "- debug: msg=t\n",
            );
        }
        write(d.path(), "roles/a/meta/main.yml", "dependencies: [dep]\n");
        let p = write(
            d.path(),
            "pb.yml",
            "- hosts: all\n  tasks:\n    - include_role: name=inc\n    - import_role: name=imp\n  roles: [a]\n  handlers:\n    - name: play\n      debug: msg=p\n",
        );
        let pb = Playbook::load(&p).unwrap();
        let names: Vec<&str> = pb.plays[0]
            .handlers
            .iter()
            .map(|h| h.name.as_deref().unwrap())
            .collect();
        assert_eq!(names, ["dep", "a", "play", "imp", "inc"]);
        assert_eq!(pb.plays[0].role_names, ["a", "imp"]);
        assert_eq!(pb.plays[0].dependent_role_names, ["dep"]);
    }
}
