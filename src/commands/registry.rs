//! `darkport registry serve | ca init | cert | passwd | fetch`.

use crate::cli::registry::{CaCommand, PasswdArgs, RegistryArgs, RegistryCommand, ServeArgs};
use crate::registry::{auth, tls, RequestRecord, ServeConfig, Server, ServerEvents};
use crate::ui::{Hint, ProgressMode};
use anyhow::Context;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

pub fn run(a: RegistryArgs, progress: ProgressMode) -> anyhow::Result<i32> {
    match a.command {
        RegistryCommand::Serve(s) => serve(s, progress),
        RegistryCommand::Receive(r) => {
            let stdin = std::io::stdin();
            let mut input = std::io::BufReader::with_capacity(1 << 20, stdin.lock());
            let rep =
                crate::registry::receive::receive(&r.root, &mut input, &mut std::io::stdout())
                    .with_context(|| format!("receiving blobs into {}", r.root.display()))?;
            Ok(if rep.failed == 0 { 0 } else { 1 })
        }
        RegistryCommand::Fetch(f) => {
            let r = crate::registry::fetch::fetch(&f.root, &f.from, &f.ca, f.parallel, &f.blobs)?;
            println!("{}", serde_json::to_string(&r)?);
            Ok(0)
        }
        RegistryCommand::Ca(CaCommand::Init(c)) => {
            let info = tls::init_ca(&c.dir, &c.name)?;
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
            let mut r =
                tls::issue_server_cert(&c.ca, &c.hosts, &c.out).map_err(anyhow::Error::from);
            if !c.ca.join(tls::CA_CERT).exists() {
                r = r.context(Hint(format!(
                    "create the site CA first: darkport registry ca init --dir {}",
                    c.ca.display()
                )));
            }
            let info = r.with_context(|| {
                format!(
                    "failed to issue a server certificate into {}",
                    c.out.display()
                )
            })?;
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

fn serve(a: ServeArgs, progress: ProgressMode) -> anyhow::Result<i32> {
    let requests = a.log_requests || progress.resolve() == ProgressMode::Plain;
    let cfg = ServeConfig {
        root: a.root,
        listen: a.listen,
        tls: a.tls_cert.zip(a.tls_key),
        auth: a.auth,
        realm: a.realm,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("registry")
        .build()
        .context("failed to start the async runtime")?;
    rt.block_on(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let events = Arc::new(LogEvents { requests });
        let root = cfg.root.clone();
        let server = Server::bind(cfg, events.clone())
            .await
            .with_context(|| format!("failed to start the registry on {}", root.display()))?;
        let (repos, tags) = server.summary();
        println!(
            "darkport registry: listening on {} (root {}, {repos} repositories, {tags} tags)",
            server.url(),
            root.display()
        );
        let _ = std::io::stdout().flush();

        let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
        let mut int = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
        let mut hup = signal(SignalKind::hangup()).context("cannot handle SIGHUP")?;
        let reloader = server.reloader();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<&'static str>();
        tokio::spawn(async move {
            let why = loop {
                tokio::select! {
                    _ = term.recv() => break "SIGTERM",
                    _ = int.recv() => break "SIGINT",
                    _ = hup.recv() => reloader.reload(),
                }
            };
            let _ = stop_tx.send(why);
        });
        let (sd_tx, sd_rx) = tokio::sync::oneshot::channel::<()>();
        let ev = events.clone();
        let graceful = async move {
            let why = stop_rx.await.unwrap_or("shutdown");
            ev.notice(&format!(
                "{why}: no new connections; finishing requests in flight"
            ));
            let _ = sd_tx.send(());
        };
        let run = server.run(graceful);
        tokio::pin!(run);
        tokio::select! {
            r = &mut run => r.context("registry server failed")?,
            _ = async {
                let _ = sd_rx.await;
                tokio::time::sleep(Duration::from_secs(10)).await;
            } => events.notice("requests still running after 10s; closing them"),
        }
        events.notice("stopped");
        anyhow::Ok(0)
    })
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
    anyhow::ensure!(!password.is_empty(), "empty password refused");
    let line = auth::hash_line(&p.user, &password, auth::DEFAULT_ITERATIONS)?;
    let old = match std::fs::read_to_string(&p.file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("failed to read {}", p.file.display())),
    };
    let prefix = format!("{}:", p.user);
    let mut out: Vec<&str> = old.lines().filter(|l| !l.starts_with(&prefix)).collect();
    out.push(&line);
    let text = out.join("\n") + "\n";
    // Check the result parses before replacing the file.
    auth::Htpasswd::parse(&text, &p.file)?;
    let dir = p
        .file
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("failed to create a temp file in {}", dir.display()))?;
    tmp.write_all(text.as_bytes())?;
    tmp.as_file().sync_all()?;
    tmp.persist(&p.file)
        .with_context(|| format!("failed to write {}", p.file.display()))?;
    eprintln!("set password of {} in {}", p.user, p.file.display());
    Ok(0)
}
