//! Optional HTTP basic auth for the registry: an htpasswd-like file.
//!
//! One `user:hash` per line; `#` comments and blank lines are ignored. The hash is
//! PBKDF2-HMAC-SHA256 (from the `openssl` crate; bcrypt is not in OpenSSL) in the passlib /
//! Modular Crypt style: `$pbkdf2-sha256$<iterations>$<salt>$<hash>` with unpadded standard
//! base64 (`+/`) salt and 32-byte hash. `darkport registry passwd` writes such lines.
//! A verified `Authorization` header is remembered (by its sha256) so that the deliberately
//! slow PBKDF2 runs once per credential, not once per request.

use super::RegistryError;
use crate::digest::Digest;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Mutex;

/// Iterations for new entries.
pub const DEFAULT_ITERATIONS: u32 = 100_000;
const SCHEME: &str = "$pbkdf2-sha256$";

/// One stored credential.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    iterations: u32,
    salt: Vec<u8>,
    hash: Vec<u8>,
}

/// The loaded password file.
#[derive(Debug, Default)]
pub struct Htpasswd {
    users: HashMap<String, Entry>,
    /// sha256 of accepted `Authorization` header values.
    accepted: Mutex<HashSet<Digest>>,
}

fn pbkdf2(password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
    let mut out = vec![0u8; 32];
    openssl::pkcs5::pbkdf2_hmac(
        password,
        salt,
        iterations as usize,
        openssl::hash::MessageDigest::sha256(),
        &mut out,
    )
    .expect("pbkdf2 with sha256 and a 32-byte output cannot fail");
    out
}

/// Make a password-file line for `user`.
pub fn hash_line(user: &str, password: &str, iterations: u32) -> Result<String, RegistryError> {
    if user.is_empty() || user.contains(':') || user.contains(char::is_whitespace) {
        return Err(RegistryError::Auth(format!(
            "invalid user name {user:?}: must be non-empty, without ':' or spaces"
        )));
    }
    let mut salt = [0u8; 16];
    openssl::rand::rand_bytes(&mut salt)
        .map_err(|e| RegistryError::Auth(format!("cannot get random salt: {e}")))?;
    let hash = pbkdf2(password.as_bytes(), &salt, iterations);
    Ok(format!(
        "{user}:{SCHEME}{iterations}${}${}",
        STANDARD_NO_PAD.encode(salt),
        STANDARD_NO_PAD.encode(hash)
    ))
}

impl Htpasswd {
    /// Parse a password file's text; `path` is for messages.
    pub fn parse(text: &str, path: &Path) -> Result<Htpasswd, RegistryError> {
        let mut users = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad =
                |why: &str| RegistryError::Auth(format!("{}:{}: {why}", path.display(), i + 1));
            let (user, rest) = line
                .split_once(':')
                .ok_or_else(|| bad("expected user:hash"))?;
            let rest = rest.strip_prefix(SCHEME).ok_or_else(|| {
                bad("unsupported hash (expected $pbkdf2-sha256$...; make one with `darkport registry passwd`)")
            })?;
            let parts: Vec<&str> = rest.split('$').collect();
            let [iter, salt, hash] = parts[..] else {
                return Err(bad("expected $pbkdf2-sha256$<iterations>$<salt>$<hash>"));
            };
            let iterations: u32 = iter
                .parse()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| bad("bad iteration count"))?;
            let salt = STANDARD_NO_PAD
                .decode(salt.trim_end_matches('='))
                .map_err(|_| bad("bad base64 salt"))?;
            let hash = STANDARD_NO_PAD
                .decode(hash.trim_end_matches('='))
                .map_err(|_| bad("bad base64 hash"))?;
            if hash.len() != 32 {
                return Err(bad("hash must be 32 bytes"));
            }
            users.insert(
                user.to_string(),
                Entry {
                    iterations,
                    salt,
                    hash,
                },
            );
        }
        Ok(Htpasswd {
            users,
            accepted: Mutex::new(HashSet::new()),
        })
    }

    /// Read and parse a password file.
    pub fn load(path: &Path) -> Result<Htpasswd, RegistryError> {
        let text = std::fs::read_to_string(path).map_err(|source| RegistryError::Io {
            op: "read password file",
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// Check an `Authorization` header value; returns the user name when it is valid.
    pub fn check(&self, header: Option<&str>) -> Option<String> {
        let header = header?;
        let (scheme, b64) = header.trim().split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return None;
        }
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .ok()?;
        let text = String::from_utf8(raw).ok()?;
        let (user, password) = text.split_once(':')?;
        let entry = self.users.get(user)?;
        let key = Digest::of(header.trim().as_bytes());
        if self
            .accepted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&key)
        {
            return Some(user.to_string());
        }
        let got = pbkdf2(password.as_bytes(), &entry.salt, entry.iterations);
        if openssl::memcmp::eq(&got, &entry.hash) {
            self.accepted
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(key);
            Some(user.to_string())
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;

    fn basic(u: &str, p: &str) -> String {
        format!("Basic {}", STANDARD.encode(format!("{u}:{p}")))
    }

    #[test]
    fn hash_and_check() {
        let line = hash_line("alice", "s3cret:x", 1000).unwrap();
        assert!(line.starts_with("alice:$pbkdf2-sha256$1000$"), "{line}");
        let text = format!(
            "# comment\n\n{line}\n{}\n",
            hash_line("bob", "pw", 10).unwrap()
        );
        let h = Htpasswd::parse(&text, Path::new("pw")).unwrap();
        assert_eq!(
            h.check(Some(&basic("alice", "s3cret:x"))),
            Some("alice".into())
        );
        // Second time from the cache.
        assert_eq!(
            h.check(Some(&basic("alice", "s3cret:x"))),
            Some("alice".into())
        );
        assert_eq!(h.check(Some(&basic("alice", "wrong"))), None);
        assert_eq!(h.check(Some(&basic("bob", "pw"))), Some("bob".into()));
        assert_eq!(h.check(Some(&basic("carol", "pw"))), None);
        assert_eq!(h.check(Some("Bearer xyz")), None);
        assert_eq!(h.check(Some("Basic !!!")), None);
        assert_eq!(h.check(None), None);
    }

    #[test]
    fn rejects_bad_files_with_line_numbers() {
        let e = Htpasswd::parse("ok:$pbkdf2-sha256$1$AA$AA\n", Path::new("f")).unwrap_err();
        assert!(e.to_string().contains("f:1"), "{e}");
        let e = Htpasswd::parse("\nu:$2y$05$abc\n", Path::new("f")).unwrap_err();
        assert!(e.to_string().contains("f:2: unsupported hash"), "{e}");
        assert!(hash_line("a:b", "x", 1).is_err());
    }
}
