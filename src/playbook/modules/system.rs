//! System modules: service/systemd, user, group, sysctl, package/apt/dnf, wait_for, uri.

use super::{add_info, b, fail, kv_lines, obj, req, s, Args, ModCtx, ModError, ModResult, INFO_FN};
use crate::transport::{shell_quote, Transport};
use serde_json::{json, Map, Value};

pub fn service(module: &str, t: &mut dyn Transport, c: &ModCtx, a: &Args) -> ModResult {
    let name = s(a, "name");
    let state = s(a, "state");
    let enabled = a
        .get("enabled")
        .filter(|v| !v.is_null())
        .map(crate::playbook::template::ansible_bool);
    let daemon_reload = b(a, "daemon_reload", false) || b(a, "daemon-reload", false);
    if name.is_none() && !daemon_reload {
        return fail(format!("{module}: missing required arguments: name"));
    }
    let chk = if c.check { 1 } else { 0 };
    let n = shell_quote(name.as_deref().unwrap_or(""));
    let mut script = String::from("dp_ch=0\n");
    script.push_str("if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then dp_sd=1; else dp_sd=0; fi\n");
    if daemon_reload {
        script.push_str(&format!(
            "[ $dp_sd = 1 ] && [ {chk} = 0 ] && systemctl daemon-reload\n"
        ));
    }
    if name.is_some() {
        script.push_str(&format!(
            "if [ $dp_sd = 1 ]; then dp_act=$(systemctl is-active {n} 2>/dev/null); [ \"$dp_act\" = active ] && dp_up=1 || dp_up=0; \
               dp_en=$(systemctl is-enabled {n} 2>/dev/null); case \"$dp_en\" in enabled|static|alias|indirect|generated) dp_on=1;; *) dp_on=0;; esac; \
               systemctl cat {n} >/dev/null 2>&1 || systemctl list-unit-files {n}* 2>/dev/null | grep -q . || {{ echo 'err=Could not find the requested service {nm}: host'; exit 0; }}; \
             else if service {n} status >/dev/null 2>&1; then dp_up=1; else dp_up=0; fi; dp_on=0; fi\n\
             dp_do() {{ if [ $dp_sd = 1 ]; then systemctl \"$1\" {n}; else service {n} \"$1\"; fi; }}\n",
            nm = name.clone().unwrap_or_default().replace('\'', "")
        ));
        match state.as_deref() {
            None => {}
            Some("started") => script.push_str(&format!("if [ $dp_up = 0 ]; then dp_ch=1; [ {chk} = 1 ] || dp_do start || exit 2; fi\n")),
            Some("stopped") => script.push_str(&format!("if [ $dp_up = 1 ]; then dp_ch=1; [ {chk} = 1 ] || dp_do stop || exit 2; fi\n")),
            Some("restarted") => script.push_str(&format!("dp_ch=1; [ {chk} = 1 ] || dp_do restart || exit 2\n")),
            Some("reloaded") => script.push_str(&format!("dp_ch=1; [ {chk} = 1 ] || {{ if [ $dp_up = 1 ]; then dp_do reload; else dp_do start; fi; }} || exit 2\n")),
            Some(o) => return fail(format!("{module}: state must be one of started, stopped, restarted, reloaded; got {o}")),
        }
        match enabled {
            None => {}
            Some(true) => script.push_str(&format!(
                "if [ $dp_on = 0 ]; then dp_ch=1; [ {chk} = 1 ] || {{ if [ $dp_sd = 1 ]; then systemctl enable {n}; elif command -v update-rc.d >/dev/null; then update-rc.d {n} enable; else chkconfig {n} on; fi; }} || exit 2; fi\n"
            )),
            Some(false) => script.push_str(&format!(
                "if [ $dp_on = 1 ]; then dp_ch=1; [ {chk} = 1 ] || systemctl disable {n} || exit 2; fi\n"
            )),
        }
    }
    script.push_str("echo changed=$dp_ch\n");
    let o = c.sh(t, &script)?;
    let kv = kv_lines(&o.stdout_str());
    if let Some(e) = kv.get("err") {
        return fail(e.replace(": host", &format!(" on host {}", c.host)));
    }
    if !o.success() {
        return fail(format!(
            "Unable to {} service {}: {}",
            state.as_deref().unwrap_or("manage"),
            name.unwrap_or_default(),
            o.stderr_str().trim()
        ));
    }
    let mut r = obj(json!({"changed": kv.get("changed").map(|v| v == "1").unwrap_or(false)}));
    if let Some(n) = name {
        r.insert("name".into(), json!(n));
    }
    if let Some(st) = state {
        r.insert("state".into(), json!(st));
    }
    if let Some(e) = enabled {
        r.insert("enabled".into(), json!(e));
    }
    Ok(r)
}

pub fn group(t: &mut dyn Transport, c: &ModCtx, a: &Args) -> ModResult {
    let name = req(a, "name", "group")?;
    let state = s(a, "state").unwrap_or("present".into());
    let gid = s(a, "gid");
    let system = b(a, "system", false);
    let n = shell_quote(&name);
    let chk = if c.check { 1 } else { 0 };
    let script = if state == "absent" {
        format!("if getent group {n} >/dev/null; then echo changed=1; [ {chk} = 1 ] || groupdel {n} || exit 2; else echo changed=0; fi\n")
    } else {
        let gid_opt = gid
            .as_ref()
            .map(|g| format!("-g {}", shell_quote(g)))
            .unwrap_or_default();
        format!(
            "if dp_l=$(getent group {n}); then\n\
               dp_g=$(echo \"$dp_l\" | cut -d: -f3)\n\
               if [ -n {gq} ] && [ \"$dp_g\" != {gq} ]; then echo changed=1; [ {chk} = 1 ] || groupmod {gid_opt} {n} || exit 2; else echo changed=0; fi\n\
             else echo changed=1; [ {chk} = 1 ] || groupadd {sys} {gid_opt} {n} || exit 2; fi\n\
             getent group {n} | cut -d: -f3 | sed 's/^/gid=/'\n",
            gq = shell_quote(gid.as_deref().unwrap_or("")),
            sys = if system { "-r" } else { "" },
        )
    };
    let o = c.sh(t, &script)?;
    if !o.success() {
        return fail(format!("group {name}: {}", o.stderr_str().trim()));
    }
    let kv = kv_lines(&o.stdout_str());
    let mut r = obj(
        json!({"changed": kv.get("changed").map(|v| v == "1").unwrap_or(false), "name": name, "state": state, "system": system}),
    );
    if let Some(g) = kv.get("gid").and_then(|g| g.parse::<i64>().ok()) {
        r.insert("gid".into(), json!(g));
    }
    Ok(r)
}

pub fn user(t: &mut dyn Transport, c: &ModCtx, a: &Args) -> ModResult {
    let name = req(a, "name", "user")?;
    let state = s(a, "state").unwrap_or("present".into());
    let n = shell_quote(&name);
    let chk = if c.check { 1 } else { 0 };
    if state == "absent" {
        let rm = if b(a, "remove", false) { "-r" } else { "" };
        let o = c.sh(t, &format!("if getent passwd {n} >/dev/null; then echo changed=1; [ {chk} = 1 ] || userdel {rm} {n} || exit 2; else echo changed=0; fi"))?;
        if !o.success() {
            return fail(format!("userdel {name}: {}", o.stderr_str().trim()));
        }
        let kv = kv_lines(&o.stdout_str());
        return Ok(obj(
            json!({"changed": kv.get("changed").map(|v| v == "1").unwrap_or(false), "name": name, "state": "absent"}),
        ));
    }
    // Desired attributes → useradd/usermod options, compared with getent.
    let uid = s(a, "uid");
    let group = s(a, "group");
    let groups: Option<Vec<String>> = a.get("groups").filter(|v| !v.is_null()).map(|g| match g {
        Value::Array(v) => v.iter().map(crate::playbook::template::py_str).collect(),
        other => crate::playbook::template::py_str(other)
            .split(',')
            .map(|x| x.trim().to_string())
            .filter(|x| !x.is_empty())
            .collect(),
    });
    let append = b(a, "append", false);
    let home = s(a, "home");
    let shell = s(a, "shell");
    let comment = s(a, "comment");
    let password = s(a, "password");
    let system = b(a, "system", false);
    let create_home = b(a, "create_home", b(a, "createhome", true));
    let mut add = vec![];
    let mut checks = vec![];
    if let Some(u) = &uid {
        add.push(format!("-u {}", shell_quote(u)));
        checks.push(format!(
            "[ \"$(echo \"$dp_l\" | cut -d: -f3)\" = {} ] || dp_mod=\"$dp_mod -u {}\"",
            shell_quote(u),
            shell_quote(u)
        ));
    }
    if let Some(g) = &group {
        add.push(format!("-g {}", shell_quote(g)));
        checks.push(format!(
            "dp_gid=$(getent group {g} | cut -d: -f3); [ -z \"$dp_gid\" ] && dp_gid={g}; [ \"$(echo \"$dp_l\" | cut -d: -f4)\" = \"$dp_gid\" ] || dp_mod=\"$dp_mod -g {g}\"",
            g = shell_quote(g)
        ));
    }
    if let Some(h) = &home {
        add.push(format!("-d {}", shell_quote(h)));
        checks.push(format!(
            "[ \"$(echo \"$dp_l\" | cut -d: -f6)\" = {h} ] || dp_mod=\"$dp_mod -d {h}\"",
            h = shell_quote(h)
        ));
    }
    if let Some(sh) = &shell {
        add.push(format!("-s {}", shell_quote(sh)));
        checks.push(format!(
            "[ \"$(echo \"$dp_l\" | cut -d: -f7)\" = {s} ] || dp_mod=\"$dp_mod -s {s}\"",
            s = shell_quote(sh)
        ));
    }
    if let Some(cm) = &comment {
        add.push(format!("-c {}", shell_quote(cm)));
        checks.push(format!(
            "[ \"$(echo \"$dp_l\" | cut -d: -f5)\" = {s} ] || dp_mod=\"$dp_mod -c {s}\"",
            s = shell_quote(cm)
        ));
    }
    if let Some(gs) = &groups {
        let list = gs.join(",");
        add.push(format!("-G {}", shell_quote(&list)));
        let cur = "dp_cur=$(id -Gn {n} | tr ' ' '\\n' | sort)";
        let want = gs
            .iter()
            .map(|g| g.to_string())
            .collect::<Vec<_>>()
            .join(" ");
        checks.push(format!(
            "{}; for dp_x in {want}; do echo \"$dp_cur\" | grep -qx \"$dp_x\" || dp_gmod=1; done; {}",
            cur.replace("{n}", &n),
            if append {
                format!("[ \"$dp_gmod\" = 1 ] && dp_mod=\"$dp_mod -a -G {}\"", shell_quote(&list))
            } else {
                format!(
                    "[ \"$(echo \"$dp_cur\" | grep -vx \"$(id -gn {n})\" | tr '\\n' ' ' | sed 's/ $//')\" = \"$(printf '%s\\n' {want} | sort | tr '\\n' ' ' | sed 's/ $//')\" ] || dp_gmod=1; [ \"$dp_gmod\" = 1 ] && dp_mod=\"$dp_mod -G {}\"",
                    shell_quote(&list)
                )
            }
        ));
    }
    if let Some(p) = &password {
        add.push(format!("-p {}", shell_quote(p)));
        checks.push(format!(
            "[ \"$(getent shadow {n} | cut -d: -f2)\" = {p} ] || dp_mod=\"$dp_mod -p {p}\"",
            p = shell_quote(p)
        ));
    }
    if system {
        add.push("-r".into());
    }
    add.push(if create_home {
        "-m".into()
    } else {
        "-M".into()
    });
    let script = format!(
        "dp_mod=''; dp_gmod=0\n\
         if dp_l=$(getent passwd {n}); then\n{}\n\
           if [ -n \"$dp_mod\" ]; then echo changed=1; [ {chk} = 1 ] || eval \"usermod $dp_mod {n}\" || exit 2; else echo changed=0; fi\n\
         else echo changed=1; [ {chk} = 1 ] || useradd {} {n} || exit 2; fi\n\
         getent passwd {n} | awk -F: '{{print \"uid=\"$3; print \"group=\"$4; print \"home=\"$6; print \"shell=\"$7}}'\n",
        checks.join("\n"),
        add.join(" ")
    );
    let o = c.sh(t, &script)?;
    if !o.success() {
        return fail(format!("user {name}: {}", o.stderr_str().trim()));
    }
    let kv = kv_lines(&o.stdout_str());
    let mut r = obj(
        json!({"changed": kv.get("changed").map(|v| v == "1").unwrap_or(false), "name": name, "state": "present"}),
    );
    if let Some(u) = kv.get("uid").and_then(|v| v.parse::<i64>().ok()) {
        r.insert("uid".into(), json!(u));
    }
    if let Some(g) = kv.get("group").and_then(|v| v.parse::<i64>().ok()) {
        r.insert("group".into(), json!(g));
    }
    for k in ["home", "shell"] {
        if let Some(v) = kv.get(k) {
            r.insert(k.into(), json!(v));
        }
    }
    Ok(r)
}

/// sysctl as ansible.posix.sysctl decides it: the file's `key=value` lines are parsed (spaces
/// around `=` ignored), the whole file is rewritten (stripped lines, `key=value`, duplicates
/// dropped) only when the key is added, removed or has another value; with `reload` the live
/// value is compared too and `sysctl -p FILE` runs when something changed.
pub fn sysctl(t: &mut dyn Transport, c: &ModCtx, a: &Args) -> ModResult {
    let name = req(a, "name", "sysctl")
        .or_else(|_| req(a, "key", "sysctl"))?
        .trim()
        .to_string();
    let state = s(a, "state").unwrap_or("present".into());
    if !["present", "absent"].contains(&state.as_str()) {
        return fail(format!(
            "value of state must be one of: present, absent, got: {state}"
        ));
    }
    let raw = a
        .get("value")
        .or_else(|| a.get("val"))
        .filter(|v| !v.is_null());
    let value = match raw {
        None => String::new(),
        Some(Value::Bool(b)) => if *b { "1" } else { "0" }.to_string(),
        Some(v) => {
            let v = crate::playbook::template::py_str(v);
            match v.to_lowercase().as_str() {
                "yes" | "on" | "1" | "true" | "y" | "t" => "1".into(),
                "no" | "off" | "0" | "false" | "n" | "f" => "0".into(),
                _ => v.trim().to_string(),
            }
        }
    };
    if name.is_empty() {
        return fail("name cannot be blank");
    }
    if state == "present" && raw.is_none() {
        return fail("value cannot be None");
    }
    if state == "present" && value.is_empty() {
        return fail("value cannot be blank");
    }
    let file = s(a, "sysctl_file").unwrap_or("/etc/sysctl.conf".into());
    let reload = b(a, "reload", true);
    let set = b(a, "sysctl_set", false);
    let ignore = b(a, "ignoreerrors", false);
    let fq = shell_quote(&file);
    let o = c.sh(
        t,
        &format!(
            "echo \"proc=$(sysctl -e -n {} 2>/dev/null)\"; echo ---dp-file---; [ -f {fq} ] && cat {fq}; true",
            shell_quote(&name)
        ),
    )?;
    let out = o.stdout_str();
    let (head, body) = out.split_once("---dp-file---\n").unwrap_or((&out, ""));
    let proc_value = head
        .lines()
        .find_map(|l| l.strip_prefix("proc="))
        .filter(|v| !v.is_empty())
        .map(|v| v.to_string());
    let lines: Vec<&str> = body.lines().map(|l| l.trim()).collect();
    let is_setting =
        |l: &str| !(l.is_empty() || l.starts_with('#') || l.starts_with(';') || !l.contains('='));
    let mut file_value: Option<String> = None;
    for l in &lines {
        if is_setting(l) {
            let (k, v) = l.split_once('=').unwrap();
            if k.trim() == name {
                file_value = Some(v.trim().to_string());
            }
        }
    }
    // The file as it would be rewritten.
    let mut checked: Vec<String> = vec![];
    let mut fixed: Vec<String> = vec![];
    for l in &lines {
        if !is_setting(l) {
            fixed.push(l.to_string());
            continue;
        }
        let (k, v) = l.split_once('=').unwrap();
        let (k, v) = (k.trim(), v.trim());
        if checked.iter().any(|x| x == k) {
            continue;
        }
        checked.push(k.to_string());
        if k == name {
            if state == "present" {
                fixed.push(format!("{k}={value}"));
            }
        } else {
            fixed.push(format!("{k}={v}"));
        }
    }
    if !checked.contains(&name) && state == "present" {
        fixed.push(format!("{name}={value}"));
    }
    let same = |x: &str, y: &str| {
        x.split_whitespace().collect::<Vec<_>>() == y.split_whitespace().collect::<Vec<_>>()
    };
    let (mut changed, mut write_file, mut set_proc) = (false, false, false);
    match (&file_value, state.as_str()) {
        (None, "present") => (changed, write_file) = (true, true),
        (None, _) => {}
        (Some(v), "absent") if !v.is_empty() => (changed, write_file) = (true, true),
        (Some(v), _) if *v != value => (changed, write_file) = (true, true),
        _ if reload
            && proc_value
                .as_deref()
                .map(|p| !same(p, &value))
                .unwrap_or(true) =>
        {
            changed = true
        }
        _ => {}
    }
    if set && state == "present" {
        match &proc_value {
            None => changed = true,
            Some(p) if !same(p, &value) => (changed, set_proc) = (true, true),
            _ => {}
        }
    }
    if !c.check && (set_proc || write_file || (changed && reload)) {
        let content: String = fixed.iter().map(|l| format!("{}\n", l.trim())).collect();
        let mut script = String::from("set -e\n");
        if set_proc {
            script.push_str(&format!(
                "sysctl -w {} >/dev/null\n",
                shell_quote(&format!("{name}={value}"))
            ));
        }
        if write_file {
            script.push_str(&format!(
                "dp_f=$(realpath -m {fq}); dp_t=$(mktemp \"$(dirname \"$dp_f\")/.ansible_m_sysctl_XXXXXXXX.conf\")\n\
                 {recv}\n\
                 if [ -e \"$dp_f\" ]; then chmod --reference=\"$dp_f\" \"$dp_t\"; chown --reference=\"$dp_f\" \"$dp_t\"; \
                 else chmod \"$(printf '%o' $(( 0666 & ~$(umask) )))\" \"$dp_t\"; fi\n\
                 mv -f \"$dp_t\" \"$dp_f\"\n",
                recv = crate::transport::stdin_to_file("\"$dp_t\"", content.len())
            ));
        }
        if changed && reload {
            script.push_str(&format!(
                "sysctl {} -p {fq} >/dev/null\n",
                if ignore { "-e" } else { "" }
            ));
        }
        let o = c.sh_in(t, &script, write_file.then(|| content.into_bytes()))?;
        if !o.success() {
            return fail(format!("sysctl {name} ({file}): {}", o.stderr_str().trim()));
        }
    }
    Ok(obj(json!({"changed": changed})))
}

pub fn package(module: &str, t: &mut dyn Transport, c: &ModCtx, a: &Args) -> ModResult {
    let names: Vec<String> = match a.get("name").or_else(|| a.get("pkg")) {
        Some(Value::Array(v)) => v.iter().map(crate::playbook::template::py_str).collect(),
        Some(Value::Null) | None => vec![],
        Some(v) => crate::playbook::template::py_str(v)
            .split(',')
            .map(|x| x.trim().to_string())
            .filter(|x| !x.is_empty())
            .collect(),
    };
    let state = s(a, "state").unwrap_or("present".into());
    let update_cache = b(a, "update_cache", false);
    let mgr = match module {
        "apt" => "apt",
        "dnf" => "dnf",
        _ => "auto",
    };
    let list = names
        .iter()
        .map(|n| shell_quote(n))
        .collect::<Vec<_>>()
        .join(" ");
    let chk = if c.check { 1 } else { 0 };
    let script = format!(
        r#"dp_m={mgr}
if [ $dp_m = auto ]; then if command -v apt-get >/dev/null 2>&1; then dp_m=apt; elif command -v dnf >/dev/null 2>&1; then dp_m=dnf; elif command -v yum >/dev/null 2>&1; then dp_m=yum; elif command -v apk >/dev/null 2>&1; then dp_m=apk; else echo 'err=no supported package manager found'; exit 0; fi; fi
[ $dp_m = dnf ] && ! command -v dnf >/dev/null 2>&1 && dp_m=yum
export DEBIAN_FRONTEND=noninteractive
dp_has() {{ case $dp_m in apt) dpkg-query -W -f='${{Status}}' "$1" 2>/dev/null | grep -q 'install ok installed';; dnf|yum) rpm -q "$1" >/dev/null 2>&1;; apk) apk info -e "$1" >/dev/null 2>&1;; esac; }}
if [ {uc} = 1 ] && [ {chk} = 0 ]; then case $dp_m in apt) apt-get update -qq >&2 || exit 2;; dnf|yum) $dp_m makecache -q >&2;; apk) apk update -q >&2;; esac; fi
dp_todo=''
for p in {list}; do
  case {st} in
    present|installed|latest) dp_has "$p" || dp_todo="$dp_todo $p";;
    absent|removed) dp_has "$p" && dp_todo="$dp_todo $p";;
  esac
done
[ {st} = latest ] && dp_todo="$dp_todo{latest_extra}"
if [ -z "$dp_todo" ]; then echo changed=0; exit 0; fi
echo changed=1; echo "pkgs=$dp_todo"
[ {chk} = 1 ] && exit 0
case {st} in
  present|installed|latest) case $dp_m in apt) apt-get install -y -q --no-install-recommends $dp_todo >&2;; dnf|yum) $dp_m install -y -q $dp_todo >&2;; apk) apk add -q $dp_todo >&2;; esac || exit 2;;
  absent|removed) case $dp_m in apt) apt-get remove -y -q $dp_todo >&2;; dnf|yum) $dp_m remove -y -q $dp_todo >&2;; apk) apk del -q $dp_todo >&2;; esac || exit 2;;
esac
"#,
        uc = if update_cache { 1 } else { 0 },
        st = shell_quote(&state),
        latest_extra = "",
    );
    if !["present", "installed", "latest", "absent", "removed"].contains(&state.as_str()) {
        return fail(format!("{module}: unsupported state {state}"));
    }
    let o = c.sh(t, &script)?;
    let kv = kv_lines(&o.stdout_str());
    if let Some(e) = kv.get("err") {
        return fail(e.clone());
    }
    if !o.success() {
        return fail(format!(
            "{module}: failed to {state} {}: {}",
            names.join(", "),
            o.stderr_str().trim()
        ));
    }
    let changed = kv.get("changed").map(|v| v == "1").unwrap_or(false);
    Ok(obj(
        json!({"changed": changed, "results": kv.get("pkgs").map(|p| p.split_whitespace().collect::<Vec<_>>()).unwrap_or_default()}),
    ))
}

pub fn wait_for(t: &mut dyn Transport, c: &ModCtx, a: &Args) -> ModResult {
    let host = s(a, "host").unwrap_or("127.0.0.1".into());
    let port = s(a, "port");
    let path = s(a, "path");
    let state = s(a, "state").unwrap_or("started".into());
    let timeout: u64 = s(a, "timeout").and_then(|v| v.parse().ok()).unwrap_or(300);
    let delay: u64 = s(a, "delay").and_then(|v| v.parse().ok()).unwrap_or(0);
    let sleep: u64 = s(a, "sleep").and_then(|v| v.parse().ok()).unwrap_or(1);
    let regex = s(a, "search_regex");
    if c.check {
        return Ok(obj(
            json!({"changed": false, "skipped": true, "msg": "wait_for does not support check mode"}),
        ));
    }
    let cond = match (&path, &port) {
        (Some(p), _) => {
            let p = shell_quote(p);
            match (state.as_str(), &regex) {
                ("absent", _) => format!("[ ! -e {p} ]"),
                (_, Some(r)) => format!("[ -e {p} ] && grep -Eq {} {p}", shell_quote(r)),
                _ => format!("[ -e {p} ]"),
            }
        }
        (None, Some(port)) => {
            let probe = format!(
                "{{ if command -v bash >/dev/null 2>&1; then timeout 2 bash -c 'exec 3<>/dev/tcp/{h}/{port}' 2>/dev/null; else nc -z -w 2 {h} {port} 2>/dev/null; fi; }}",
                h = host.replace('\'', ""),
                port = port.replace('\'', "")
            );
            match state.as_str() {
                "stopped" | "drained" | "absent" => format!("! {probe}"),
                _ => probe,
            }
        }
        (None, None) => "false".into(),
    };
    let wait_only = path.is_none() && port.is_none();
    let script = if wait_only {
        format!("sleep {}", timeout.max(delay))
    } else {
        // Like AnsibleModule's add_path_info: a result with `path` carries that path's
        // attributes and its `state` (file, directory, link, hard or absent).
        let info = match &path {
            Some(_) => format!(
                "{INFO_FN}dp_pinfo() {{ dp_info \"$1\"; if [ -L \"$1\" ]; then echo pstate=link; elif [ -d \"$1\" ]; then echo pstate=directory; \
                 elif [ -e \"$1\" ]; then if [ \"$(stat -c %h \"$1\")\" -gt 1 ]; then echo pstate=hard; else echo pstate=file; fi; else echo pstate=absent; fi; }}\n",
            ),
            None => "dp_pinfo() { :; }\n".into(),
        };
        let pq = shell_quote(path.as_deref().unwrap_or(""));
        format!(
            "{info}sleep {delay}; dp_s=$(date +%s); while :; do if {cond}; then echo elapsed=$(( $(date +%s) - dp_s )); dp_pinfo {pq}; exit 0; fi; \
             [ $(( $(date +%s) - dp_s )) -ge {timeout} ] && {{ echo timeout=1; dp_pinfo {pq}; exit 0; }}; sleep {sleep}; done"
        )
    };
    let start = std::time::Instant::now();
    let o = c.sh(t, &script)?;
    let kv = kv_lines(&o.stdout_str());
    let elapsed = start.elapsed().as_secs();
    if kv.contains_key("timeout") {
        let what = match (&path, &port) {
            (Some(p), _) => format!("Timeout when waiting for file {p}"),
            (None, Some(pt)) => format!("Timeout when waiting for {host}:{pt}"),
            _ => "Timeout".into(),
        };
        let mut r = obj(json!({"failed": true, "changed": false, "msg": what, "elapsed": elapsed}));
        if let Some(p) = &path {
            r.insert("path".into(), json!(p));
            add_info(&mut r, &kv);
            if let Some(st) = kv.get("pstate") {
                r.insert("state".into(), json!(st));
            }
        }
        return Ok(r);
    }
    let mut r = obj(json!({
        "changed": false, "elapsed": elapsed, "state": state,
        "path": path, "search_regex": regex, "match_groups": [], "match_groupdict": {},
        "port": port.as_deref().and_then(|p| p.parse::<i64>().ok()),
    }));
    if path.is_some() {
        add_info(&mut r, &kv);
        if let Some(st) = kv.get("pstate") {
            r.insert("state".into(), json!(st));
        }
    }
    Ok(r)
}

pub fn uri(t: &mut dyn Transport, c: &ModCtx, a: &Args) -> ModResult {
    let url = req(a, "url", "uri")?;
    let method = s(a, "method").unwrap_or("GET".into()).to_uppercase();
    let body_format = s(a, "body_format").unwrap_or("raw".into());
    let body: Option<String> =
        a.get("body")
            .filter(|v| !v.is_null())
            .map(|v| match (body_format.as_str(), v) {
                ("json", Value::String(s)) => s.clone(),
                ("json", other) => serde_json::to_string(other).unwrap_or_default(),
                (_, v) => crate::playbook::template::py_str(v),
            });
    let status_codes: Vec<i64> = match a.get("status_code") {
        Some(Value::Array(v)) => v
            .iter()
            .filter_map(|x| crate::playbook::template::py_str(x).parse().ok())
            .collect(),
        Some(v) => crate::playbook::template::py_str(v)
            .split(',')
            .filter_map(|x| x.trim().parse().ok())
            .collect(),
        None => vec![200],
    };
    let timeout = s(a, "timeout").unwrap_or("30".into());
    let mut cmd = vec![
        "curl".to_string(),
        "-sS".into(),
        "-o".into(),
        "\"$dp_b\"".into(),
        "-D".into(),
        "\"$dp_h\"".into(),
        "-w".into(),
        "'%{http_code}'".into(),
        "-X".into(),
        shell_quote(&method),
        "--max-time".into(),
        shell_quote(&timeout),
    ];
    if !b(a, "validate_certs", true) {
        cmd.push("-k".into());
    }
    if b(a, "follow_redirects", true) && s(a, "follow_redirects").as_deref() != Some("none") {
        cmd.push("-L".into());
    }
    if let (Some(u), Some(p)) = (
        s(a, "url_username").or_else(|| s(a, "user")),
        s(a, "url_password").or_else(|| s(a, "password")),
    ) {
        cmd.push("-u".into());
        cmd.push(shell_quote(&format!("{u}:{p}")));
    }
    if let Some(Value::Object(h)) = a.get("headers") {
        for (k, v) in h {
            cmd.push("-H".into());
            cmd.push(shell_quote(&format!(
                "{k}: {}",
                crate::playbook::template::py_str(v)
            )));
        }
    }
    if body_format == "json" && body.is_some() {
        cmd.push("-H".into());
        cmd.push("'Content-Type: application/json'".into());
    }
    if body.is_some() {
        cmd.push("--data-binary".into());
        cmd.push("@-".into());
    }
    cmd.push(shell_quote(&url));
    let script = format!(
        "command -v curl >/dev/null 2>&1 || {{ echo 'uri needs curl on the node' >&2; exit 127; }}\n\
         dp_b=$(mktemp); dp_h=$(mktemp)\n\
         dp_code=$({})\ndp_rc=$?\necho \"$dp_code\"; tr -d '\\r' < \"$dp_h\"; echo ---dp-body---; cat \"$dp_b\"; rm -f \"$dp_b\" \"$dp_h\"; exit $dp_rc",
        cmd.join(" ")
    );
    let o = c.sh_in(t, &script, body.map(|b| b.into_bytes()))?;
    let out = o.stdout_str();
    let (head, content) = out.split_once("---dp-body---\n").unwrap_or((&out, ""));
    let mut hl = head.lines();
    let status: i64 = hl.next().and_then(|s| s.trim().parse().ok()).unwrap_or(-1);
    // Headers of the last response (curl -L dumps every hop), as Ansible returns them:
    // lower-case names with `-` turned into `_`.
    let mut reason = String::new();
    let mut headers: Map<String, Value> = Map::new();
    for l in hl {
        if l.starts_with("HTTP/") {
            headers.clear();
            reason = l.splitn(3, ' ').nth(2).unwrap_or("").trim().to_string();
        } else if let Some((k, v)) = l.split_once(':') {
            headers.insert(k.trim().to_lowercase().replace('-', "_"), json!(v.trim()));
        }
    }
    let ctype = headers
        .get("content_type")
        .and_then(|v| v.as_str())
        .unwrap_or("")
        .to_string();
    let info_msg = if (200..300).contains(&status) || status == 304 {
        format!(
            "OK ({} bytes)",
            headers
                .get("content_length")
                .and_then(|v| v.as_str())
                .unwrap_or("unknown")
        )
    } else {
        format!("HTTP Error {status}: {reason}")
    };
    let mut r = headers;
    for (k, v) in obj(
        json!({"changed": false, "status": status, "url": url, "msg": info_msg, "redirected": false}),
    ) {
        r.insert(k, v);
    }
    if b(a, "return_content", false) {
        r.insert("content".into(), json!(content));
    }
    if ctype.contains("json") {
        if let Ok(j) = serde_json::from_str::<Value>(content) {
            r.insert("json".into(), j);
        }
    }
    if o.exit_code != 0 && status <= 0 {
        r.insert("failed".into(), json!(true));
        r.insert(
            "msg".into(),
            json!(format!(
                "Status code was -1 and not {status_codes:?}: Request failed: {}",
                o.stderr_str().trim()
            )),
        );
        return Ok(r);
    }
    if !status_codes.contains(&status) {
        r.insert("failed".into(), json!(true));
        r.insert(
            "msg".into(),
            json!(format!(
                "Status code was {status} and not {status_codes:?}: {info_msg}"
            )),
        );
    }
    let _: Option<Map<String, Value>> = None;
    let _ = ModError::Failed(String::new());
    Ok(r)
}
