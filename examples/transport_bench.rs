//! Driver for bench/transport.sh: the darkport SSH transport on nodes from an inventory written
//! by the test harness (`nodeN ansible_host=… ansible_port=… ansible_user=… ansible_ssh_private_key_file=…`).
//!   transport_bench INVENTORY KNOWN_HOSTS rtt N          exec("true") N times on node1's session
//!   transport_bench INVENTORY KNOWN_HOSTS upload FILE DEST NODES
//!                                                    upload FILE to DEST on the first NODES nodes, in parallel
use darkport::transport::ssh::SshTransport;
use darkport::transport::{for_each_host, ConnSpec, ConnectOpts, ExecOpts, Transport, UploadOpts};
use std::time::{Duration, Instant};

fn specs(inv: &str) -> Vec<ConnSpec> {
    std::fs::read_to_string(inv)
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("node"))
        .map(|l| {
            let mut it = l.split_whitespace();
            let name = it.next().unwrap();
            let vars = it
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_string(), serde_json::Value::from(v)))
                .collect();
            darkport::inventory::connvars::conn_spec(name, &vars).unwrap()
        })
        .collect()
}

fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let hosts = specs(&a[0]);
    let opts = ConnectOpts {
        known_hosts: a[1].clone().into(),
        accept_new_host_keys: false,
        connect_timeout: Duration::from_secs(10),
        agent_socket: None,
        stall_timeout: Duration::from_secs(60),
    };
    match a[2].as_str() {
        "rtt" => {
            let n: usize = a[3].parse().unwrap();
            let t0 = Instant::now();
            let mut t = SshTransport::connect(&hosts[0], &opts).unwrap();
            let connect = t0.elapsed();
            eprintln!("negotiated: {}", t.negotiated());
            for _ in 0..5 {
                t.exec("true", &ExecOpts::default()).unwrap();
            }
            let t1 = Instant::now();
            for _ in 0..n {
                let o = t.exec("true", &ExecOpts::default()).unwrap();
                assert!(o.success());
            }
            let per = t1.elapsed().as_secs_f64() / n as f64;
            println!(
                "connect_ms={:.2} exec_ms={:.3}",
                connect.as_secs_f64() * 1e3,
                per * 1e3
            );
        }
        "upload" => {
            let (file, dest, n) = (&a[3], &a[4], a[5].parse::<usize>().unwrap());
            let size = std::fs::metadata(file).unwrap().len();
            // Like `ops::push`, the digest is known up front (blobs are content-addressed), so
            // the client does not hash while sending; the node still verifies.
            let digest = darkport::digest::Digest::of_file(std::path::Path::new(file))
                .unwrap()
                .0;
            let t0 = Instant::now();
            let r = for_each_host(&hosts[..n], n, |h| {
                let mut t = SshTransport::connect(h, &opts)?;
                let mut f = std::fs::File::open(file).unwrap();
                let up = UploadOpts {
                    sha256: Some(digest),
                    ..Default::default()
                };
                t.upload(&mut f, size, dest, &up)
            });
            let secs = t0.elapsed().as_secs_f64();
            for (h, r) in &r {
                if let Err(e) = r {
                    eprintln!("{h}: {e}");
                    std::process::exit(1);
                }
            }
            println!(
                "secs={secs:.2} MBps={:.1}",
                (size as f64 * n as f64) / secs / 1e6
            );
        }
        m => panic!("unknown mode {m}"),
    }
}
