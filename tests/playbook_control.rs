//! Run control compared with ansible-playbook on several hosts: `run_once` (+ `delegate_to`)
//! counts and registered values, `serial` batches with `max_fail_percentage` and
//! `any_errors_fatal` (later batches and plays do not run once a batch has failed), rescue
//! under `any_errors_fatal`, a failed `run_once` task. The five inventory hosts of each side
//! are names for one fresh sshd node (ansible-playbook's node and darkport's differ); every
//! host writes its own file under `/srv/compat`, so the files, the recap of every host and
//! the exit status are compared.

mod support;
use support::nodes::Nodes;

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

const HOSTS: [&str; 5] = ["w1", "w2", "w3", "w4", "w5"];

/// run_once with and without delegate_to, registered and set_fact values shared, a skipped
/// run_once, then serial 2 with max_fail_percentage 40 crossed in the first batch.
const RUN_ONCE_SERIAL: &str = r#"
- hosts: web
  gather_facts: false
  tasks:
    - file: path=/srv/compat state=directory
      run_once: true
    - name: once
      command: echo once-{{ inventory_hostname }}
      run_once: true
      register: once
    - name: once delegated
      command: echo deleg-{{ inventory_hostname }}
      run_once: true
      delegate_to: w3
      register: deleg
    - shell: echo "{{ inventory_hostname }} once={{ once.stdout }} deleg={{ deleg.stdout }} changed={{ deleg.changed }}" >> /srv/compat/{{ inventory_hostname }}
    - debug: var=once.stdout
      run_once: true
    - set_fact:
        sf: "{{ inventory_hostname }}"
      run_once: true
    - shell: echo "sf={{ sf }}" >> /srv/compat/{{ inventory_hostname }}
    - command: echo x
      run_once: true
      when: inventory_hostname == 'w2'
      register: skipped_once
    - shell: echo "skipped={{ skipped_once is skipped }}" >> /srv/compat/{{ inventory_hostname }}
- hosts: web
  gather_facts: false
  serial: 2
  max_fail_percentage: 40
  tasks:
    - shell: echo "batch {{ inventory_hostname }}" >> /srv/compat/{{ inventory_hostname }}
    - fail: msg=boom
      when: inventory_hostname == 'w1'
    - shell: echo "after {{ inventory_hostname }}" >> /srv/compat/{{ inventory_hostname }}
- hosts: web
  gather_facts: false
  tasks:
    - shell: echo "third play {{ inventory_hostname }}" >> /srv/compat/{{ inventory_hostname }}
"#;

/// serial as a list (a batch where one host fails goes on), batches cut before failed
/// hosts are left out, any_errors_fatal with a rescued failure, a failed run_once task.
const FATAL_RESCUE: &str = r#"
- hosts: web
  gather_facts: false
  serial: [1, 2]
  tasks:
    - file: path=/srv/compat state=directory
    - shell: echo "p1 {{ inventory_hostname }}" >> /srv/compat/{{ inventory_hostname }}
    - fail: msg=boom
      when: inventory_hostname == 'w3'
    - shell: echo "p1 after {{ inventory_hostname }}" >> /srv/compat/{{ inventory_hostname }}
- hosts: web
  gather_facts: false
  any_errors_fatal: true
  serial: 2
  tasks:
    - shell: echo "p2 {{ inventory_hostname }}" >> /srv/compat/{{ inventory_hostname }}
    - block:
        - fail: msg=boom
          when: inventory_hostname == 'w4'
      rescue:
        - shell: echo "p2 rescued {{ inventory_hostname }}" >> /srv/compat/{{ inventory_hostname }}
    - shell: echo "p2 after {{ inventory_hostname }}" >> /srv/compat/{{ inventory_hostname }}
    - command: /bin/false
      run_once: true
      when: inventory_hostname == 'w5'
    - shell: echo "p2 end {{ inventory_hostname }}" >> /srv/compat/{{ inventory_hostname }}
- hosts: web
  gather_facts: false
  tasks:
    - shell: echo "p3 {{ inventory_hostname }}" >> /srv/compat/{{ inventory_hostname }}
"#;

/// Every file under `root`: relative path → (mode, content).
fn files(root: &Path) -> BTreeMap<String, (u32, String)> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = BTreeMap::new();
    if let Ok(rd) = std::fs::read_dir(root) {
        for e in rd.flatten() {
            let md = e.metadata().unwrap();
            let data = std::fs::read_to_string(e.path()).unwrap_or_default();
            out.insert(
                e.file_name().to_string_lossy().into_owned(),
                (md.permissions().mode() & 0o7777, data),
            );
        }
    }
    out
}

/// `host : ok=2 changed=1 …` of every host → counts.
fn ansible_recap(out: &str) -> BTreeMap<String, BTreeMap<String, u64>> {
    out.lines()
        .skip_while(|l| !l.starts_with("PLAY RECAP"))
        .filter(|l| l.contains("ok="))
        .filter_map(|l| {
            let host = l.split_whitespace().next()?.to_string();
            let counts = l
                .split_whitespace()
                .filter_map(|w| w.split_once('='))
                .filter_map(|(k, v)| v.parse().ok().map(|n| (k.to_string(), n)))
                .collect();
            Some((host, counts))
        })
        .collect()
}

/// The recap event of a darkport `--json` run.
fn darkport_recap(out: &str) -> BTreeMap<String, BTreeMap<String, u64>> {
    for l in out.lines() {
        if let Ok(v) = serde_json::from_str::<Value>(l) {
            if v["event"] == "recap" {
                return serde_json::from_value(v["stats"].clone()).unwrap();
            }
        }
    }
    BTreeMap::new()
}

fn have_ansible() -> bool {
    Command::new("ansible-playbook")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Run `playbook` with both tools (ansible-playbook on node 0, darkport on node 1) and
/// return the differences.
fn differences(nodes: &Nodes, work: &Path, name: &str, playbook: &str) -> Vec<String> {
    let pb = work.join(format!("{name}.yml"));
    std::fs::write(&pb, playbook).unwrap();
    let inv = |i: usize| {
        let a = nodes.addr(i);
        let mut s = String::from("[web]\n");
        for h in HOSTS {
            s += &format!(
                "{h} ansible_host={} ansible_port={} ansible_user=root ansible_ssh_private_key_file={} ansible_ssh_common_args='-o UserKnownHostsFile={} -o StrictHostKeyChecking=yes'\n",
                a.ip,
                a.port,
                nodes.key_path().display(),
                nodes.known_hosts_path().display()
            );
        }
        let p = work.join(format!("inv{i}"));
        std::fs::write(&p, s).unwrap();
        p
    };
    for i in 0..2 {
        nodes.exec_ok(i, "rm -rf /srv/compat");
    }
    let a = Command::new("ansible-playbook")
        .arg("-i")
        .arg(inv(0))
        .arg(&pb)
        .env("ANSIBLE_NOCOLOR", "1")
        .env("ANSIBLE_RETRY_FILES_ENABLED", "0")
        .env("ANSIBLE_PIPELINING", "1")
        .env("ANSIBLE_PYTHON_INTERPRETER", "/usr/bin/python3")
        .env("ANSIBLE_STDOUT_CALLBACK", "default")
        .output()
        .unwrap();
    let d = Command::new(env!("CARGO_BIN_EXE_darkport"))
        .arg("run")
        .arg("-i")
        .arg(inv(1))
        .arg(&pb)
        .arg("--json")
        .arg("--known-hosts")
        .arg(nodes.known_hosts_path())
        .output()
        .unwrap();
    let a_out = String::from_utf8_lossy(&a.stdout);
    let d_out = String::from_utf8_lossy(&d.stdout);
    let mut diffs = vec![];
    let (ra, rd) = (ansible_recap(&a_out), darkport_recap(&d_out));
    if ra.len() != HOSTS.len() {
        diffs.push(format!("{name}: no full ansible recap:\n{a_out}"));
    } else if ra != rd {
        diffs.push(format!("{name}: recap ansible {ra:?}\n   darkport {rd:?}"));
    }
    if a.status.code() != d.status.code() {
        diffs.push(format!(
            "{name}: exit ansible {:?} darkport {:?}",
            a.status.code(),
            d.status.code()
        ));
    }
    let (fa, fd) = (
        files(&nodes.node_root(0).join("srv/compat")),
        files(&nodes.node_root(1).join("srv/compat")),
    );
    if fa.is_empty() {
        diffs.push(format!("{name}: ansible-playbook wrote nothing:\n{a_out}"));
    }
    if fa != fd {
        diffs.push(format!("{name}: files ansible {fa:?}\n   darkport {fd:?}"));
    }
    diffs
}

#[test]
fn run_control_matches_ansible_playbook() {
    if !have_ansible() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "ansible-playbook (ansible-core) is required in CI"
        );
        eprintln!("SKIP: ansible-playbook not installed");
        return;
    }
    let nodes = Nodes::sshd(2);
    let work = tempfile::tempdir().unwrap();
    let mut diffs = differences(&nodes, work.path(), "run_once_serial", RUN_ONCE_SERIAL);
    diffs.extend(differences(
        &nodes,
        work.path(),
        "fatal_rescue",
        FATAL_RESCUE,
    ));
    assert!(diffs.is_empty(), "{}", diffs.join("\n\n"));
}
