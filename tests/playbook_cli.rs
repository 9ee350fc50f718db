//! `darkport run` from the command line: bad input is reported with file:line and exit 1
//! before any host is contacted; runtime errors name the task's file:line; output formats.

use assert_cmd::Command;
use predicates::prelude::*;
use std::path::Path;

fn write(dir: &Path, name: &str, body: &str) {
    let p = dir.join(name);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, body).unwrap();
}

/// An inventory whose only host cannot be reached: any attempt to touch it would show up as
/// an unreachable host instead of the expected load error.
const UNREACHABLE_INV: &str =
    "[nodes]\nghost ansible_host=127.0.0.1 ansible_port=1 ansible_user=root\n";

/// `darkport run -i inv pb.yml` in `dir`; it must succeed. Its stdout.
fn run_ok(dir: &Path) -> String {
    let out = Command::cargo_bin("darkport")
        .unwrap()
        .current_dir(dir)
        .args(["run", "-i", "inv", "pb.yml"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    String::from_utf8(out).unwrap()
}

/// The `"msg": "…"` values of a run's output, in order.
fn msgs(out: &str) -> Vec<&str> {
    out.lines()
        .filter_map(|l| l.trim().strip_prefix("\"msg\": \""))
        .map(|l| l.trim_end_matches(['"', ',']))
        .collect()
}

#[test]
fn bad_playbooks_fail_before_touching_hosts() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "inv", UNREACHABLE_INV);
    let cases = [
        (
            "yaml",
            "- hosts: all\n  tasks:\n    - debug: msg=x\n   - bad indent\n",
            "yaml.yml:4",
            "YAML",
        ),
        (
            "module",
            "- hosts: all\n  tasks:\n    - name: x\n      no_such_module: a=b\n",
            "module.yml:4:7",
            "no_such_module",
        ),
        (
            "keyword",
            "- hosts: all\n  tasks:\n    - debug: msg=x\n      wehn: true\n",
            "keyword.yml:4:7",
            "wehn",
        ),
        (
            "jinja",
            "- hosts: all\n  tasks:\n    - debug:\n        msg: \"{{ x | }}\"\n",
            "jinja.yml:4",
            "syntax",
        ),
        (
            "when",
            "- hosts: all\n  tasks:\n    - debug: msg=x\n      when: x ==\n",
            "when.yml:4",
            "bad expression",
        ),
        (
            "role",
            "- hosts: all\n  roles: [missing_role]\n",
            "role.yml:2",
            "missing_role",
        ),
        (
            "include",
            "- hosts: all\n  tasks:\n    - import_tasks: nope.yml\n",
            "nope.yml",
            "cannot read",
        ),
    ];
    for (name, body, loc, what) in cases {
        let f = format!("{name}.yml");
        write(d.path(), &f, body);
        Command::cargo_bin("darkport")
            .unwrap()
            .current_dir(d.path())
            .args(["run", "-i", "inv", &f])
            .assert()
            .code(1)
            .stderr(predicate::str::contains(loc).and(predicate::str::contains(what)))
            .stderr(predicate::str::contains("unreachable").not())
            .stdout(predicate::str::contains("PLAY").not());
    }
}

#[test]
fn local_run_output_and_runtime_undefined_variable() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "inv", "[local]\nhere ansible_connection=local\n");
    let out = d.path().join("out");
    write(
        d.path(),
        "pb.yml",
        &format!(
            "- hosts: all\n  gather_facts: false\n  tasks:\n    - name: write\n      copy: content=hi dest={}\n    - name: secret\n      command: echo s3cr3t\n      no_log: true\n    - name: broken\n      debug: msg=\"{{{{ nope }}}}\"\n",
            out.display()
        ),
    );
    let a = Command::cargo_bin("darkport")
        .unwrap()
        .current_dir(d.path())
        .args(["run", "-i", "inv", "pb.yml"])
        .assert()
        .code(2); // a task failed: ansible-playbook's exit code
    let o = String::from_utf8_lossy(&a.get_output().stdout).to_string();
    assert!(o.contains("TASK [write] ***"), "{o}");
    assert!(o.contains("changed: [here]"), "{o}");
    assert!(
        o.contains("pb.yml:9") && o.contains("'nope' is undefined"),
        "{o}"
    );
    assert!(!o.contains("s3cr3t"), "no_log output leaked: {o}");
    assert!(o.contains("PLAY RECAP"), "{o}");
    assert!(
        o.contains("here")
            && o.contains("ok=2")
            && o.contains("changed=2")
            && o.contains("failed=1"),
        "{o}"
    );
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "hi");
    // --json: one event per line; the second run of the copy is ok (idempotent).
    let a = Command::cargo_bin("darkport")
        .unwrap()
        .current_dir(d.path())
        .args(["run", "-i", "inv", "pb.yml", "--json", "--skip-tags", "x"])
        .assert()
        .code(2);
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&a.get_output().stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let write_res = lines
        .iter()
        .find(|e| e["event"] == "result" && e["task"] == "write")
        .unwrap();
    assert_eq!(write_res["status"], "ok");
    let recap = lines.iter().find(|e| e["event"] == "recap").unwrap();
    assert_eq!(recap["stats"]["here"]["failed"], 1);
    assert!(!lines.iter().any(|e| e.to_string().contains("s3cr3t")));
}

/// Variables that refer to each other in a loop fail the task that uses them (ansible-core:
/// "Recursive loop detected in template"), they never print their own template text.
#[test]
fn variables_in_a_reference_loop_fail_the_task() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "inv", "here ansible_connection=local\n");
    write(
        d.path(),
        "pb.yml",
        "- hosts: all\n  gather_facts: false\n  vars:\n    a: \"{{ b }}\"\n    b: \"{{ a }}\"\n    c: \"{{ c }}\"\n    ok: \"{{ 'fine' }}\"\n  tasks:\n    - debug: msg=\"{{ ok }}\"\n    - debug: msg=\"{{ a }}\"\n      ignore_errors: true\n    - debug: msg=\"{{ c }}\"\n",
    );
    let a = Command::cargo_bin("darkport")
        .unwrap()
        .current_dir(d.path())
        .args(["run", "-i", "inv", "pb.yml"])
        .assert()
        .code(2);
    let o = String::from_utf8_lossy(&a.get_output().stdout).to_string();
    assert!(o.contains("\"msg\": \"fine\""), "{o}");
    assert!(
        !o.contains("\"msg\": \"{{"),
        "a loop printed its own template: {o}"
    );
    assert!(
        o.contains("'a' is undefined") && o.contains("'c' is undefined"),
        "{o}"
    );
    // ansible-core 2.19 on this playbook: ok=2 failed=1 ignored=1, exit 2.
    assert!(
        o.contains("ok=2") && o.contains("failed=1") && o.contains("ignored=1"),
        "{o}"
    );
}

#[test]
fn extra_vars_forms() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "inv", "here ansible_connection=local\n");
    write(d.path(), "ev.yml", "c: from-file\n");
    let out = d.path().join("out");
    write(
        d.path(),
        "pb.yml",
        &format!(
            "- hosts: all\n  gather_facts: false\n  vars:\n    a: play\n  tasks:\n    - copy: content=\"{{{{ a }}}} {{{{ b.k }}}} {{{{ c }}}}\" dest={}\n",
            out.display()
        ),
    );
    Command::cargo_bin("darkport")
        .unwrap()
        .current_dir(d.path())
        .args([
            "run",
            "-i",
            "inv",
            "pb.yml",
            "-e",
            "a=extra",
            "-e",
            "{\"b\": {\"k\": 1}}",
            "-e",
            "@ev.yml",
        ])
        .assert()
        .code(0);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "extra 1 from-file");
}

/// A role that depends on (meta/main.yml) or includes a role leading back to it is refused
/// at load with the chain and the file:line that closes the loop, as ansible-core refuses it
/// ("A recursion loop was detected with the roles specified"); a loop that only shows at run
/// time (through a task file included at run time) fails the task naming the chain.
#[test]
fn role_dependency_loops_are_refused_naming_the_chain() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    let run = |dir: &Path, args: &[&str]| {
        Command::cargo_bin("darkport")
            .unwrap()
            .current_dir(dir)
            .args(args)
            .timeout(std::time::Duration::from_secs(20))
            .assert()
    };
    // meta/main.yml dependencies: r1 -> r2 -> r1.
    let meta = p.join("meta");
    write(&meta, "inv", "[local]\nhere ansible_connection=local\n");
    write(
        &meta,
        "pb.yml",
        "- hosts: all\n  gather_facts: false\n  roles: [r1]\n",
    );
    write(&meta, "roles/r1/tasks/main.yml", "- debug: msg=r1\n");
    write(
        &meta,
        "roles/r1/meta/main.yml",
        "dependencies:\n  - role: r2\n",
    );
    write(&meta, "roles/r2/tasks/main.yml", "- debug: msg=r2\n");
    write(
        &meta,
        "roles/r2/meta/main.yml",
        "galaxy_info: {}\ndependencies:\n  - r1\n",
    );
    for args in [
        &["run", "-i", "inv", "pb.yml"][..],
        &["run", "-i", "inv", "--syntax-check", "pb.yml"][..],
    ] {
        run(&meta, args)
            .code(1)
            .stderr(predicate::str::contains("roles/r2/meta/main.yml:3:5"))
            .stderr(predicate::str::contains("recursion loop"))
            .stderr(predicate::str::contains("r1 -> r2 -> r1"))
            .stdout(predicate::str::contains("PLAY").not());
    }
    // A role depending on itself.
    write(&meta, "roles/r2/meta/main.yml", "dependencies: [r2]\n");
    run(&meta, &["run", "-i", "inv", "pb.yml"])
        .code(1)
        .stderr(predicate::str::contains("roles/r2/meta/main.yml:1:16: "))
        .stderr(predicate::str::contains(
            "loop was detected with the roles specified: r2 -> r2",
        ));
    // include_role, resolved when the playbook loads: r1 -> r2 -> r1.
    let inc = p.join("inc");
    write(&inc, "inv", "[local]\nhere ansible_connection=local\n");
    write(
        &inc,
        "pb.yml",
        "- hosts: all\n  gather_facts: false\n  roles: [r1]\n",
    );
    write(
        &inc,
        "roles/r1/tasks/main.yml",
        "- debug: msg=r1\n- include_role: name=r2\n",
    );
    write(
        &inc,
        "roles/r2/tasks/main.yml",
        "- debug: msg=r2\n- include_role:\n    name: r1\n",
    );
    run(&inc, &["run", "-i", "inv", "pb.yml"])
        .code(1)
        .stderr(predicate::str::contains("roles/r2/tasks/main.yml:3:5"))
        .stderr(predicate::str::contains("r1 -> r2 -> r1"))
        .stdout(predicate::str::contains("PLAY").not());
    // The loop closes only at run time (a templated include_tasks): the task fails with the
    // chain instead of including forever.
    let dynamic = p.join("dynamic");
    write(&dynamic, "inv", "[local]\nhere ansible_connection=local\n");
    write(
        &dynamic,
        "pb.yml",
        "- hosts: all\n  gather_facts: false\n  roles: [r1]\n",
    );
    write(
        &dynamic,
        "roles/r1/tasks/main.yml",
        "- debug: msg=r1\n- include_tasks: \"{{ 'more.yml' }}\"\n",
    );
    write(
        &dynamic,
        "roles/r1/tasks/more.yml",
        "- include_role: name=r2\n",
    );
    write(
        &dynamic,
        "roles/r2/tasks/main.yml",
        "- debug: msg=r2\n- include_role: name=r1\n",
    );
    let a = run(&dynamic, &["run", "-i", "inv", "pb.yml"]).code(2);
    let out = String::from_utf8_lossy(&a.get_output().stdout).to_string();
    assert!(
        out.contains("roles/r2/tasks/main.yml:2:") && out.contains("r1 -> r2 -> r1"),
        "{out}"
    );
    assert_eq!(out.matches("\"msg\": \"r1\"").count(), 1, "{out}");
}

/// meta/main.yml dependencies run before their role, each role (with the same params) once
/// per play unless it allows duplicates, their handlers join the play's; checked against
/// ansible-playbook 2.19 on the same files.
#[test]
fn role_dependencies_run_first_and_once_per_play() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    write(p, "inv", "[local]\nhere ansible_connection=local\n");
    write(p, "roles/web/tasks/main.yml", "- debug: msg=web\n");
    write(
        p,
        "roles/web/meta/main.yml",
        "dependencies:\n  - common\n  - twice\n",
    );
    write(p, "roles/db/tasks/main.yml", "- debug: msg=db\n");
    write(
        p,
        "roles/db/meta/main.yml",
        "dependencies:\n  - role: common\n  - role: common\n    vars:\n      x: 2\n  - twice\n",
    );
    write(
        p,
        "roles/common/tasks/main.yml",
        "- debug: msg=\"common {{ x | default(0) }} {{ common_default }}\"\n  changed_when: true\n  notify: h\n",
    );
    write(p, "roles/common/defaults/main.yml", "common_default: cd\n");
    write(
        p,
        "roles/common/handlers/main.yml",
        "- name: h\n  debug: msg=handler\n",
    );
    write(p, "roles/twice/tasks/main.yml", "- debug: msg=twice\n");
    write(p, "roles/twice/meta/main.yml", "allow_duplicates: true\n");
    write(
        p,
        "pb.yml",
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - debug: msg=\"play sees {{ common_default }}\"\n  roles: [web, db, common]\n",
    );
    let a = Command::cargo_bin("darkport")
        .unwrap()
        .current_dir(p)
        .args(["run", "-i", "inv", "pb.yml"])
        .assert()
        .code(0);
    let out = String::from_utf8_lossy(&a.get_output().stdout).to_string();
    let msgs: Vec<&str> = out
        .lines()
        .filter_map(|l| l.trim().strip_prefix("\"msg\": \""))
        .map(|l| l.trim_end_matches("\","))
        .collect();
    assert_eq!(
        msgs,
        [
            "common 0 cd",
            "twice",
            "web",
            "common 2 cd",
            "twice",
            "db",
            "play sees cd",
            "handler"
        ],
        "{out}"
    );
}

/// The play keyword `connection: local` runs the play on the controller, as ansible-playbook
/// does, for a host the inventory reaches over SSH at an address where nothing listens; a
/// host's own `ansible_connection` still wins over the keyword.
#[test]
fn play_connection_keyword_runs_locally() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "inv", UNREACHABLE_INV);
    let out = d.path().join("out.txt");
    write(
        d.path(),
        "pb.yml",
        &format!(
            "- hosts: all\n  connection: \"{{{{ 'lo' + 'cal' }}}}\"\n  gather_facts: false\n  tasks:\n    - copy: {{content: \"x\\n\", dest: {}}}\n",
            out.display()
        ),
    );
    run_ok(d.path());
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "x\n");
    // ansible_connection=ssh on the host overrides the keyword: unreachable, exit 4.
    write(
        d.path(),
        "inv2",
        "[nodes]\nghost ansible_host=127.0.0.1 ansible_port=1 ansible_user=root ansible_connection=ssh\n",
    );
    Command::cargo_bin("darkport")
        .unwrap()
        .current_dir(d.path())
        .args(["run", "-i", "inv2", "pb.yml"])
        .assert()
        .code(4)
        .stdout(predicate::str::contains("UNREACHABLE"));
}

/// Every handler that `listen:`s to a notified topic runs, in definition order, and a handler
/// notified by a handler runs in the same flush (ansible-core 2.19 runs h1, h2, h3, h4 here).
#[test]
fn handlers_listening_to_one_topic_all_run() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "inv", UNREACHABLE_INV);
    write(
        d.path(),
        "pb.yml",
        r#"- hosts: all
  connection: local
  gather_facts: false
  tasks:
    - command: "true"
      notify: restart web stack
      changed_when: true
    - command: "true"
      notify: [h2]
      changed_when: true
  handlers:
    - name: h1
      debug: {msg: "h1 listens"}
      listen: restart web stack
    - name: h2
      command: "true"
      changed_when: true
      notify: h4
    - name: h3
      debug: {msg: "h3 listens"}
      listen: restart web stack
    - name: h4
      debug: {msg: "h4 notified by h2"}
    - name: h5
      debug: {msg: "never notified"}
"#,
    );
    let out = run_ok(d.path());
    let ran: Vec<&str> = out
        .lines()
        .filter_map(|l| l.strip_prefix("RUNNING HANDLER ["))
        .map(|l| l.split(']').next().unwrap())
        .collect();
    assert_eq!(ran, ["h1", "h2", "h3", "h4"], "{out}");
    assert!(out.contains("ok=6 ") && out.contains("changed=3 "), "{out}");
}

/// `with_fileglob` and `lookup`/`query('fileglob')`: the files (not directories) a relative
/// pattern matches under the playbook's `files/`, in the directory's own order (as Python's
/// glob gives them to Ansible); a pattern whose directory is nowhere gives nothing.
#[test]
fn fileglob_loops_and_lookups() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "inv", UNREACHABLE_INV);
    for f in ["b.conf", "a.conf", "c.txt", ".hidden.conf"] {
        write(d.path(), &format!("files/conf.d/{f}"), "x");
    }
    std::fs::create_dir_all(d.path().join("files/conf.d/sub.conf")).unwrap();
    write(
        d.path(),
        "pb.yml",
        r#"- hosts: all
  connection: local
  gather_facts: false
  tasks:
    - debug: {msg: "item={{ item | basename }}"}
      with_fileglob: ["conf.d/*.conf"]
    - debug: {msg: "lookup={{ lookup('fileglob', 'conf.d/*.conf') | replace(playbook_dir ~ '/files/conf.d/', '') }}"}
    - debug: {msg: "query={{ query('fileglob', 'nothere/*') | length }}"}
"#,
    );
    let out = run_ok(d.path());
    let order: Vec<String> = std::fs::read_dir(d.path().join("files/conf.d"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n == "a.conf" || n == "b.conf")
        .collect();
    let items: Vec<&str> = msgs(&out)
        .into_iter()
        .filter_map(|m| m.strip_prefix("item="))
        .collect();
    assert_eq!(items, order, "{out}");
    assert!(
        out.contains(&format!("\"msg\": \"lookup={}\"", order.join(","))),
        "{out}"
    );
    assert!(out.contains("\"msg\": \"query=0\""), "{out}");
}

/// `role_names` (the play's `roles:` entries as listed, dependencies left out) and
/// `loop_control: extended` (`ansible_loop` with previtem/nextitem/allitems, undefined
/// without it): the messages ansible-core 2.19 prints for the same files.
#[test]
fn role_names_and_extended_loops() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "inv", UNREACHABLE_INV);
    write(d.path(), "roles/r1/tasks/main.yml", "- debug: msg=r1\n");
    write(d.path(), "roles/r1/meta/main.yml", "dependencies: [r2]\n");
    write(d.path(), "roles/r2/tasks/main.yml", "- debug: msg=r2\n");
    write(
        d.path(),
        "pb.yml",
        r#"- hosts: all
  connection: local
  gather_facts: false
  roles: [r1, r1]
  tasks:
    - debug: {msg: "roles={{ role_names }}"}
    - debug: {msg: "{{ item }} idx={{ ansible_loop.index }} rev0={{ ansible_loop.revindex0 }} prev={{ ansible_loop.previtem | default('-') }} next={{ ansible_loop.nextitem | default('-') }} all={{ ansible_loop.allitems }}"}
      loop: [a, b, c]
      loop_control: {extended: yes}
    - debug: {msg: "plain defined={{ ansible_loop is defined }}"}
      loop: [x]
"#,
    );
    let out = run_ok(d.path());
    assert_eq!(
        msgs(&out),
        [
            "r2",
            "r1",
            "roles=['r1', 'r1']",
            "a idx=1 rev0=2 prev=- next=b all=['a', 'b', 'c']",
            "b idx=2 rev0=1 prev=a next=c all=['a', 'b', 'c']",
            "c idx=3 rev0=0 prev=b next=- all=['a', 'b', 'c']",
            "plain defined=False",
        ],
        "{out}"
    );
}

/// `dict(keys | zip(values))`, `zip_longest(…, fillvalue=)` and `product`: the values
/// ansible-core 2.19 prints for the same expressions.
#[test]
fn dict_zip_longest_and_product() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "inv", UNREACHABLE_INV);
    write(
        d.path(),
        "pb.yml",
        r#"- hosts: all
  connection: local
  gather_facts: false
  vars: {a: [1, 2, 3], b: [x, y, z]}
  tasks:
    - debug: {msg: "{{ dict(b | zip(a)) | to_json }} {{ dict({'k': 1}, v=2) | to_json }}"}
    - debug: {msg: "{{ a | product(b) | list | length }} {{ a | zip_longest([9], fillvalue=0) | list }} {{ [1] | product([2], [3]) | list }}"}
"#,
    );
    let out = run_ok(d.path());
    assert!(
        out.contains(r#""msg": "{\"x\": 1, \"y\": 2, \"z\": 3} {\"k\": 1, \"v\": 2}""#),
        "{out}"
    );
    assert!(
        out.contains(r#""msg": "9 [[1, 9], [2, 0], [3, 0]] [[1, 2, 3]]""#),
        "{out}"
    );
}

/// Facts ansible-core gathers that playbooks use: `ansible_env` (so `environment:` can put a
/// directory first in `PATH`), `ansible_date_time`, `ansible_userspace_bits`.
#[test]
fn gathered_env_date_time_and_bits() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "inv", UNREACHABLE_INV);
    write(
        d.path(),
        "pb.yml",
        r#"- hosts: all
  connection: local
  gather_facts: true
  tasks:
    - debug: {msg: "date={{ ansible_date_time.date == lookup('pipe', 'date +%Y-%m-%d') }} iso={{ ansible_date_time.iso8601 | length }} bits={{ ansible_userspace_bits in ['32', '64'] }} home={{ ansible_env.HOME == lookup('env', 'HOME') }}"}
    - command: sh -c 'echo $PATH'
      environment: {PATH: "/opt/first:{{ ansible_env.PATH }}"}
      register: p
    - debug: {msg: "path0={{ p.stdout.split(':')[0] }}"}
"#,
    );
    let out = run_ok(d.path());
    assert!(
        out.contains("\"msg\": \"date=True iso=20 bits=True home=True\""),
        "{out}"
    );
    assert!(out.contains("\"msg\": \"path0=/opt/first\""), "{out}");
}

/// The facts ansible-core 2.19's setup gives on this machine, checked the same way with both
/// tools: subsets (`!all` keeps only `min`, the play's `gather_subset` reaches the gathering),
/// `filter`, local facts (JSON, INI, an executable), mounts, devices, lsb and python, and the
/// two names of every fact (`ansible_x`, `ansible_facts.x`).
#[test]
fn facts_subsets_local_facts_mounts_and_devices() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "inv", UNREACHABLE_INV);
    let fd = d.path().join("facts.d");
    write(&fd, "j.fact", "{\"a\": 1, \"b\": [1, 2]}\n");
    write(&fd, "i.fact", "[sec]\nKey = v1\nother: two\n");
    write(&fd, "x.fact", "#!/bin/sh\necho '{\"x\": \"y\"}'\n");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(fd.join("x.fact"), std::fs::Permissions::from_mode(0o755)).unwrap();
    write(
        d.path(),
        "pb.yml",
        &format!(
            r#"- hosts: all
  connection: local
  gather_subset: ['!all']
  tasks:
    - debug: {{msg: "min mounts={{{{ ansible_mounts is defined }}}} lsb={{{{ ansible_lsb is mapping }}}} py={{{{ ansible_python.version.major | default(3) }}}} sub={{{{ ansible_facts.gather_subset }}}}"}}
    - setup: {{fact_path: "{fd}"}}
    - debug: {{msg: "local={{{{ ansible_local.j.b | sum }}}} {{{{ ansible_local.i.sec.key }}}} {{{{ ansible_local.i.sec.other }}}} {{{{ ansible_local.x.x }}}}"}}
    - debug: {{msg: "root={{{{ (ansible_mounts | selectattr('mount', 'eq', '/') | first).size_total > 0 }}}} devs={{{{ ansible_devices is mapping }}}} same={{{{ ansible_facts.hostname == ansible_hostname }}}} setup={{{{ module_setup }}}}"}}
    - setup: {{filter: [ansible_mounts, 'ansible_dis*']}}
      register: f
    - debug: {{msg: "filtered={{{{ f.ansible_facts.keys() | sort | join(',') }}}}"}}
"#,
            fd = fd.display()
        ),
    );
    let out = run_ok(d.path());
    let m = msgs(&out);
    assert_eq!(m[0], "min mounts=False lsb=True py=3 sub=['!all']", "{out}");
    assert_eq!(m[1], "local=3 v1 two y", "{out}");
    assert_eq!(m[2], "root=True devs=True same=True setup=True", "{out}");
    assert_eq!(
        m[3],
        "filtered=ansible_distribution,ansible_distribution_file_parsed,ansible_distribution_file_path,ansible_distribution_file_variety,ansible_distribution_major_version,ansible_distribution_minor_version,ansible_distribution_release,ansible_distribution_version,ansible_mounts",
        "{out}"
    );
}

/// `module_defaults` on the play and on a block (short and `ansible.builtin.` names), under
/// the task's own arguments: the modes ansible-core 2.19 leaves for the same playbook.
#[test]
fn module_defaults_fill_in_arguments() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "inv", UNREACHABLE_INV);
    let o = d.path().join("out");
    write(
        d.path(),
        "pb.yml",
        &format!(
            r#"- hosts: all
  connection: local
  gather_facts: false
  module_defaults:
    file: {{mode: "0700"}}
    ansible.builtin.copy: {{mode: "0600"}}
  tasks:
    - file: {{path: {o}/d, state: directory}}
    - copy: {{content: "x", dest: {o}/f}}
    - copy: {{content: "y", dest: {o}/g, mode: "0644"}}
    - block:
        - copy: {{content: "z", dest: {o}/h}}
      module_defaults:
        copy: {{mode: "0640"}}
"#,
            o = o.display()
        ),
    );
    std::fs::create_dir_all(&o).unwrap();
    run_ok(d.path());
    use std::os::unix::fs::PermissionsExt;
    let mode = |n: &str| std::fs::metadata(o.join(n)).unwrap().permissions().mode() & 0o7777;
    assert_eq!(
        [mode("d"), mode("f"), mode("g"), mode("h")],
        [0o700, 0o600, 0o644, 0o640]
    );
}

/// Template files: the `#jinja2:` header, the module's `newline_sequence`, the final newline
/// put back, values' newlines kept; YAML string templates keep `\1` in `{{ … }}` literals.
/// The expected bytes were taken from ansible-core 2.19 rendering the same files.
#[test]
fn template_headers_newlines_and_backrefs() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "inv", UNREACHABLE_INV);
    let o = d.path().join("out");
    std::fs::create_dir_all(&o).unwrap();
    write(
        d.path(),
        "templates/hdr.j2",
        "#jinja2: trim_blocks: False, newline_sequence: '\\r'\nA\n{% if 1 %}\nB\n{% endif %}\n",
    );
    write(
        d.path(),
        "templates/multi.j2",
        "{% macro m(a) %}\n<{{ a }}>\n{% endmacro %}\nM {{ m(1) }}\nV {{ ml }}\n",
    );
    write(
        d.path(),
        "templates/inc.j2",
        "{% from 'mac.j2' import kv %}{{ kv('a') }}|{% include ['nope.j2', 'part.j2'] %}|{% include 'x.j2' ignore missing %}\n",
    );
    write(
        d.path(),
        "templates/mac.j2",
        "{% macro kv(k, v='d') %}{{ k }}={{ v }}{% endmacro %}",
    );
    write(d.path(), "templates/part.j2", "part\n");
    write(
        d.path(),
        "pb.yml",
        &format!(
            r#"- hosts: all
  connection: local
  gather_facts: false
  vars: {{s: "hello world foo", ml: "l1\nl2\n"}}
  tasks:
    - template: {{src: hdr.j2, dest: {o}/hdr}}
    - template: {{src: multi.j2, dest: {o}/crlf, newline_sequence: '\r\n'}}
    - template: {{src: inc.j2, dest: {o}/inc}}
    - debug: {{msg: "D1 {{{{ s | regex_replace('(\\w+) (\\w+)', '\\2 \\1') }}}}"}}
    - debug: {{msg: "D3 {{{{ s | regex_search('(\\w+) (?P<w>\\w+)', '\\1', '\\g<w>') }}}}"}}
"#,
            o = o.display()
        ),
    );
    let out = run_ok(d.path());
    let read = |n: &str| std::fs::read(o.join(n)).unwrap();
    assert_eq!(read("hdr"), b"A\r\rB\r\n");
    assert_eq!(read("crlf"), b"M <1>\r\n\r\nV l1\nl2\n");
    assert_eq!(read("inc"), b"a=d|part|\n");
    assert!(msgs(&out).contains(&"D1 world hello foo"), "{out}");
    assert!(msgs(&out).contains(&"D3 ['hello', 'world']"), "{out}");
}

/// lineinfile with a look-ahead regexp and with backrefs, and `backup: yes`: the bytes and
/// the backup name ansible-core 2.19 produced for the same playbook on this machine.
#[test]
fn lineinfile_lookahead_backrefs_and_backup() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "inv", UNREACHABLE_INV);
    write(d.path(), "look", "a=1\nb=2\nc=3\n");
    write(d.path(), "bref", "port 80\nhost x\n");
    let root = d.path().display();
    write(
        d.path(),
        "pb.yml",
        &format!(
            r#"- hosts: all
  connection: local
  gather_facts: false
  tasks:
    - lineinfile: {{path: "{root}/look", regexp: '^b(?!=9)', line: 'b=9', backup: yes}}
      register: r
    - debug: {{msg: "backup={{{{ r.backup | basename | regex_replace('[0-9]+', 'N') }}}}"}}
    - lineinfile: {{path: "{root}/bref", regexp: '^port (\d+)$', line: 'listen \1 \g<1>', backrefs: yes}}
"#
        ),
    );
    let out = run_ok(d.path());
    assert_eq!(
        std::fs::read_to_string(d.path().join("look")).unwrap(),
        "a=1\nb=9\nc=3\n"
    );
    assert_eq!(
        std::fs::read_to_string(d.path().join("bref")).unwrap(),
        "listen 80 80\nhost x\n"
    );
    assert_eq!(msgs(&out), ["backup=look.N.N-N-N@N:N:N~"], "{out}");
    let backups: Vec<_> = std::fs::read_dir(d.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with('~'))
        .collect();
    assert_eq!(backups.len(), 1);
    assert_eq!(
        std::fs::read_to_string(backups[0].path()).unwrap(),
        "a=1\nb=2\nc=3\n"
    );
}
