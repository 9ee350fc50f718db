//! File modules: copy, template, file, stat, slurp, unarchive (the line editors are in
//! `edit.rs`).

use super::{
    add_info, b, fail, kv_lines, obj, req, s, Args, Attrs, ModCtx, ModError, ModResult, ATTRS_FN,
    INFO_FN,
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

/// Shell snippet: copy an existing `$p` to Ansible's backup name `PATH.PID.YYYY-MM-DD@HH:MM:SS~`
/// (the node's local time, mode, owner and times kept) and print `backup_file=…`.
const BACKUP_SH: &str = "if [ -e \"$p\" ]; then dp_bk=\"$p.$$.$(date +%Y-%m-%d@%H:%M:%S)~\"; \
     cp -p \"$p\" \"$dp_bk\" || { rm -f \"$t\"; echo \"could not make a backup of $p\" >&2; exit 2; }; \
     echo \"backup_file=$dp_bk\"; fi\n";

/// The message for a [`write_script`] that failed: exit 4 is its `validate` command refusing
/// the new content (the file was left as it was), anything else a failed write.
pub(super) fn write_failure(o: &crate::transport::ExecOutput, path: &str) -> String {
    let err = o.stderr_str().trim().to_string();
    if o.exit_code == 4 {
        format!("failed to validate {path}: {err}")
    } else {
        format!("failed to write {path}: {err}")
    }
}

/// Script that writes stdin (`len` bytes; or `$dp_src` when `len` is None) to `$p` atomically,
/// keeping the mode and owner of an existing file, then applies the requested attributes.
pub(super) fn write_script(
    attrs: &Attrs,
    validate: Option<&str>,
    mkdirs: bool,
    len: Option<usize>,
    backup: bool,
) -> String {
    let mut s = String::from(ATTRS_FN);
    s.push_str(INFO_FN);
    s.push_str("case \"$p\" in */*) d=${p%/*}; d=${d:-/};; *) d=.;; esac\n");
    if mkdirs {
        s.push_str("mkdir -p \"$d\" || exit 2\n");
    }
    s.push_str(
        "[ -d \"$d\" ] || { echo \"Destination directory $d does not exist\" >&2; exit 2; }\n",
    );
    // The temporary file is named after this shell's pid (one per host at a time) and made
    // with noclobber (O_EXCL), so no link planted there is followed; a stale one is removed.
    s.push_str(
        "t=\"$d/.dp_tmp.$$\"; if [ -e \"$t\" ] || [ -L \"$t\" ]; then rm -f \"$t\" || exit 2; fi\n",
    );
    // An existing file keeps its mode and owner; a new one gets the umask's default mode.
    let keep = "if [ -e \"$p\" ]; then dp_ifs=$IFS; IFS=' '; set -- $(stat -c '%a %u:%g' \"$p\"); \
                IFS=$dp_ifs; chmod \"$1\" \"$t\"; chown \"$2\" \"$t\" 2>/dev/null; fi\n";
    match len {
        None => {
            s.push_str("mv -f \"$dp_src\" \"$t\" || { rm -f \"$t\"; exit 2; }\n");
            s.push_str(keep);
            s.push_str(
                "[ -e \"$p\" ] || chmod \"$(printf '%o' $(( 0666 & ~0$(umask) )))\" \"$t\"\n",
            );
        }
        Some(_) => {
            // The shell's `>` creates the file with the umask's default mode already.
            s.push_str("set -C; { : > \"$t\"; } || exit 2; set +C\n");
            s.push_str(keep);
            s.push_str("cat > \"$t\" || { rm -f \"$t\"; exit 2; }\n");
        }
    }
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
    if let Some(n) = len {
        // dp_attrs' stat gave the size too. A controller killed while it sends closes the
        // channel and `cat` just sees its input end: a short file must not go into place.
        s.push_str(&format!(
            "[ \"$dp_sz\" = {n} ] || {{ rm -f \"$t\"; echo \"input for $t ended early\" >&2; exit 2; }}\n"
        ));
    }
    // As Ansible: the old file is copied aside only once the new one is complete and valid.
    if backup {
        s.push_str(BACKUP_SH);
    }
    s.push_str(
        "mv -f \"$t\" \"$p\" || exit 2\n[ \"$dp_sp\" != \"$t\" ] || dp_sp=$p\ndp_info \"$p\"\n",
    );
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
         if [ -f \"$p\" ]; then dp_sum=$(sha256sum < \"$p\"); dp_sum=${{dp_sum%% *}}; else dp_sum=none; case \"$p\" in */*) [ -d \"${{p%/*}}/\" ] || echo nodir=1;; esac; fi\n\
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
    let backup = b(a, "backup", false);
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
            write_script(attrs, validate.as_deref(), false, None, backup)
        );
        c.sh(t, &script)?
    } else {
        let script = format!(
            "p={}\n{}",
            shell_quote(&path),
            write_script(
                attrs,
                validate.as_deref(),
                false,
                Some(content.len()),
                backup,
            )
        );
        c.sh_in(t, &script, Some(content.to_vec()))?
    };
    if !out.success() {
        return fail(write_failure(&out, &path));
    }
    let kv = kv_lines(&out.stdout_str());
    if let Some(bk) = kv.get("backup_file") {
        r.insert("backup_file".into(), Value::String(bk.clone()));
    }
    add_info(&mut r, &kv);
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
    use crate::playbook::template::{file, PyDateTime};
    use std::os::unix::fs::MetadataExt;
    let src = req(a, "src", "template")?;
    let dest = req(a, "dest", "template")?;
    let local = c
        .find_local(&src, "templates")
        .ok_or_else(|| ModError::Failed(format!("Could not find or access '{src}'")))?;
    let text = std::fs::read_to_string(&local)
        .map_err(|e| ModError::Failed(format!("cannot read template {}: {e}", local.display())))?;
    let abs = std::fs::canonicalize(&local).unwrap_or(local.clone());
    let meta = std::fs::metadata(&local).ok();
    let mtime = meta
        .as_ref()
        .and_then(|m| m.modified().ok())
        .unwrap_or(std::time::UNIX_EPOCH);
    let user_managed = c
        .vars
        .get_attr("ansible_managed")
        .is_ok_and(|v| !v.is_undefined());
    let managed = if user_managed {
        c.vars.get_attr("ansible_managed").unwrap_or_default()
    } else {
        // ansible-core 2.19's default `DEFAULT_MANAGED_STR`
        minijinja::Value::from("Ansible managed")
    };
    let ctx = minijinja::context! {
        template_path => src.clone(),
        template_fullpath => abs.display().to_string(),
        template_destpath => dest.clone(),
        template_host => controller_hostname(),
        template_uid => meta.as_ref().map(|m| user_name(m.uid())),
        template_mtime => PyDateTime::value(mtime),
        template_run_date => PyDateTime::value(std::time::SystemTime::now()),
        ansible_managed => managed,
        ..c.vars.clone()
    };
    let search = file::search_path(c.search, &abs);
    let name = local.display().to_string();
    let out = file::FileTemplate {
        name: &name,
        text: &text,
        search: &search,
        options: template_options(a)?,
    }
    .render(&ctx)
    .map_err(ModError::Failed)?;
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

/// The template module's Jinja options (`trim_blocks`, `lstrip_blocks`, `newline_sequence`
/// written as the characters or escaped, the delimiter strings).
fn template_options(a: &Args) -> Result<crate::playbook::template::file::Overrides, ModError> {
    let mut o = crate::playbook::template::file::Overrides {
        trim_blocks: b(a, "trim_blocks", true),
        lstrip_blocks: b(a, "lstrip_blocks", false),
        ..Default::default()
    };
    if let Some(nl) = s(a, "newline_sequence") {
        o.newline_sequence = match nl.as_str() {
            "\\n" | "\n" => "\n",
            "\\r\\n" | "\r\n" => "\r\n",
            "\\r" | "\r" => "\r",
            _ => return fail("newline_sequence needs to be one of: \\n, \\r or \\r\\n"),
        }
        .to_string();
    }
    for (key, field) in [
        ("block_start_string", &mut o.block.0),
        ("block_end_string", &mut o.block.1),
        ("variable_start_string", &mut o.variable.0),
        ("variable_end_string", &mut o.variable.1),
        ("comment_start_string", &mut o.comment.0),
        ("comment_end_string", &mut o.comment.1),
    ] {
        if let Some(v) = s(a, key) {
            *field = v;
        }
    }
    Ok(o)
}

/// The controller's host name (`os.uname()[1]`), what Ansible puts in `template_host`.
fn controller_hostname() -> String {
    // SAFETY: uname fills the zeroed struct; nodename is NUL-terminated.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut u) } != 0 {
        return String::new();
    }
    unsafe { std::ffi::CStr::from_ptr(u.nodename.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

/// The name of the user `uid` (from the passwd database), or the number.
fn user_name(uid: u32) -> minijinja::Value {
    // SAFETY: getpwuid returns NULL or a pointer to a static passwd entry read at once.
    let pw = unsafe { libc::getpwuid(uid) };
    if pw.is_null() {
        return minijinja::Value::from(uid);
    }
    let name = unsafe { std::ffi::CStr::from_ptr((*pw).pw_name) };
    minijinja::Value::from(name.to_string_lossy().into_owned())
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

pub fn unarchive(t: &mut dyn Transport, c: &ModCtx, a: &Args) -> ModResult {
    let src = req(a, "src", "unarchive")?;
    let dest = req(a, "dest", "unarchive")?;
    let attrs = Attrs::from_args(a)?;
    if let Some(cr) = s(a, "creates") {
        let o = c.sh(t, &format!("[ -e {} ]", shell_quote(&cr)))?;
        if o.success() {
            return Ok(obj(
                json!({"changed": false, "skipped": true, "msg": format!("skipped, since {cr} exists")}),
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
