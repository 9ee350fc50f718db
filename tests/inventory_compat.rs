//! `darkport inventory` against the real `ansible-inventory` (ansible-core from PyPI, installed
//! by scripts/deps.sh) on every fixture under tests/fixtures/inventory/ok/: the `--list` JSON
//! must be equal once parsed, and the `--graph` text identical. The bad fixtures must be
//! rejected by both (Ansible told to fail on unparsed sources), except where darkport is
//! stricter on purpose (duplicate YAML keys).
//!
//! Without ansible-inventory the test fails when CI=true, and skips with a message otherwise.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/inventory")
}

fn ansible_inventory() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("ansible-inventory"))
        .find(|p| {
            p.is_file()
                && Command::new(p)
                    .arg("--version")
                    .output()
                    .map(|o| o.status.success())
                    .unwrap_or(false)
        })
}

fn need_ansible() -> Option<PathBuf> {
    match ansible_inventory() {
        Some(p) => Some(p),
        None if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("ansible-inventory is missing (CI=true): run scripts/deps.sh (pip install ansible-core)")
        }
        None => {
            eprintln!(
                "SKIP: ansible-inventory not found on PATH; install ansible-core (scripts/deps.sh)"
            );
            None
        }
    }
}

/// Run ansible-inventory quietly with its state in a private temp dir.
fn run_ansible(
    bin: &Path,
    home: &Path,
    cwd: &Path,
    args: &[String],
    extra_env: &[(&str, &str)],
) -> Output {
    let mut c = Command::new(bin);
    c.args(args)
        .current_dir(cwd)
        .env("ANSIBLE_HOME", home.join("ansible"))
        .env("ANSIBLE_LOCAL_TEMP", home.join("tmp"))
        .env("ANSIBLE_REMOTE_TEMP", home.join("rtmp"))
        .env("ANSIBLE_NOCOLOR", "1")
        .env("ANSIBLE_DEPRECATION_WARNINGS", "0")
        .env_remove("ANSIBLE_INVENTORY");
    for (k, v) in extra_env {
        c.env(k, v);
    }
    c.output().expect("run ansible-inventory")
}

fn run_darkport(cwd: &Path, args: &[String]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_darkport"))
        .arg("inventory")
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("run darkport")
}

fn json(out: &Output, who: &str, fixture: &str) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{who} failed on {fixture}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{who} printed no JSON for {fixture}: {e}"))
}

fn diff_report(a: &serde_json::Value, d: &serde_json::Value) -> String {
    let mut out = String::new();
    let (Some(am), Some(dm)) = (a.as_object(), d.as_object()) else {
        return format!("ansible: {a}\ndarkport: {d}");
    };
    let mut keys: Vec<&String> = am.keys().chain(dm.keys()).collect();
    keys.sort();
    keys.dedup();
    for k in keys {
        if k == "_meta" {
            let ah = &am[k]["hostvars"];
            let dh = dm
                .get(k)
                .map(|m| &m["hostvars"])
                .unwrap_or(&serde_json::Value::Null);
            if let (Some(ah), Some(dh)) = (ah.as_object(), dh.as_object()) {
                let mut hosts: Vec<&String> = ah.keys().chain(dh.keys()).collect();
                hosts.sort();
                hosts.dedup();
                for h in hosts {
                    if ah.get(h) != dh.get(h) {
                        out.push_str(&format!(
                            "  host {h}:\n    ansible:  {:?}\n    darkport: {:?}\n",
                            ah.get(h),
                            dh.get(h)
                        ));
                    }
                }
            }
        } else if am.get(k) != dm.get(k) {
            out.push_str(&format!(
                "  group {k}:\n    ansible:  {:?}\n    darkport: {:?}\n",
                am.get(k),
                dm.get(k)
            ));
        }
    }
    out
}

struct Job {
    fixture: String,
    cwd: PathBuf,
    args: Vec<String>,
}

struct JobOut {
    rc: i32,
    stdout: String,
    stderr: String,
}

/// Run all jobs through tests/fixtures/inventory/ansible_driver.py: one Python start-up,
/// one fork per job (a plain `ansible-inventory` costs ~0.5-1 s of CPU each).
/// `env` applies to the whole run: ansible-core reads its configuration at import time.
fn run_ansible_jobs(home: &Path, jobs: &[Job], env: &[(&str, &str)]) -> Vec<JobOut> {
    run_driver(home, jobs, env, "inventory")
}

/// Like [`run_ansible_jobs`] with another ansible CLI (`ansible` for `--list-hosts`).
fn run_ansible_jobs_cli(home: &Path, jobs: &[Job], cli: &str) -> Vec<JobOut> {
    run_driver(home, jobs, &[], cli)
}

fn run_driver(home: &Path, jobs: &[Job], env: &[(&str, &str)], cli: &str) -> Vec<JobOut> {
    let input = serde_json::Value::Array(
        jobs.iter()
            .map(|j| serde_json::json!({"cwd": j.cwd, "args": j.args, "cli": cli}))
            .collect(),
    );
    let mut cmd = Command::new("python3");
    cmd.envs(env.iter().copied());
    let mut child = cmd
        .arg(fixtures().join("ansible_driver.py"))
        .env("ANSIBLE_HOME", home.join("ansible"))
        .env("ANSIBLE_LOCAL_TEMP", home.join("tmp"))
        .env("ANSIBLE_REMOTE_TEMP", home.join("rtmp"))
        .env("ANSIBLE_NOCOLOR", "1")
        .env("ANSIBLE_DEPRECATION_WARNINGS", "0")
        .env_remove("ANSIBLE_INVENTORY")
        .env_remove("ANSIBLE_CONFIG")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start python3 ansible_driver.py");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(input.to_string().as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "ansible driver failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).expect("driver JSON");
    assert_eq!(v.len(), jobs.len());
    v.into_iter()
        .map(|r| JobOut {
            rc: r["rc"].as_i64().unwrap() as i32,
            stdout: r["stdout"].as_str().unwrap().to_string(),
            stderr: r["stderr"].as_str().unwrap().to_string(),
        })
        .collect()
}

fn parse_json(text: &str, who: &str, fixture: &str, stderr: &str) -> serde_json::Value {
    serde_json::from_str(text)
        .unwrap_or_else(|e| panic!("{who} printed no JSON for {fixture}: {e}\n{stderr}"))
}

fn fixture_args(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("args"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn list_and_graph_match_ansible_inventory() {
    let Some(bin) = need_ansible() else { return };
    let home = tempfile::tempdir().unwrap();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(fixtures().join("ok"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    assert!(
        dirs.len() >= 10,
        "expected at least 10 fixtures, found {}",
        dirs.len()
    );

    let mut jobs = Vec::new();
    for dir in &dirs {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let args = fixture_args(dir);
        let mut list = args.clone();
        list.push("--list".into());
        jobs.push(Job {
            fixture: name.clone(),
            cwd: dir.clone(),
            args: list,
        });
        if !args.iter().any(|a| a == "--limit") {
            let mut graph = args.clone();
            graph.push("--graph".into());
            jobs.push(Job {
                fixture: name,
                cwd: dir.clone(),
                args: graph,
            });
        }
    }
    let outs = run_ansible_jobs(home.path(), &jobs, &[]);

    // The driver must behave like the real command: check the first job against it.
    let real = run_ansible(&bin, home.path(), &jobs[0].cwd, &jobs[0].args, &[]);
    assert_eq!(
        json(&real, "ansible-inventory", &jobs[0].fixture),
        parse_json(
            &outs[0].stdout,
            "ansible driver",
            &jobs[0].fixture,
            &outs[0].stderr
        ),
        "the forking driver and the real ansible-inventory disagree"
    );

    let mut failures = Vec::new();
    for (job, a) in jobs.iter().zip(&outs) {
        if a.rc != 0 {
            failures.push(format!(
                "{}: ansible-inventory failed: {}",
                job.fixture, a.stderr
            ));
            continue;
        }
        let d = run_darkport(&job.cwd, &job.args);
        if job.args.iter().any(|x| x == "--graph") {
            let (ag, dg) = (
                a.stdout.trim_end(),
                String::from_utf8_lossy(&d.stdout).trim_end().to_string(),
            );
            if !d.status.success() || ag != dg {
                failures.push(format!(
                    "{}: --graph differs\n--- ansible\n{ag}\n--- darkport\n{dg}\n{}",
                    job.fixture,
                    String::from_utf8_lossy(&d.stderr)
                ));
            }
        } else {
            let av = parse_json(&a.stdout, "ansible-inventory", &job.fixture, &a.stderr);
            let dv = json(&d, "darkport", &job.fixture);
            if av != dv {
                failures.push(format!(
                    "{}: --list differs\n{}",
                    job.fixture,
                    diff_report(&av, &dv)
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    eprintln!(
        "{} fixtures ({} runs) identical to ansible-inventory",
        dirs.len(),
        jobs.len()
    );
}

#[test]
fn bad_inventories_are_rejected_by_ansible_too() {
    if need_ansible().is_none() {
        return;
    }
    let home = tempfile::tempdir().unwrap();
    let dir = fixtures().join("bad");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert!(files.len() >= 10);
    let jobs: Vec<Job> = files
        .iter()
        .map(|f| Job {
            fixture: f.clone(),
            cwd: dir.clone(),
            args: vec!["-i".into(), f.clone(), "--list".into()],
        })
        .collect();
    let outs = run_ansible_jobs(
        home.path(),
        &jobs,
        &[("ANSIBLE_INVENTORY_UNPARSED_FAILED", "1")],
    );
    let mut failures = Vec::new();
    for (job, a) in jobs.iter().zip(&outs) {
        let d = run_darkport(&dir, &job.args);
        if d.status.code() != Some(1) {
            failures.push(format!("darkport did not exit 1 on {}", job.fixture));
        }
        // darkport is stricter than Ansible on purpose: duplicate YAML keys are errors.
        let ansible_should_fail = job.fixture != "duplicate-key.yml";
        if (a.rc != 0) != ansible_should_fail {
            failures.push(format!(
                "ansible-inventory {} {} (rc {}): {}",
                if ansible_should_fail {
                    "accepted"
                } else {
                    "rejected"
                },
                job.fixture,
                a.rc,
                a.stderr
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Host patterns (`hosts:` / `--limit`): the hosts and their order must be what
/// `ansible PATTERN --list-hosts` prints, and unmatched names warned about the same way.
#[test]
fn patterns_select_like_ansible() {
    if need_ansible().is_none() {
        return;
    }
    let home = tempfile::tempdir().unwrap();
    let dir = fixtures();
    let patterns = [
        "all",
        "*",
        "web",
        "web:db",
        "web,db",
        "db:web",
        "web:db:!web2",
        "web:&prod",
        "world:!staging",
        "!web",
        "&prod",
        "w*",
        "*1",
        "db?",
        "[wd]*1",
        "web[0]",
        "web[-1]",
        "web[1:]",
        "web[0:1]",
        "~^db",
        "~(web|db)[12]",
        "nope",
        "nope:web",
        "eu",
        "us:eu",
        "lone",
        "ungrouped",
        "weird-name.x",
        "odd.example.com",
        "web1,db2,cache1",
        "cache:web",
        "world",
        "prod:staging:&web",
        "web:!web1:!web3",
        "web[5]",
    ];
    let jobs: Vec<Job> = patterns
        .iter()
        .map(|p| Job {
            fixture: p.to_string(),
            cwd: dir.clone(),
            args: vec![
                p.to_string(),
                "-i".into(),
                "patterns.ini".into(),
                "--list-hosts".into(),
            ],
        })
        .collect();
    let outs = run_ansible_jobs_cli(home.path(), &jobs, "ansible");
    let inv = darkport::inventory::Inventory::load(&[dir.join("patterns.ini")]).unwrap();
    // Python walks grandchild groups through a set of Group objects (hashed by address), so
    // the order of hosts reached only through two levels of children is arbitrary there;
    // darkport uses discovery order. Compare those patterns as sets.
    let unordered = ["w*", "world"];
    // Ansible raises "No hosts matched the subscripted pattern" (ansible-inventory --limit
    // prints it as [ERROR]; `ansible --list-hosts` shows it as no hosts). darkport errors.
    let must_error = ["web[5]"];
    let mut failures = Vec::new();
    for (p, a) in patterns.iter().zip(&outs) {
        let mine = inv.select_with_warnings(p);
        if must_error.contains(p) {
            if mine.is_ok() || !a.stdout.contains("hosts (0)") {
                failures.push(format!(
                    "{p}: expected an error, got {mine:?} / ansible {}",
                    a.stdout
                ));
            }
            continue;
        }
        if a.rc != 0 {
            if mine.is_ok() {
                failures.push(format!(
                    "{p}: ansible failed ({}) but darkport selected {:?}",
                    a.stderr.trim(),
                    mine
                ));
            }
            continue;
        }
        let want: Vec<String> = a
            .stdout
            .lines()
            .skip(1)
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect();
        let want_warn: Vec<String> = a
            .stderr
            .lines()
            .filter_map(|l| l.strip_prefix("[WARNING]: "))
            .filter(|l| l.starts_with("Could not match"))
            .map(str::to_string)
            .collect();
        let same = |got: &[String]| {
            if unordered.contains(p) {
                let (mut g, mut w) = (got.to_vec(), want.clone());
                g.sort();
                w.sort();
                g == w
            } else {
                got == want
            }
        };
        match mine {
            Ok(sel) if same(&sel.hosts) && sel.warnings == want_warn => {}
            other => failures.push(format!(
                "{p}: ansible {want:?} {want_warn:?}, darkport {other:?}"
            )),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
