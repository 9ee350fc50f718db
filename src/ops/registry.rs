//! The site registry's flows: serve it (until SIGTERM/SIGINT, reloading its index on
//! SIGHUP), receive and fetch blobs, create the site CA and server certificates, set
//! htpasswd passwords. Nothing here prints: the server reports through [`ServeReporter`].

use crate::registry::{auth, fetch, receive, tls};
use crate::report::Hint;
use anyhow::Context;
use std::io::{BufRead, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub use crate::registry::fetch::FetchReport;
pub use crate::registry::receive::ReceiveReport;
pub use crate::registry::tls::{CaInfo, ServerCertInfo};
pub use crate::registry::{Limits, RequestRecord, ServeConfig, ServerEvents};

/// The server's events, and the moment it listens.
pub trait ServeReporter: ServerEvents {
    fn listening(&self, url: &str, root: &Path, repos: usize, tags: usize);
}

/// Serve the registry until SIGTERM or SIGINT; requests in flight get 10 s to finish.
pub fn serve<R: ServeReporter>(cfg: ServeConfig, events: Arc<R>) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("registry")
        .build()
        .context("failed to start the async runtime")?;
    rt.block_on(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let root = cfg.root.clone();
        let server = crate::registry::Server::bind(cfg, events.clone())
            .await
            .with_context(|| format!("failed to start the registry on {}", root.display()))?;
        let (repos, tags) = server.summary();
        events.listening(server.url(), &root, repos, tags);

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
        anyhow::Ok(())
    })
}

/// Receive a blob stream (`darkport push` on the other end) into `root`.
pub fn receive_blobs(
    root: &Path,
    input: &mut dyn BufRead,
    out: &mut dyn Write,
) -> anyhow::Result<ReceiveReport> {
    receive::receive(root, input, out)
        .with_context(|| format!("receiving blobs into {}", root.display()))
}

/// Fetch blobs from a peer registry into `root`.
pub fn fetch_blobs(
    root: &Path,
    from: &str,
    ca: &Path,
    parallel: usize,
    items: &[String],
) -> anyhow::Result<FetchReport> {
    Ok(fetch::fetch(root, from, ca, parallel, items)?)
}

/// Create the site CA in `dir` (an existing one is kept).
pub fn init_ca(dir: &Path, name: &str) -> anyhow::Result<CaInfo> {
    Ok(tls::init_ca(dir, name)?)
}

/// Issue a server certificate for `hosts` from the CA in `ca` into `out`.
pub fn issue_cert(ca: &Path, hosts: &[String], out: &Path) -> anyhow::Result<ServerCertInfo> {
    let mut r = tls::issue_server_cert(ca, hosts, out).map_err(anyhow::Error::from);
    if !ca.join(tls::CA_CERT).exists() {
        r = r.context(Hint(format!(
            "create the site CA first: darkport registry ca init --dir {}",
            ca.display()
        )));
    }
    r.with_context(|| {
        format!(
            "failed to issue a server certificate into {}",
            out.display()
        )
    })
}

/// Set `user`'s password in the htpasswd `file` (other users kept), atomically, after
/// checking the new file parses.
pub fn set_password(file: &Path, user: &str, password: &str) -> anyhow::Result<()> {
    anyhow::ensure!(!password.is_empty(), "empty password refused");
    let line = auth::hash_line(user, password, auth::DEFAULT_ITERATIONS)?;
    let old = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("failed to read {}", file.display())),
    };
    let prefix = format!("{user}:");
    let mut out: Vec<&str> = old.lines().filter(|l| !l.starts_with(&prefix)).collect();
    out.push(&line);
    let text = out.join("\n") + "\n";
    auth::Htpasswd::parse(&text, file)?;
    let dir = file
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("failed to create a temp file in {}", dir.display()))?;
    tmp.write_all(text.as_bytes())?;
    tmp.as_file().sync_all()?;
    tmp.persist(file)
        .with_context(|| format!("failed to write {}", file.display()))?;
    Ok(())
}
