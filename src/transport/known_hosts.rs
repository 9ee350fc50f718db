//! OpenSSH `known_hosts` files, parsed by us (libssh2's parser stops at the first line it does
//! not understand): plain and hashed (`|1|salt|hash`) names, `[host]:port`, `*`/`?` wildcards,
//! `!negation`, `@revoked` keys; `@cert-authority` lines are ignored (no certificates here).

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine;
use std::io::Write;
use std::path::Path;

/// One usable key line of a known_hosts file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KnownKey {
    /// Key type as written (`ssh-ed25519`, `ssh-rsa`, `ecdsa-sha2-nistp256`, …).
    pub key_type: String,
    /// The public key blob (base64-decoded).
    pub blob: Vec<u8>,
    pub revoked: bool,
    /// 1-based line number in the file.
    pub line: usize,
}

/// What a known_hosts file says about one host.
#[derive(Debug, Default)]
pub struct HostEntries {
    pub keys: Vec<KnownKey>,
}

impl HostEntries {
    /// Trusted (not revoked) keys.
    pub fn trusted(&self) -> impl Iterator<Item = &KnownKey> {
        self.keys.iter().filter(|k| !k.revoked)
    }
    pub fn is_revoked(&self, blob: &[u8]) -> bool {
        self.keys.iter().any(|k| k.revoked && k.blob == blob)
    }
    pub fn trusts(&self, blob: &[u8]) -> bool {
        !self.is_revoked(blob) && self.trusted().any(|k| k.blob == blob)
    }
    /// Host key algorithms to offer, so the server picks a key type we know (otherwise a
    /// known ed25519 key would "mismatch" an offered RSA key).
    pub fn algorithm_pref(&self) -> Option<String> {
        let mut algs: Vec<&str> = Vec::new();
        for k in self.trusted() {
            let list: Vec<&str> = match k.key_type.as_str() {
                "ssh-rsa" => vec!["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"],
                t => vec![t],
            };
            for a in list {
                if !algs.contains(&a) {
                    algs.push(a);
                }
            }
        }
        (!algs.is_empty()).then(|| algs.join(","))
    }
}

/// The name OpenSSH looks up: `host` for port 22, `[host]:port` otherwise.
pub fn lookup_name(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    }
}

/// Keys recorded for `host:port` in the known_hosts text.
pub fn entries_for(text: &str, host: &str, port: u16) -> HostEntries {
    let name = lookup_name(host, port);
    let mut out = HostEntries::default();
    for (idx, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.split_whitespace();
        let mut first = fields.next().unwrap_or("");
        let mut revoked = false;
        if first.starts_with('@') {
            match first {
                "@revoked" => revoked = true,
                _ => continue, // @cert-authority and unknown markers
            }
            first = fields.next().unwrap_or("");
        }
        let (Some(key_type), Some(b64)) = (fields.next(), fields.next()) else {
            continue;
        };
        if !hosts_match(first, &name) {
            continue;
        }
        let Ok(blob) = STANDARD.decode(b64) else {
            continue;
        };
        out.keys.push(KnownKey {
            key_type: key_type.to_string(),
            blob,
            revoked,
            line: idx + 1,
        });
    }
    out
}

/// Does a comma-separated host pattern list match `name`? A matching negated pattern wins.
fn hosts_match(patterns: &str, name: &str) -> bool {
    if let Some(rest) = patterns.strip_prefix("|1|") {
        return hashed_match(rest, name);
    }
    let mut matched = false;
    for p in patterns.split(',') {
        if let Some(neg) = p.strip_prefix('!') {
            if glob(neg, name) {
                return false;
            }
        } else if glob(p, name) {
            matched = true;
        }
    }
    matched
}

/// `salt|hash` (both base64): HMAC-SHA1(key = salt, message = name) == hash.
fn hashed_match(rest: &str, name: &str) -> bool {
    let Some((salt, hash)) = rest.split_once('|') else {
        return false;
    };
    let (Ok(salt), Ok(hash)) = (STANDARD.decode(salt), STANDARD.decode(hash)) else {
        return false;
    };
    hmac_sha1(&salt, name.as_bytes()).is_some_and(|h| h == hash)
}

fn hmac_sha1(key: &[u8], msg: &[u8]) -> Option<Vec<u8>> {
    let pkey = openssl::pkey::PKey::hmac(key).ok()?;
    let mut s = openssl::sign::Signer::new(openssl::hash::MessageDigest::sha1(), &pkey).ok()?;
    s.update(msg).ok()?;
    s.sign_to_vec().ok()
}

/// Case-insensitive glob with `*` and `?` (as OpenSSH host patterns).
fn glob(pat: &str, s: &str) -> bool {
    let p: Vec<char> = pat.to_ascii_lowercase().chars().collect();
    let t: Vec<char> = s.to_ascii_lowercase().chars().collect();
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            pi += 1;
            mark = ti;
        } else if let Some(sp) = star {
            pi = sp + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

/// OpenSSH-style fingerprint: `SHA256:` + unpadded base64 of the blob's sha256.
pub fn fingerprint(blob: &[u8]) -> String {
    use sha2::Digest as _;
    format!(
        "SHA256:{}",
        STANDARD_NO_PAD.encode(sha2::Sha256::digest(blob))
    )
}

/// Key type named inside a public key blob (its first SSH string).
pub fn blob_key_type(blob: &[u8]) -> Option<String> {
    let len = u32::from_be_bytes(blob.get(..4)?.try_into().ok()?) as usize;
    let s = blob.get(4..4 + len)?;
    String::from_utf8(s.to_vec()).ok()
}

/// Append `name type base64` to the file (created with its directory, mode 0600).
pub fn append(path: &Path, host: &str, port: u16, blob: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        if !dir.as_os_str().is_empty() && !dir.exists() {
            std::fs::create_dir_all(dir)?;
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        }
    }
    let key_type = blob_key_type(blob).unwrap_or_else(|| "ssh-unknown".into());
    let line = format!(
        "{} {} {}\n",
        lookup_name(host, port),
        key_type,
        STANDARD.encode(blob)
    );
    // Make sure we start on a new line if the file does not end with one.
    let needs_nl = std::fs::read(path)
        .map(|b| !b.is_empty() && !b.ends_with(b"\n"))
        .unwrap_or(false);
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)?;
    if needs_nl {
        f.write_all(b"\n")?;
    }
    f.write_all(line.as_bytes())?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIGv3bM0W5H2xL8ffcv3Ub8a8m4JqvD6vq3l7yCMQm7Pq";

    #[test]
    fn plain_port_and_wildcards() {
        let text = format!(
            "# comment\n\
             @cert-authority *.example ssh-ed25519 {KEY}\n\
             garbage-line\n\
             web1,10.0.0.1 ssh-ed25519 {KEY}\n\
             [10.0.0.2]:2222 ssh-ed25519 {KEY}\n\
             *.lan,!bad.lan ssh-rsa {KEY}\n"
        );
        assert_eq!(entries_for(&text, "web1", 22).keys.len(), 1);
        assert_eq!(entries_for(&text, "10.0.0.1", 22).keys[0].line, 4);
        assert_eq!(entries_for(&text, "10.0.0.2", 22).keys.len(), 0);
        assert_eq!(entries_for(&text, "10.0.0.2", 2222).keys.len(), 1);
        assert_eq!(entries_for(&text, "a.lan", 22).keys[0].key_type, "ssh-rsa");
        assert_eq!(entries_for(&text, "bad.lan", 22).keys.len(), 0);
        let e = entries_for(&text, "a.lan", 22);
        assert_eq!(
            e.algorithm_pref().unwrap(),
            "rsa-sha2-512,rsa-sha2-256,ssh-rsa"
        );
    }

    #[test]
    fn hashed_names_match_openssh() {
        // Produced by `ssh-keygen -H` for the name "[127.0.0.1]:2222".
        let salt = STANDARD.encode(b"0123456789abcdefghij");
        let mac = hmac_sha1(b"0123456789abcdefghij", b"[127.0.0.1]:2222").unwrap();
        let line = format!("|1|{salt}|{} ssh-ed25519 {KEY}\n", STANDARD.encode(mac));
        assert_eq!(entries_for(&line, "127.0.0.1", 2222).keys.len(), 1);
        assert_eq!(entries_for(&line, "127.0.0.1", 22).keys.len(), 0);
    }

    #[test]
    fn revoked_and_fingerprint() {
        let text = format!("@revoked web1 ssh-ed25519 {KEY}\nweb1 ssh-ed25519 {KEY}\n");
        let e = entries_for(&text, "web1", 22);
        let blob = STANDARD.decode(KEY).unwrap();
        assert!(e.is_revoked(&blob));
        assert!(!e.trusts(&blob));
        assert_eq!(blob_key_type(&blob).unwrap(), "ssh-ed25519");
        assert!(fingerprint(&blob).starts_with("SHA256:"));
        assert!(!fingerprint(&blob).ends_with('='));
    }

    #[test]
    fn glob_rules() {
        assert!(glob("*", "x"));
        assert!(glob("web?", "web1"));
        assert!(!glob("web?", "web10"));
        assert!(glob("*.EXAMPLE.com", "a.b.example.COM"));
    }
}
