//! The site registry as a service on a registry host: a systemd unit where systemd runs, else a
//! shell loop that restarts it (the supervisor). Pure script builders; the seed step runs them.

use super::Layout;
use crate::transport::shell_quote;

/// Name of the systemd unit.
pub const UNIT: &str = "darkport-registry";

/// How the registry is served on one host.
pub struct RegistryService<'a> {
    /// The darkport binary on the host.
    pub bin: &'a str,
    /// The host's `darkport_root`.
    pub layout: &'a Layout,
    /// The address it listens on (`ip:port`, `[ip6]:port` or `0.0.0.0:port`).
    pub listen: String,
    /// Restart even when the unit or supervisor is unchanged (new TLS files).
    pub restart: bool,
}

/// The listen address for a registry host reached at `host` (an IP binds only that address;
/// a name binds every address).
pub fn listen_addr(host: &str, port: u16) -> String {
    match host.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(ip)) => format!("[{ip}]:{port}"),
        Ok(ip) => format!("{ip}:{port}"),
        Err(_) => format!("0.0.0.0:{port}"),
    }
}

impl RegistryService<'_> {
    /// The `darkport registry serve` command line.
    pub fn command(&self) -> String {
        let tls = self.layout.tls_dir();
        format!(
            "{} registry serve --root {} --listen {} --tls-cert {} --tls-key {} --progress plain",
            shell_quote(self.bin),
            shell_quote(self.layout.root()),
            self.listen,
            shell_quote(&format!("{tls}/server.crt")),
            shell_quote(&format!("{tls}/server.key")),
        )
    }

    /// A script that installs (or keeps) the systemd unit and makes sure it runs.
    pub fn systemd_script(&self) -> String {
        let restart = if self.restart {
            format!("systemctl restart {UNIT}")
        } else {
            String::new()
        };
        format!(
            r#"set -e
u=/etc/systemd/system/{UNIT}.service
new=$(mktemp)
cat > "$new" <<'EOF'
[Unit]
Description=darkport site registry (pull-only OCI registry from {root})
After=network-online.target
[Service]
ExecStart={cmdline}
Restart=always
RestartSec=1
LimitNOFILE=65536
[Install]
WantedBy=multi-user.target
EOF
if ! cmp -s "$new" "$u"; then mv "$new" "$u"; systemctl daemon-reload; systemctl enable {UNIT} >/dev/null 2>&1; systemctl restart {UNIT}; else rm -f "$new"; fi
{restart}
systemctl start {UNIT}
"#,
            root = self.layout.root(),
            cmdline = self.command(),
        )
    }

    /// A script that starts (or keeps) the supervised registry: a shell loop restarts the
    /// server one second after it exits; its script is kept beside it so a changed command
    /// line restarts it.
    pub fn supervisor_script(&self) -> String {
        let reg = shell_quote(&self.layout.registry_dir());
        format!(
            r#"set -e
d={reg}
mkdir -p "$d"
cat > "$d/supervise.sh.new" <<'EOF'
#!/bin/sh
# darkport site registry, supervised: restarted one second after it exits.
while :; do
  {cmdline} >> {reg}/serve.log 2>&1
  sleep 1
done
EOF
pid=$(cat "$d/supervise.pid" 2>/dev/null || true)
running=0
if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then running=1; fi
if [ $running = 1 ] && cmp -s "$d/supervise.sh.new" "$d/supervise.sh" && [ {restart} = 0 ]; then
  rm -f "$d/supervise.sh.new"; exit 0
fi
if [ $running = 1 ]; then kill -TERM -- -"$pid" 2>/dev/null || kill "$pid" 2>/dev/null || true; sleep 0.3; fi
mv "$d/supervise.sh.new" "$d/supervise.sh"; chmod 755 "$d/supervise.sh"
setsid sh "$d/supervise.sh" </dev/null >/dev/null 2>&1 &
echo $! > "$d/supervise.pid"
"#,
            cmdline = self.command(),
            restart = if self.restart { 1 } else { 0 }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_address_binds_the_reached_ip_or_every_address() {
        assert_eq!(listen_addr("10.0.0.5", 5000), "10.0.0.5:5000");
        assert_eq!(listen_addr("::1", 443), "[::1]:443");
        assert_eq!(listen_addr("reg.site", 5000), "0.0.0.0:5000");
    }

    #[test]
    fn the_unit_runs_the_serve_command_and_restarts_only_when_asked() {
        let layout = Layout::new("/r/");
        let svc = |restart| RegistryService {
            bin: "/r/bin/darkport-0123",
            layout: &layout,
            listen: listen_addr("10.0.0.5", 5000),
            restart,
        };
        let s = svc(false);
        assert_eq!(
            s.command(),
            "/r/bin/darkport-0123 registry serve --root /r --listen 10.0.0.5:5000 --tls-cert /r/registry/tls/server.crt --tls-key /r/registry/tls/server.key --progress plain"
        );
        let unit = s.systemd_script();
        assert!(
            unit.contains(&format!("ExecStart={}\n", s.command())),
            "{unit}"
        );
        assert!(unit.contains("Restart=always"));
        // Enough descriptors for --max-connections' default (two per connection).
        assert!(unit.contains("\nLimitNOFILE=65536\n"), "{unit}");
        // A root with a space is quoted for the shell.
        let spaced = Layout::new("/srv/dark port");
        let q = RegistryService {
            bin: "/srv/dark port/bin/darkport-0123",
            layout: &spaced,
            listen: listen_addr("10.0.0.5", 5000),
            restart: false,
        };
        assert!(
            q.command().starts_with(
                "'/srv/dark port/bin/darkport-0123' registry serve --root '/srv/dark port' "
            ),
            "{}",
            q.command()
        );
        assert!(!unit.contains("\nsystemctl restart darkport-registry\n"));
        assert!(svc(true)
            .systemd_script()
            .contains("\nsystemctl restart darkport-registry\n"));
    }

    /// The supervisor script, run for real with a stand-in binary: it starts the loop once,
    /// keeps it on an unchanged re-run, and the loop restarts the server when it exits.
    #[test]
    fn the_supervisor_starts_once_and_restarts_the_server() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_str().unwrap().to_string();
        let layout = Layout::new(&root);
        let bin = format!("{root}/fake-darkport");
        std::fs::write(
            &bin,
            "#!/bin/sh\necho started >> \"$(dirname \"$0\")/starts\"\nsleep 0.2\n",
        )
        .unwrap();
        let sh = |script: &str| {
            std::process::Command::new("sh")
                .arg("-c")
                .arg(script)
                .status()
                .unwrap()
                .success()
        };
        assert!(sh(&format!("chmod 755 {}", shell_quote(&bin))));
        let s = RegistryService {
            bin: &bin,
            layout: &layout,
            listen: listen_addr("127.0.0.1", 1),
            restart: false,
        };
        let pid_file = format!("{root}/registry/supervise.pid");
        assert!(sh(&s.supervisor_script()));
        let pid = std::fs::read_to_string(&pid_file).unwrap();
        assert!(sh(&s.supervisor_script()));
        assert_eq!(
            pid,
            std::fs::read_to_string(&pid_file).unwrap(),
            "an unchanged supervisor is kept"
        );
        std::thread::sleep(std::time::Duration::from_millis(1800));
        let starts = std::fs::read_to_string(format!("{root}/starts")).unwrap_or_default();
        sh(&format!(
            "kill -TERM -- -{0} 2>/dev/null || kill {0}",
            pid.trim()
        ));
        assert!(
            starts.lines().count() >= 2,
            "the loop restarts the server: {starts:?}"
        );
    }
}
