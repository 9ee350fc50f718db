//! Engine tests over `LocalTransport`: each "host" is the controller itself, working inside
//! its own temporary directory (`root` host variable).

use darkport::playbook::engine::{self, Connector, Event, HostSource, Reporter, RunOptions, Stats};
use darkport::playbook::model::Playbook;
use darkport::transport::{local::LocalTransport, Transport, TransportError};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

struct Hosts(Vec<(String, Map<String, Value>)>);

impl HostSource for Hosts {
    fn select(&self, pattern: &str) -> Result<Vec<String>, String> {
        Ok(self
            .0
            .iter()
            .map(|h| h.0.clone())
            .filter(|h| pattern == "all" || pattern.split(',').any(|p| p == h || p == "nodes"))
            .collect())
    }
    fn host_vars(&self, host: &str) -> Map<String, Value> {
        self.0
            .iter()
            .find(|h| h.0 == host)
            .map(|h| h.1.clone())
            .unwrap_or_default()
    }
    fn groups(&self) -> BTreeMap<String, Vec<String>> {
        let all: Vec<String> = self.0.iter().map(|h| h.0.clone()).collect();
        BTreeMap::from([("all".to_string(), all.clone()), ("nodes".to_string(), all)])
    }
    fn group_names(&self, _host: &str) -> Vec<String> {
        vec!["nodes".into()]
    }
    fn all_hosts(&self) -> Vec<String> {
        self.0.iter().map(|h| h.0.clone()).collect()
    }
}

struct Local;
impl Connector for Local {
    fn connect(
        &self,
        host: &str,
        vars: &Map<String, Value>,
    ) -> Result<Box<dyn Transport>, TransportError> {
        if vars.get("down").is_some() {
            return Err(TransportError::Unreachable {
                host: host.into(),
                msg: "test: down".into(),
            });
        }
        Ok(Box::new(LocalTransport::new(host)))
    }
}

#[derive(Default)]
struct Collect(Mutex<Vec<Value>>);
impl Reporter for Collect {
    fn event(&self, ev: Event<'_>) {
        let v = match ev {
            Event::TaskStart { name, handler } => json!({"task": name, "handler": handler}),
            Event::Result(r) => {
                json!({"host": r.host, "task": r.task, "status": r.status, "result": r.result, "ignored": r.ignored})
            }
            _ => return,
        };
        self.0.lock().unwrap().push(v);
    }
}

fn setup(pb: &str, files: &[(&str, &str)]) -> (tempfile::TempDir, std::path::PathBuf) {
    let d = tempfile::tempdir().unwrap();
    for (name, body) in files {
        let p = d.path().join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body).unwrap();
    }
    let p = d.path().join("site.yml");
    std::fs::write(&p, pb).unwrap();
    (d, p)
}

fn hosts(dir: &Path, n: usize) -> Hosts {
    Hosts(
        (0..n)
            .map(|i| {
                let root = dir.join(format!("node{i}"));
                std::fs::create_dir_all(&root).unwrap();
                let mut m = Map::new();
                m.insert("root".into(), json!(root.display().to_string()));
                (format!("node{i}"), m)
            })
            .collect(),
    )
}

fn run(p: &Path, h: &Hosts, opts: RunOptions) -> (BTreeMap<String, Stats>, Vec<Value>) {
    let pb = Playbook::load(p).unwrap();
    let rep = Collect::default();
    let s = engine::run(&pb, h, &Local, &RunOptions { forks: 5, ..opts }, &rep);
    (s.stats, rep.0.into_inner().unwrap())
}

fn st(ok: u32, changed: u32, failed: u32, skipped: u32) -> Stats {
    Stats {
        ok,
        changed,
        failed,
        skipped,
        ..Default::default()
    }
}

const SITE: &str = r#"
- hosts: all
  gather_facts: no
  vars:
    app: demo
    ports: [80, 443]
    conf_dir: "{{ root }}/etc/{{ app }}"
  tasks:
    - name: directory
      file: path={{ conf_dir }} state=directory mode=0755
    - name: config from a template
      template: src=app.conf.j2 dest={{ conf_dir }}/app.conf mode=0640
      notify: reload app
    - name: static file
      copy:
        src: motd
        dest: "{{ root }}/motd"
    - name: one file per port
      copy:
        content: "port={{ item }}\n"
        dest: "{{ conf_dir }}/port-{{ item }}"
      loop: "{{ ports }}"
    - name: a line
      lineinfile:
        path: "{{ conf_dir }}/app.conf"
        line: "extra = yes"
    - name: probe
      stat: path={{ conf_dir }}/app.conf
      register: st
    - name: only when present
      command: "true"
      when: st.stat.exists and st.stat.mode == '0640'
      changed_when: false
    - name: never
      command: "false"
      when: app == 'other'
  handlers:
    - name: reload app
      shell: echo reloaded >> {{ root }}/handler.log
"#;

const TMPL: &str = "# {{ ansible_managed | default('x') }}\nname = {{ app }}\n{% for p in ports %}\nlisten = {{ p }}\n{% endfor %}\n";

#[test]
fn site_first_run_then_idempotent() {
    let (d, p) = setup(
        SITE,
        &[("templates/app.conf.j2", TMPL), ("files/motd", "hello\n")],
    );
    let h = hosts(d.path(), 3);
    let (stats, _) = run(&p, &h, RunOptions::default());
    for i in 0..3 {
        // directory, template, copy, loop, lineinfile, stat, command(ok), skipped, handler
        assert_eq!(stats[&format!("node{i}")], st(8, 6, 0, 1), "first run");
        let root = d.path().join(format!("node{i}"));
        let conf = std::fs::read_to_string(root.join("etc/demo/app.conf")).unwrap();
        assert_eq!(
            conf,
            "# Ansible managed\nname = demo\nlisten = 80\nlisten = 443\nextra = yes\n"
        );
        assert_eq!(
            std::fs::read_to_string(root.join("etc/demo/port-443")).unwrap(),
            "port=443\n"
        );
        assert_eq!(
            std::fs::read_to_string(root.join("handler.log")).unwrap(),
            "reloaded\n"
        );
        use std::os::unix::fs::PermissionsExt;
        let m = std::fs::metadata(root.join("etc/demo/app.conf"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(m & 0o777, 0o640);
    }
    let (stats, events) = run(&p, &h, RunOptions::default());
    // Second run: the template differs from the file (lineinfile added a line), so it is
    // rewritten and lineinfile changes again, exactly as Ansible would.
    assert_eq!(stats["node0"].failed, 0);
    assert!(events
        .iter()
        .any(|e| e["task"] == "reload app" && e["handler"] == true));
}

#[test]
fn idempotent_rerun_reports_no_change() {
    let pb = r#"
- hosts: all
  gather_facts: false
  tasks:
    - file: path={{ root }}/d state=directory
    - copy: content="x\n" dest={{ root }}/d/x mode=0600
    - lineinfile: path={{ root }}/d/cfg line="a=1" create=yes
    - blockinfile: path={{ root }}/d/cfg block="b=2"
    - file: path={{ root }}/d/link src={{ root }}/d/x state=link
"#;
    let (d, p) = setup(pb, &[]);
    let h = hosts(d.path(), 2);
    let (s1, _) = run(&p, &h, RunOptions::default());
    assert_eq!(s1["node1"], st(5, 5, 0, 0));
    let (s2, _) = run(&p, &h, RunOptions::default());
    assert_eq!(s2["node1"], st(5, 0, 0, 0));
    // Check mode after a manual change reports the change but does not make it.
    std::fs::write(d.path().join("node0/d/x"), "y\n").unwrap();
    let (s3, _) = run(
        &p,
        &h,
        RunOptions {
            check: true,
            diff: true,
            ..Default::default()
        },
    );
    assert_eq!(s3["node0"], st(5, 1, 0, 0));
    assert_eq!(
        std::fs::read_to_string(d.path().join("node0/d/x")).unwrap(),
        "y\n"
    );
}

#[test]
fn blocks_rescue_always_and_ignore_errors() {
    let pb = r#"
- hosts: all
  gather_facts: false
  tasks:
    - block:
        - command: /bin/false
        - command: echo not reached
      rescue:
        - set_fact: rescued=yes
      always:
        - shell: echo always > {{ root }}/always
    - command: /bin/false
      ignore_errors: true
      register: r
    - assert:
        that:
          - rescued | bool
          - r is failed
          - r.rc == 1
    - debug: msg="{{ undefined_thing }}"
      when: inventory_hostname == 'node1'
"#;
    let (d, p) = setup(pb, &[]);
    let h = hosts(d.path(), 2);
    let (s, events) = run(&p, &h, RunOptions::default());
    assert_eq!(
        s["node0"],
        Stats {
            ok: 4,
            changed: 2,
            failed: 0,
            skipped: 1,
            rescued: 1,
            ignored: 1,
            unreachable: 0
        }
    );
    assert_eq!(s["node1"].failed, 1);
    let undefined = events
        .iter()
        .find(|e| {
            e["host"] == "node1" && e["status"] == "failed" && e["task"] == "ansible.builtin.debug"
        })
        .unwrap();
    let msg = undefined["result"]["msg"].as_str().unwrap();
    assert!(
        msg.contains("site.yml:20") && msg.contains("'undefined_thing' is undefined"),
        "{msg}"
    );
    assert!(d.path().join("node0/always").exists());
}

#[test]
fn unreachable_host_is_reported_and_others_continue() {
    let pb = "- hosts: all\n  gather_facts: false\n  tasks:\n    - command: echo hi\n    - command: echo again\n";
    let (d, p) = setup(pb, &[]);
    let mut h = hosts(d.path(), 2);
    h.0[1].1.insert("down".into(), json!(true));
    let (s, _) = run(&p, &h, RunOptions::default());
    assert_eq!(s["node0"], st(2, 2, 0, 0));
    assert_eq!(s["node1"].unreachable, 1);
}

#[test]
fn facts_loops_tags_run_once_and_precedence() {
    let pb = r#"
- hosts: all
  vars:
    who: play
  roles:
    - role: base
  tasks:
    - name: facts are there
      assert:
        that:
          - ansible_architecture is defined
          - ansible_facts.os_family is string
          - ansible_processor_vcpus | int > 0
    - name: run once
      shell: echo {{ inventory_hostname }} >> {{ root }}/../once.log
      run_once: true
    - name: tagged
      command: echo t
      tags: [special]
    - name: precedence
      copy:
        content: "{{ who }} {{ role_default }} {{ extra }}"
        dest: "{{ root }}/who"
    - name: with_dict
      debug: msg="{{ item.key }}={{ item.value }}"
      with_dict: {a: 1}
"#;
    let (d, p) = setup(
        pb,
        &[
            (
                "roles/base/tasks/main.yml",
                "- set_fact: from_role={{ role_default }}\n",
            ),
            (
                "roles/base/defaults/main.yml",
                "role_default: rd\nwho: role-default\n",
            ),
        ],
    );
    let h = hosts(d.path(), 3);
    let mut ev = Map::new();
    ev.insert("extra".into(), json!("ev"));
    let (s, _) = run(
        &p,
        &h,
        RunOptions {
            extra_vars: ev.clone(),
            skip_tags: vec!["special".into()],
            ..Default::default()
        },
    );
    assert_eq!(s["node2"].failed, 0, "{s:?}");
    assert_eq!(
        std::fs::read_to_string(d.path().join("node1/who")).unwrap(),
        "play rd ev"
    );
    assert_eq!(
        std::fs::read_to_string(d.path().join("once.log")).unwrap(),
        "node0\n"
    );
    // facts, set_fact, assert, run_once, copy, debug (tagged skipped entirely)
    assert_eq!(s["node0"].ok, 6);
    let (s, events) = run(
        &p,
        &h,
        RunOptions {
            extra_vars: ev,
            tags: vec!["special".into()],
            ..Default::default()
        },
    );
    assert_eq!(s["node0"].ok, 2, "facts + tagged task: {events:?}");
}

/// `delegate_to: localhost` runs on the controller only when the inventory does not define
/// `localhost`; an inventory entry's connection variables win, as in Ansible.
#[test]
fn delegation_to_localhost_follows_the_inventory() {
    let pb = r#"
- hosts: node0
  gather_facts: no
  tasks:
    - name: on the controller
      command: echo here
      delegate_to: "{{ target }}"
"#;
    let (d, p) = setup(pb, &[]);
    // Not in the inventory: the implicit local connection, for both spellings.
    for target in ["localhost", "127.0.0.1"] {
        let opts = RunOptions {
            extra_vars: json!({ "target": target }).as_object().unwrap().clone(),
            ..Default::default()
        };
        let (stats, _) = run(&p, &hosts(d.path(), 1), opts);
        assert_eq!(stats["node0"], st(1, 1, 0, 0), "delegate_to {target}");
    }
    // In the inventory (and unreachable through its variables): the connector is used.
    let mut h = hosts(d.path(), 1);
    let mut down = Map::new();
    down.insert("down".into(), json!(true));
    h.0.push(("localhost".into(), down));
    let opts = RunOptions {
        extra_vars: json!({ "target": "localhost" })
            .as_object()
            .unwrap()
            .clone(),
        ..Default::default()
    };
    let (stats, events) = run(&p, &h, opts);
    assert_eq!(stats["node0"].unreachable, 1, "{events:?}");
}

#[test]
fn delegated_tasks_retry_until_like_any_task() {
    // The second attempt finds the marker the first one left: until passes on attempt 2.
    let pb = r#"
- hosts: node0
  gather_facts: no
  tasks:
    - name: retried on the delegate
      shell: "test -f {{ marker }} || { touch {{ marker }}; exit 3; }"
      delegate_to: helper
      register: r
      until: r.rc == 0
      retries: 3
      delay: 0
    - assert:
        that:
          - r.attempts == 2
          - r.rc == 0
"#;
    let (d, p) = setup(pb, &[]);
    let mut h = hosts(d.path(), 1);
    h.0.push(("helper".into(), Map::new()));
    let marker = d.path().join("marker");
    let opts = RunOptions {
        extra_vars: json!({ "marker": marker.display().to_string() })
            .as_object()
            .unwrap()
            .clone(),
        ..Default::default()
    };
    let (stats, events) = run(&p, &h, opts);
    assert_eq!(stats["node0"].failed, 0, "{events:?}");
    assert_eq!(stats["node0"].ok, 2, "{events:?}");
    assert!(marker.exists());
}
