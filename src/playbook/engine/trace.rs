//! `-vvv`: what the engine does on each host's connection, as events (`<host> EXEC …`), the
//! way ansible-playbook shows its SSH commands at the same verbosity.

use super::{Event, Reporter};
use crate::transport::{
    ExecOpts, ExecOutput, ReadSeek, Transport, TransportError, UploadOpts, UploadReport,
};
use serde_json::{Map, Value};
use std::io::{Read, Write};

/// Verbosity at which connections and the commands sent over them are shown.
pub(super) const TRACE_LEVEL: u8 = 3;

/// The connection line for a host: who logs in where, read from its connection variables by
/// the same rules the connection itself uses.
pub(super) fn connect_line(host: &str, vars: &Map<String, Value>) -> String {
    match crate::inventory::connvars::parse_conn_vars(host, vars) {
        Ok(c) if c.connection == crate::transport::Connection::Local => {
            format!("ESTABLISH LOCAL CONNECTION FOR USER: {}", c.user)
        }
        Ok(c) => format!(
            "ESTABLISH SSH CONNECTION FOR USER: {} ({}:{})",
            c.user, c.host, c.port
        ),
        Err(e) => format!("ESTABLISH CONNECTION: {e}"),
    }
}

/// A transport that reports every command before it runs it.
pub(super) struct Traced<'a> {
    pub(super) inner: &'a mut dyn Transport,
    pub(super) rep: &'a dyn Reporter,
}

impl Traced<'_> {
    fn say(&self, msg: &str) {
        let host = self.inner.host().to_string();
        self.rep.event(Event::Verbose { host: &host, msg });
    }
}

/// A command as one readable line: the script's lines joined, long ones shortened.
fn one_line(cmd: &str) -> String {
    let joined = cmd
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    const MAX: usize = 400;
    if joined.chars().count() > MAX {
        let cut: String = joined.chars().take(MAX).collect();
        format!("{cut} …({} bytes)", cmd.len())
    } else {
        joined
    }
}

impl Transport for Traced<'_> {
    fn host(&self) -> &str {
        self.inner.host()
    }
    fn exec(&mut self, cmd: &str, opts: &ExecOpts) -> Result<ExecOutput, TransportError> {
        let how = match &opts.become_ {
            Some(b) => format!(" (become {})", b.user.as_deref().unwrap_or("root")),
            None => String::new(),
        };
        self.say(&format!("EXEC{how} /bin/sh -c '{}'", one_line(cmd)));
        let out = self.inner.exec(cmd, opts)?;
        self.say(&format!("rc={}", out.exit_code));
        Ok(out)
    }
    fn exec_streaming(
        &mut self,
        cmd: &str,
        stdin: &mut dyn Read,
        stdout: &mut dyn Write,
    ) -> Result<(i32, Vec<u8>), TransportError> {
        self.say(&format!("EXEC (streaming) /bin/sh -c '{}'", one_line(cmd)));
        self.inner.exec_streaming(cmd, stdin, stdout)
    }
    fn upload(
        &mut self,
        src: &mut dyn ReadSeek,
        size: u64,
        dest: &str,
        opts: &UploadOpts,
    ) -> Result<UploadReport, TransportError> {
        self.say(&format!("PUT {size} bytes TO {dest}"));
        self.inner.upload(src, size, dest, opts)
    }
    fn download(&mut self, src: &str, dest: &mut dyn Write) -> Result<u64, TransportError> {
        self.say(&format!("FETCH {src}"));
        self.inner.download(src, dest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_connection_line_names_user_address_and_port() {
        let v = json!({"ansible_user": "ops", "ansible_host": "10.0.0.5", "ansible_port": 2222});
        assert_eq!(
            connect_line("node1", v.as_object().unwrap()),
            "ESTABLISH SSH CONNECTION FOR USER: ops (10.0.0.5:2222)"
        );
        let v = json!({"ansible_ssh_user": "app", "ansible_ssh_host": "h", "ansible_ssh_port": 23});
        assert_eq!(
            connect_line("node1", v.as_object().unwrap()),
            "ESTABLISH SSH CONNECTION FOR USER: app (h:23)"
        );
        let v = json!({"ansible_connection": "local", "ansible_user": "root"});
        assert_eq!(
            connect_line("here", v.as_object().unwrap()),
            "ESTABLISH LOCAL CONNECTION FOR USER: root"
        );
    }

    #[test]
    fn a_script_reads_as_one_line() {
        assert_eq!(one_line("set -e\n  cd /x\n\nls\n"), "set -e; cd /x; ls");
        assert!(one_line(&"x".repeat(1000)).ends_with("…(1000 bytes)"));
    }
}
