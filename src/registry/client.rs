//! The OCI client setup shared by the commands that talk to a site's registries
//! (`registry fetch` between darkport registries, the push into an external registry).

use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use std::time::Duration;

/// HTTPS trusting `ca_pem` (PEM) besides the system roots, or plain HTTP for `plain_http_host`.
pub fn config(ca_pem: Option<Vec<u8>>, plain_http_host: Option<&str>) -> ClientConfig {
    ClientConfig {
        protocol: match plain_http_host {
            Some(h) => ClientProtocol::HttpsExcept(vec![h.to_string()]),
            None => ClientProtocol::Https,
        },
        extra_root_certificates: ca_pem
            .into_iter()
            .map(|data| Certificate {
                encoding: CertificateEncoding::Pem,
                data,
            })
            .collect(),
        connect_timeout: Some(Duration::from_secs(10)),
        read_timeout: Some(Duration::from_secs(120)),
        ..Default::default()
    }
}

/// A small multi-threaded runtime for a batch of transfers.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
}

/// Why a registry's `/v2/` health probe failed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("cannot resolve {0}")]
    Resolve(String),
    /// The message carries the cause: it is shown on one line (`status`).
    #[error("{addr}: {err}")]
    Connect { addr: String, err: std::io::Error },
    #[error("TLS: {0}")]
    Tls(String),
    #[error("not an HTTP answer")]
    NotHttp,
    #[error("GET /v2/ answered {0}")]
    Status(u16),
}

/// GET /v2/ over TLS trusting only the site CA (`ca_pem`); the status when it answers 200 or
/// 401 (a registry that wants a token is up, too).
pub fn check_v2(addr: &str, ca_pem: &[u8], timeout: Duration) -> Result<u16, ProbeError> {
    use std::io::{Read, Write};
    use std::net::ToSocketAddrs;
    let sa = addr
        .to_socket_addrs()
        .map_err(|e| ProbeError::Connect {
            addr: addr.into(),
            err: e,
        })?
        .next()
        .ok_or_else(|| ProbeError::Resolve(addr.into()))?;
    let connect = |err| ProbeError::Connect {
        addr: addr.into(),
        err,
    };
    let tcp = std::net::TcpStream::connect_timeout(&sa, timeout).map_err(connect)?;
    tcp.set_read_timeout(Some(timeout)).map_err(connect)?;
    tcp.set_write_timeout(Some(timeout)).map_err(connect)?;
    let tls = |e: &dyn std::fmt::Display| ProbeError::Tls(e.to_string());
    let ca = native_tls::Certificate::from_pem(ca_pem).map_err(|e| tls(&e))?;
    let conn = native_tls::TlsConnector::builder()
        .add_root_certificate(ca)
        .disable_built_in_roots(true)
        .build()
        .map_err(|e| tls(&e))?;
    let host = addr
        .rsplit_once(':')
        .map(|x| x.0)
        .unwrap_or(addr)
        .trim_matches(['[', ']']);
    let mut s = conn.connect(host, tcp).map_err(|e| tls(&e))?;
    write!(
        s,
        "GET /v2/ HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .map_err(connect)?;
    let mut buf = Vec::new();
    let _ = s.take(4096).read_to_end(&mut buf);
    let head = String::from_utf8_lossy(&buf);
    let code: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or(ProbeError::NotHttp)?;
    if code == 200 || code == 401 {
        Ok(code)
    } else {
        Err(ProbeError::Status(code))
    }
}

/// Poll [`check_v2`] until it succeeds or `total` has passed (the last error then).
pub fn wait_v2(addr: &str, ca_pem: &[u8], total: Duration) -> Result<(), ProbeError> {
    let deadline = std::time::Instant::now() + total;
    loop {
        match check_v2(addr, ca_pem, Duration::from_secs(3)) {
            Ok(_) => return Ok(()),
            Err(e) if std::time::Instant::now() >= deadline => return Err(e),
            // The server is up a few tens of milliseconds after its start: poll often.
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}
