//! `darkport support-bundle`: from every reachable node, the darkport state, lock, registry
//! status, disk usage, OS/kernel/runtime versions and the last lines of the darkport and
//! container logs, secrets redacted, in ONE `tar.zst` with an `index.json`. A node that cannot
//! be reached is listed in the index with its error; it never stops the collection.

use crate::inventory::Inventory;
use crate::report::support::SupportReporter;
use crate::transport::{self, shell_quote, ConnSpec, ExecOpts, Transport, TransportError};
use anyhow::{bail, Context};
use serde_json::Value;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

/// Default `darkport_root` when the inventory sets none.
pub const DEFAULT_ROOT: &str = "/var/lib/darkport";
/// Exit code a collection script uses to say "not present on this node" (not an error).
const ABSENT: i32 = 3;
/// Bound on one collection command (a hung `docker logs` must not hang the whole bundle).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// At most this many containers' logs per runtime and node.
const MAX_CONTAINERS: usize = 200;

pub struct SupportOptions {
    pub inventory: Vec<PathBuf>,
    pub output: PathBuf,
    pub lines: usize,
    pub limit: Option<String>,
    pub containers: Option<String>,
    pub forks: usize,
    pub connect: ConnectOpts,
}

pub use crate::report::support::{
    FileEntry, NodeEntry, RedactionInfo, SupportIndex, SupportReport, Unreachable,
};
pub use crate::transport::ConnectOpts;

/// Variable names whose values are secrets.
pub fn is_secret_var(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    ["password", "pass", "secret", "token", "key_passphrase"]
        .iter()
        .any(|w| n.contains(w))
}

/// Replaces secret values, `Authorization:` header values and PEM private keys.
pub struct Redactor {
    values: Option<regex::bytes::Regex>,
    count: usize,
    auth: regex::bytes::Regex,
    pem: regex::bytes::Regex,
}

pub const REDACTED: &str = "[REDACTED]";

impl Redactor {
    pub fn new(secrets: &[String]) -> Redactor {
        let mut vals: Vec<String> = Vec::new();
        for s in secrets.iter().filter(|s| !s.is_empty()) {
            vals.push(s.clone());
            // The same value as it appears inside a JSON string.
            let j = serde_json::to_string(s).unwrap_or_default();
            let j = j.trim_matches('"').to_string();
            if j != *s {
                vals.push(j);
            }
        }
        vals.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
        vals.dedup();
        let count = secrets
            .iter()
            .filter(|s| !s.is_empty())
            .collect::<std::collections::BTreeSet<_>>()
            .len();
        let values = (!vals.is_empty()).then(|| {
            let alt: Vec<String> = vals.iter().map(|v| regex::escape(v)).collect();
            regex::bytes::Regex::new(&alt.join("|")).expect("escaped literals form a regex")
        });
        Redactor {
            values,
            count,
            auth: regex::bytes::Regex::new(
                r#"(?i)(\b(?:proxy-)?authorization\b["']?\s*[:=]\s*["']?)[^"'\r\n]*"#,
            )
            .unwrap(),
            // A key whose END line is missing (cut off by `tail`) is redacted to the end.
            pem: regex::bytes::Regex::new(
                r"(?s)-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----(?:.*?(-----END [A-Z0-9 ]*PRIVATE KEY-----)|.*)",
            )
            .unwrap(),
        }
    }

    pub fn secret_values(&self) -> usize {
        self.count
    }

    pub fn redact(&self, data: &[u8]) -> Vec<u8> {
        let mut out = match &self.values {
            Some(re) => re.replace_all(data, REDACTED.as_bytes()).into_owned(),
            None => data.to_vec(),
        };
        out = self
            .auth
            .replace_all(&out, format!("${{1}}{REDACTED}").as_bytes())
            .into_owned();
        self.pem
            .replace_all(&out, |c: &regex::bytes::Captures| {
                let kind = String::from_utf8_lossy(&c[1]).into_owned();
                let end = if c.get(2).is_some() {
                    format!("-----END {kind}PRIVATE KEY-----")
                } else {
                    String::new()
                };
                format!("-----BEGIN {kind}PRIVATE KEY-----\n{REDACTED}\n{end}").into_bytes()
            })
            .into_owned()
    }
}

/// Every secret value of the inventory: values of secret-named variables of every host (all
/// groups' variables reach some host; nested mappings and lists are searched too), plus the
/// key passphrase from the environment.
fn inventory_secrets(inv: &Inventory) -> (Vec<String>, Vec<String>) {
    fn walk(name: &str, v: &Value, secret: bool, vals: &mut Vec<String>, names: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    walk(k, x, secret || is_secret_var(k), vals, names);
                }
            }
            Value::Array(a) => a.iter().for_each(|x| walk(name, x, secret, vals, names)),
            Value::Null => {}
            Value::String(s) if secret => {
                vals.push(s.clone());
                names.push(name.to_string());
            }
            other if secret => {
                vals.push(other.to_string());
                names.push(name.to_string());
            }
            _ => {}
        }
    }
    let mut vals = Vec::new();
    let mut names = Vec::new();
    for h in inv.hosts() {
        let vars = Value::Object(inv.host_vars(&h));
        walk("", &vars, false, &mut vals, &mut names);
    }
    if let Ok(p) = std::env::var("DARKPORT_SSH_KEY_PASSPHRASE") {
        vals.push(p);
        names.push("DARKPORT_SSH_KEY_PASSPHRASE".into());
    }
    names.sort();
    names.dedup();
    vals.sort();
    vals.dedup();
    (vals, names)
}

/// A name usable as one path component inside the tar.
fn component(s: &str) -> String {
    let c: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let c = c.trim_start_matches('.').to_string();
    if c.is_empty() {
        "_".into()
    } else {
        c
    }
}

/// What one node gave.
struct NodeData {
    entry: NodeEntry,
    contents: Vec<(String, Vec<u8>)>,
}

struct Collector<'a> {
    t: Box<dyn Transport>,
    opts: ExecOpts,
    data: NodeData,
    lost: bool,
    redactor: &'a Redactor,
}

impl Collector<'_> {
    /// Run `script`; store its stdout (stderr appended when it failed) as `path`.
    fn item(&mut self, path: &str, source: &str, script: &str) -> Option<Vec<u8>> {
        if self.lost {
            return None;
        }
        match self.t.exec(script, &self.opts) {
            Ok(o) if o.exit_code == ABSENT && o.stdout.is_empty() => {
                self.data.entry.absent.push(path.to_string());
                None
            }
            Ok(o) => {
                let mut body = o.stdout.clone();
                if !o.success() && !o.stderr.is_empty() {
                    body.extend_from_slice(b"\n--- stderr ---\n");
                    body.extend_from_slice(&o.stderr);
                }
                let body = self.redactor.redact(&body);
                self.data.entry.files.push(FileEntry {
                    path: path.to_string(),
                    source: source.to_string(),
                    bytes: body.len() as u64,
                    exit_code: o.exit_code,
                });
                self.data.contents.push((path.to_string(), body));
                Some(o.stdout)
            }
            Err(e) => {
                if e.is_unreachable() {
                    self.lost = true;
                    self.data.entry.status = "partial".into();
                }
                self.data.entry.errors.push(format!("{path}: {e}"));
                None
            }
        }
    }

    /// Run `script` for the collector itself (not stored); its stdout when it succeeded.
    fn query(&mut self, script: &str) -> Option<String> {
        if self.lost {
            return None;
        }
        match self.t.exec(script, &self.opts) {
            Ok(o) if o.success() => Some(o.stdout_str()),
            Ok(o) => {
                let msg = format!("`{script}` failed: {}", o.stderr_str().trim());
                self.data.entry.errors.push(msg);
                None
            }
            Err(e) => {
                if e.is_unreachable() {
                    self.lost = true;
                    self.data.entry.status = "partial".into();
                }
                self.data.entry.errors.push(format!("`{script}`: {e}"));
                None
            }
        }
    }

    fn file(&mut self, path: &str, remote: &str) -> Option<Vec<u8>> {
        let q = shell_quote(remote);
        self.item(
            path,
            remote,
            &format!("if [ -e {q} ]; then cat {q}; else exit {ABSENT}; fi"),
        )
    }
}

fn collect_node(
    t: Box<dyn Transport>,
    spec: &ConnSpec,
    root: &str,
    opts: &SupportOptions,
    container_re: Option<&regex::Regex>,
    redactor: &Redactor,
) -> NodeData {
    let exec = ExecOpts {
        timeout: Some(COMMAND_TIMEOUT),
        become_: spec.become_default.then(|| spec.become_.clone()),
        ..ExecOpts::default()
    };
    let host = spec.name.clone();
    let mut c = Collector {
        t,
        opts: exec,
        data: NodeData {
            entry: NodeEntry {
                host: host.clone(),
                address: format!("{}:{}", spec.host, spec.port),
                status: "collected".into(),
                darkport_root: root.to_string(),
                files: Vec::new(),
                absent: Vec::new(),
                errors: Vec::new(),
            },
            contents: Vec::new(),
        },
        lost: false,
        redactor,
    };
    let root = root.trim_end_matches('/');
    let r = shell_quote(root);
    let n = opts.lines;
    c.file("state.json", &format!("{root}/state.json"));
    c.file("lock-owner", &format!("{root}/lock/owner"));
    c.file(
        "registry-repositories.json",
        &format!("{root}/registry/repositories.json"),
    );
    c.item(
        "du-darkport-root.txt",
        &format!("du -sk {root}"),
        &format!("if [ -d {r} ]; then du -sk {r} 2>&1; else exit {ABSENT}; fi"),
    );
    c.item("df.txt", "df -Pk", "df -Pk 2>&1");
    c.item("uname.txt", "uname -a", "uname -a");
    c.file("os-release", "/etc/os-release");
    c.item(
        "runtimes.txt",
        "docker/podman/containerd versions, storage driver",
        r#"found=0
if command -v docker >/dev/null 2>&1; then found=1
  echo "== docker version"; docker version 2>&1
  echo "== docker storage driver"; docker info --format '{{.Driver}}' 2>&1; fi
if command -v podman >/dev/null 2>&1; then found=1
  echo "== podman version"; podman version 2>&1
  echo "== podman storage driver"; podman info --format '{{.Store.GraphDriverName}}' 2>&1; fi
if command -v containerd >/dev/null 2>&1; then found=1
  echo "== containerd version"; containerd --version 2>&1; fi
[ $found = 1 ] || exit 3"#,
    );
    c.item(
        "logs/journal-darkport.log",
        &format!("journalctl -u 'darkport-*' -n {n}"),
        &format!(
            "if [ -d /run/systemd/system ] && command -v journalctl >/dev/null 2>&1; then \
             journalctl --no-pager -o short-iso -n {n} -u 'darkport-*' 2>&1; else exit {ABSENT}; fi"
        ),
    );
    let log = format!("{root}/registry/serve.log");
    let ql = shell_quote(&log);
    c.item(
        "logs/registry-serve.log",
        &log,
        &format!("if [ -f {ql} ]; then tail -n {n} {ql}; else exit {ABSENT}; fi"),
    );
    for rt in ["docker", "podman"] {
        let ps = c.item(
            &format!("containers/{rt}-ps.txt"),
            &format!("{rt} ps -a"),
            &format!(
                "command -v {rt} >/dev/null 2>&1 || exit {ABSENT}; {rt} ps -a --no-trunc 2>&1"
            ),
        );
        if ps.is_none() {
            continue;
        }
        let Some(list) = c.query(&format!("{rt} ps -a --format '{{{{.Names}}}}'")) else {
            continue;
        };
        let mut seen = 0;
        for name in list.lines().map(str::trim).filter(|l| !l.is_empty()) {
            if container_re.is_some_and(|re| !re.is_match(name)) {
                continue;
            }
            seen += 1;
            if seen > MAX_CONTAINERS {
                c.data.entry.errors.push(format!(
                    "{rt}: more than {MAX_CONTAINERS} containers, the rest were left out"
                ));
                break;
            }
            c.item(
                &format!("containers/{rt}/{}.log", component(name)),
                &format!("{rt} logs --tail {n} {name}"),
                &format!(
                    "{rt} logs --timestamps --tail {n} {} 2>&1",
                    shell_quote(name)
                ),
            );
        }
    }
    c.data
}

/// Collect from every selected host and write the support bundle.
pub fn collect(opts: &SupportOptions, rep: &dyn SupportReporter) -> anyhow::Result<SupportReport> {
    let inv = Inventory::load(&opts.inventory)?;
    let hosts = inv
        .select_limited("all", opts.limit.as_deref())
        .context("selecting hosts")?
        .hosts;
    if hosts.is_empty() {
        match &opts.limit {
            Some(l) => bail!("--limit {l:?} matches no host of the inventory"),
            None => bail!("the inventory has no hosts"),
        }
    }
    let container_re = opts
        .containers
        .as_deref()
        .map(regex::Regex::new)
        .transpose()
        .context("--containers is not a valid regular expression")?;
    let (secrets, secret_names) = inventory_secrets(&inv);
    let redactor = Redactor::new(&secrets);

    let mut unreachable = Vec::new();
    let mut specs = Vec::new();
    for h in &hosts {
        let vars = inv.host_vars(h);
        let root = match vars.get("darkport_root") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            _ => DEFAULT_ROOT.to_string(),
        };
        match crate::inventory::connvars::conn_spec(h, &vars) {
            Ok(s) => specs.push((s, root)),
            Err(e) => unreachable.push(Unreachable {
                host: h.clone(),
                address: String::new(),
                error: redact_str(&redactor, &e.to_string()),
            }),
        }
    }
    rep.start(specs.len() as u64);
    let only_specs: Vec<ConnSpec> = specs.iter().map(|(s, _)| s.clone()).collect();
    let results = transport::for_each_host(&only_specs, opts.forks.max(1), |spec| {
        let root = &specs.iter().find(|(s, _)| s.name == spec.name).unwrap().1;
        let r = transport::connect(spec, &opts.connect)
            .map(|t| collect_node(t, spec, root, opts, container_re.as_ref(), &redactor));
        match &r {
            Ok(d) => rep.node_done(&format!("{}: {} files", spec.name, d.entry.files.len())),
            Err(e) => rep.node_done(&format!("{}: unreachable: {e}", spec.name)),
        }
        r
    });
    rep.finish();

    let mut nodes = Vec::new();
    let mut contents: Vec<(String, Vec<u8>)> = Vec::new();
    for ((spec, _), (_, r)) in specs.iter().zip(results) {
        match r {
            Ok(mut d) => {
                let dir = format!("nodes/{}", component(&spec.name));
                for f in &mut d.entry.files {
                    f.path = format!("{dir}/{}", f.path);
                }
                for (p, body) in d.contents {
                    contents.push((format!("{dir}/{p}"), body));
                }
                d.entry.errors = d
                    .entry
                    .errors
                    .iter()
                    .map(|e| redact_str(&redactor, e))
                    .collect();
                nodes.push(d.entry);
            }
            Err(e) => unreachable.push(Unreachable {
                host: spec.name.clone(),
                address: format!("{}:{}", spec.host, spec.port),
                error: redact_str(&redactor, &unreachable_msg(&e)),
            }),
        }
    }
    // Inventory order for the unreachable list too.
    unreachable.sort_by_key(|u| hosts.iter().position(|h| *h == u.host));

    let index = SupportIndex {
        format: 1,
        tool: format!("darkport {}", env!("CARGO_PKG_VERSION")),
        created: crate::state::now(),
        inventory: opts.inventory.clone(),
        lines: opts.lines,
        redaction: RedactionInfo {
            variables: secret_names,
            secret_values: redactor.secret_values(),
            patterns: vec![
                "Authorization header values".into(),
                "PEM private keys".into(),
            ],
        },
        nodes,
        unreachable,
    };
    let index_json = redactor.redact(&serde_json::to_vec_pretty(&index)?);
    let bundle_bytes = write_tar_zst(&opts.output, &index_json, &contents)
        .with_context(|| format!("writing the support bundle {}", opts.output.display()))?;
    Ok(SupportReport {
        output: opts.output.clone(),
        bundle_bytes,
        index,
    })
}

fn unreachable_msg(e: &TransportError) -> String {
    e.to_string()
}

fn redact_str(r: &Redactor, s: &str) -> String {
    String::from_utf8_lossy(&r.redact(s.as_bytes())).into_owned()
}

fn write_tar_zst(
    path: &std::path::Path,
    index: &[u8],
    contents: &[(String, Vec<u8>)],
) -> anyhow::Result<u64> {
    let tmp = path.with_extension("part");
    let f = std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let enc = zstd::Encoder::new(std::io::BufWriter::new(f), 10)?;
    let mut tar = tar::Builder::new(enc);
    let mtime = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut add = |name: &str, data: &[u8]| -> std::io::Result<()> {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(mtime);
        h.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut h, name, data)
    };
    add("index.json", index)?;
    for (p, body) in contents {
        add(p, body)?;
    }
    let enc = tar.into_inner()?;
    let mut w = enc.finish()?;
    w.flush()?;
    let f = w.into_inner().map_err(|e| e.into_error())?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)
        .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
    Ok(std::fs::metadata(path)?.len())
}

/// Default output name: `darkport-support-<UTC time>.tar.zst`.
pub fn default_output() -> PathBuf {
    let t: String = crate::state::now()
        .chars()
        .filter(|c| *c != '-' && *c != ':')
        .collect();
    PathBuf::from(format!("darkport-support-{t}.tar.zst"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_names() {
        for n in [
            "ansible_become_password",
            "ansible_ssh_pass",
            "api_token",
            "DB_SECRET",
            "darkport_ssh_key_passphrase",
        ] {
            assert!(is_secret_var(n), "{n}");
        }
        for n in ["ansible_host", "ansible_user", "darkport_root"] {
            assert!(!is_secret_var(n), "{n}");
        }
    }

    #[test]
    fn redacts_values_headers_and_keys() {
        let r = Redactor::new(&["S3cret\"pw".into(), "tok-123".into(), String::new()]);
        assert_eq!(r.secret_values(), 2);
        let text = b"a S3cret\"pw b {\"p\": \"S3cret\\\"pw\"} tok-123\n\
Authorization: Bearer abc.def\n\
{\"Authorization\": \"Basic dXNlcjpwdw==\"}\n\
-----BEGIN OPENSSH PRIVATE KEY-----\nAAAAB3Nza\n-----END OPENSSH PRIVATE KEY-----\n\
tail -----BEGIN RSA PRIVATE KEY-----\nMIIEcut";
        let out = String::from_utf8(r.redact(text)).unwrap();
        for bad in [
            "S3cret",
            "tok-123",
            "abc.def",
            "dXNlcjpwdw",
            "AAAAB3Nza",
            "MIIEcut",
        ] {
            assert!(!out.contains(bad), "{bad} left in {out}");
        }
        assert!(out.contains("Authorization: [REDACTED]"), "{out}");
        assert!(out.contains("-----END OPENSSH PRIVATE KEY-----"), "{out}");
    }

    #[test]
    fn component_is_safe() {
        assert_eq!(component("../etc/x y"), "_etc_x_y");
        assert_eq!(component(""), "_");
        assert_eq!(component("node-1.example"), "node-1.example");
    }
}
