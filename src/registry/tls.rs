//! The site CA and server certificates (the `openssl` crate: one crypto stack), and the TLS
//! acceptor of the server (`native-tls`, which is OpenSSL on Linux).
//!
//! CA directory: `ca.crt` (PEM, self-signed, `CA:TRUE, pathlen:0`, keyCertSign/cRLSign,
//! 20 years) and `ca.key` (PEM PKCS#8, ECDSA P-256, mode 0600). `init_ca` keeps an existing
//! CA (a site keeps its CA for life: every runtime trusts it).
//! Server directory: `server.crt` (leaf, ECDSA P-256, `CA:FALSE`, serverAuth, SANs for every
//! host name and IP address given, ~2 years), `server.key` (0600) and a copy of `ca.crt` (what
//! runtimes install as `certs.d/<host:port>/ca.crt`).

use super::RegistryError;
use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::x509::extension::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
    SubjectKeyIdentifier,
};
use openssl::x509::{X509Builder, X509NameBuilder, X509};
use std::path::{Path, PathBuf};

pub const CA_CERT: &str = "ca.crt";
pub const CA_KEY: &str = "ca.key";
pub const SERVER_CERT: &str = "server.crt";
pub const SERVER_KEY: &str = "server.key";

const CA_DAYS: u32 = 20 * 365;
const SERVER_DAYS: u32 = 2 * 365;

fn ssl(op: &str, what: &Path) -> impl FnOnce(openssl::error::ErrorStack) -> RegistryError {
    let op = op.to_string();
    let what = what.to_path_buf();
    move |source| RegistryError::Tls {
        op,
        path: what,
        source,
    }
}

fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> RegistryError {
    let path = path.to_path_buf();
    move |source| RegistryError::Io { op, path, source }
}

/// What `init_ca` did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CaInfo {
    /// true if a new CA was made, false if an existing one was kept.
    pub created: bool,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub subject: String,
    /// SHA-256 fingerprint of the certificate (DER), hex with colons.
    pub fingerprint: String,
    pub not_after: String,
}

/// What `issue_server_cert` wrote.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ServerCertInfo {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
    pub dns_names: Vec<String>,
    pub ip_addresses: Vec<String>,
    pub not_after: String,
    pub fingerprint: String,
}

fn new_key(dir: &Path) -> Result<PKey<Private>, RegistryError> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).map_err(ssl("make key", dir))?;
    let ec = EcKey::generate(&group).map_err(ssl("make key", dir))?;
    PKey::from_ec_key(ec).map_err(ssl("make key", dir))
}

fn serial(dir: &Path) -> Result<openssl::asn1::Asn1Integer, RegistryError> {
    let mut bn = BigNum::new().map_err(ssl("make serial", dir))?;
    bn.rand(127, MsbOption::MAYBE_ZERO, false)
        .map_err(ssl("make serial", dir))?;
    bn.to_asn1_integer().map_err(ssl("make serial", dir))
}

fn fingerprint(cert: &X509) -> String {
    cert.digest(MessageDigest::sha256())
        .map(|d| {
            d.iter()
                .map(|b| format!("{b:02X}"))
                .collect::<Vec<_>>()
                .join(":")
        })
        .unwrap_or_default()
}

fn subject_text(cert: &X509) -> String {
    cert.subject_name()
        .entries()
        .filter_map(|e| {
            let k = e.object().nid().short_name().ok()?;
            let v = e.data().to_string().ok()?;
            Some(format!("{k}={v}"))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Write a file atomically (temp, fsync, rename) with `mode`.
fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<(), RegistryError> {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io("create temp file in", dir))?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(io("set permissions of", path))?;
    tmp.write_all(data).map_err(io("write", path))?;
    tmp.as_file().sync_all().map_err(io("fsync", path))?;
    tmp.persist(path).map_err(|e| RegistryError::Io {
        op: "rename into",
        path: path.to_path_buf(),
        source: e.error,
    })?;
    Ok(())
}

fn read_cert(path: &Path) -> Result<X509, RegistryError> {
    let pem = std::fs::read(path).map_err(io("read certificate", path))?;
    X509::from_pem(&pem).map_err(ssl("parse certificate", path))
}

fn read_key(path: &Path) -> Result<PKey<Private>, RegistryError> {
    let pem = std::fs::read(path).map_err(io("read private key", path))?;
    PKey::private_key_from_pem(&pem).map_err(ssl("parse private key", path))
}

/// Load the CA of `dir` and check that the key matches the certificate.
fn load_ca(dir: &Path) -> Result<(X509, PKey<Private>), RegistryError> {
    let (cp, kp) = (dir.join(CA_CERT), dir.join(CA_KEY));
    let cert = read_cert(&cp)?;
    let key = read_key(&kp)?;
    let pubkey = cert.public_key().map_err(ssl("read public key of", &cp))?;
    if !pubkey.public_eq(&key) {
        return Err(RegistryError::CaInvalid {
            dir: dir.to_path_buf(),
            reason: format!("{} does not belong to {}", kp.display(), cp.display()),
        });
    }
    Ok((cert, key))
}

/// Create the site CA in `dir`, or keep the one already there (checked: cert + matching key).
pub fn init_ca(dir: &Path, common_name: &str) -> Result<CaInfo, RegistryError> {
    let (cp, kp) = (dir.join(CA_CERT), dir.join(CA_KEY));
    match (cp.exists(), kp.exists()) {
        (true, true) => {
            let (cert, _) = load_ca(dir)?;
            return Ok(CaInfo {
                created: false,
                cert: cp,
                key: kp,
                subject: subject_text(&cert),
                fingerprint: fingerprint(&cert),
                not_after: cert.not_after().to_string(),
            });
        }
        (false, false) => {}
        _ => {
            return Err(RegistryError::CaInvalid {
                dir: dir.to_path_buf(),
                reason: format!("only one of {CA_CERT} and {CA_KEY} exists; refusing to overwrite"),
            })
        }
    }
    std::fs::create_dir_all(dir).map_err(io("create directory", dir))?;
    let key = new_key(dir)?;
    let mut name = X509NameBuilder::new().map_err(ssl("build CA name", dir))?;
    name.append_entry_by_nid(Nid::ORGANIZATIONNAME, "darkport")
        .map_err(ssl("build CA name", dir))?;
    name.append_entry_by_nid(Nid::COMMONNAME, common_name)
        .map_err(ssl("build CA name", dir))?;
    let name = name.build();
    let e = |op| ssl(op, dir);
    let mut b = X509Builder::new().map_err(e("build CA certificate"))?;
    b.set_version(2).map_err(e("build CA certificate"))?;
    let sn = serial(dir)?;
    b.set_serial_number(&sn).map_err(e("set serial"))?;
    b.set_subject_name(&name).map_err(e("set subject"))?;
    b.set_issuer_name(&name).map_err(e("set issuer"))?;
    b.set_pubkey(&key).map_err(e("set key"))?;
    let nb = Asn1Time::days_from_now(0).map_err(e("set validity"))?;
    let na = Asn1Time::days_from_now(CA_DAYS).map_err(e("set validity"))?;
    b.set_not_before(&nb).map_err(e("set validity"))?;
    b.set_not_after(&na).map_err(e("set validity"))?;
    let bc = BasicConstraints::new()
        .critical()
        .ca()
        .pathlen(0)
        .build()
        .map_err(e("add extensions"))?;
    b.append_extension(bc).map_err(e("add extensions"))?;
    let ku = KeyUsage::new()
        .critical()
        .key_cert_sign()
        .crl_sign()
        .build()
        .map_err(e("add extensions"))?;
    b.append_extension(ku).map_err(e("add extensions"))?;
    let ski = SubjectKeyIdentifier::new()
        .build(&b.x509v3_context(None, None))
        .map_err(e("add extensions"))?;
    b.append_extension(ski).map_err(e("add extensions"))?;
    b.sign(&key, MessageDigest::sha256())
        .map_err(e("sign CA certificate"))?;
    let cert = b.build();
    // Key first: a crash between the two writes leaves a key without a cert (refused above,
    // never silently replaced).
    let key_pem = key.private_key_to_pem_pkcs8().map_err(e("encode key"))?;
    write_atomic(&kp, &key_pem, 0o600)?;
    write_atomic(&cp, &cert.to_pem().map_err(e("encode certificate"))?, 0o644)?;
    Ok(CaInfo {
        created: true,
        cert: cp,
        key: kp,
        subject: subject_text(&cert),
        fingerprint: fingerprint(&cert),
        not_after: cert.not_after().to_string(),
    })
}

/// Issue a server certificate signed by the CA in `ca_dir` for `hosts` (DNS names and/or IP
/// addresses; the first is also the subject CN) into `out_dir`.
pub fn issue_server_cert(
    ca_dir: &Path,
    hosts: &[String],
    out_dir: &Path,
) -> Result<ServerCertInfo, RegistryError> {
    if hosts.is_empty() {
        return Err(RegistryError::CaInvalid {
            dir: ca_dir.to_path_buf(),
            reason: "a server certificate needs at least one --host".into(),
        });
    }
    let (ca_cert, ca_key) = load_ca(ca_dir)?;
    std::fs::create_dir_all(out_dir).map_err(io("create directory", out_dir))?;
    let key = new_key(out_dir)?;
    let e = |op| ssl(op, out_dir);
    let mut name = X509NameBuilder::new().map_err(e("build name"))?;
    name.append_entry_by_nid(Nid::ORGANIZATIONNAME, "darkport")
        .map_err(e("build name"))?;
    let cn: String = hosts[0].chars().take(64).collect();
    name.append_entry_by_nid(Nid::COMMONNAME, &cn)
        .map_err(e("build name"))?;
    let name = name.build();
    let mut b = X509Builder::new().map_err(e("build certificate"))?;
    b.set_version(2).map_err(e("build certificate"))?;
    let sn = serial(out_dir)?;
    b.set_serial_number(&sn).map_err(e("set serial"))?;
    b.set_subject_name(&name).map_err(e("set subject"))?;
    b.set_issuer_name(ca_cert.subject_name())
        .map_err(e("set issuer"))?;
    b.set_pubkey(&key).map_err(e("set key"))?;
    // Backdate an hour: node clocks on dark sites drift.
    let nb = Asn1Time::from_unix(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64 - 3600)
            .unwrap_or(0),
    )
    .map_err(e("set validity"))?;
    let na = Asn1Time::days_from_now(SERVER_DAYS).map_err(e("set validity"))?;
    b.set_not_before(&nb).map_err(e("set validity"))?;
    b.set_not_after(&na).map_err(e("set validity"))?;
    b.append_extension(
        BasicConstraints::new()
            .critical()
            .build()
            .map_err(e("add extensions"))?,
    )
    .map_err(e("add extensions"))?;
    b.append_extension(
        KeyUsage::new()
            .critical()
            .digital_signature()
            .key_encipherment()
            .build()
            .map_err(e("add extensions"))?,
    )
    .map_err(e("add extensions"))?;
    b.append_extension(
        ExtendedKeyUsage::new()
            .server_auth()
            .build()
            .map_err(e("add extensions"))?,
    )
    .map_err(e("add extensions"))?;
    let (mut dns, mut ips) = (Vec::new(), Vec::new());
    let mut san = SubjectAlternativeName::new();
    for h in hosts {
        let h = h.trim().trim_start_matches('[').trim_end_matches(']');
        if h.parse::<std::net::IpAddr>().is_ok() {
            san.ip(h);
            ips.push(h.to_string());
        } else if !h.is_empty()
            && h.len() <= 253
            && h.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '*')
            })
        {
            san.dns(h);
            dns.push(h.to_string());
        } else {
            return Err(RegistryError::CaInvalid {
                dir: out_dir.to_path_buf(),
                reason: format!("{h:?} is neither an IP address nor a DNS name"),
            });
        }
    }
    let ctx = b.x509v3_context(Some(&ca_cert), None);
    let san = san.build(&ctx).map_err(e("add subjectAltName"))?;
    let ski = SubjectKeyIdentifier::new()
        .build(&ctx)
        .map_err(e("add extensions"))?;
    let aki = AuthorityKeyIdentifier::new()
        .keyid(true)
        .build(&ctx)
        .map_err(e("add extensions"))?;
    b.append_extension(san).map_err(e("add extensions"))?;
    b.append_extension(ski).map_err(e("add extensions"))?;
    b.append_extension(aki).map_err(e("add extensions"))?;
    b.sign(&ca_key, MessageDigest::sha256())
        .map_err(e("sign certificate"))?;
    let cert = b.build();
    let (cp, kp, cap) = (
        out_dir.join(SERVER_CERT),
        out_dir.join(SERVER_KEY),
        out_dir.join(CA_CERT),
    );
    write_atomic(
        &kp,
        &key.private_key_to_pem_pkcs8().map_err(e("encode key"))?,
        0o600,
    )?;
    write_atomic(&cp, &cert.to_pem().map_err(e("encode certificate"))?, 0o644)?;
    write_atomic(&cap, &ca_cert.to_pem().map_err(e("encode CA"))?, 0o644)?;
    Ok(ServerCertInfo {
        cert: cp,
        key: kp,
        ca: cap,
        dns_names: dns,
        ip_addresses: ips,
        not_after: cert.not_after().to_string(),
        fingerprint: fingerprint(&cert),
    })
}

/// Build the server's TLS acceptor from a PEM certificate chain and a PEM private key (any
/// format OpenSSL reads; converted to PKCS#8 for native-tls).
pub fn acceptor(cert: &Path, key: &Path) -> Result<native_tls::TlsAcceptor, RegistryError> {
    let chain = std::fs::read(cert).map_err(io("read certificate", cert))?;
    X509::stack_from_pem(&chain)
        .map_err(ssl("parse certificate", cert))
        .and_then(|v| {
            if v.is_empty() {
                Err(RegistryError::CaInvalid {
                    dir: cert.to_path_buf(),
                    reason: "no certificate in file".into(),
                })
            } else {
                Ok(v)
            }
        })?;
    let pkey = read_key(key)?;
    let pkcs8 = pkey
        .private_key_to_pem_pkcs8()
        .map_err(ssl("encode private key", key))?;
    let id =
        native_tls::Identity::from_pkcs8(&chain, &pkcs8).map_err(|e| RegistryError::TlsSetup {
            cert: cert.to_path_buf(),
            reason: e.to_string(),
        })?;
    native_tls::TlsAcceptor::builder(id)
        .min_protocol_version(Some(native_tls::Protocol::Tlsv12))
        .build()
        .map_err(|e| RegistryError::TlsSetup {
            cert: cert.to_path_buf(),
            reason: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::stack::Stack;
    use openssl::x509::store::X509StoreBuilder;
    use openssl::x509::X509StoreContext;

    #[test]
    fn ca_is_kept_and_server_cert_verifies_with_sans() {
        let d = tempfile::tempdir().unwrap();
        let ca_dir = d.path().join("ca");
        let a = init_ca(&ca_dir, "darkport site CA test").unwrap();
        assert!(a.created);
        let b = init_ca(&ca_dir, "other").unwrap();
        assert!(!b.created);
        assert_eq!(a.fingerprint, b.fingerprint);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(ca_dir.join(CA_KEY))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);

        let out = d.path().join("srv");
        let hosts = vec![
            "registry.site".to_string(),
            "127.0.0.1".into(),
            "::1".into(),
        ];
        let info = issue_server_cert(&ca_dir, &hosts, &out).unwrap();
        assert_eq!(info.dns_names, vec!["registry.site"]);
        assert_eq!(info.ip_addresses, vec!["127.0.0.1", "::1"]);

        let ca = read_cert(&ca_dir.join(CA_CERT)).unwrap();
        let leaf = read_cert(&out.join(SERVER_CERT)).unwrap();
        let mut sb = X509StoreBuilder::new().unwrap();
        sb.add_cert(ca).unwrap();
        let store = sb.build();
        let mut ctx = X509StoreContext::new().unwrap();
        let ok = ctx
            .init(&store, &leaf, &Stack::new().unwrap(), |c| c.verify_cert())
            .unwrap();
        assert!(ok);
        let sans = leaf.subject_alt_names().unwrap();
        assert_eq!(sans.len(), 3);
        assert!(acceptor(&out.join(SERVER_CERT), &out.join(SERVER_KEY)).is_ok());

        // A CA key that does not match is refused, never replaced.
        std::fs::copy(out.join(SERVER_KEY), ca_dir.join(CA_KEY)).unwrap();
        assert!(matches!(
            init_ca(&ca_dir, "x"),
            Err(RegistryError::CaInvalid { .. })
        ));
        assert!(issue_server_cert(&ca_dir, &hosts, &out).is_err());
        assert!(issue_server_cert(d.path(), &["bad host!".into()], &out).is_err());
    }
}
