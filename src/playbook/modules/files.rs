//! File modules: copy, template, file, stat, slurp, lineinfile, blockinfile, replace,
//! ini_file, unarchive.

use super::{
    add_info, b, fail, kv_lines, obj, req, s, split_keep, Args, Attrs, ModCtx, ModError, ModResult,
    ATTRS_FN, INFO_FN,
};
use crate::transport::{shell_quote, Transport, UploadOpts};
use serde_json::{json, Map, Value};

/// Files above this size are sent with the transport's streaming upload instead of stdin.
const STREAM_ABOVE: usize = 8 << 20;
/// Ansible does not diff files above this size.
const MAX_DIFF: usize = 104_448;

fn sha256_hex(data: &[u8]) -> String {
    crate::digest::Digest::of(data).hex()
}

fn sha1_hex(data: &[u8]) -> String {
    openssl::hash::hash(openssl::hash::MessageDigest::sha1(), data)
        .map(hex::encode)
        .unwrap_or_default()
}

/// Script that writes stdin (`len` bytes; or `$dp_src` when `len` is None) to `$p` atomically,
/// keeping the mode and owner of an existing file, then applies the requested attributes.
fn write_script(attrs: &Attrs, validate: Option<&str>, mkdirs: bool, len: Option<usize>) -> String {
    let mut s = String::from(ATTRS_FN);
    s.push_str(INFO_FN);
    s.push_str("d=$(dirname \"$p\")\n");
    if mkdirs {
        s.push_str("mkdir -p \"$d\" || exit 2\n");
    }
    s.push_str("t=$(mktemp \"$d/.dp_tmp.XXXXXX\") || { echo \"Destination directory $d does not exist\" >&2; exit 2; }\n");
    match len {
        None => s.push_str("mv -f \"$dp_src\" \"$t\" || { rm -f \"$t\"; exit 2; }\n"),
        Some(n) => s.push_str(&format!(
            "{} || exit 2\n",
            crate::transport::stdin_to_file("\"$t\"", n)
        )),
    }
    s.push_str(
        "if [ -e \"$p\" ]; then chmod \"$(stat -c %a \"$p\")\" \"$t\"; chown \"$(stat -c %u:%g \"$p\")\" \"$t\" 2>/dev/null; \
         else chmod \"$(printf '%o' $(( 0666 & ~0$(umask) )))\" \"$t\"; fi\n",
    );
    if let Some(v) = validate {
        let cmd = v.replace("%s", "\"$t\"");
        s.push_str(&format!(
            "if ! ( {cmd} ) >&2; then rm -f \"$t\"; echo 'failed to validate' >&2; exit 4; fi\n"
        ));
    }
    s.push_str(&format!(
        "{} || {{ rm -f \"$t\"; exit 3; }}\n",
        attrs.call("\"$t\"", false)
    ));
    s.push_str("mv -f \"$t\" \"$p\" || exit 2\ndp_info \"$p\"\n");
    s
}

/// Make `dest` hold `content` (copy/template semantics): compare checksums on the node,
/// fix attributes when equal, write atomically when different. One round trip when nothing
/// changes, two when the content changes.
#[allow(clippy::too_many_arguments)]
fn put_content(
    t: &mut dyn Transport,
    c: &ModCtx,
    a: &Args,
    dest: &str,
    basename: Option<&str>,
    content: &[u8],
    local_path: Option<&std::path::Path>,
    attrs: &Attrs,
) -> ModResult {
    let want = sha256_hex(content);
    let force = b(a, "force", true);
    let probe = format!(
        "{ATTRS_FN}{INFO_FN}p={}; b={}\n\
         case \"$p\" in */) p=\"$p$b\";; *) if [ -d \"$p\" ] && [ -n \"$b\" ]; then p=\"$p/$b\"; fi;; esac\n\
         echo \"path=$p\"\n\
         if [ -d \"$p\" ]; then echo isdir=1; exit 0; fi\n\
         if [ -f \"$p\" ]; then dp_sum=$(sha256sum < \"$p\" | cut -c1-64); else dp_sum=none; [ -d \"$(dirname \"$p\")\" ] || echo nodir=1; fi\n\
         echo \"sum=$dp_sum\"\n\
         if [ -f \"$p\" ] && {{ [ \"$dp_sum\" = {want} ] || [ {} = 0 ]; }}; then {} || exit 3; echo \"attrs=$dp_ch\"; dp_info \"$p\"; fi\n",
        shell_quote(dest),
        shell_quote(basename.unwrap_or("")),
        if force { 1 } else { 0 },
        attrs.call("\"$p\"", c.check),
    );
    let o = c.sh(t, &probe)?;
    if !o.success() {
        return fail(format!(
            "failed to inspect {dest}: {}",
            o.stderr_str().trim()
        ));
    }
    let kv = kv_lines(&o.stdout_str());
    let path = kv.get("path").cloned().unwrap_or(dest.to_string());
    if kv.contains_key("isdir") {
        return fail(format!("can not use content with a dir as dest: {path}"));
    }
    let mut r = obj(json!({"dest": path, "checksum": sha1_hex(content), "state": "file"}));
    if let Some(lp) = local_path {
        r.insert("src".into(), Value::String(lp.display().to_string()));
    }
    if kv.contains_key("attrs") {
        // Content already right (or force=no): only attributes may have changed.
        add_info(&mut r, &kv);
        r.insert("changed".into(), Value::Bool(kv["attrs"] == "1"));
        return Ok(r);
    }
    if kv.contains_key("nodir") && !c.check {
        return fail(format!(
            "Destination directory {} does not exist",
            std::path::Path::new(&path)
                .parent()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        ));
    }
    r.insert("changed".into(), Value::Bool(true));
    r.insert("size".into(), json!(content.len()));
    if c.diff {
        let before = if kv.get("sum").map(|s| s != "none").unwrap_or(false) {
            let o = c.sh(
                t,
                &format!(
                    "p={}; if [ $(stat -c %s \"$p\") -le {MAX_DIFF} ]; then cat \"$p\"; else exit 9; fi",
                    shell_quote(&path)
                ),
            )?;
            if o.exit_code == 9 {
                None
            } else {
                Some(o.stdout_str())
            }
        } else {
            Some(String::new())
        };
        if let (Some(before), true) = (before, content.len() <= MAX_DIFF) {
            if let Ok(after) = std::str::from_utf8(content) {
                r.insert(
                    "diff".into(),
                    json!({"before": before, "after": after, "before_header": path, "after_header": local_path.map(|p| p.display().to_string()).unwrap_or("dynamically generated".into())}),
                );
            }
        }
    }
    if c.check {
        return Ok(r);
    }
    let validate = s(a, "validate");
    let out = if content.len() > STREAM_ABOVE {
        let tmp = format!("{path}.dp_upload");
        let mut cur = std::io::Cursor::new(content.to_vec());
        t.upload(
            &mut cur,
            content.len() as u64,
            &tmp,
            &UploadOpts {
                mode: None,
                sha256: None,
                become_: c.become_.clone(),
            },
        )?;
        let script = format!(
            "p={}; dp_src={}\n{}",
            shell_quote(&path),
            shell_quote(&tmp),
            write_script(attrs, validate.as_deref(), false, None)
        );
        c.sh(t, &script)?
    } else {
        let script = format!(
            "p={}\n{}",
            shell_quote(&path),
            write_script(attrs, validate.as_deref(), false, Some(content.len()))
        );
        c.sh_in(t, &script, Some(content.to_vec()))?
    };
    if !out.success() {
        let msg = out.stderr_str().trim().to_string();
        return fail(if out.exit_code == 4 {
            format!("failed to validate: {msg}")
        } else {
            format!("failed to write {path}: {msg}")
        });
    }
    add_info(&mut r, &kv_lines(&out.stdout_str()));
    Ok(r)
}

pub fn copy(t: &mut dyn Transport, c: &ModCtx, a: &Args) -> ModResult {
    let dest = req(a, "dest", "copy")?;
    let mut attrs = Attrs::from_args(a)?;
    if b(a, "remote_src", false) {
        let src = req(a, "src", "copy")?;
        let o = c.sh(t, &format!("cat {}", shell_quote(&src)))?;
        if !o.success() {
            return fail(format!("Source {src} not found"));
        }
        return put_content(
            t,
            c,
            a,
            &dest,
            src.rsplit('/').next(),
            &o.stdout,
            None,
            &attrs,
        );
    }
    if let Some(content) = a.get("content") {
        let text = match content {
            Value::String(s) => s.clone(),
            // Ansible dumps non-string content as JSON.
            other => crate::playbook::template::py_json(other, None, false, true),
        };
        if dest.ends_with('/') {
            return fail("can not use content with a dir as dest");
        }
        return put_content(t, c, a, &dest, None, text.as_bytes(), None, &attrs);
    }
    let src = req(a, "src", "copy")?;
    let local = c.find_local(&src, "files").ok_or_else(|| {
        ModError::Failed(format!(
            "Could not find or access '{src}' on the Ansible Controller."
        ))
    })?;
    if matches!(a.get("mode"), Some(Value::String(m)) if m == "preserve") {
        use std::os::unix::fs::PermissionsExt;
        let m = std::fs::metadata(&local)
            .map(|m| m.permissions().mode() & 0o7777)
            .unwrap_or(0o644);
        attrs.mode = Some(format!("{m:o}"));
    }
    if local.is_dir() {
        return copy_dir(t, c, a, &src, &local, &dest, &attrs);
    }
    let data = std::fs::read(&local)
        .map_err(|e| ModError::Failed(format!("cannot read {}: {e}", local.display())))?;
    let base = local.file_name().map(|n| n.to_string_lossy().to_string());
    put_content(t, c, a, &dest, base.as_deref(), &data, Some(&local), &attrs)
}

#[allow(clippy::too_many_arguments)]
fn copy_dir(
    t: &mut dyn Transport,
    c: &ModCtx,
    a: &Args,
    src: &str,
    local: &std::path::Path,
    dest: &str,
    attrs: &Attrs,
) -> ModResult {
    let root = if src.ends_with('/') {
        dest.trim_end_matches('/').to_string()
    } else {
        format!(
            "{}/{}",
            dest.trim_end_matches('/'),
            local.file_name().unwrap().to_string_lossy()
        )
    };
    let mut files = vec![];
    let mut dirs = vec![root.clone()];
    fn walk(
        base: &std::path::Path,
        rel: &std::path::Path,
        files: &mut Vec<(std::path::PathBuf, String)>,
        dirs: &mut Vec<String>,
        root: &str,
    ) {
        let mut entries: Vec<_> = std::fs::read_dir(base.join(rel))
            .map(|r| r.filter_map(|e| e.ok()).collect())
            .unwrap_or_default();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let r = rel.join(e.file_name());
            if e.path().is_dir() {
                dirs.push(format!("{root}/{}", r.display()));
                walk(base, &r, files, dirs, root);
            } else {
                files.push((e.path(), format!("{root}/{}", r.display())));
            }
        }
    }
    walk(
        local,
        std::path::Path::new(""),
        &mut files,
        &mut dirs,
        &root,
    );
    let dmode = a
        .get("directory_mode")
        .map(super::norm_mode)
        .transpose()?
        .flatten();
    let mk = format!(
        "dp_new=0; for d in {}; do if [ ! -d \"$d\" ]; then dp_new=1; {} fi; done; echo new=$dp_new",
        dirs.iter().map(|d| shell_quote(d)).collect::<Vec<_>>().join(" "),
        if c.check {
            String::new()
        } else {
            format!(
                "mkdir -p \"$d\" || exit 2; {}",
                dmode
                    .as_ref()
                    .map(|m| format!("chmod {} \"$d\";", shell_quote(m)))
                    .unwrap_or_default()
            )
        }
    );
    let o = c.sh(t, &mk)?;
    if !o.success() {
        return fail(format!(
            "cannot create directories under {root}: {}",
            o.stderr_str()
        ));
    }
    let mut changed = o.stdout_str().contains("new=1");
    for (lp, rp) in files {
        let data = std::fs::read(&lp)
            .map_err(|e| ModError::Failed(format!("cannot read {}: {e}", lp.display())))?;
        let r = put_content(t, c, a, &rp, None, &data, Some(&lp), attrs)?;
        changed |= r.get("changed").and_then(|v| v.as_bool()).unwrap_or(false);
    }
    Ok(obj(
        json!({"changed": changed, "dest": root, "src": local.display().to_string()}),
    ))
}

pub fn template(t: &mut dyn Transport, c: &ModCtx, a: &Args) -> ModResult {
    let src = req(a, "src", "template")?;
    let dest = req(a, "dest", "template")?;
    let local = c
        .find_local(&src, "templates")
        .ok_or_else(|| ModError::Failed(format!("Could not find or access '{src}'")))?;
    let text = std::fs::read_to_string(&local)
        .map_err(|e| ModError::Failed(format!("cannot read template {}: {e}", local.display())))?;
    let abs = std::fs::canonicalize(&local).unwrap_or(local.clone());
    let ctx = minijinja::context! {
        template_path => abs.display().to_string(),
        template_fullpath => abs.display().to_string(),
        template_destpath => dest.clone(),
        template_host => c.host,
        template_uid => "root",
        ansible_managed => "Ansible managed",
        ..c.vars.clone()
    };
    let mut out = crate::playbook::template::render_str(&text, &ctx)
        .map_err(|e| ModError::Failed(format!("{}: {}", local.display(), e.msg)))?;
    if let Some(nl) = s(a, "newline_sequence") {
        let nl = nl.replace("\\r", "\r").replace("\\n", "\n");
        out = out.replace("\r\n", "\n").replace('\n', &nl);
    }
    let mut attrs = Attrs::from_args(a)?;
    if matches!(a.get("mode"), Some(Value::String(m)) if m == "preserve") {
        use std::os::unix::fs::PermissionsExt;
        let m = std::fs::metadata(&local)
            .map(|m| m.permissions().mode() & 0o7777)
            .unwrap_or(0o644);
        attrs.mode = Some(format!("{m:o}"));
    }
    let base = local
        .file_name()
        .map(|n| n.to_string_lossy().trim_end_matches(".j2").to_string());
    put_content(
        t,
        c,
        a,
        &dest,
        base.as_deref(),
        out.as_bytes(),
        Some(&local),
        &attrs,
    )
}

pub fn file(t: &mut dyn Transport, c: &ModCtx, a: &Args) -> ModResult {
    let path = s(a, "path")
        .or_else(|| s(a, "dest"))
        .or_else(|| s(a, "name"))
        .ok_or_else(|| ModError::Failed("file: missing required arguments: path".into()))?;
    let attrs = Attrs::from_args(a)?;
    let state = s(a, "state");
    let recurse = b(a, "recurse", false);
    let force = b(a, "force", false);
    let src = s(a, "src");
    let chk = if c.check { "1" } else { "0" };
    let q = shell_quote(&path);
    let body = match state.as_deref() {
        None | Some("file") => format!(
            "if [ -e \"$p\" ] || [ -L \"$p\" ]; then :; else echo \"err=file ($p) is absent, cannot continue\"; exit 0; fi\n\
             if [ -d \"$p\" ] && [ {explicit} = 1 ]; then echo \"err=path $p is a directory, not a file\"; exit 0; fi\n\
             {} || exit 3\n",
            attrs.call("\"$p\"", c.check),
            explicit = if state.is_some() { 1 } else { 0 }
        ),
        Some("directory") => {
            let rec = if recurse {
                format!(
                    "find \"$p\" -mindepth 1 | while IFS= read -r f; do {} ; [ $dp_ch = 1 ] && echo rec=1; done | grep -c rec=1 >/dev/null && dp_ch=1\n",
                    attrs.call("\"$f\"", c.check)
                )
            } else {
                String::new()
            };
            format!(
                "if [ -e \"$p\" ] && [ ! -d \"$p\" ]; then echo \"err=$p already exists as a $(stat -c %F \"$p\")\"; exit 0; fi\n\
                 if [ ! -d \"$p\" ]; then\n\
                   dp_ch=1\n\
                   if [ {chk} = 0 ]; then\n\
                     dp_cur=\"\"; dp_rest=\"$p\"\n\
                     case \"$p\" in /*) dp_cur=\"\";; *) dp_cur=\".\";; esac\n\
                     IFS=/; for dp_part in $p; do IFS=' '; [ -z \"$dp_part\" ] && continue; dp_cur=\"$dp_cur/$dp_part\"; \
                       if [ ! -d \"$dp_cur\" ]; then mkdir \"$dp_cur\" || exit 2; {} || exit 3; fi; done; IFS=' '\n\
                   fi\n\
                 fi\n\
                 if [ -d \"$p\" ]; then {} || exit 3; fi\n{rec}",
                attrs.call("\"$dp_cur\"", false),
                attrs.call("\"$p\"", c.check),
            )
        }
        Some("touch") => format!(
            "if [ -e \"$p\" ]; then dp_ch=1; [ {chk} = 1 ] || touch \"$p\" || exit 2; \
             else dp_ch=1; if [ {chk} = 0 ]; then touch \"$p\" || exit 2; fi; fi\n\
             if [ -e \"$p\" ]; then {} || exit 3; fi\n",
            attrs.call("\"$p\"", c.check)
        ),
        Some("absent") => format!(
            "if [ -e \"$p\" ] || [ -L \"$p\" ]; then dp_ch=1; [ {chk} = 1 ] || rm -rf \"$p\" || exit 2; fi\n"
        ),
        Some("link") | Some("hard") => {
            let src = src.clone().ok_or_else(|| ModError::Failed("src is required for creating links".into()))?;
            let hard = state.as_deref() == Some("hard");
            let test = if hard {
                format!("[ -e \"$p\" ] && [ \"$(stat -c %d:%i \"$p\")\" = \"$(stat -c %d:%i {s} 2>/dev/null)\" ]", s = shell_quote(&src))
            } else {
                format!("[ -L \"$p\" ] && [ \"$(readlink \"$p\")\" = {} ]", shell_quote(&src))
            };
            format!(
                "if {test}; then :; else\n\
                   if [ -e \"$p\" ] && [ ! -L \"$p\" ] && [ {force} = 0 ]; then \
                     if [ -d \"$p\" ] || [ {hard} = 0 ]; then echo \"err=refusing to convert from $(stat -c %F \"$p\" | sed 's/regular //') to {kind} for $p\"; exit 0; fi; fi\n\
                   dp_ch=1; if [ {chk} = 0 ]; then ln {flag} {s} \"$p\" || exit 2; fi\n\
                 fi\n\
                 if [ -e \"$p\" ] || [ -L \"$p\" ]; then {} || exit 3; fi\n",
                attrs.call("\"$p\"", c.check),
                force = if force { 1 } else { 0 },
                hard = if hard { 1 } else { 0 },
                kind = if hard { "hard" } else { "symlink" },
                flag = if hard { "-f" } else { "-sfn" },
                s = shell_quote(&src),
            )
        }
        Some(other) => return fail(format!("file: value of state must be one of: absent, directory, file, hard, link, touch, got: {other}")),
    };
    let script = format!("{ATTRS_FN}{INFO_FN}p={q}\n{body}echo \"changed=$dp_ch\"\ndp_info \"$p\"\n[ -L \"$p\" ] && echo state=link || {{ [ -d \"$p\" ] && echo state=directory; }} || {{ [ -f \"$p\" ] && echo state=file; }} || echo state=absent\n");
    let o = c.sh(t, &script)?;
    let kv = kv_lines(&o.stdout_str());
    if let Some(e) = kv.get("err") {
        return fail(e.clone());
    }
    if !o.success() {
        return fail(format!("file {path}: {}", o.stderr_str().trim()));
    }
    let mut r = obj(json!({
        "path": path,
        "changed": kv.get("changed").map(|v| v == "1").unwrap_or(false),
        "state": kv.get("state").cloned().unwrap_or("absent".into()),
    }));
    if let Some(s) = &src {
        r.insert("src".into(), Value::String(s.clone()));
    }
    add_info(&mut r, &kv);
    Ok(r)
}

pub fn stat(t: &mut dyn Transport, c: &ModCtx, a: &Args) -> ModResult {
    let path = s(a, "path")
        .or_else(|| s(a, "_raw_params"))
        .ok_or_else(|| ModError::Failed("stat: missing required arguments: path".into()))?;
    let follow = b(a, "follow", false);
    let get_checksum = b(a, "get_checksum", true);
    let algo = s(a, "checksum_algorithm").unwrap_or("sha1".into());
    let sumcmd = match algo.as_str() {
        "sha1" => "sha1sum",
        "sha256" => "sha256sum",
        "sha512" => "sha512sum",
        "md5" => "md5sum",
        "sha224" => "sha224sum",
        "sha384" => "sha384sum",
        other => return fail(format!("stat: unsupported checksum_algorithm {other}")),
    };
    let l = if follow { "-L" } else { "" };
    let script = format!(
        "p={}\nif [ ! -e \"$p\" ] && [ ! -L \"$p\" ]; then echo exists=0; exit 0; fi\necho exists=1\n\
         stat {l} -c 'mode=%a\nuid=%u\ngid=%g\npw_name=%U\ngr_name=%G\nsize=%s\nmtime=%Y\natime=%X\nctime=%Z\ninode=%i\ndev=%d\nnlink=%h\ntype=%F' \"$p\"\n\
         [ -L \"$p\" ] && echo \"lnk_source=$(readlink -f \"$p\")\" && echo \"lnk_target=$(readlink \"$p\")\"\n\
         [ -r \"$p\" ] && echo readable=1; [ -w \"$p\" ] && echo writeable=1; [ -x \"$p\" ] && echo executable=1\n\
         if [ {gc} = 1 ] && [ -f \"$p\" ] && [ -r \"$p\" ]; then echo \"checksum=$({sumcmd} < \"$p\" | cut -d' ' -f1)\"; fi\n",
        shell_quote(&path),
        gc = if get_checksum { 1 } else { 0 },
    );
    let o = c.sh(t, &script)?;
    if !o.success() {
        return fail(format!("stat {path}: {}", o.stderr_str().trim()));
    }
    let kv = kv_lines(&o.stdout_str());
    if kv.get("exists").map(|v| v == "0").unwrap_or(true) {
        return Ok(obj(json!({"changed": false, "stat": {"exists": false}})));
    }
    let num = |k: &str| kv.get(k).and_then(|v| v.parse::<i64>().ok()).unwrap_or(0);
    let mode =
        u32::from_str_radix(kv.get("mode").map(|s| s.as_str()).unwrap_or("0"), 8).unwrap_or(0);
    let ty = kv.get("type").cloned().unwrap_or_default();
    let is_link = ty == "symbolic link";
    let mut st = obj(json!({
        "exists": true,
        "path": path,
        "mode": format!("{:04o}", mode),
        "isdir": ty == "directory",
        "isreg": ty.contains("regular"),
        "islnk": is_link,
        "isblk": ty == "block special file",
        "ischr": ty == "character special file",
        "isfifo": ty == "fifo",
        "issock": ty == "socket",
        "uid": num("uid"), "gid": num("gid"),
        "pw_name": kv.get("pw_name"), "gr_name": kv.get("gr_name"),
        "size": num("size"),
        "mtime": num("mtime") as f64, "atime": num("atime") as f64, "ctime": num("ctime") as f64,
        "inode": num("inode"), "dev": num("dev"), "nlink": num("nlink"),
        "readable": kv.contains_key("readable"),
        "writeable": kv.contains_key("writeable"),
        "executable": kv.contains_key("executable"),
        "xusr": mode & 0o100 != 0, "xgrp": mode & 0o010 != 0, "xoth": mode & 0o001 != 0,
        "rusr": mode & 0o400 != 0, "rgrp": mode & 0o040 != 0, "roth": mode & 0o004 != 0,
        "wusr": mode & 0o200 != 0, "wgrp": mode & 0o020 != 0, "woth": mode & 0o002 != 0,
        "isuid": mode & 0o4000 != 0, "isgid": mode & 0o2000 != 0,
    }));
    if let Some(cs) = kv.get("checksum") {
        st.insert("checksum".into(), Value::String(cs.clone()));
    }
    if is_link {
        st.insert("lnk_source".into(), json!(kv.get("lnk_source")));
        st.insert("lnk_target".into(), json!(kv.get("lnk_target")));
    }
    Ok(obj(json!({"changed": false, "stat": st})))
}

pub fn slurp(t: &mut dyn Transport, c: &ModCtx, a: &Args) -> ModResult {
    let src = s(a, "src")
        .or_else(|| s(a, "path"))
        .ok_or_else(|| ModError::Failed("slurp: missing required arguments: src".into()))?;
    let o = c.sh(t, &format!("cat {}", shell_quote(&src)))?;
    if !o.success() {
        return fail(format!("file not found: {src}"));
    }
    use base64::Engine;
    Ok(obj(json!({
        "changed": false,
        "content": base64::engine::general_purpose::STANDARD.encode(&o.stdout),
        "encoding": "base64",
        "source": src,
    })))
}

/// Read a remote text file: `None` when it does not exist.
fn read_remote(t: &mut dyn Transport, c: &ModCtx, path: &str) -> Result<Option<String>, ModError> {
    let o = c.sh(
        t,
        &format!(
            "p={}; if [ -d \"$p\" ]; then echo D; elif [ -e \"$p\" ]; then echo F; cat \"$p\" || exit 2; else echo N; fi",
            shell_quote(path)
        ),
    )?;
    if !o.success() {
        return fail(format!("cannot read {path}: {}", o.stderr_str().trim()));
    }
    let out = o.stdout_str();
    let (tag, rest) = out.split_at(out.find('\n').map(|i| i + 1).unwrap_or(out.len()));
    match tag.trim() {
        "F" => Ok(Some(rest.to_string())),
        "D" => fail(format!("Path {path} is a directory !")),
        _ => Ok(None),
    }
}

/// The read → transform → write-if-changed flow shared by the line/block/ini editors.
fn edit_file<F>(t: &mut dyn Transport, c: &ModCtx, a: &Args, path: &str, f: F) -> ModResult
where
    F: FnOnce(Option<&str>) -> Result<Option<(String, String)>, ModError>,
{
    let original = read_remote(t, c, path)?;
    let attrs = Attrs::from_args(a)?;
    let Some((new, msg)) = f(original.as_deref())? else {
        // Nothing to do and nothing to write (e.g. absent on a missing file).
        return Ok(obj(json!({"changed": false, "msg": "", "path": path})));
    };
    let changed = original.as_deref() != Some(new.as_str());
    let mut r = obj(json!({"changed": changed, "msg": msg, "path": path}));
    if changed && c.diff {
        r.insert(
            "diff".into(),
            json!({"before": original.clone().unwrap_or_default(), "after": new, "before_header": format!("{path} (content)"), "after_header": format!("{path} (content)")}),
        );
    }
    if changed {
        if c.check {
            return Ok(r);
        }
        if b(a, "backup", false) && original.is_some() {
            c.sh(
                t,
                &format!(
                    "cp -p {p} {p}.$(date +%Y-%m-%d@%H:%M:%S)~",
                    p = shell_quote(path)
                ),
            )?;
        }
        let script = format!(
            "p={}\n{}",
            shell_quote(path),
            write_script(
                &attrs,
                s(a, "validate").as_deref(),
                original.is_none(),
                Some(new.len())
            )
        );
        let o = c.sh_in(t, &script, Some(new.into_bytes()))?;
        if !o.success() {
            return fail(format!("failed to write {path}: {}", o.stderr_str().trim()));
        }
        add_info(&mut r, &kv_lines(&o.stdout_str()));
    } else if (attrs.mode.is_some() || attrs.owner.is_some() || attrs.group.is_some())
        && original.is_some()
    {
        let o = c.sh(
            t,
            &format!(
                "{ATTRS_FN}{INFO_FN}p={}\n{} || exit 3\necho attrs=$dp_ch\ndp_info \"$p\"\n",
                shell_quote(path),
                attrs.call("\"$p\"", c.check)
            ),
        )?;
        if !o.success() {
            return fail(format!(
                "failed to set attributes of {path}: {}",
                o.stderr_str().trim()
            ));
        }
        let kv = kv_lines(&o.stdout_str());
        if kv.get("attrs").map(|v| v == "1").unwrap_or(false) {
            r.insert("changed".into(), Value::Bool(true));
            let m = r
                .get("msg")
                .and_then(|m| m.as_str())
                .unwrap_or("")
                .to_string();
            r.insert(
                "msg".into(),
                Value::String(if m.is_empty() {
                    "ownership, perms or SE linux context changed".into()
                } else {
                    format!("{m} and ownership, perms or SE linux context changed")
                }),
            );
        }
        add_info(&mut r, &kv);
    }
    Ok(r)
}

fn pyre(p: &str) -> Result<regex::Regex, ModError> {
    regex::Regex::new(p).map_err(|e| ModError::Failed(format!("bad regular expression {p:?}: {e}")))
}

/// Ansible's `lineinfile` (present/absent with regexp, search_string, insertafter/before,
/// backrefs, firstmatch), line for line.
pub fn lineinfile_apply(orig: &str, a: &Args) -> Result<(String, String, bool), ModError> {
    let regexp = s(a, "regexp").or_else(|| s(a, "regex"));
    let search = s(a, "search_string");
    let state = s(a, "state").unwrap_or("present".into());
    let backrefs = b(a, "backrefs", false);
    let firstmatch = b(a, "firstmatch", false);
    let insertafter = s(a, "insertafter");
    let insertbefore = s(a, "insertbefore");
    let re_m = regexp.as_deref().map(pyre).transpose()?;
    let mut lines = split_keep(orig);
    if state == "absent" {
        let before = lines.len();
        lines.retain(|l| {
            let bare = l.trim_end_matches(['\r', '\n']);
            !match (&re_m, &search) {
                (Some(r), _) => r.is_match(bare),
                (None, Some(s)) => l.contains(s.as_str()),
                (None, None) => Some(bare) == s(a, "line").as_deref(),
            }
        });
        let n = before - lines.len();
        let msg = if n > 0 {
            format!("{n} line(s) removed")
        } else {
            String::new()
        };
        return Ok((lines.concat(), msg, n > 0));
    }
    let line = s(a, "line")
        .or_else(|| s(a, "value"))
        .ok_or_else(|| ModError::Failed("line is required with state=present".into()))?;
    let ins_re = match (&insertafter, &insertbefore) {
        (Some(x), _) if x != "BOF" && x != "EOF" => Some(pyre(x)?),
        (None, Some(x)) if x != "BOF" => Some(pyre(x)?),
        _ => None,
    };
    let mut index: [i64; 2] = [-1, -1];
    let mut m_caps: Option<String> = None;
    for (i, cur) in lines.iter().enumerate() {
        let found = match (&re_m, &search) {
            (Some(r), _) => {
                if let Some(c) = r.captures(cur.trim_end_matches(['\r', '\n'])) {
                    if backrefs {
                        let mut dst = String::new();
                        c.expand(&crate::playbook::template::py_repl(&line), &mut dst);
                        m_caps = Some(dst);
                    }
                    true
                } else {
                    false
                }
            }
            (None, Some(s)) => cur.contains(s.as_str()),
            (None, None) => cur.trim_end_matches(['\r', '\n']) == line,
        };
        if found {
            index[0] = i as i64;
            if firstmatch {
                break;
            }
        }
        if let Some(r) = &ins_re {
            if r.is_match(cur) {
                if insertafter.is_some() {
                    index[1] = i as i64 + 1;
                    if firstmatch {
                        break;
                    }
                }
                if insertbefore.is_some() {
                    index[1] = i as i64;
                    if firstmatch {
                        break;
                    }
                }
            }
        }
    }
    let mut exact = false;
    if index[0] == -1 && (re_m.is_some() || search.is_some()) {
        // The regexp did not match, but the line may already be there.
        if let Some(i) = lines
            .iter()
            .position(|l| l.trim_end_matches(['\r', '\n']) == line)
        {
            index[0] = i as i64;
            exact = true;
        }
    }
    let mut changed = false;
    let mut msg = String::new();
    if index[0] != -1 {
        let i = index[0] as usize;
        let mut new_line = if exact {
            lines[i].trim_end_matches(['\r', '\n']).to_string()
        } else if backrefs {
            m_caps.clone().unwrap_or(line.clone())
        } else {
            line.clone()
        };
        if !new_line.ends_with('\n') {
            new_line.push('\n');
        }
        if lines[i] != new_line {
            lines[i] = new_line;
            msg = "line replaced".into();
            changed = true;
        }
    } else if backrefs {
        // Nothing: the backrefs cannot be filled.
    } else if insertbefore.as_deref() == Some("BOF") || insertafter.as_deref() == Some("BOF") {
        lines.insert(0, format!("{line}\n"));
        msg = "line added".into();
        changed = true;
    } else if insertafter.as_deref() == Some("EOF") || index[1] == -1 {
        if let Some(last) = lines.last_mut() {
            if !last.ends_with('\n') && !last.ends_with('\r') {
                lines.push("\n".into());
            }
        }
        lines.push(format!("{line}\n"));
        msg = "line added".into();
        changed = true;
    } else if insertafter.is_some() && index[1] != -1 {
        let k = index[1] as usize;
        if lines.len() == k {
            if lines[k - 1].trim_end_matches(['\r', '\n']) != line {
                lines.push(format!("{line}\n"));
                msg = "line added".into();
                changed = true;
            }
        } else if line != lines[k].trim_end_matches(['\r', '\n']) {
            lines.insert(k, format!("{line}\n"));
            msg = "line added".into();
            changed = true;
        }
    } else {
        lines.insert(index[1] as usize, format!("{line}\n"));
        msg = "line added".into();
        changed = true;
    }
    Ok((lines.concat(), msg, changed))
}

pub fn lineinfile(t: &mut dyn Transport, c: &ModCtx, a: &Args) -> ModResult {
    let path = s(a, "path")
        .or_else(|| s(a, "dest"))
        .or_else(|| s(a, "name"))
        .ok_or_else(|| ModError::Failed("lineinfile: missing required arguments: path".into()))?;
    let create = b(a, "create", false);
    let state = s(a, "state").unwrap_or("present".into());
    edit_file(t, c, a, &path, |orig| match orig {
        None if state == "absent" => Ok(None),
        None if !create => fail(format!("Destination {path} does not exist !")),
        o => {
            let (new, msg, _) = lineinfile_apply(o.unwrap_or(""), a)?;
            Ok(Some((new, msg)))
        }
    })
}

pub fn blockinfile_apply(orig: &str, a: &Args) -> Result<(String, String), ModError> {
    let marker = s(a, "marker").unwrap_or("# {mark} ANSIBLE MANAGED BLOCK".into());
    let mb = s(a, "marker_begin").unwrap_or("BEGIN".into());
    let me = s(a, "marker_end").unwrap_or("END".into());
    let m0 = format!("{}\n", marker.replace("{mark}", &mb));
    let m1 = format!("{}\n", marker.replace("{mark}", &me));
    let block = s(a, "block")
        .or_else(|| s(a, "content"))
        .unwrap_or_default();
    let state = s(a, "state").unwrap_or("present".into());
    let insertafter = s(a, "insertafter");
    let insertbefore = s(a, "insertbefore");
    let blocklines: Vec<String> = if block.is_empty() || state == "absent" {
        vec![]
    } else {
        let mut v = vec![m0.clone()];
        v.extend(block.lines().map(|l| format!("{l}\n")));
        v.push(m1.clone());
        v
    };
    let mut lines = split_keep(orig);
    let norm = |l: &str| -> String { format!("{}\n", l.trim_end_matches(['\r', '\n'])) };
    let mut n0: Option<usize> = None;
    let mut n1: Option<usize> = None;
    for (i, l) in lines.iter().enumerate() {
        if norm(l) == m0 {
            n0 = Some(i);
        }
        if norm(l) == m1 {
            n1 = Some(i);
        }
    }
    let mut at: usize;
    match (n0, n1) {
        (Some(a0), Some(a1)) => {
            if a0 < a1 {
                lines.drain(a0..=a1);
                at = a0;
            } else {
                lines.drain(a1..=a0);
                at = a1;
            }
        }
        _ => {
            let ins = match (&insertafter, &insertbefore) {
                (Some(x), _) if x != "EOF" => Some((pyre(x)?, true)),
                (None, Some(x)) if x != "BOF" => Some((pyre(x)?, false)),
                _ => None,
            };
            if let Some((re, after)) = ins {
                let mut found = None;
                for (i, l) in lines.iter().enumerate() {
                    if re.is_match(l) {
                        found = Some(i);
                    }
                }
                at = match found {
                    None => lines.len(),
                    Some(i) if after => i + 1,
                    Some(i) => i,
                };
            } else if insertbefore.is_some() {
                at = 0;
            } else {
                at = lines.len();
            }
        }
    }
    if at > lines.len() {
        at = lines.len();
    }
    if at > 0 && !blocklines.is_empty() && !lines[at - 1].ends_with('\n') {
        lines[at - 1].push('\n');
    }
    for (k, l) in blocklines.iter().enumerate() {
        lines.insert(at + k, l.clone());
    }
    let result = lines.concat();
    let msg = if result == orig {
        String::new()
    } else if blocklines.is_empty() {
        "Block removed".into()
    } else {
        "Block inserted".into()
    };
    Ok((result, msg))
}

pub fn blockinfile(t: &mut dyn Transport, c: &ModCtx, a: &Args) -> ModResult {
    let path = s(a, "path")
        .or_else(|| s(a, "dest"))
        .ok_or_else(|| ModError::Failed("blockinfile: missing required arguments: path".into()))?;
    let create = b(a, "create", false);
    let state = s(a, "state").unwrap_or("present".into());
    edit_file(t, c, a, &path, |orig| match orig {
        None if state == "absent" => Ok(None),
        None if !create => fail(format!("Path {path} does not exist !")),
        o => {
            let (new, msg) = blockinfile_apply(o.unwrap_or(""), a)?;
            if o.is_none() && new.is_empty() {
                return Ok(None);
            }
            Ok(Some((
                new,
                if o.is_none() {
                    "File created".into()
                } else {
                    msg
                },
            )))
        }
    })
}

pub fn replace(t: &mut dyn Transport, c: &ModCtx, a: &Args) -> ModResult {
    let path = s(a, "path")
        .or_else(|| s(a, "dest"))
        .ok_or_else(|| ModError::Failed("replace: missing required arguments: path".into()))?;
    let regexp = req(a, "regexp", "replace")?;
    let repl = s(a, "replace").unwrap_or_default();
    let after = s(a, "after");
    let before = s(a, "before");
    let re = regex::RegexBuilder::new(&regexp)
        .multi_line(true)
        .build()
        .map_err(|e| ModError::Failed(format!("bad regexp {regexp:?}: {e}")))?;
    edit_file(t, c, a, &path, |orig| {
        let Some(orig) = orig else {
            return fail(format!("Path {path} does not exist !"));
        };
        let mut start = 0;
        let mut end = orig.len();
        if let Some(af) = &after {
            if let Some(m) = pyre(af)?.find(orig) {
                start = m.end();
            }
        }
        if let Some(bf) = &before {
            if let Some(m) = pyre(bf)?.find(&orig[start..]) {
                end = start + m.start();
            }
        }
        let section = &orig[start..end];
        let n = re.find_iter(section).count();
        let replaced = re.replace_all(section, crate::playbook::template::py_repl(&repl).as_str());
        let new = format!("{}{}{}", &orig[..start], replaced, &orig[end..]);
        let msg = if n > 0 && new != orig {
            format!("{n} replacements made")
        } else {
            String::new()
        };
        Ok(Some((new, msg)))
    })
}

pub fn ini_apply(orig: &str, a: &Args) -> Result<(String, String), ModError> {
    let section = s(a, "section").filter(|s| !s.is_empty());
    let option = s(a, "option");
    let value = s(a, "value");
    let state = s(a, "state").unwrap_or("present".into());
    let no_spaces = b(a, "no_extra_spaces", false);
    let allow_no_value = b(a, "allow_no_value", false);
    let sep = if no_spaces { "=" } else { " = " };
    let mut lines: Vec<String> = split_keep(orig)
        .into_iter()
        .map(|l| l.trim_end_matches(['\r', '\n']).to_string())
        .collect();
    let header = |l: &str| -> Option<String> {
        let t = l.trim();
        (t.starts_with('[') && t.ends_with(']')).then(|| t[1..t.len() - 1].trim().to_string())
    };
    // Section bounds: [start, end) of the body (None = global section before any header).
    let (sec_start, sec_end, found) = match &section {
        None => (
            0,
            lines
                .iter()
                .position(|l| header(l).is_some())
                .unwrap_or(lines.len()),
            true,
        ),
        Some(sname) => match lines
            .iter()
            .position(|l| header(l).as_deref() == Some(sname.as_str()))
        {
            Some(h) => {
                let end = lines[h + 1..]
                    .iter()
                    .position(|l| header(l).is_some())
                    .map(|e| h + 1 + e)
                    .unwrap_or(lines.len());
                (h + 1, end, true)
            }
            None => (lines.len(), lines.len(), false),
        },
    };
    let opt_re = option
        .as_ref()
        .map(|o| pyre(&format!(r"^\s*[#;]?\s*{}\s*(=|$)", regex::escape(o))))
        .transpose()?;
    let is_opt = |l: &str| -> bool {
        let t = l.trim_start();
        !t.starts_with('#')
            && !t.starts_with(';')
            && opt_re.as_ref().map(|r| r.is_match(l)).unwrap_or(false)
    };
    let mut msg = "OK".to_string();
    let new_line = option.as_ref().map(|o| match &value {
        Some(v) => format!("{o}{sep}{v}"),
        None if allow_no_value => o.clone(),
        None => format!("{o}{sep}"),
    });
    if state == "present" {
        if !found {
            if let Some(last) = lines.last() {
                if !last.trim().is_empty() {
                    // Ansible adds the new section at the end of the file.
                }
            }
            lines.push(format!("[{}]", section.clone().unwrap()));
            if let Some(nl) = &new_line {
                lines.push(nl.clone());
            }
            msg = "section and option added".into();
        } else if let Some(nl) = &new_line {
            let hit = (sec_start..sec_end).find(|&i| is_opt(&lines[i]));
            match hit {
                Some(i) => {
                    if lines[i] != *nl {
                        lines[i] = nl.clone();
                        msg = "option changed".into();
                    }
                }
                None => {
                    // Insert after the last non-blank line of the section.
                    let mut at = sec_end;
                    while at > sec_start && lines[at - 1].trim().is_empty() {
                        at -= 1;
                    }
                    lines.insert(at, nl.clone());
                    msg = "option added".into();
                }
            }
        }
    } else if found {
        match &option {
            Some(_) => {
                let before = lines.len();
                let mut i = sec_start;
                let mut end = sec_end;
                while i < end {
                    if is_opt(&lines[i]) {
                        lines.remove(i);
                        end -= 1;
                    } else {
                        i += 1;
                    }
                }
                if lines.len() != before {
                    msg = "option changed".into();
                }
            }
            None => {
                if section.is_some() {
                    lines.drain(sec_start - 1..sec_end);
                    msg = "section removed".into();
                }
            }
        }
    }
    let mut out = lines.join("\n");
    if !out.is_empty() {
        out.push('\n');
    }
    Ok((out, msg))
}

pub fn ini_file(t: &mut dyn Transport, c: &ModCtx, a: &Args) -> ModResult {
    let path = s(a, "path")
        .or_else(|| s(a, "dest"))
        .ok_or_else(|| ModError::Failed("ini_file: missing required arguments: path".into()))?;
    let create = b(a, "create", true);
    edit_file(t, c, a, &path, |orig| {
        if orig.is_none() && !create {
            return fail(format!("Destination {path} does not exist!"));
        }
        let (new, msg) = ini_apply(orig.unwrap_or(""), a)?;
        if orig.is_none() && new.is_empty() {
            return Ok(None);
        }
        Ok(Some((new, msg)))
    })
}

pub fn unarchive(t: &mut dyn Transport, c: &ModCtx, a: &Args) -> ModResult {
    let src = req(a, "src", "unarchive")?;
    let dest = req(a, "dest", "unarchive")?;
    let attrs = Attrs::from_args(a)?;
    if let Some(cr) = s(a, "creates") {
        let o = c.sh(t, &format!("[ -e {} ]", shell_quote(&cr)))?;
        if o.success() {
            return Ok(obj(
                json!({"changed": false, "skipped": false, "msg": format!("skipped, since {cr} exists"), "dest": dest}),
            ));
        }
    }
    let remote_src = b(a, "remote_src", false) || !b(a, "copy", true);
    let archive = if remote_src {
        src.clone()
    } else {
        let local = c.find_local(&src, "files").ok_or_else(|| {
            ModError::Failed(format!(
                "Could not find or access '{src}' on the Ansible Controller."
            ))
        })?;
        let mut f = std::fs::File::open(&local)
            .map_err(|e| ModError::Failed(format!("{}: {e}", local.display())))?;
        let size = f.metadata().map(|m| m.len()).unwrap_or(0);
        let digest = crate::digest::Digest::of_file(&local)
            .map_err(|e| ModError::Failed(format!("{}: {e}", local.display())))?;
        let tmp = format!("/tmp/.dp_unarchive.{}", &digest.0.hex()[..16]);
        t.upload(
            &mut f,
            size,
            &tmp,
            &UploadOpts {
                mode: Some(0o600),
                sha256: Some(digest.0),
                become_: c.become_.clone(),
            },
        )?;
        tmp
    };
    let is_zip = src.ends_with(".zip");
    let q = shell_quote(&archive);
    let d = shell_quote(&dest);
    let extra: Vec<String> = match a.get("extra_opts") {
        Some(Value::Array(v)) => v
            .iter()
            .map(|x| shell_quote(&crate::playbook::template::py_str(x)))
            .collect(),
        _ => vec![],
    };
    let extra = extra.join(" ");
    let script = if is_zip {
        format!(
            "{ATTRS_FN}[ -d {d} ] || {{ echo 'err=dest {dest} must be an existing dir'; exit 0; }}\n\
             dp_ch=1; [ {chk} = 1 ] || unzip -o {extra} {q} -d {d} >/dev/null || exit 2\necho changed=$dp_ch\n",
            chk = if c.check { 1 } else { 0 },
        )
    } else {
        format!(
            "{ATTRS_FN}[ -d {d} ] || {{ echo 'err=dest {dest} must be an existing dir'; exit 0; }}\n\
             if tar -d -f {q} -C {d} {extra} >/dev/null 2>&1; then :; else dp_ch=1; [ {chk} = 1 ] || tar -x -f {q} -C {d} {extra} || exit 2; fi\n\
             if [ -n {owner}{group}{mode} ] && [ {chk} = 0 ]; then tar -t -f {q} {extra} | while IFS= read -r f; do {} ; done; fi\n\
             echo changed=$dp_ch\n",
            attrs.call(&format!("{d}/\"$f\""), false),
            chk = if c.check { 1 } else { 0 },
            owner = shell_quote(attrs.owner.as_deref().unwrap_or("")),
            group = shell_quote(attrs.group.as_deref().unwrap_or("")),
            mode = shell_quote(attrs.mode.as_deref().unwrap_or("")),
        )
    };
    let o = c.sh(t, &script)?;
    if !remote_src {
        let _ = c.sh(t, &format!("rm -f {q}"));
    }
    let kv = kv_lines(&o.stdout_str());
    if let Some(e) = kv.get("err") {
        return fail(e.clone());
    }
    if !o.success() {
        return fail(format!(
            "failed to unpack {src} into {dest}: {}",
            o.stderr_str().trim()
        ));
    }
    let mut r = Map::new();
    r.insert(
        "changed".into(),
        Value::Bool(kv.get("changed").map(|v| v == "1").unwrap_or(false)),
    );
    r.insert("dest".into(), Value::String(dest));
    r.insert("src".into(), Value::String(src));
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: Value) -> Args {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn lineinfile_semantics() {
        let f = "a=1\nb=2\n";
        let (n, m, c) =
            lineinfile_apply(f, &args(json!({"regexp": "^b=", "line": "b=3"}))).unwrap();
        assert_eq!(
            (n.as_str(), m.as_str(), c),
            ("a=1\nb=3\n", "line replaced", true)
        );
        let (n, _, c) = lineinfile_apply(f, &args(json!({"line": "b=2"}))).unwrap();
        assert_eq!((n.as_str(), c), (f, false));
        let (n, _, _) = lineinfile_apply("x", &args(json!({"line": "y"}))).unwrap();
        assert_eq!(n, "x\ny\n");
        let (n, _, _) =
            lineinfile_apply(f, &args(json!({"line": "z", "insertbefore": "BOF"}))).unwrap();
        assert_eq!(n, "z\na=1\nb=2\n");
        let (n, _, _) =
            lineinfile_apply(f, &args(json!({"line": "z", "insertafter": "^a="}))).unwrap();
        assert_eq!(n, "a=1\nz\nb=2\n");
        let (n, m, _) =
            lineinfile_apply(f, &args(json!({"regexp": "^a", "state": "absent"}))).unwrap();
        assert_eq!((n.as_str(), m.as_str()), ("b=2\n", "1 line(s) removed"));
        let (n, _, _) = lineinfile_apply(
            "port 80\n",
            &args(json!({"regexp": "^port (\\d+)", "line": "listen \\1", "backrefs": true})),
        )
        .unwrap();
        assert_eq!(n, "listen 80\n");
    }

    #[test]
    fn blockinfile_semantics() {
        let (n, m) = blockinfile_apply("x\n", &args(json!({"block": "a\nb"}))).unwrap();
        assert_eq!(
            n,
            "x\n# BEGIN ANSIBLE MANAGED BLOCK\na\nb\n# END ANSIBLE MANAGED BLOCK\n"
        );
        assert_eq!(m, "Block inserted");
        let (n2, m2) = blockinfile_apply(&n, &args(json!({"block": "a\nb"}))).unwrap();
        assert_eq!((n2.as_str(), m2.as_str()), (n.as_str(), ""));
        let (n3, _) = blockinfile_apply(&n, &args(json!({"state": "absent"}))).unwrap();
        assert_eq!(n3, "x\n");
    }

    #[test]
    fn ini_semantics() {
        let (n, _) = ini_apply(
            "",
            &args(json!({"section": "s", "option": "k", "value": "v"})),
        )
        .unwrap();
        assert_eq!(n, "[s]\nk = v\n");
        let (n2, m) = ini_apply(
            &n,
            &args(json!({"section": "s", "option": "k", "value": "w"})),
        )
        .unwrap();
        assert_eq!(
            (n2.as_str(), m.as_str()),
            ("[s]\nk = w\n", "option changed")
        );
    }
}
