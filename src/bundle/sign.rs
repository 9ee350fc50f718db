//! minisign keys and signatures.
//!
//! Keys are standard minisign key files (`minisign` crate). Signatures are standard
//! prehashed minisign signatures (`ED`: Ed25519 over BLAKE2b-512 of the data, plus the
//! global signature over signature + trusted comment), so `minisign -Vm` checks them.
//! Unlike the `minisign` crate's `sign`, which mixes random noise into the nonce, darkport
//! signs with plain RFC 8032 Ed25519 (deterministic), so two builds of the same inputs give
//! byte-identical bundles. Verification uses `minisign-verify`.

use base64::Engine;
use openssl::hash::{Hasher, MessageDigest};
use openssl::pkey::{Id, PKey, Private};
use openssl::sign::Signer;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("failed to read key file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to write key file {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("refusing to overwrite existing key file {0}")]
    Exists(PathBuf),
    #[error("invalid minisign secret key {path}: {reason}")]
    BadSecretKey { path: PathBuf, reason: String },
    #[error("invalid minisign public key {path}: {reason}")]
    BadPublicKey { path: PathBuf, reason: String },
    #[error("failed to generate a key pair: {0}")]
    Generate(String),
    #[error("signing failed: {0}")]
    Sign(String),
}

/// A decrypted signing key.
pub struct SigningKey {
    keynum: [u8; 8],
    pkey: PKey<Private>,
    public_b64: String,
}

fn keynum_hex(k: &[u8]) -> String {
    let mut b = [0u8; 8];
    b.copy_from_slice(&k[..8]);
    format!("{:016X}", u64::from_le_bytes(b))
}

impl SigningKey {
    /// Load a minisign secret key file; `password` is needed when the key is encrypted.
    pub fn load(path: &Path, password: Option<String>) -> Result<SigningKey, KeyError> {
        let text = std::fs::read_to_string(path).map_err(|source| KeyError::Read {
            path: path.into(),
            source,
        })?;
        let bad = |reason: String| KeyError::BadSecretKey {
            path: path.into(),
            reason,
        };
        let encrypted = Self::is_encrypted_text(&text)
            .ok_or_else(|| bad("not a minisign secret key".into()))?;
        let sk = if encrypted {
            let pw = password.ok_or_else(|| bad("the key is encrypted and no password was given (set DARKPORT_KEY_PASSWORD or type it at the prompt)".into()))?;
            minisign::SecretKey::from_box(text.into(), Some(pw))
        } else {
            minisign::SecretKey::from_unencrypted_box(text.into())
        }
        .map_err(|e| bad(e.to_string()))?;
        // Serialized layout: sig_alg(2) kdf_alg(2) chk_alg(2) salt(32) ops(8) mem(8)
        // keynum(8) sk(64: seed 32 + public key 32) chk(32).
        let raw = sk.to_bytes();
        if raw.len() < 126 {
            return Err(bad("truncated key".into()));
        }
        let mut keynum = [0u8; 8];
        keynum.copy_from_slice(&raw[54..62]);
        let seed = &raw[62..94];
        let pk = &raw[94..126];
        let pkey =
            PKey::private_key_from_raw_bytes(seed, Id::ED25519).map_err(|e| bad(e.to_string()))?;
        let derived = pkey.raw_public_key().map_err(|e| bad(e.to_string()))?;
        if derived != pk {
            return Err(bad("public half does not match the secret seed".into()));
        }
        let mut pub_bin = Vec::with_capacity(42);
        pub_bin.extend_from_slice(b"Ed");
        pub_bin.extend_from_slice(&keynum);
        pub_bin.extend_from_slice(pk);
        Ok(SigningKey {
            keynum,
            pkey,
            public_b64: base64::engine::general_purpose::STANDARD.encode(pub_bin),
        })
    }

    /// Some(true) if the key file is password-protected, None if it is not a key.
    pub fn is_encrypted_text(text: &str) -> Option<bool> {
        let line = text.lines().nth(1)?;
        let bin = base64::engine::general_purpose::STANDARD
            .decode(line.trim())
            .ok()?;
        if bin.len() < 4 || &bin[0..2] != b"Ed" {
            return None;
        }
        Some(&bin[2..4] != b"\0\0")
    }

    pub fn key_id(&self) -> String {
        keynum_hex(&self.keynum)
    }

    /// The matching public key.
    pub fn public_key(&self) -> TrustedKey {
        TrustedKey::from_base64(&self.public_b64, Path::new("(derived from the secret key)"))
            .expect("valid derived key")
    }

    fn ed25519(&self, msg: &[u8]) -> Result<Vec<u8>, KeyError> {
        let mut s =
            Signer::new_without_digest(&self.pkey).map_err(|e| KeyError::Sign(e.to_string()))?;
        s.sign_oneshot_to_vec(msg)
            .map_err(|e| KeyError::Sign(e.to_string()))
    }

    /// A minisign signature file (text) over `data` with the given trusted comment.
    pub fn sign(&self, data: &[u8], trusted_comment: &str) -> Result<String, KeyError> {
        let mut h = Hasher::new(
            MessageDigest::from_name("BLAKE2B512")
                .ok_or_else(|| KeyError::Sign("BLAKE2b-512 unavailable".into()))?,
        )
        .map_err(|e| KeyError::Sign(e.to_string()))?;
        h.update(data).map_err(|e| KeyError::Sign(e.to_string()))?;
        let prehash = h.finish().map_err(|e| KeyError::Sign(e.to_string()))?;
        let sig = self.ed25519(&prehash)?;
        let mut global_msg = sig.clone();
        global_msg.extend_from_slice(trusted_comment.as_bytes());
        let global = self.ed25519(&global_msg)?;
        let mut bin1 = Vec::with_capacity(74);
        bin1.extend_from_slice(b"ED");
        bin1.extend_from_slice(&self.keynum);
        bin1.extend_from_slice(&sig);
        let b64 = base64::engine::general_purpose::STANDARD;
        Ok(format!(
            "untrusted comment: signature from darkport secret key {}\n{}\ntrusted comment: {}\n{}\n",
            self.key_id(),
            b64.encode(bin1),
            trusted_comment,
            b64.encode(global)
        ))
    }
}

/// A public key trusted to sign bundles.
#[derive(Clone)]
pub struct TrustedKey {
    key: minisign_verify::PublicKey,
    keynum: [u8; 8],
    pub origin: PathBuf,
}

impl std::fmt::Debug for TrustedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "TrustedKey({} from {})",
            self.key_id(),
            self.origin.display()
        )
    }
}

impl TrustedKey {
    pub fn from_base64(b64: &str, origin: &Path) -> Result<TrustedKey, KeyError> {
        let bad = |reason: &str| KeyError::BadPublicKey {
            path: origin.into(),
            reason: reason.into(),
        };
        let key =
            minisign_verify::PublicKey::from_base64(b64.trim()).map_err(|e| bad(&e.to_string()))?;
        let bin = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .map_err(|e| bad(&e.to_string()))?;
        let mut keynum = [0u8; 8];
        keynum.copy_from_slice(&bin[2..10]);
        Ok(TrustedKey {
            key,
            keynum,
            origin: origin.into(),
        })
    }

    /// Read a minisign public key file (`untrusted comment:` line + base64 line), or a bare
    /// base64 key.
    pub fn load(path: &Path) -> Result<TrustedKey, KeyError> {
        let text = std::fs::read_to_string(path).map_err(|source| KeyError::Read {
            path: path.into(),
            source,
        })?;
        let line = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with("untrusted comment:"))
            .ok_or_else(|| KeyError::BadPublicKey {
                path: path.into(),
                reason: "no key line".into(),
            })?;
        Self::from_base64(line, path)
    }

    pub fn key_id(&self) -> String {
        keynum_hex(&self.keynum)
    }

    /// Verify a minisign signature (text) over `data`; returns the trusted comment.
    pub fn verify(&self, data: &[u8], sig_text: &str) -> Result<String, SigError> {
        let sig = minisign_verify::Signature::decode(sig_text)
            .map_err(|e| SigError::Malformed(e.to_string()))?;
        let sig_keynum = sig_text
            .lines()
            .nth(1)
            .and_then(|l| {
                base64::engine::general_purpose::STANDARD
                    .decode(l.trim())
                    .ok()
            })
            .filter(|b| b.len() >= 10)
            .map(|b| keynum_hex(&b[2..10]))
            .unwrap_or_default();
        if sig_keynum != self.key_id() {
            return Err(SigError::OtherKey {
                signed_by: sig_keynum,
                trusted: self.key_id(),
            });
        }
        self.key
            .verify(data, &sig, false)
            .map_err(|e| SigError::Invalid(e.to_string()))?;
        check_canonical_signature(sig_text)?;
        Ok(sig.trusted_comment().to_string())
    }
}

/// Check that a signature file is exactly what darkport writes (the untrusted comment and
/// the base64 encoding are not covered by the signature itself, so a changed byte there
/// would otherwise go unnoticed).
pub fn check_canonical_signature(sig_text: &str) -> Result<(), SigError> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let bad =
        |why: &str| SigError::Malformed(format!("signature file is not in canonical form ({why})"));
    let lines: Vec<&str> = sig_text.split_inclusive('\n').collect();
    if lines.len() != 4 || !lines.iter().all(|l| l.ends_with('\n')) {
        return Err(bad("expected exactly 4 lines"));
    }
    let l: Vec<&str> = lines.iter().map(|l| l.trim_end_matches('\n')).collect();
    let bin1 = b64.decode(l[1]).map_err(|_| bad("line 2 is not base64"))?;
    let bin2 = b64.decode(l[3]).map_err(|_| bad("line 4 is not base64"))?;
    if bin1.len() != 74 || bin2.len() != 64 {
        return Err(bad("wrong signature length"));
    }
    if b64.encode(&bin1) != l[1] || b64.encode(&bin2) != l[3] {
        return Err(bad("non-canonical base64"));
    }
    let expected = format!(
        "untrusted comment: signature from darkport secret key {}",
        keynum_hex(&bin1[2..10])
    );
    if l[0] != expected {
        return Err(bad("unexpected untrusted comment"));
    }
    if !l[2].starts_with("trusted comment: ") {
        return Err(bad("line 3 is not a trusted comment"));
    }
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum SigError {
    #[error("the signature is malformed: {0}")]
    Malformed(String),
    #[error("signed by key {signed_by}, but the trusted public key is {trusted}")]
    OtherKey { signed_by: String, trusted: String },
    #[error("the signature does not match the content ({0})")]
    Invalid(String),
}

/// Generate a key pair: `PREFIX.key` (secret, mode 0600) and `PREFIX.pub`.
/// `password = None` writes an unencrypted secret key.
pub fn keygen(
    prefix: &Path,
    password: Option<String>,
    force: bool,
) -> Result<(PathBuf, PathBuf, String), KeyError> {
    let sk_path = PathBuf::from(format!("{}.key", prefix.display()));
    let pk_path = PathBuf::from(format!("{}.pub", prefix.display()));
    for p in [&sk_path, &pk_path] {
        if p.exists() && !force {
            return Err(KeyError::Exists(p.clone()));
        }
    }
    let kp = match password {
        Some(pw) => minisign::KeyPair::generate_encrypted_keypair(Some(pw)),
        None => minisign::KeyPair::generate_unencrypted_keypair(),
    }
    .map_err(|e| KeyError::Generate(e.to_string()))?;
    let sk_text = kp
        .sk
        .to_box(Some("darkport secret key"))
        .map_err(|e| KeyError::Generate(e.to_string()))?
        .to_string();
    let pk_text = kp
        .pk
        .to_box()
        .map_err(|e| KeyError::Generate(e.to_string()))?
        .to_string();
    let key_id = keynum_hex(kp.pk.keynum());
    if let Some(dir) = sk_path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| KeyError::Write {
            path: dir.into(),
            source,
        })?;
    }
    write_atomic(&sk_path, sk_text.as_bytes(), 0o600)?;
    write_atomic(&pk_path, pk_text.as_bytes(), 0o644)?;
    Ok((sk_path, pk_path, key_id))
}

fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<(), KeyError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let err = |source| KeyError::Write {
        path: path.into(),
        source,
    };
    let tmp = PathBuf::from(format!("{}.tmp{}", path.display(), std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(err)?;
    f.write_all(data).map_err(err)?;
    f.sync_all().map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify_deterministic_and_encrypted_keys() {
        let d = tempfile::tempdir().unwrap();
        let (sk, pk, id) = keygen(&d.path().join("k"), None, false).unwrap();
        let key = SigningKey::load(&sk, None).unwrap();
        assert_eq!(key.key_id(), id);
        let s1 = key.sign(b"data", "tc").unwrap();
        let s2 = key.sign(b"data", "tc").unwrap();
        assert_eq!(s1, s2, "signatures must be deterministic");
        let tk = TrustedKey::load(&pk).unwrap();
        assert_eq!(tk.verify(b"data", &s1).unwrap(), "tc");
        assert!(matches!(tk.verify(b"datA", &s1), Err(SigError::Invalid(_))));
        // refuses to overwrite
        assert!(matches!(
            keygen(&d.path().join("k"), None, false),
            Err(KeyError::Exists(_))
        ));
        // encrypted key: right and wrong passwords
        let (esk, epk, _) = keygen(&d.path().join("e"), Some("pw".into()), false).unwrap();
        assert!(SigningKey::load(&esk, None).is_err());
        assert!(SigningKey::load(&esk, Some("nope".into())).is_err());
        let ek = SigningKey::load(&esk, Some("pw".into())).unwrap();
        let s = ek.sign(b"x", "c").unwrap();
        TrustedKey::load(&epk).unwrap().verify(b"x", &s).unwrap();
        assert!(matches!(
            tk.verify(b"x", &s),
            Err(SigError::OtherKey { .. })
        ));
    }
}
