//! `setup` / `gather_facts`: the facts Ansible's setup module gathers on Linux, in one round
//! trip (a shell script of builtins and a few tools; no Python needed on the node), as
//! `ansible_facts`. `gather_subset` (`all`, `min`, `hardware`, `network`, `!name`) picks the
//! groups as Ansible does (`min` always, unless `!min`); `filter` keeps the facts whose
//! `ansible_` name matches one of its globs; `fact_path` is where local facts are read
//! (`*.fact`: JSON or INI, or an executable printing either; default `/etc/ansible/facts.d`).

use super::facts_hw::{devices, mounts, HW_SCRIPT};
use super::{s, Args, ModCtx, ModError, ModResult};
use crate::transport::{shell_quote, Transport};
use serde_json::{json, Map, Value};
use std::collections::HashMap;

/// The minimal set (platform, distribution, user, env, date/time, lsb, python, selinux).
const MIN_SCRIPT: &str = r#"echo "hostname=$(hostname 2>/dev/null || cat /proc/sys/kernel/hostname)"
echo "fqdn=$(hostname -f 2>/dev/null || hostname)"
echo "arch=$(uname -m)"
echo "kernel=$(uname -r)"
echo "system=$(uname -s)"
[ -r /etc/os-release ] && sed -n 's/^\([A-Z_]*\)=["]\{0,1\}\([^"]*\)["]\{0,1\}$/os_\1=\2/p' /etc/os-release
[ -r /etc/debian_version ] && echo "debian_version=$(cat /etc/debian_version)"
[ -r /etc/redhat-release ] && echo "redhat_release=$(cat /etc/redhat-release)"
echo "user_id=$(id -un)"
echo "user_uid=$(id -u)"
echo "ids=$(id -u) $(id -g) $(id -ru) $(id -rg)"
command -v getent >/dev/null 2>&1 && getent passwd "$(id -un)" | sed -n 's/^/pw=/p'
echo "kernel_version=$(uname -v)"
[ -r /etc/machine-id ] && { read -r v < /etc/machine-id; echo "machine_id=$v"; }
[ -r /proc/sys/crypto/fips_enabled ] && { read -r v < /proc/sys/crypto/fips_enabled; echo "fips=$v"; }
[ -d /sys/kernel/security/apparmor ] && echo apparmor=1
[ -r /proc/cmdline ] && { read -r v < /proc/cmdline; echo "cmdline=$v"; }
[ -r /etc/resolv.conf ] && sed -n 's/^/dns=/p' /etc/resolv.conf
for k in dsa rsa ecdsa ed25519; do [ -r /etc/ssh/ssh_host_${k}_key.pub ] && { read -r t v _ < /etc/ssh/ssh_host_${k}_key.pub; echo "hostkey=$k $t $v"; }; done
echo "user_dir=$HOME"
echo "user_shell=$SHELL"
for m in apt-get dnf yum apk zypper pacman; do if command -v $m >/dev/null 2>&1; then echo "pkg_mgr=$m"; break; fi; done
if [ -d /run/systemd/system ]; then echo service_mgr=systemd; elif command -v rc-service >/dev/null 2>&1; then echo service_mgr=openrc; else echo service_mgr=sysvinit; fi
echo "date_epoch=$(date +%s)"
date '+dt_date=%Y-%m-%d%ndt_time=%H:%M:%S%ndt_year=%Y%ndt_month=%m%ndt_day=%d%ndt_hour=%H%ndt_minute=%M%ndt_second=%S%ndt_tz=%Z%ndt_tz_offset=%z%ndt_weekday=%A%ndt_weekday_number=%w%ndt_weeknumber=%W'
date -u '+dt_iso8601=%Y-%m-%dT%H:%M:%SZ'
echo "userspace_bits=$(getconf LONG_BIT 2>/dev/null)"
env | sed -n 's/^\([A-Za-z_][A-Za-z0-9_]*\)=/env_\1=/p'
if command -v lsb_release >/dev/null 2>&1; then lsb_release -a 2>/dev/null | sed -n 's/^/lsb_bin=/p'; fi
[ -r /etc/lsb-release ] && sed -n 's/^/lsb_file=/p' /etc/lsb-release
for p in /usr/bin/python3 python3 python /usr/libexec/platform-python; do
  if command -v $p >/dev/null 2>&1; then
    $p -c 'import sys
try:
    import ssl; s = hasattr(ssl, "SSLContext")
except Exception:
    s = False
v = sys.version_info
print("py=%s|%d|%d|%d|%s|%d|%s|%s" % (sys.executable, v[0], v[1], v[2], v[3], v[4], getattr(getattr(sys, "implementation", None), "name", "cpython"), s))' 2>/dev/null && break
  fi
done
if [ -r /sys/fs/selinux/enforce ]; then
  read -r e < /sys/fs/selinux/enforce; echo "se_enforce=$e"
  [ -r /sys/fs/selinux/policyvers ] && { read -r v < /sys/fs/selinux/policyvers; echo "se_policyvers=$v"; }
  [ -r /etc/selinux/config ] && sed -n 's/^SELINUX=/se_config=/p; s/^SELINUXTYPE=/se_type=/p' /etc/selinux/config
fi
"#;

/// The network set: the default route's address and every IPv4 address of the host.
const NET_SCRIPT: &str = r#"if command -v ip >/dev/null 2>&1; then
  ip -4 route get 1.0.0.0 2>/dev/null | awk '{for(i=1;i<=NF;i++){if($i=="src")print "ipv4_address="$(i+1); if($i=="dev")print "ipv4_interface="$(i+1); if($i=="via")print "ipv4_gateway="$(i+1)}}'
  ip -4 -o addr show 2>/dev/null | awk '{split($4, a, "/"); print "ipv4_all="a[1]}'
fi
"#;

/// Local facts: every `*.fact` in `$fp`, as `lf=NAME|x|OUTPUT-LINE` (executable, its output)
/// or `lf=NAME|f|LINE` (its content), `lf=NAME|e|RC` for a failing script.
const LOCAL_SCRIPT: &str = r#"if [ -d "$fp" ]; then
  for f in "$fp"/*.fact; do
    [ -e "$f" ] || continue; n=${f##*/}; n=${n%.fact}
    if [ -x "$f" ]; then o=$("$f" 2>/dev/null); rc=$?
      if [ $rc -ne 0 ]; then echo "lf=$n|e|$rc"; else printf '%s\n' "$o" | sed "s/^/lf=$n|x|/"; fi
    else sed "s/^/lf=$n|f|/" "$f"; fi
  done
fi
"#;

/// Which groups of facts `gather_subset` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Subset {
    pub min: bool,
    pub hardware: bool,
    pub network: bool,
}

/// `gather_subset` as given: a list, or a comma-separated string; `["all"]` when unset.
fn subset_names(v: Option<&Value>) -> Vec<String> {
    match v {
        None | Some(Value::Null) => vec!["all".into()],
        Some(Value::Array(a)) => a.iter().map(super::super::template::py_str).collect(),
        Some(v) => super::super::template::py_str(v)
            .split(',')
            .map(|x| x.trim().to_string())
            .collect(),
    }
}

/// Ansible's rules (`get_collector_names`): `min` first, then each name in order: `all` adds
/// every group, `!all` removes all but `min`, `!name` removes (an unknown one is ignored), a
/// name adds (an unknown one is an error) and wins over its own `!name`.
pub(super) fn subset(names: &[String]) -> Result<Subset, String> {
    const GROUPS: [&str; 6] = ["min", "hardware", "network", "virtual", "facter", "ohai"];
    let (mut add, mut drop, mut explicit) = (vec!["min"], Vec::new(), Vec::new());
    for n in names {
        match n.as_str() {
            "min" => add.push("min"),
            "all" => add.extend(GROUPS),
            "!min" => drop.push("min"),
            "!all" => drop.extend(&GROUPS[1..]),
            x if x.starts_with('!') => drop.push(&x[1..]),
            x => match GROUPS.iter().find(|g| **g == x) {
                Some(g) => {
                    add.push(g);
                    explicit.push(*g);
                }
                None => {
                    return Err(format!(
                        "gather_subset: {x:?} is not a subset darkport gathers (all, {})",
                        GROUPS.join(", ")
                    ))
                }
            },
        }
    }
    let on = |g: &str| add.contains(&g) && (!drop.contains(&g) || explicit.contains(&g));
    Ok(Subset {
        min: on("min"),
        hardware: on("hardware"),
        network: on("network"),
    })
}

pub fn setup(t: &mut dyn Transport, c: &ModCtx, a: &Args) -> ModResult {
    let names = subset_names(a.get("gather_subset"));
    let sub = subset(&names).map_err(ModError::Failed)?;
    let fact_path = s(a, "fact_path").unwrap_or_else(|| "/etc/ansible/facts.d".into());
    let mut script = String::new();
    if sub.min {
        script.push_str(MIN_SCRIPT);
        script.push_str(&format!("fp={}\n{LOCAL_SCRIPT}", shell_quote(&fact_path)));
    }
    if sub.network {
        script.push_str(NET_SCRIPT);
    }
    if sub.hardware {
        script.push_str(HW_SCRIPT);
    }
    let out = c.sh(t, &script)?.stdout_str();
    let mut facts = Map::new();
    let kv: HashMap<String, String> = out
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    if sub.min {
        facts.extend(min_facts(&kv, &out));
    }
    if sub.network {
        facts.extend(net_facts(&kv, &out));
    }
    if sub.hardware {
        facts.extend(hw_facts(&kv));
        facts.insert("mounts".into(), mounts(&out));
        let (devs, links) = devices(&out);
        facts.insert("devices".into(), devs);
        facts.insert("device_links".into(), links);
    }
    // As Ansible's setup returns them: every fact named `ansible_*`, then the two it leaves
    // bare (the engine injects both forms: `ansible_x` and `ansible_facts.x`).
    let mut facts: Map<String, Value> = facts
        .into_iter()
        .map(|(k, v)| (format!("ansible_{k}"), v))
        .collect();
    // Ansible echoes the subsets as given.
    facts.insert("gather_subset".into(), json!(names));
    facts.insert("module_setup".into(), json!(true));
    let facts = filtered(facts, a.get("filter"));
    Ok(super::obj(
        json!({"changed": false, "ansible_facts": facts}),
    ))
}

/// `filter`: the facts whose `ansible_NAME` matches one of the globs.
fn filtered(facts: Map<String, Value>, filter: Option<&Value>) -> Map<String, Value> {
    let globs: Vec<String> = match filter {
        None | Some(Value::Null) => return facts,
        Some(Value::Array(a)) => a.iter().map(super::super::template::py_str).collect(),
        Some(v) => super::super::template::py_str(v)
            .split(',')
            .map(|x| x.trim().to_string())
            .filter(|x| !x.is_empty())
            .collect(),
    };
    if globs.is_empty() {
        return facts;
    }
    let pats: Vec<glob::Pattern> = globs
        .iter()
        .filter_map(|g| glob::Pattern::new(g).ok())
        .collect();
    facts
        .into_iter()
        .filter(|(k, _)| pats.iter().any(|p| p.matches(k)))
        .collect()
}

fn min_facts(kv: &HashMap<String, String>, out: &str) -> Map<String, Value> {
    let g = |k: &str| kv.get(k).cloned().unwrap_or_default();
    let id = g("os_ID");
    let mut version = g("os_VERSION_ID");
    let deb = g("debian_version");
    if id == "debian" && deb.chars().next().is_some_and(|c| c.is_ascii_digit()) {
        version = deb;
    }
    let major = version.split('.').next().unwrap_or("").to_string();
    let hostname = g("hostname");
    let (python, py_version) = python(kv);
    let (selinux, _) = selinux(kv);
    let m = json!({
        "hostname": hostname.split('.').next().unwrap_or(&hostname),
        "nodename": hostname,
        "fqdn": g("fqdn"),
        "domain": g("fqdn").split_once('.').map(|x| x.1.to_string()).unwrap_or_default(),
        "architecture": g("arch"),
        "machine": g("arch"),
        "kernel": g("kernel"),
        "system": g("system"),
        "os_family": os_family(&id, &g("os_ID_LIKE")),
        "distribution": distribution(&id),
        "distribution_version": version,
        "distribution_major_version": major,
        "distribution_release": g("os_VERSION_CODENAME"),
        "distribution_file_parsed": !id.is_empty(),
        "distribution_file_path": if id.is_empty() { "" } else { "/etc/os-release" },
        "distribution_file_variety": os_family(&id, &g("os_ID_LIKE")),
        "user_id": g("user_id"),
        "user_uid": kv.get("user_uid").and_then(|v| v.parse::<i64>().ok()),
        "user_dir": g("user_dir"),
        "user_shell": g("user_shell"),
        "pkg_mgr": match g("pkg_mgr").as_str() { "apt-get" => "apt".to_string(), other => other.to_string() },
        "service_mgr": g("service_mgr"),
        "date_time": date_time(kv),
        "userspace_bits": g("userspace_bits"),
        "env": kv
            .iter()
            .filter_map(|(k, v)| k.strip_prefix("env_").map(|k| (k.to_string(), json!(v))))
            .collect::<Map<String, Value>>(),
        "lsb": lsb(out),
        "python": python,
        "python_version": py_version,
        "selinux": selinux,
        "selinux_python_present": true,
        "local": local(out),
    });
    let mut m = super::obj(m);
    m.extend(more_min_facts(kv, out, &version));
    m
}

/// The rest of Ansible's `min` subset: ids, gecos, kernel version, machine id, FIPS,
/// AppArmor, the kernel command line, DNS and the SSH host keys.
fn more_min_facts(kv: &HashMap<String, String>, out: &str, version: &str) -> Map<String, Value> {
    let g = |k: &str| kv.get(k).cloned().unwrap_or_default();
    let ids: Vec<i64> = g("ids").split(' ').filter_map(|x| x.parse().ok()).collect();
    let id = |i: usize| ids.get(i).copied().map(Value::from).unwrap_or(Value::Null);
    let pw: Vec<String> = g("pw").split(':').map(String::from).collect();
    let mut m = super::obj(json!({
        "effective_user_id": id(0), "effective_group_id": id(1),
        "real_user_id": id(2), "real_group_id": id(3), "user_gid": id(1),
        "user_gecos": pw.get(4).cloned().unwrap_or_default(),
        "kernel_version": g("kernel_version"),
        "distribution_minor_version": version.split('.').nth(1).unwrap_or(""),
        "userspace_architecture": g("arch"),
        "fips": g("fips").trim() == "1",
        "apparmor": {"status": if kv.contains_key("apparmor") { "enabled" } else { "disabled" }},
        "dns": dns(out),
    }));
    if let Some(v) = kv.get("machine_id") {
        m.insert("machine_id".into(), json!(v.trim()));
    }
    if let Some(c) = kv.get("cmdline") {
        let (last, all) = cmdline(c);
        m.insert("cmdline".into(), last);
        m.insert("proc_cmdline".into(), all);
    }
    for l in out.lines().filter_map(|l| l.strip_prefix("hostkey=")) {
        let f: Vec<&str> = l.split(' ').collect();
        if f.len() == 3 {
            m.insert(format!("ssh_host_key_{}_public", f[0]), json!(f[2]));
            m.insert(format!("ssh_host_key_{}_public_keytype", f[0]), json!(f[1]));
        }
    }
    m
}

/// `ansible_cmdline` (the last value of each word) and `ansible_proc_cmdline` (a list where a
/// word repeats); a bare word is `true`.
fn cmdline(c: &str) -> (Value, Value) {
    let (mut last, mut all) = (Map::new(), Map::new());
    for w in c.split_whitespace() {
        let (k, v) = match w.split_once('=') {
            Some((k, v)) => (k, json!(v)),
            None => (w, json!(true)),
        };
        last.insert(k.to_string(), v.clone());
        match all.get_mut(k) {
            Some(Value::Array(a)) => a.push(v),
            Some(old) => *old = json!([old.clone(), v]),
            None => {
                all.insert(k.to_string(), v);
            }
        }
    }
    (Value::Object(last), Value::Object(all))
}

/// `ansible_dns` from /etc/resolv.conf.
fn dns(out: &str) -> Value {
    let mut m = Map::new();
    for l in out.lines().filter_map(|l| l.strip_prefix("dns=")) {
        let f: Vec<&str> = l.split_whitespace().collect();
        let Some((&k, rest)) = f.split_first() else {
            continue;
        };
        match k {
            "nameserver" => {
                let e = m.entry("nameservers").or_insert_with(|| json!([]));
                if let (Value::Array(a), Some(v)) = (e, rest.first()) {
                    a.push(json!(v));
                }
            }
            "domain" => {
                m.insert("domain".into(), json!(rest.first().copied().unwrap_or("")));
            }
            "search" | "sortlist" => {
                m.insert(k.into(), json!(rest));
            }
            "options" => {
                let e = m.entry("options").or_insert_with(|| json!({}));
                for o in rest {
                    let (ok, ov) = match o.split_once(':') {
                        Some((a, b)) => (a, json!(b)),
                        None => (*o, json!(true)),
                    };
                    e[ok] = ov;
                }
            }
            _ => {}
        }
    }
    Value::Object(m)
}

fn net_facts(kv: &HashMap<String, String>, out: &str) -> Map<String, Value> {
    let g = |k: &str| kv.get(k).cloned().unwrap_or_default();
    let mut ipv4 = Map::new();
    if let Some(a) = kv.get("ipv4_address") {
        ipv4.insert("address".into(), json!(a));
        ipv4.insert("interface".into(), json!(g("ipv4_interface")));
        ipv4.insert("alias".into(), json!(g("ipv4_interface")));
        if let Some(gw) = kv.get("ipv4_gateway") {
            ipv4.insert("gateway".into(), json!(gw));
        }
    }
    let all: Vec<&str> = out
        .lines()
        .filter_map(|l| l.strip_prefix("ipv4_all="))
        .filter(|a| !a.starts_with("127."))
        .collect();
    super::obj(json!({"default_ipv4": ipv4, "all_ipv4_addresses": all}))
}

fn hw_facts(kv: &HashMap<String, String>) -> Map<String, Value> {
    let kb = |k: &str| kv.get(k).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0) / 1024;
    let vcpus = kv
        .get("vcpus")
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(1);
    super::obj(json!({
        "memtotal_mb": kb("memtotal_kb"),
        "memfree_mb": kb("memfree_kb"),
        "swaptotal_mb": kb("swaptotal_kb"),
        "processor_vcpus": vcpus,
        "processor_count": vcpus,
        "processor_cores": vcpus,
    }))
}

/// `ansible_lsb`: from `lsb_release -a`, else `/etc/lsb-release`; `{}` when neither.
fn lsb(out: &str) -> Value {
    let mut m = Map::new();
    let bin: Vec<&str> = out
        .lines()
        .filter_map(|l| l.strip_prefix("lsb_bin="))
        .collect();
    for l in &bin {
        let Some((k, v)) = l.split_once(':') else {
            continue;
        };
        let key = match k.trim() {
            "LSB Version" | "Release" => "release",
            "Distributor ID" => "id",
            "Description" => "description",
            "Codename" => "codename",
            _ => continue,
        };
        m.insert(key.into(), json!(v.trim()));
    }
    if m.is_empty() {
        for l in out.lines().filter_map(|l| l.strip_prefix("lsb_file=")) {
            let Some((k, v)) = l.split_once('=') else {
                continue;
            };
            let key = match k.trim() {
                "DISTRIB_ID" => "id",
                "DISTRIB_RELEASE" => "release",
                "DISTRIB_DESCRIPTION" => "description",
                "DISTRIB_CODENAME" => "codename",
                _ => continue,
            };
            m.insert(key.into(), json!(v.trim()));
        }
    }
    if let Some(r) = m.get("release").and_then(Value::as_str) {
        let major = r.split('.').next().unwrap_or("").to_string();
        m.insert("major_release".into(), json!(major));
    }
    for v in m.values_mut() {
        if let Some(s) = v.as_str() {
            *v = json!(s.trim_matches(|c| c == '"' || c == '\''));
        }
    }
    Value::Object(m)
}

/// `ansible_python` and `ansible_python_version` of the node's python3 (or python); an
/// empty object and "" where the node has none (darkport does not need it).
fn python(kv: &HashMap<String, String>) -> (Value, Value) {
    let Some(p) = kv.get("py") else {
        return (json!({}), json!(""));
    };
    let f: Vec<&str> = p.split('|').collect();
    if f.len() < 8 {
        return (json!({}), json!(""));
    }
    let n = |i: usize| f[i].parse::<i64>().unwrap_or(0);
    let v = json!({
        "executable": f[0],
        "has_sslcontext": f[7] == "True",
        "type": f[6],
        "version": {"major": n(1), "minor": n(2), "micro": n(3), "releaselevel": f[4], "serial": n(5)},
        "version_info": [n(1), n(2), n(3), f[4], n(5)],
    });
    (v, json!(format!("{}.{}.{}", n(1), n(2), n(3))))
}

/// `ansible_selinux` from the kernel's selinuxfs and /etc/selinux/config.
fn selinux(kv: &HashMap<String, String>) -> (Value, bool) {
    let Some(e) = kv.get("se_enforce") else {
        return (json!({"status": "disabled"}), false);
    };
    let mode = if e.trim() == "1" {
        "enforcing"
    } else {
        "permissive"
    };
    let g = |k: &str| {
        kv.get(k)
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| "unknown".into())
    };
    let policyvers = kv
        .get("se_policyvers")
        .and_then(|v| v.trim().parse::<i64>().ok())
        .map(Value::from)
        .unwrap_or_else(|| json!("unknown"));
    (
        json!({"status": "enabled", "mode": mode, "config_mode": g("se_config"), "type": g("se_type"), "policyvers": policyvers}),
        true,
    )
}

/// `ansible_local`: each fact file's JSON, else its INI sections, else the message Ansible
/// gives.
fn local(out: &str) -> Value {
    let mut texts: Vec<(String, String, String)> = Vec::new();
    for l in out.lines().filter_map(|l| l.strip_prefix("lf=")) {
        let mut it = l.splitn(3, '|');
        let (Some(n), Some(kind), rest) = (it.next(), it.next(), it.next().unwrap_or("")) else {
            continue;
        };
        match texts.iter_mut().find(|(name, _, _)| name == n) {
            Some((_, _, t)) => {
                t.push_str(rest);
                t.push('\n');
            }
            None => texts.push((n.into(), kind.into(), format!("{rest}\n"))),
        }
    }
    let mut m = Map::new();
    for (name, kind, text) in texts {
        let v = if kind == "e" {
            json!(format!(
                "Failure executing fact script ({name}.fact), rc: {}, err: ",
                text.trim()
            ))
        } else {
            match serde_json::from_str::<Value>(&text) {
                Ok(v) => v,
                Err(_) => ini_fact(&text).unwrap_or_else(|| {
                    json!(format!(
                        "error loading facts as JSON or ini - please check content: {name}.fact"
                    ))
                }),
            }
        };
        m.insert(name, v);
    }
    Value::Object(m)
}

/// An INI fact file as Python's ConfigParser reads it: sections of lower-cased keys with
/// string values (`=` or `:`, `#`/`;` comment lines); None if it is not INI.
fn ini_fact(text: &str) -> Option<Value> {
    let mut m = Map::new();
    let mut cur: Option<String> = None;
    for line in text.lines() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') || t.starts_with(';') {
            continue;
        }
        if let Some(sec) = t.strip_prefix('[').and_then(|x| x.strip_suffix(']')) {
            m.entry(sec.to_string()).or_insert_with(|| json!({}));
            cur = Some(sec.to_string());
            continue;
        }
        let sec = cur.as_ref()?;
        let i = t.find(['=', ':'])?;
        let (k, v) = (t[..i].trim().to_lowercase(), t[i + 1..].trim());
        m[sec.as_str()][k] = json!(v);
    }
    Some(Value::Object(m))
}

fn os_family(id: &str, like: &str) -> &'static str {
    let all = format!("{id} {like}");
    if id == "debian" || id == "ubuntu" || all.contains("debian") {
        "Debian"
    } else if [
        "rhel",
        "centos",
        "fedora",
        "rocky",
        "almalinux",
        "ol",
        "amzn",
    ]
    .contains(&id)
        || all.contains("rhel")
        || all.contains("fedora")
    {
        "RedHat"
    } else if id == "alpine" {
        "Alpine"
    } else if id.contains("suse") || all.contains("suse") {
        "Suse"
    } else if id == "arch" {
        "Archlinux"
    } else if id == "gentoo" {
        "Gentoo"
    } else {
        "Linux"
    }
}

fn distribution(id: &str) -> String {
    match id {
        "debian" => "Debian".into(),
        "ubuntu" => "Ubuntu".into(),
        "rhel" => "RedHat".into(),
        "centos" => "CentOS".into(),
        "fedora" => "Fedora".into(),
        "rocky" => "Rocky".into(),
        "almalinux" => "AlmaLinux".into(),
        "alpine" => "Alpine".into(),
        "amzn" => "Amazon".into(),
        "ol" => "OracleLinux".into(),
        "arch" => "Archlinux".into(),
        other => {
            let mut c = other.chars();
            match c.next() {
                Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
                None => "Unknown".into(),
            }
        }
    }
}

/// `ansible_date_time` as Ansible's setup gathers it (strings, local time, `iso8601` in UTC).
fn date_time(kv: &HashMap<String, String>) -> Value {
    let mut m: Map<String, Value> = kv
        .iter()
        .filter_map(|(k, v)| k.strip_prefix("dt_").map(|k| (k.to_string(), json!(v))))
        .collect();
    m.insert(
        "epoch".into(),
        json!(kv.get("date_epoch").cloned().unwrap_or_default()),
    );
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each spec gives the groups ansible-core 2.19's setup gathered on this machine.
    #[test]
    fn gather_subset_follows_ansible() {
        let cases = [
            ("all", (true, true, true)),
            ("!hardware", (true, false, false)),
            ("network", (true, false, true)),
            ("!all,network", (true, false, true)),
            ("all,!network", (true, true, false)),
            ("!min", (false, false, false)),
            ("!all,!min", (false, false, false)),
            ("network,!network", (true, false, true)),
            ("!bogus", (true, false, false)),
        ];
        for (spec, (min, hardware, network)) in cases {
            let got = subset(&subset_names(Some(&json!(spec)))).unwrap();
            assert_eq!(
                got,
                Subset {
                    min,
                    hardware,
                    network
                },
                "{spec}"
            );
        }
        assert!(subset(&["bogus".to_string()]).is_err());
    }
}
