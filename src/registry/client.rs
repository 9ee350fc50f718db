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
