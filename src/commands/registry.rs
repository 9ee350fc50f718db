//! `darkport registry serve | ca init | cert | passwd | fetch`.

use crate::cli::registry::{CaCommand, PasswdArgs, RegistryArgs, RegistryCommand, ServeArgs};
use crate::ops::registry::{self, Limits, RequestRecord, ServeConfig, ServeReporter, ServerEvents};
use crate::ui::ProgressMode;
use anyhow::Context;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

pub fn run(a: RegistryArgs, progress: ProgressMode) -> anyhow::Result<i32> {
    match a.command {
        RegistryCommand::Serve(s) => serve(s, progress),
        RegistryCommand::Receive(r) => {
            let stdin = std::io::stdin();
            let mut input = std::io::BufReader::with_capacity(1 << 20, stdin.lock());
            let rep = registry::receive_blobs(&r.root, &mut input, &mut std::io::stdout())?;
            Ok(if rep.failed == 0 { 0 } else { 1 })
        }
        RegistryCommand::Fetch(f) => {
            let r = registry::fetch_blobs(&f.root, &f.from, &f.ca, f.parallel, &f.blobs)?;
            println!("{}", serde_json::to_string(&r)?);
            Ok(0)
        }
        RegistryCommand::Ca(CaCommand::Init(c)) => {
            let info = registry::init_ca(&c.dir, &c.name)?;
            if c.json {
                println!("{}", serde_json::to_string(&info)?);
            } else {
                let what = if info.created {
                    "created"
                } else {
                    "kept existing"
                };
                println!("{what} site CA {}", info.cert.display());
                println!("  subject      {}", info.subject);
                println!("  sha256       {}", info.fingerprint);
                println!("  valid until  {}", info.not_after);
                println!(
                    "  private key  {} (keep it safe; back it up)",
                    info.key.display()
                );
            }
            Ok(0)
        }
        RegistryCommand::Cert(c) => {
            let info = registry::issue_cert(&c.ca, &c.hosts, &c.out)?;
            if c.json {
                println!("{}", serde_json::to_string(&info)?);
            } else {
                println!(
                    "issued {} (key {})",
                    info.cert.display(),
                    info.key.display()
                );
                println!("  DNS names    {}", info.dns_names.join(", "));
                println!("  IP addresses {}", info.ip_addresses.join(", "));
                println!("  valid until  {}", info.not_after);
                println!("  CA copy      {}", info.ca.display());
            }
            Ok(0)
        }
        RegistryCommand::Passwd(p) => passwd(p),
    }
}

/// Prints the request log and notices as plain lines on stderr.
struct LogEvents {
    requests: bool,
}

fn now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

impl ServerEvents for LogEvents {
    fn request(&self, r: &RequestRecord<'_>) {
        if !self.requests {
            return;
        }
        let bytes = r.bytes.map(|b| b.to_string()).unwrap_or_else(|| "-".into());
        eprintln!(
            "{} {} {} {} {} {} {:.1}ms{}",
            now(),
            r.peer,
            r.method,
            r.path,
            r.status,
            bytes,
            r.elapsed.as_secs_f64() * 1000.0,
            r.user.map(|u| format!(" user={u}")).unwrap_or_default()
        );
    }
    fn notice(&self, msg: &str) {
        eprintln!("{} registry: {msg}", now());
    }
}

impl ServeReporter for LogEvents {
    fn listening(&self, url: &str, root: &Path, repos: usize, tags: usize) {
        println!(
            "darkport registry: listening on {url} (root {}, {repos} repositories, {tags} tags)",
            root.display()
        );
        let _ = std::io::stdout().flush();
    }
}

fn serve(a: ServeArgs, progress: ProgressMode) -> anyhow::Result<i32> {
    let requests = a.log_requests || progress.resolve() == ProgressMode::Plain;
    let cfg = ServeConfig {
        root: a.root,
        listen: a.listen,
        tls: a.tls_cert.zip(a.tls_key),
        auth: a.auth,
        realm: a.realm,
        limits: Limits {
            idle_timeout: a.idle_timeout,
            header_timeout: a.header_timeout,
            send_timeout: a.send_timeout,
            max_header_bytes: a.max_header_bytes,
            max_connections: a.max_connections as usize,
        },
    };
    registry::serve(cfg, Arc::new(LogEvents { requests }))?;
    Ok(0)
}

fn passwd(p: PasswdArgs) -> anyhow::Result<i32> {
    let password = if p.password_stdin {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .context("failed to read the password from standard input")?;
        line.trim_end_matches(['\n', '\r']).to_string()
    } else {
        let a = rpassword::prompt_password(format!("password for {}: ", p.user))?;
        let b = rpassword::prompt_password("again: ")?;
        anyhow::ensure!(a == b, "the passwords differ");
        a
    };
    registry::set_password(&p.file, &p.user, &password)?;
    eprintln!("set password of {} in {}", p.user, p.file.display());
    Ok(0)
}
