//! `darkport registry serve` under hostile clients: idle connections (plain and after a TLS
//! handshake) and a slowloris client are closed within their timeouts while a legitimate
//! client is served; a flood beyond the connection cap is refused at once and legitimate
//! clients get in again once slots free; oversized request heads get 431; a slow download
//! and keep-alive are not cut by the timeouts, a client that reads nothing is.

mod support;
use support::registry as registry_support;

use registry_support::*;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Block until the peer closes `s` (EOF or reset); returns how long that took.
/// Panics if it is still open after `max`.
fn closed_within(s: &mut TcpStream, max: Duration) -> Duration {
    let t0 = Instant::now();
    s.set_read_timeout(Some(max)).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return t0.elapsed(),
            Ok(_) => continue, // a 408 or similar before the close is fine
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return t0.elapsed(),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!("connection still open after {max:?}")
            }
            Err(e) => panic!("read: {e}"),
        }
    }
}

fn get_v2_status(addr: SocketAddr) -> u16 {
    http(addr, "GET", "/v2/", &[]).status
}

/// Send a request head one byte every `every`, until the server closes the connection;
/// returns the time from the first byte to the close.
fn slowloris(addr: SocketAddr, every: Duration) -> std::thread::JoinHandle<Duration> {
    std::thread::spawn(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(10))).unwrap();
        let head = format!("GET /v2/ HTTP/1.1\r\nHost: {addr}\r\nX-Slow: ");
        let t0 = Instant::now();
        for b in head.bytes().chain(std::iter::repeat(b'a')) {
            if s.write_all(&[b]).is_err() {
                return t0.elapsed();
            }
            match s.read(&mut [0u8; 512]) {
                Ok(0) => return t0.elapsed(),
                Err(e) if e.kind() == ErrorKind::ConnectionReset => return t0.elapsed(),
                _ => {}
            }
            assert!(
                t0.elapsed() < Duration::from_secs(15),
                "slowloris never cut"
            );
            std::thread::sleep(every);
        }
        unreachable!()
    })
}

#[test]
fn idle_and_slowloris_connections_are_closed_while_clients_are_served() {
    let f = fixture();
    let s = Serve::start(
        f.root(),
        &["--idle-timeout", "2s", "--header-timeout", "3s"],
    );
    let t0 = Instant::now();
    let mut idle: Vec<TcpStream> = (0..50)
        .map(|_| TcpStream::connect(s.addr).unwrap())
        .collect();
    let slow = slowloris(s.addr, Duration::from_millis(400));
    // Served meanwhile (the idle ones and the slow one hold connections, not the server).
    assert_eq!(get_v2_status(s.addr), 200);
    for c in &mut idle {
        let waited = t0.elapsed() + closed_within(c, Duration::from_secs(6));
        assert!(
            waited >= Duration::from_millis(1900) && waited < Duration::from_secs(5),
            "idle connection closed after {waited:?}"
        );
    }
    // The slow head: one byte every 400 ms would last forever; cut ~3 s after its first byte.
    let cut = slow.join().unwrap();
    assert!(
        cut >= Duration::from_millis(2900) && cut < Duration::from_secs(6),
        "slowloris cut after {cut:?}"
    );
    assert_eq!(get_v2_status(s.addr), 200);
    let log = s.log_text();
    assert!(log.contains("sent no request within 2s"), "{log}");
    assert!(log.contains("did not arrive within 3s"), "{log}");
}

#[test]
fn idle_connection_after_the_tls_handshake_is_closed() {
    let f = fixture();
    let work = tempfile::tempdir().unwrap();
    let (ca, srv) = (work.path().join("ca"), work.path().join("srv"));
    for args in [
        vec!["registry", "ca", "init", "--dir", ca.to_str().unwrap()],
        vec![
            "registry",
            "cert",
            "--ca",
            ca.to_str().unwrap(),
            "--host",
            "127.0.0.1",
            "--out",
            srv.to_str().unwrap(),
        ],
    ] {
        let o = std::process::Command::new(bin())
            .args(&args)
            .output()
            .unwrap();
        assert!(o.status.success(), "{args:?}: {o:?}");
    }
    let s = Serve::start(
        f.root(),
        &[
            "--tls-cert",
            srv.join("server.crt").to_str().unwrap(),
            "--tls-key",
            srv.join("server.key").to_str().unwrap(),
            "--idle-timeout",
            "1s",
        ],
    );
    let mut b = openssl::ssl::SslConnector::builder(openssl::ssl::SslMethod::tls()).unwrap();
    b.set_ca_file(srv.join("ca.crt")).unwrap();
    let connector = b.build();
    let tcp = TcpStream::connect(s.addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut tls = connector.connect("127.0.0.1", tcp).unwrap();
    let t0 = Instant::now();
    let mut buf = [0u8; 64];
    // The handshake is done and nothing is sent: the server closes (EOF, close_notify or reset).
    let r = tls.ssl_read(&mut buf);
    let waited = t0.elapsed();
    match r {
        Ok(0) | Err(_) => {}
        Ok(n) => panic!("unexpected {n} bytes"),
    }
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(4),
        "closed after {waited:?}"
    );
}

#[test]
fn a_flood_beyond_the_cap_is_refused_and_clients_get_in_once_slots_free() {
    let f = fixture();
    let s = Serve::start(
        f.root(),
        &["--max-connections", "20", "--idle-timeout", "2s"],
    );
    let flood: Vec<TcpStream> = (0..20)
        .map(|_| TcpStream::connect(s.addr).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(200)); // all 20 accepted
                                                    // Beyond the cap: answered 503 (or closed) at once, not left hanging.
    let t0 = Instant::now();
    let mut extra = TcpStream::connect(s.addr).unwrap();
    extra
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    let mut got = Vec::new();
    let _ = extra.read_to_end(&mut got);
    assert!(
        t0.elapsed() < Duration::from_millis(900),
        "{:?}",
        t0.elapsed()
    );
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 503"),
        "{text}"
    );
    // Once the idle flood is closed, a legitimate client is served.
    let deadline = Instant::now() + Duration::from_secs(8);
    loop {
        let mut c = TcpStream::connect(s.addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let req = format!(
            "GET /v2/ HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            s.addr
        );
        let _ = c.write_all(req.as_bytes());
        let mut raw = Vec::new();
        let _ = c.read_to_end(&mut raw);
        if raw.starts_with(b"HTTP/1.1 200") {
            break;
        }
        assert!(
            raw.is_empty() || raw.starts_with(b"HTTP/1.1 503"),
            "{}",
            String::from_utf8_lossy(&raw)
        );
        assert!(Instant::now() < deadline, "never served after the flood");
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(flood);
    let log = s.log_text();
    assert!(
        log.contains("refused") && log.contains("--max-connections"),
        "{log}"
    );
}

#[test]
fn oversized_heads_get_431_and_slow_downloads_and_keepalive_are_not_cut() {
    // A 24 MiB layer: more than the socket buffers hold, so the server is still sending
    // while the client reads slowly for longer than both timeouts.
    let dir = tempfile::tempdir().unwrap();
    let data = noise(7, 24 << 20);
    let img = image(
        dir.path(),
        "amd64",
        &[vec![("big", &data[..], 0o644)]],
        &["/big"],
    );
    let mut idx = darkport::registry::RepoIndex::default();
    idx.set_tag(
        "big/app",
        "1",
        img.manifest,
        darkport::registry::index::OCI_MANIFEST,
    );
    idx.save_atomic(dir.path()).unwrap();
    let s = Serve::start(
        dir.path(),
        &[
            "--max-header-bytes",
            "2048",
            "--idle-timeout",
            "1s",
            "--header-timeout",
            "1s",
            "--send-timeout",
            "1s",
        ],
    );
    let big = "a".repeat(4000);
    let r = http(s.addr, "GET", "/v2/", &[("X-Big", &big)]);
    assert_eq!(r.status, 431);
    assert_eq!(http(s.addr, "GET", "/v2/", &[("X-Small", "a")]).status, 200);

    let (layer, size) = img.layers[0];
    let mut c = TcpStream::connect(s.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let req = format!(
        "GET /v2/big/app/blobs/{layer} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        s.addr
    );
    c.write_all(req.as_bytes()).unwrap();
    let t0 = Instant::now();
    let mut raw = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = c.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buf[..n]);
        std::thread::sleep(Duration::from_millis(10));
    }
    let took = t0.elapsed();
    let body_start = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert!(raw.starts_with(b"HTTP/1.1 200"));
    assert_eq!(raw.len() - body_start, size as usize, "cut after {took:?}");
    assert!(took > Duration::from_millis(2500), "{took:?}");

    // A client that asks for the layer and reads nothing: once the socket buffers are full
    // the server's writes stall, and after the send timeout it gives the connection up (what
    // the client then reads ends short of the layer) while others are still served.
    let mut c = TcpStream::connect(s.addr).unwrap();
    c.write_all(req.as_bytes()).unwrap();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(get_v2_status(s.addr), 200);
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut got = 0usize;
    loop {
        match c.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
            Err(e) => panic!("the stalled response was not given up: {e} after {got} bytes"),
        }
    }
    assert!(got < size as usize, "{got} of {size} bytes: not given up");

    // Keep-alive: a second request on the same connection, then idle: closed.
    let mut c = TcpStream::connect(s.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let req = format!("GET /v2/ HTTP/1.1\r\nHost: {}\r\n\r\n", s.addr);
    for _ in 0..2 {
        c.write_all(req.as_bytes()).unwrap();
        let n = c.read(&mut buf).unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{:?}", &buf[..n]);
        std::thread::sleep(Duration::from_millis(600));
    }
    let waited = closed_within(&mut c, Duration::from_secs(4));
    assert!(waited >= Duration::from_millis(300), "{waited:?}");
}
