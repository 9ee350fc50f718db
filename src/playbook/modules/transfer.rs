//! Transfer modules: `fetch` (a node's file onto the controller) and `get_url` (a URL onto
//! the node, downloaded by the node itself with `curl`, or read from its own disk for
//! `file://`). Results, messages and the changed logic follow ansible-core 2.19's action
//! plugin and module branch for branch.

use super::{add_info, b, fail, kv_lines, obj, req, s, Args, Attrs, ModCtx, ModResult};
use super::{ATTRS_FN, INFO_FN};
use crate::playbook::template::{normpath, percent_decode};
use crate::transport::{shell_quote, Transport};
use openssl::hash::{hash, MessageDigest};
use serde_json::{json, Map, Value};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Shell function `dp_state PATH`: for an existing PATH, the stat fields `exit_json` adds
/// (`dp_info`) and its `state`.
const STATE_FN: &str = "dp_state() {\n  if [ -e \"$1\" ]; then dp_info \"$1\"; if [ -d \"$1\" ]; then echo state=directory; else echo state=file; fi; fi\n}\n";

fn hex_digest(md: MessageDigest, data: &[u8]) -> String {
    hash(md, data).map(hex::encode).unwrap_or_default()
}

/// Ansible's `path_dwim`: `~` and absolute paths as they are, others under the playbook's
/// directory (the last search directory).
fn path_dwim(c: &ModCtx, given: &str) -> String {
    if let Some(rest) = given.strip_prefix('~') {
        if rest.is_empty() || rest.starts_with('/') {
            let home = std::env::var("HOME").unwrap_or_default();
            return normpath(&format!("{home}{rest}"));
        }
    }
    if given.starts_with('/') {
        return normpath(given);
    }
    let base = c
        .search
        .last()
        .cloned()
        .unwrap_or_else(|| PathBuf::from("."));
    normpath(&base.join(given).display().to_string())
}

/// `fetch`: copy a file from the node into a controller directory (`dest/HOST/SRC`, or `dest`
/// itself with `flat`), only when its sha1 differs from the controller's copy.
pub fn fetch(t: &mut dyn Transport, c: &ModCtx, a: &Args) -> ModResult {
    if c.check {
        return Ok(obj(json!({
            "changed": false, "skipped": true,
            "msg": "check mode not (yet) supported for this module"
        })));
    }
    let (Some(src), Some(dest)) = (s(a, "src"), s(a, "dest")) else {
        return fail("src and dest are required");
    };
    let flat = b(a, "flat", false);
    let fail_on_missing = b(a, "fail_on_missing", true);
    let validate = b(a, "validate_checksum", true);
    let probe = format!(
        "p={}\ncase \"$p\" in \"~\"|\"~/\"*) p=\"$HOME${{p#\\~}}\";; esac\necho \"src=$p\"\n\
         if [ -d \"$p\" ]; then echo kind=dir\n\
         elif [ ! -e \"$p\" ]; then echo kind=missing\n\
         elif [ ! -r \"$p\" ]; then echo kind=unreadable\n\
         else echo kind=file; dp_s=$(sha1sum < \"$p\") || exit 2; echo \"sha1=${{dp_s%% *}}\"; echo \"mode=$(stat -L -c %a \"$p\")\"; fi\n",
        shell_quote(&src)
    );
    let o = c.sh(t, &probe)?;
    if !o.success() {
        return fail(format!("fetch: {}", o.stderr_str().trim()));
    }
    let kv = kv_lines(&o.stdout_str());
    let source = kv.get("src").cloned().unwrap_or(src);
    let missing = |msg: Option<&str>| -> ModResult {
        let mut r = obj(json!({"changed": false, "file": source}));
        if let Some(m) = msg {
            r.insert("msg".into(), json!(m));
        }
        if fail_on_missing {
            r.remove("file");
            r.insert("failed".into(), json!(true));
        }
        Ok(r)
    };
    match kv.get("kind").map(String::as_str) {
        Some("dir") => {
            let msg = "remote file is a directory, fetch cannot work on directories";
            return Ok(if fail_on_missing {
                obj(json!({"changed": false, "failed": true, "msg": msg}))
            } else {
                obj(json!({"changed": false, "msg": format!("{msg}, not transferring, ignored")}))
            });
        }
        Some("missing") => {
            return missing(Some(
                "the remote file does not exist, not transferring, ignored",
            ))
        }
        Some("unreadable") => {
            return if fail_on_missing {
                missing(Some(&format!("file is not readable: {source}")))
            } else {
                missing(None)
            };
        }
        _ => {}
    }
    let remote_sha1 = kv.get("sha1").cloned().unwrap_or_default();
    let dest = fetch_dest(c, &dest, &source, flat)?;
    let local_sha1 = std::fs::metadata(&dest)
        .ok()
        .filter(|m| m.is_file())
        .and_then(|_| std::fs::read(&dest).ok())
        .map(|d| hex_digest(MessageDigest::sha1(), &d));
    if local_sha1.as_deref() == Some(remote_sha1.as_str()) {
        let data = std::fs::read(&dest).unwrap_or_default();
        return Ok(obj(json!({
            "changed": false, "md5sum": hex_digest(MessageDigest::md5(), &data),
            "file": source, "dest": dest, "checksum": local_sha1,
        })));
    }
    let data = download(t, c, &source)?;
    // As sftp creates it: the remote file's mode plus owner-write, under the umask (a file
    // read through become, as Ansible's slurp path, gets the default mode).
    let mode = match (
        &c.become_,
        kv.get("mode").and_then(|m| u32::from_str_radix(m, 8).ok()),
    ) {
        (None, Some(m)) => (m | 0o200) & 0o777,
        _ => 0o666,
    };
    write_local(&dest, &data, mode)?;
    let new_sha1 = hex_digest(MessageDigest::sha1(), &data);
    let md5 = hex_digest(MessageDigest::md5(), &data);
    if validate && new_sha1 != remote_sha1 {
        return Ok(obj(json!({
            "failed": true, "changed": false, "md5sum": md5, "msg": "checksum mismatch",
            "file": source, "dest": dest, "remote_md5sum": null,
            "checksum": new_sha1, "remote_checksum": remote_sha1,
        })));
    }
    Ok(obj(json!({
        "changed": true, "md5sum": md5, "dest": dest, "remote_md5sum": null,
        "checksum": new_sha1, "remote_checksum": remote_sha1,
    })))
}

/// Where fetch puts `source`: `dest/HOST/SOURCE`, or with `flat` `dest` itself (a trailing
/// slash: the source's file name in it).
fn fetch_dest(c: &ModCtx, dest: &str, source: &str, flat: bool) -> Result<String, super::ModError> {
    if !flat {
        return Ok(normpath(&format!(
            "{}/{}/{}",
            path_dwim(c, dest),
            c.host,
            source
        )));
    }
    let dwim = path_dwim(c, dest);
    if Path::new(&dwim).is_dir() && !dest.ends_with('/') {
        return fail("dest is an existing directory, use a trailing slash if you want to fetch src into that directory");
    }
    if !dest.ends_with('/') {
        return Ok(dwim);
    }
    let base = source.rsplit('/').next().unwrap_or(source);
    let d = normpath(&format!("{dwim}/{base}"));
    if Path::new(&d).is_dir() {
        return fail(format!("calculated dest '{d}' is an existing directory, use another path that does not point to an existing directory"));
    }
    Ok(d)
}

/// Write a fetched file on the controller (truncated in place when it exists, as Ansible).
fn write_local(dest: &str, data: &[u8], mode: u32) -> Result<(), super::ModError> {
    if let Some(parent) = Path::new(dest).parent() {
        if let Err(e) = std::fs::create_dir_all(parent) {
            return fail(format!(
                "Failed to fetch the file: {}: {e}",
                parent.display()
            ));
        }
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(dest)
        .and_then(|mut f| f.write_all(data))
        .or_else(|e| fail(format!("Failed to fetch the file: {dest}: {e}")))
}

/// The bytes of a node file: streamed by the transport, or read through `cat` as the become
/// user when the task escalates.
fn download(t: &mut dyn Transport, c: &ModCtx, src: &str) -> Result<Vec<u8>, super::ModError> {
    if c.become_.is_none() {
        let mut buf = vec![];
        t.download(src, &mut buf)?;
        return Ok(buf);
    }
    let o = c.sh(t, &format!("cat -- {}", shell_quote(src)))?;
    if !o.success() {
        return fail(format!(
            "Failed to fetch the file: {}",
            o.stderr_str().trim()
        ));
    }
    Ok(o.stdout)
}

/// Digest command for a get_url `checksum` algorithm (the ones coreutils has).
fn sum_cmd(algo: &str) -> Option<&'static str> {
    Some(match algo {
        "md5" => "md5sum",
        "sha1" => "sha1sum",
        "sha224" => "sha224sum",
        "sha256" => "sha256sum",
        "sha384" => "sha384sum",
        "sha512" => "sha512sum",
        _ => return None,
    })
}

/// `os.path.basename(urlsplit(url).path)`, `index.html` when empty.
fn url_filename(url: &str) -> String {
    let no_frag = url.split('#').next().unwrap_or(url);
    let no_query = no_frag.split('?').next().unwrap_or(no_frag);
    let path = match no_query.split_once("://") {
        Some((_, rest)) => rest.find('/').map(|i| &rest[i..]).unwrap_or(""),
        None => no_query,
    };
    match path.rsplit('/').next() {
        Some(f) if !f.is_empty() => f.to_string(),
        _ => "index.html".into(),
    }
}

/// Percent-decoding of a `file://` URL's path.
fn file_url_path(url: &str) -> Option<String> {
    let rest = url.strip_prefix("file://")?;
    let path = rest.find('/').map(|i| &rest[i..]).unwrap_or("/");
    Some(percent_decode(path, false))
}

/// The `filename` parameter of a Content-Disposition header (its basename).
fn disposition_filename(h: &str) -> Option<String> {
    for part in h.split(';').skip(1) {
        let (k, v) = part.split_once('=')?;
        if k.trim().eq_ignore_ascii_case("filename") {
            let v = v.trim().trim_matches('"');
            let base = v.rsplit('/').next().unwrap_or(v);
            return (!base.is_empty()).then(|| base.to_string());
        }
    }
    None
}

/// One request made on the node: `curl` for http(s)/ftp, `cat` of the path for `file://`.
/// The body lands in a temporary file (removed again unless `keep`), the script prints
/// `code=`, `eff=` (the final URL), `curlrc=`, and the response headers after `---h---`.
fn request_script(a: &Args, url: &str, tmp_dir: Option<&str>, extra: &str, head: bool) -> String {
    let mk = match tmp_dir {
        Some(d) => format!("mktemp {}/dp_get.XXXXXX", shell_quote(d)),
        None => "mktemp".into(),
    };
    let mut sc = format!("dp_t=$({mk}) || exit 2\necho \"tmp=$dp_t\"\n");
    if let Some(path) = file_url_path(url) {
        let q = shell_quote(&path);
        sc.push_str(&format!(
            "if [ ! -e {q} ]; then echo curlrc=nofile; elif [ ! -r {q} ] || [ -d {q} ]; then echo curlrc=noaccess; \
             elif cat {q} > \"$dp_t\"; then echo curlrc=0; echo \"dp_len=$(wc -c < {q})\"; else echo curlrc=noaccess; fi\n\
             echo ---h---\n"
        ));
        return sc;
    }
    let timeout = s(a, "timeout").unwrap_or("10".into());
    let mut cmd = vec![
        "curl -sS".to_string(),
        if head {
            "-I -o /dev/null".into()
        } else {
            "-o \"$dp_t\"".into()
        },
        "-A ansible-httpget -D \"$dp_h\" -w '%{http_code} %{url_effective}'".into(),
        format!("--max-time {}", shell_quote(&timeout)),
    ];
    if !b(a, "validate_certs", true) {
        cmd.push("-k".into());
    }
    if s(a, "follow_redirects").as_deref() != Some("none") {
        cmd.push("-L".into());
    }
    if let (Some(u), Some(p)) = (
        s(a, "url_username").or_else(|| s(a, "username")),
        s(a, "url_password").or_else(|| s(a, "password")),
    ) {
        cmd.push(format!("-u {}", shell_quote(&format!("{u}:{p}"))));
    }
    if let Some(Value::Object(h)) = a.get("headers") {
        for (k, v) in h {
            let v = crate::playbook::template::py_str(v);
            cmd.push(format!("-H {}", shell_quote(&format!("{k}: {v}"))));
        }
    }
    cmd.push(extra.to_string());
    cmd.push(shell_quote(url));
    sc.push_str(&format!(
        "command -v curl >/dev/null 2>&1 || {{ echo 'get_url needs curl on the node' >&2; rm -f \"$dp_t\"; exit 127; }}\n\
         dp_h=$(mktemp) || exit 2\ndp_w=$({})\necho curlrc=$?\n\
         echo \"code=${{dp_w%% *}}\"; echo \"eff=${{dp_w#* }}\"\n\
         echo ---h---; tr -d '\\r' < \"$dp_h\"; rm -f \"$dp_h\"\n",
        cmd.join(" ")
    ));
    sc
}

/// A parsed [`request_script`] answer.
struct Response {
    tmp: String,
    /// `None` for `file://` (urllib gives no status there).
    status: Option<i64>,
    /// The message urllib's answer gives: `OK (N bytes)`, `HTTP Error …`, `Request failed: …`.
    msg: String,
    /// Set when the request itself failed (no status).
    error: Option<String>,
    url: String,
    headers: Map<String, Value>,
}

fn parse_response(out: &str, url: &str) -> Response {
    let (top, hdrs) = out.split_once("---h---\n").unwrap_or((out, ""));
    let kv = kv_lines(top);
    let mut headers = Map::new();
    let mut reason = String::new();
    for l in hdrs.lines() {
        if l.starts_with("HTTP/") {
            headers.clear();
            reason = l.splitn(3, ' ').nth(2).unwrap_or("").trim().to_string();
        } else if let Some((k, v)) = l.split_once(':') {
            headers.insert(k.trim().to_lowercase(), json!(v.trim()));
        }
    }
    let tmp = kv.get("tmp").cloned().unwrap_or_default();
    let rc = kv.get("curlrc").map(String::as_str).unwrap_or("");
    let mut r = Response {
        tmp,
        status: None,
        msg: String::new(),
        error: None,
        url: url.to_string(),
        headers,
    };
    if let Some(path) = file_url_path(url) {
        r.error = match rc {
            "0" => None,
            "nofile" => Some(format!(
                "Request failed: <urlopen error [Errno 2] No such file or directory: '{path}'>"
            )),
            _ => Some(format!(
                "Request failed: <urlopen error [Errno 13] Permission denied: '{path}'>"
            )),
        };
        r.msg = format!("OK ({} bytes)", kv.get("dp_len").map_or("unknown", |v| v));
        return r;
    }
    let code: i64 = kv.get("code").and_then(|c| c.parse().ok()).unwrap_or(0);
    if let Some(e) = kv.get("eff").filter(|e| !e.is_empty()) {
        r.url = e.clone();
    }
    if code == 0 || (rc != "0" && rc != "22") {
        r.error = Some(match rc {
            "7" => "Request failed: <urlopen error [Errno 111] Connection refused>".to_string(),
            "28" => "Request failed: <urlopen error timed out>".to_string(),
            "6" => "Request failed: <urlopen error [Errno -2] Name or service not known>".into(),
            other => format!("Request failed: curl exit {other}"),
        });
        return r;
    }
    r.status = Some(code);
    r.msg = if code < 300 {
        let len = r.headers.get("content-length").and_then(|v| v.as_str());
        format!("OK ({} bytes)", len.unwrap_or("unknown"))
    } else {
        format!("HTTP Error {code}: {reason}")
    };
    r
}

/// Split `algo:hexdigest` (the digest cleaned of non-word characters, lower case).
fn parse_checksum(spec: &str) -> Result<Option<(String, String)>, String> {
    if spec.is_empty() {
        return Ok(None);
    }
    let Some((algo, sum)) = spec.split_once(':') else {
        return Err("The checksum parameter has to be in format <algorithm>:<checksum>".into());
    };
    Ok(Some((algo.to_string(), sum.to_string())))
}

/// The digest for `filename` in a checksum file's lines (GNU or BSD style, or one bare digest).
fn digest_for(filename: &str, text: &str) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    if lines.len() == 1 && lines[0].split_whitespace().count() == 1 {
        return Some(lines[0].to_string());
    }
    for l in lines {
        // BSD: `SHA256 (name) = digest`
        if let (Some(o), Some(c)) = (l.find(" ("), l.rfind(") = ")) {
            if o < c && !l[..o].contains(' ') {
                if &l[o + 2..c] == filename {
                    return Some(l[c + 4..].to_string());
                }
                continue;
            }
        }
        let mut it = l.splitn(2, char::is_whitespace);
        let (Some(d), Some(rest)) = (it.next(), it.next()) else {
            continue;
        };
        let name = rest.trim_start();
        let name = name
            .strip_prefix('*')
            .unwrap_or(name)
            .trim_start_matches(['.', '/']);
        if name == filename && !d.is_empty() {
            return Some(d.to_string());
        }
    }
    None
}

fn with_url_dest(url: &str, dest: &str, extra: Value) -> Map<String, Value> {
    let mut r = obj(json!({"changed": false, "dest": dest, "elapsed": 0, "url": url}));
    r.extend(obj(extra));
    r
}

/// The `checksum` option as `(algorithm, lower-case hex digest)`: the digest read from a
/// checksum file when it is a URL. `Ok(Err(msg))` is a failed result that Ansible returns
/// with the url/dest fields; `Err` a plain module failure.
fn resolve_checksum(
    t: &mut dyn Transport,
    c: &ModCtx,
    a: &Args,
    url: &str,
    dest: &str,
    tmp_dest: Option<&str>,
) -> Result<Result<Option<(String, String)>, String>, super::ModError> {
    let mut checksum = match parse_checksum(&s(a, "checksum").unwrap_or_default()) {
        Ok(cs) => cs,
        Err(m) => return Ok(Err(m)),
    };
    let Some((algo, sum)) = checksum.as_mut() else {
        return Ok(Ok(None));
    };
    let scheme = sum.split_once("://").map(|(sch, _)| sch);
    if matches!(scheme, Some("http" | "https" | "ftp" | "file")) {
        let text = fetch_text(t, c, a, sum, tmp_dest)?;
        let name = url_filename(url);
        match text.and_then(|tx| digest_for(&name, &tx)) {
            Some(d) => *sum = d,
            None => {
                return fail(format!(
                    "Unable to find a checksum for file '{name}' in '{sum}'"
                ))
            }
        }
    }
    *sum = sum
        .chars()
        .filter(|ch| ch.is_alphanumeric() || *ch == '_')
        .collect::<String>()
        .to_lowercase();
    if sum.is_empty() || !sum.chars().all(|ch| ch.is_ascii_hexdigit()) {
        return Ok(Err("The checksum format is invalid".into()));
    }
    if sum_cmd(algo).is_none() {
        return fail(format!(
            "Could not hash file '{dest}' with algorithm '{algo}'. Available algorithms: md5, sha1, sha224, sha256, sha384, sha512"
        ));
    }
    Ok(Ok(checksum))
}

/// `get_url`: download `url` onto the node at `dest` (a file, or a directory to put the
/// URL's file name in), verified against `checksum`, replaced only when its sha1 differs.
pub fn get_url(t: &mut dyn Transport, c: &ModCtx, a: &Args) -> ModResult {
    let url = req(a, "url", "get_url")?;
    let dest = req(a, "dest", "get_url")?;
    let attrs = Attrs::from_args(a)?;
    let force = b(a, "force", false);
    let backup = b(a, "backup", false);
    let tmp_dest = s(a, "tmp_dest").filter(|d| !d.is_empty());
    let base = json!({"checksum_dest": null, "checksum_src": null});
    let checksum = match resolve_checksum(t, c, a, &url, &dest, tmp_dest.as_deref())? {
        Ok(cs) => cs,
        Err(msg) => {
            let mut r = with_url_dest(&url, &dest, base);
            r.insert("failed".into(), json!(true));
            r.insert("msg".into(), json!(msg));
            return Ok(r);
        }
    };
    // Round trip 1: dest probe, the early exit of a matching checksum, the download (a file
    // already there is asked for only if modified since, unless forced or its sum differs;
    // the request headers are spelled as urllib sends them).
    let mut sc = format!(
        "{ATTRS_FN}{INFO_FN}{STATE_FN}p={}; dp_force={}\n\
         if [ -d \"$p\" ]; then echo isdir=1; fi\n",
        shell_quote(&dest),
        u8::from(force)
    );
    if let (Some((algo, sum)), false) = (&checksum, force) {
        sc.push_str(&format!(
            "if [ ! -d \"$p\" ] && [ -e \"$p\" ]; then dp_s=$({} < \"$p\") || exit 2\n\
             if [ \"${{dp_s%% *}}\" = {} ]; then {} || exit 3; echo early=1; echo \"changed=$dp_ch\"\n\
             dp_state \"$p\"; exit 0; fi; dp_force=1; fi\n",
            sum_cmd(algo).unwrap_or("sha1sum"),
            shell_quote(sum),
            attrs.call("\"$p\"", c.check)
        ));
    }
    sc.push_str(
        "dp_state \"$p\"\ndp_z=; dp_nc=; if [ \"$dp_force\" = 1 ]; then dp_nc=no-cache\n\
         elif [ ! -d \"$p\" ] && [ -e \"$p\" ]; then dp_z=$(LC_ALL=C date -u -r \"$p\" '+%a, %d %b %Y %H:%M:%S GMT'); fi\n",
    );
    let head = c.check && file_url_path(&url).is_none();
    sc.push_str(&request_script(
        a,
        &url,
        tmp_dest.as_deref(),
        "${dp_z:+-H \"If-modified-since: $dp_z\"} ${dp_nc:+-H \"cache-control: $dp_nc\"}",
        head,
    ));
    let o = c.sh(t, &sc)?;
    if !o.success() {
        return fail(format!("get_url: {}", o.stderr_str().trim()));
    }
    let out = o.stdout_str();
    let (top, _) = out.split_once("---h---\n").unwrap_or((&out, ""));
    let kv = kv_lines(top);
    if kv.get("early").map(String::as_str) == Some("1") {
        let changed = kv.get("changed").map(String::as_str) == Some("1");
        let mut r = with_url_dest(&url, &dest, base);
        r.insert("changed".into(), json!(changed));
        r.insert(
            "msg".into(),
            json!(if changed {
                "file already exists but file attributes changed"
            } else {
                "file already exists"
            }),
        );
        add_path_info(&mut r, &kv);
        return Ok(r);
    }
    let dest_is_dir = kv.contains_key("isdir");
    let resp = parse_response(&out, &url);
    let early_exit = |t: &mut dyn Transport, extra: Value| -> ModResult {
        c.sh(t, &format!("rm -f {}", shell_quote(&resp.tmp)))?;
        let mut r = with_url_dest(&url, &dest, extra);
        add_path_info(&mut r, &kv);
        Ok(r)
    };
    if let Some(e) = &resp.error {
        return early_exit(t, json!({"failed": true, "msg": e}));
    }
    if resp.status == Some(304) {
        return early_exit(t, json!({"msg": resp.msg, "status_code": 304}));
    }
    if let Some(code) = resp.status.filter(|c| *c != 200) {
        return early_exit(
            t,
            json!({"failed": true, "msg": "Request failed", "status_code": code, "response": resp.msg}),
        );
    }
    let final_dest = if dest_is_dir {
        let name = resp
            .headers
            .get("content-disposition")
            .and_then(|v| v.as_str())
            .and_then(disposition_filename)
            .unwrap_or_else(|| url_filename(&resp.url));
        format!("{}/{name}", dest.trim_end_matches('/'))
    } else {
        dest.clone()
    };
    finish(t, c, &url, &final_dest, &resp, &checksum, &attrs, backup)
}

/// Round trip 2: checksums, the checksum check, backup, the move into place, attributes.
#[allow(clippy::too_many_arguments)]
fn finish(
    t: &mut dyn Transport,
    c: &ModCtx,
    url: &str,
    dest: &str,
    resp: &Response,
    checksum: &Option<(String, String)>,
    attrs: &Attrs,
    backup: bool,
) -> ModResult {
    let q = shell_quote;
    let mut sc = format!(
        "{ATTRS_FN}{INFO_FN}{STATE_FN}p={}; dp_src={}\n\
         dp_fail() {{ rm -f \"$dp_src\"; echo \"fail=$1\"; dp_state \"$p\"; exit 0; }}\n\
         dp_s=$(sha1sum < \"$dp_src\") || exit 2; dp_s=${{dp_s%% *}}; echo \"checksum_src=$dp_s\"\n\
         if [ -e \"$p\" ]; then\n\
           [ -w \"$p\" ] || dp_fail \"Destination $p is not writable\"\n\
           [ -r \"$p\" ] || dp_fail \"Destination $p is not readable\"\n\
           dp_d=$(sha1sum < \"$p\") || exit 2; dp_d=${{dp_d%% *}}; echo \"checksum_dest=$dp_d\"\n\
         else\n\
           case \"$p\" in */*) d=${{p%/*}}; d=${{d:-/}};; *) d=.;; esac\n\
           [ -d \"$d\" ] || dp_fail \"Destination $d does not exist\"\n\
           [ -w \"$d\" ] || dp_fail \"Destination $d is not writable\"\n\
         fi\n",
        q(dest),
        q(&resp.tmp)
    );
    if c.check {
        // A HEAD request has no body: its sum is that of nothing, as in Ansible.
        sc.push_str("rm -f \"$dp_src\"; echo check=1; dp_state \"$p\"; exit 0\n");
    } else {
        if let Some((algo, sum)) = checksum {
            sc.push_str(&format!(
                "dp_k=$({} < \"$dp_src\") || exit 2; dp_k=${{dp_k%% *}}\n\
                 [ \"$dp_k\" = {} ] || dp_fail \"The checksum for $dp_src did not match {sum}; it was $dp_k.\"\n",
                sum_cmd(algo).unwrap_or("sha1sum"),
                q(sum)
            ));
        }
        let write = super::files::write_script(attrs, None, false, None, backup);
        sc.push_str(&format!(
            "if [ \"$dp_s\" = \"$dp_d\" ]; then rm -f \"$dp_src\"; {} || exit 3; echo \"changed=$dp_ch\"\n\
             else echo copied=1\n( {write} ) || exit $?\nfi\n\
             dp_m=$(md5sum < \"$p\"); echo \"md5sum=${{dp_m%% *}}\"; dp_sp=; dp_state \"$p\"\n",
            attrs.call("\"$p\"", false)
        ));
    }
    let o = c.sh(t, &sc)?;
    if !o.success() {
        return fail(super::files::write_failure(&o, dest));
    }
    let kv = kv_lines(&o.stdout_str());
    let mut r = with_url_dest(
        url,
        dest,
        json!({
            "checksum_src": kv.get("checksum_src"),
            "checksum_dest": kv.get("checksum_dest"),
            "src": resp.tmp,
        }),
    );
    if let Some(m) = kv.get("fail") {
        r.insert("failed".into(), json!(true));
        r.insert("msg".into(), json!(m));
        add_path_info(&mut r, &kv);
        return Ok(r);
    }
    if kv.contains_key("check") {
        let changed = kv.get("checksum_dest") != kv.get("checksum_src");
        r.insert("changed".into(), json!(changed));
        r.insert("msg".into(), json!(resp.msg));
        add_path_info(&mut r, &kv);
        return Ok(r);
    }
    let changed = kv.contains_key("copied") || kv.get("changed").map(String::as_str) == Some("1");
    r.insert("changed".into(), json!(changed));
    r.insert("md5sum".into(), json!(kv.get("md5sum")));
    if let Some(bk) = kv.get("backup_file") {
        r.insert("backup_file".into(), json!(bk));
    }
    r.insert("msg".into(), json!(resp.msg));
    r.insert("status_code".into(), json!(resp.status));
    add_path_info(&mut r, &kv);
    Ok(r)
}

/// The stat fields Ansible's `exit_json` adds for an existing `dest`.
fn add_path_info(r: &mut Map<String, Value>, kv: &std::collections::HashMap<String, String>) {
    if kv.contains_key("mode") {
        add_info(r, kv);
        if let Some(st) = kv.get("state") {
            r.insert("state".into(), json!(st));
        }
    }
}

/// The text behind a checksum URL (`None` when the request failed).
fn fetch_text(
    t: &mut dyn Transport,
    c: &ModCtx,
    a: &Args,
    url: &str,
    tmp_dir: Option<&str>,
) -> Result<Option<String>, super::ModError> {
    let mut sc = request_script(a, url, tmp_dir, "", false);
    sc.push_str("echo ---body---; cat \"$dp_t\"; rm -f \"$dp_t\"\n");
    let o = c.sh(t, &sc)?;
    let out = o.stdout_str();
    let (head, body) = out.split_once("---body---\n").unwrap_or((&out, ""));
    let resp = parse_response(head, url);
    let ok = resp.error.is_none() && resp.status.map_or(true, |s| s == 200);
    Ok(ok.then(|| body.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_names() {
        assert_eq!(normpath("/a//b/./c/../d"), "/a/b/d");
        assert_eq!(normpath("a/../../b"), "../b");
        assert_eq!(normpath("/../x"), "/x");
        assert_eq!(url_filename("http://h:1/a/b.tar.gz?x=1"), "b.tar.gz");
        assert_eq!(url_filename("http://h:1/"), "index.html");
        assert_eq!(url_filename("http://h:1"), "index.html");
        assert_eq!(file_url_path("file:///a%20b/c").unwrap(), "/a b/c");
        assert_eq!(
            disposition_filename("attachment; filename=\"../x.bin\"").as_deref(),
            Some("x.bin")
        );
    }

    #[test]
    fn checksum_files() {
        let gnu = "abc123  other.tgz\ndef456 *app.tgz\n";
        assert_eq!(digest_for("app.tgz", gnu).as_deref(), Some("def456"));
        let bsd = "SHA256 (app.tgz) = 0a1b\nSHA256 (b) = ff\n";
        assert_eq!(digest_for("app.tgz", bsd).as_deref(), Some("0a1b"));
        assert_eq!(digest_for("x", "cafe\n").as_deref(), Some("cafe"));
        assert_eq!(
            digest_for("x", "cafe  y\nbeef  ./x\n").as_deref(),
            Some("beef")
        );
        assert!(digest_for("z", "cafe  y\nbeef  x\n").is_none());
    }
}
