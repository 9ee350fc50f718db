//! SSH transport on `ssh2` (libssh2): one session per host, driven by one thread, in
//! non-blocking mode with `poll(2)`, so stdout, stderr and stdin of a command progress together
//! and every wait is bounded by a deadline.
//!
//! Bulk data goes through an exec channel (`cat >> dest.part`) in writes of 32 × 30000 bytes,
//! never through small SFTP writes. Host keys are checked against known_hosts parsed by
//! [`super::known_hosts`]. A host behind a jump host runs its session over a channel of the
//! jump host's shared session ([`super::jump`]).

use super::session::{open_session, tcp_connect, OpenError, Peer};
use super::spec::{ConnSpec, ConnectOpts};
use super::*;
use crate::digest::Digest;
use sha2::Digest as _;
use ssh2::{BlockDirections, Session};
use std::io::{ErrorKind, SeekFrom};

use std::os::unix::io::{AsRawFd, RawFd};
use std::time::Instant;

/// Upload chunk: a multiple of libssh2's 30000-byte packet payload.
const CHUNK: usize = 32 * 30000;
/// libssh2's "would block".
const EAGAIN: i32 = -37;

/// Marker printed by sudo as its password prompt (`sudo -p`), and by the wrapped command when
/// sudo let it run: stdin is held back until one of them shows up on stderr.
const SUDO_PROMPT: &str = "[darkport-sudo-prompt]";
const SUDO_OK: &str = "[darkport-sudo-ok]";

pub struct SshTransport {
    name: String,
    sess: Session,
    fd: RawFd,
    /// Set when the session died: every later call fails fast as unreachable.
    dead: Option<String>,
    /// Uploads/downloads fail as unreachable when no byte moved for this long.
    stall: Duration,
    /// The jump host session this one runs over (kept open while this session lives).
    _tunnel: Option<std::sync::Arc<super::jump::Bastion>>,
}

fn again(e: &ssh2::Error) -> bool {
    e.code() == ssh2::ErrorCode::Session(EAGAIN)
}

impl SshTransport {
    /// TCP connect (or a channel through the jump host), handshake, host key check,
    /// authentication — each bounded by `opts.connect_timeout`.
    pub fn connect(spec: &ConnSpec, opts: &ConnectOpts) -> Result<SshTransport, TransportError> {
        super::session::with_drop_retries(opts, || Self::connect_once(spec, opts))
    }

    fn connect_once(spec: &ConnSpec, opts: &ConnectOpts) -> Result<SshTransport, OpenError> {
        let target = Peer {
            host: &spec.host,
            port: spec.port,
            user: &spec.user,
            label: String::new(),
        };
        let (sess, fd, tunnel) = match &spec.jump {
            None => {
                let tcp = tcp_connect(&spec.host, spec.port, opts).map_err(|msg| {
                    TransportError::Unreachable {
                        host: spec.name.clone(),
                        msg,
                    }
                })?;
                let fd = tcp.as_raw_fd();
                (open_session(tcp, &target, spec, opts)?, fd, None)
            }
            Some(jump) => {
                let (stream, tunnel) = super::jump::open(spec, jump, opts)?;
                let fd = stream.as_raw_fd();
                let label = format!("{}:{} via jump host {jump}: ", spec.host, spec.port);
                let target = Peer { label, ..target };
                (open_session(stream, &target, spec, opts)?, fd, Some(tunnel))
            }
        };
        sess.set_timeout(0);
        sess.set_blocking(false);
        Ok(SshTransport {
            name: spec.name.clone(),
            sess,
            fd,
            dead: None,
            stall: opts.stall_timeout,
            _tunnel: tunnel,
        })
    }

    /// Negotiated key exchange, host key and cipher (for diagnostics and benchmarks).
    pub fn negotiated(&self) -> String {
        use ssh2::MethodType as M;
        [M::Kex, M::HostKey, M::CryptCs, M::MacCs]
            .iter()
            .map(|m| self.sess.methods(*m).unwrap_or("?").to_string())
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn unreachable(&mut self, msg: String) -> TransportError {
        self.dead = Some(msg.clone());
        TransportError::Unreachable {
            host: self.name.clone(),
            msg,
        }
    }

    fn check_alive(&self) -> Result<(), TransportError> {
        match &self.dead {
            Some(m) => Err(TransportError::Unreachable {
                host: self.name.clone(),
                msg: format!("session lost earlier: {m}"),
            }),
            None => Ok(()),
        }
    }

    /// Wait until the socket is ready in the direction libssh2 needs, at most until `deadline`
    /// (and at most 1 s, so callers re-check their state).
    fn wait_socket(&self, deadline: Option<Instant>) {
        let events = match self.sess.block_directions() {
            BlockDirections::Inbound => libc::POLLIN,
            BlockDirections::Outbound => libc::POLLOUT,
            BlockDirections::Both => libc::POLLIN | libc::POLLOUT,
            BlockDirections::None => libc::POLLIN,
        };
        let mut ms = 1000i64;
        if let Some(d) = deadline {
            ms = ms.min(d.saturating_duration_since(Instant::now()).as_millis() as i64);
        }
        let mut pfd = libc::pollfd {
            fd: self.fd,
            events,
            revents: 0,
        };
        // SAFETY: `pfd` is one valid, initialised pollfd that lives across the call, and
        // nfds is 1. The result is not needed: on readiness, timeout or EINTR alike the
        // caller retries its non-blocking libssh2 call, which reports the real state.
        let _ = unsafe { libc::poll(&mut pfd, 1, ms.max(0) as i32) };
    }

    /// Retry a libssh2 call until it stops saying "would block".
    fn retry<T>(
        &mut self,
        deadline: Option<Instant>,
        what: &str,
        mut f: impl FnMut(&Session) -> Result<T, ssh2::Error>,
    ) -> Result<T, Step> {
        loop {
            match f(&self.sess) {
                Ok(v) => return Ok(v),
                Err(e) if again(&e) => {
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        return Err(Step::Deadline);
                    }
                    self.wait_socket(deadline);
                }
                Err(e) => return Err(Step::Ssh(format!("{what}: {e}"))),
            }
        }
    }

    /// Run `script` on a new channel. stdin comes from `stdin` (streamed), stdout goes to
    /// `stdout`; stderr is collected. With `sudo_password`, stdin is held until sudo either
    /// prompts (the password is sent) or the command starts (`SUDO_OK` on stderr).
    fn run(
        &mut self,
        script: &str,
        stdin: &mut dyn Read,
        stdout: &mut dyn Write,
        sudo_password: Option<&str>,
        deadline: Option<Instant>,
        stall: Option<Duration>,
    ) -> Result<(i32, Vec<u8>), Step> {
        let mut last_progress = Instant::now();
        let mut ch = self.retry(deadline, "opening a channel", |s| s.channel_session())?;
        self.retry(deadline, "starting the command", |_| ch.exec(script))?;
        let mut stderr = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        let mut inbuf = vec![0u8; CHUNK];
        let (mut in_start, mut in_end) = (0usize, 0usize);
        let mut in_eof = false;
        let mut eof_sent = false;
        let mut gate = sudo_password.is_some();
        let mut prompts = 0;
        let mut out_done = false;
        let mut err_done = false;
        loop {
            let mut progress = false;
            progress |= drain(&mut ch, false, &mut buf, &mut out_done, &mut |b| {
                stdout
                    .write_all(b)
                    .map_err(|e| Step::Local(format!("writing output: {e}")))
            })?;
            progress |= drain(&mut ch, true, &mut buf, &mut err_done, &mut |b| {
                stderr.extend_from_slice(b);
                Ok(())
            })?;
            // sudo handshake
            if gate {
                if let Some(pos) = find(&stderr, SUDO_OK.as_bytes()) {
                    let mut end = pos + SUDO_OK.len();
                    if stderr.get(end) == Some(&b'\n') {
                        end += 1;
                    }
                    stderr.drain(..end);
                    gate = false;
                    progress = true;
                } else if let Some(pos) = find(&stderr, SUDO_PROMPT.as_bytes()) {
                    stderr.drain(pos..pos + SUDO_PROMPT.len());
                    prompts += 1;
                    if prompts > 1 {
                        return Err(Step::SudoRejected);
                    }
                    let line = format!("{}\n", sudo_password.unwrap_or_default());
                    self.write_all(&mut ch, line.as_bytes(), deadline)?;
                    progress = true;
                }
            }
            // stdin
            if !gate && !eof_sent {
                if in_start == in_end && !in_eof {
                    let n = stdin
                        .read(&mut inbuf)
                        .map_err(|e| Step::Local(format!("reading input: {e}")))?;
                    if n == 0 {
                        in_eof = true;
                    } else {
                        in_start = 0;
                        in_end = n;
                    }
                }
                if in_start < in_end {
                    match ch.write(&inbuf[in_start..in_end]) {
                        Ok(n) => {
                            in_start += n;
                            progress = progress || n > 0;
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                        Err(_) => {
                            // The command exited without reading all its input (the channel
                            // is closing): stop feeding it. A dead session fails the reads.
                            eof_sent = true;
                            in_start = in_end;
                        }
                    }
                } else if in_eof {
                    match ch.send_eof() {
                        Ok(()) => {
                            eof_sent = true;
                            progress = true;
                        }
                        Err(e) if again(&e) => {}
                        Err(e) => return Err(Step::Ssh(format!("closing stdin: {e}"))),
                    }
                }
            }
            if out_done && err_done {
                break;
            }
            if progress {
                last_progress = Instant::now();
            } else {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    let _ = ch.close();
                    return Err(Step::Deadline);
                }
                if let Some(st) = stall {
                    if last_progress.elapsed() >= st {
                        return Err(Step::Ssh(format!("no data moved for {}s", st.as_secs())));
                    }
                }
                self.wait_socket(deadline);
            }
        }
        if gate && prompts > 0 {
            return Err(Step::SudoRejected);
        }
        let _ = self.retry(deadline, "closing the channel", |_| ch.close());
        let _ = self.retry(deadline, "closing the channel", |_| ch.wait_close());
        Ok((exit_code(&ch)?, stderr))
    }

    fn write_all(
        &mut self,
        ch: &mut ssh2::Channel,
        mut data: &[u8],
        deadline: Option<Instant>,
    ) -> Result<(), Step> {
        while !data.is_empty() {
            match ch.write(data) {
                Ok(n) => data = &data[n..],
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        return Err(Step::Deadline);
                    }
                    self.wait_socket(deadline);
                }
                Err(e) => return Err(Step::Ssh(format!("writing stdin: {e}"))),
            }
        }
        Ok(())
    }

    /// Wrap a script for become; returns the script and the sudo password to feed, if any.
    fn wrap_become<'a>(&self, script: &str, b: Option<&'a Become>) -> (String, Option<&'a str>) {
        match b {
            None => (script.to_string(), None),
            Some(b) => {
                let user = shell_quote(b.user.as_deref().unwrap_or("root"));
                match &b.password {
                    None => (
                        format!("sudo -n -H -u {user} -- /bin/sh -c {}", shell_quote(script)),
                        None,
                    ),
                    Some(pw) => {
                        let inner = format!("echo '{SUDO_OK}' >&2; {script}");
                        (
                            format!(
                                "sudo -k -S -p '{SUDO_PROMPT}' -H -u {user} -- /bin/sh -c {}",
                                shell_quote(&inner)
                            ),
                            Some(pw.as_str()),
                        )
                    }
                }
            }
        }
    }

    /// Map a failed step to the caller's error.
    fn fail(&mut self, step: Step, op: &str, timeout: Option<Duration>) -> TransportError {
        match step {
            Step::Deadline => TransportError::Timeout {
                host: self.name.clone(),
                cmd: op.to_string(),
                secs: timeout.map(|t| t.as_secs_f64()).unwrap_or(0.0),
            },
            Step::Ssh(m) => self.unreachable(format!("{op}: {m}")),
            Step::Local(m) => TransportError::Failed {
                host: self.name.clone(),
                op: op.to_string(),
                msg: m,
            },
            Step::SudoRejected => TransportError::Failed {
                host: self.name.clone(),
                op: format!("become (sudo) for {op}"),
                msg: "sudo rejected the become password (ansible_become_password)".into(),
            },
        }
    }

    /// Run a short helper command of an upload.
    /// A node that does not finish it within `limit` counts as unreachable.
    fn helper(
        &mut self,
        script: &str,
        b: Option<&Become>,
        op: &str,
        limit: Duration,
    ) -> Result<(i32, String, String), TransportError> {
        let (wrapped, pw) = self.wrap_become(script, b);
        let t = limit;
        let mut out = Vec::new();
        match self.run(
            &wrapped,
            &mut std::io::empty(),
            &mut out,
            pw,
            Some(Instant::now() + t),
            None,
        ) {
            Ok((code, err)) => Ok((
                code,
                String::from_utf8_lossy(&out).into_owned(),
                String::from_utf8_lossy(&err).into_owned(),
            )),
            Err(Step::Deadline) => {
                let _ = self
                    .dead
                    .insert(format!("no answer within {}s", t.as_secs()));
                Err(TransportError::Unreachable {
                    host: self.name.clone(),
                    msg: format!("{op}: the node did not answer within {}s", t.as_secs()),
                })
            }
            Err(s) => Err(self.fail(s, op, Some(t))),
        }
    }

    /// Kill the process group of a timed-out command (pid reported by its first stdout line).
    fn kill_remote(&mut self, pid: u32, b: Option<&Become>) {
        let script = format!(
            "pg=$(sed 's/.*) //' /proc/{pid}/stat 2>/dev/null | cut -d' ' -f3); \
             if [ \"${{pg:-0}}\" -gt 1 ] && [ \"$pg\" != \"$(sed 's/.*) //' /proc/$$/stat | cut -d' ' -f3)\" ]; then \
             kill -KILL -- -$pg 2>/dev/null; fi; kill -KILL {pid} 2>/dev/null; true"
        );
        let (wrapped, pw) = self.wrap_become(&script, b);
        let mut sink = Vec::new();
        let _ = self.run(
            &wrapped,
            &mut std::io::empty(),
            &mut sink,
            pw,
            Some(Instant::now() + Duration::from_secs(10)),
            None,
        );
    }
}

enum Step {
    /// The deadline passed.
    Deadline,
    /// libssh2 / network error: the session is gone.
    Ssh(String),
    /// Local I/O error (reading the source, writing the sink).
    Local(String),
    SudoRejected,
}

/// Read what the channel has on stdout (or stderr) without blocking, into `sink`; `done`
/// once the stream is at EOF. True when bytes moved.
fn drain(
    ch: &mut ssh2::Channel,
    stderr: bool,
    buf: &mut [u8],
    done: &mut bool,
    sink: &mut dyn FnMut(&[u8]) -> Result<(), Step>,
) -> Result<bool, Step> {
    let mut progress = false;
    while !*done {
        let r = if stderr {
            ch.stderr().read(buf)
        } else {
            ch.read(buf)
        };
        match r {
            Ok(0) => {
                if ch.eof() {
                    *done = true;
                }
                break;
            }
            Ok(n) => {
                progress = true;
                sink(&buf[..n])?;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) => {
                let what = if stderr { "stderr" } else { "stdout" };
                return Err(Step::Ssh(format!("reading {what}: {e}")));
            }
        }
    }
    Ok(progress)
}

/// The command's exit code; killed by a signal, 128 + its number (OpenSSH sends
/// exit-signal instead of exit-status then).
fn exit_code(ch: &ssh2::Channel) -> Result<i32, Step> {
    let code = ch
        .exit_status()
        .map_err(|e| Step::Ssh(format!("exit status: {e}")))?;
    if code != 0 {
        return Ok(code);
    }
    Ok(match ch.exit_signal() {
        Ok(sig) if sig.exit_signal.is_some() => 128 + signal_number(&sig.exit_signal),
        _ => 0,
    })
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn signal_number(name: &Option<String>) -> i32 {
    match name.as_deref().unwrap_or("") {
        "HUP" => 1,
        "INT" => 2,
        "QUIT" => 3,
        "ABRT" => 6,
        "KILL" => 9,
        "SEGV" => 11,
        "PIPE" => 13,
        "ALRM" => 14,
        "TERM" => 15,
        _ => 0,
    }
}

/// A writer that strips the first line (the remote shell's pid) into `pid`.
struct PidLine<'a> {
    inner: &'a mut Vec<u8>,
    head: Vec<u8>,
    pid: Option<u32>,
}

impl Write for PidLine<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.pid.is_some() {
            self.inner.extend_from_slice(buf);
            return Ok(buf.len());
        }
        self.head.extend_from_slice(buf);
        if let Some(nl) = self.head.iter().position(|&c| c == b'\n') {
            let line = String::from_utf8_lossy(&self.head[..nl]).trim().to_string();
            self.pid = Some(line.parse().unwrap_or(0));
            self.inner.extend_from_slice(&self.head[nl + 1..]);
            self.head.clear();
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A reader that hashes what passes through (when there is a hasher: an upload whose digest
/// the caller already knows is not hashed a second time on the controller).
struct HashRead<'a> {
    inner: std::io::Take<&'a mut dyn ReadSeek>,
    hasher: Option<&'a mut sha2::Sha256>,
}

impl Read for HashRead<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(h) = self.hasher.as_deref_mut() {
            h.update(&buf[..n]);
        }
        Ok(n)
    }
}

impl Transport for SshTransport {
    fn host(&self) -> &str {
        &self.name
    }

    fn exec(&mut self, cmd: &str, opts: &ExecOpts) -> Result<ExecOutput, TransportError> {
        self.check_alive()?;
        let mut script = env_prefix(&opts.env);
        if opts.timeout.is_some() {
            // First stdout line = pid of the shell, to kill the command's group on timeout.
            script.push_str("echo $$; ");
        }
        script.push_str(cmd);
        let (wrapped, pw) = self.wrap_become(&script, opts.become_.as_ref());
        let deadline = opts.timeout.map(|t| Instant::now() + t);
        let mut stdout = Vec::new();
        let stdin = opts.stdin.as_deref().unwrap_or_default();
        let r = if opts.timeout.is_some() {
            let mut w = PidLine {
                inner: &mut stdout,
                head: Vec::new(),
                pid: None,
            };
            let r = self.run(&wrapped, &mut &*stdin, &mut w, pw, deadline, None);
            if let (Err(Step::Deadline), Some(pid)) = (&r, w.pid) {
                if pid > 1 {
                    self.kill_remote(pid, opts.become_.as_ref());
                }
            }
            r
        } else {
            self.run(&wrapped, &mut &*stdin, &mut stdout, pw, deadline, None)
        };
        match r {
            Ok((exit_code, stderr)) => Ok(ExecOutput {
                exit_code,
                stdout,
                stderr,
            }),
            Err(s) => Err(self.fail(s, cmd, opts.timeout)),
        }
    }

    fn exec_streaming(
        &mut self,
        cmd: &str,
        stdin: &mut dyn Read,
        stdout: &mut dyn Write,
    ) -> Result<(i32, Vec<u8>), TransportError> {
        self.check_alive()?;
        self.run(cmd, stdin, stdout, None, None, Some(self.stall))
            .map_err(|s| self.fail(s, cmd, None))
    }

    fn upload(
        &mut self,
        src: &mut dyn ReadSeek,
        size: u64,
        dest: &str,
        opts: &UploadOpts,
    ) -> Result<UploadReport, TransportError> {
        self.check_alive()?;
        let op = format!("upload of {dest}");
        let part = format!("{dest}.part");
        let qpart = shell_quote(&part);
        let b = opts.become_.as_ref();
        // 1. What is already there?
        let dir = match dest.rfind('/') {
            Some(0) => "/".to_string(),
            Some(i) => dest[..i].to_string(),
            None => ".".to_string(),
        };
        let (code, out, err) = self.helper(
            &format!(
                "mkdir -p {} && if [ -f {qpart} ]; then wc -c < {qpart}; else echo 0; fi",
                shell_quote(&dir)
            ),
            b,
            &op,
            self.stall,
        )?;
        if code != 0 {
            return Err(TransportError::Failed {
                host: self.name.clone(),
                op,
                msg: format!("preparing {dir} failed (exit {code}): {}", err.trim()),
            });
        }
        let have: u64 = out.trim().parse().unwrap_or(0);
        let resumed_from = if have <= size { have } else { 0 };
        // 2. Hash the part already on the node (from our source), then stream the rest.
        let io_err = |e: std::io::Error| TransportError::Io {
            host: self.name.clone(),
            op: format!("upload of {dest}"),
            source: e,
        };
        let mut hasher = sha2::Sha256::new();
        let need_hash = opts.sha256.is_none();
        if need_hash && resumed_from > 0 {
            src.seek(SeekFrom::Start(0)).map_err(io_err)?;
            let mut prefix = (&mut *src).take(resumed_from);
            let mut buf = vec![0u8; CHUNK];
            loop {
                let n = prefix.read(&mut buf).map_err(io_err)?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
            }
        }
        src.seek(SeekFrom::Start(resumed_from)).map_err(io_err)?;
        let redirect = if resumed_from > 0 { ">>" } else { ">" };
        let (wrapped, pw) = self.wrap_become(&format!("cat {redirect} {qpart}"), b);
        let remaining = size - resumed_from;
        let mut hr = HashRead {
            inner: (&mut *src as &mut dyn ReadSeek).take(remaining),
            hasher: need_hash.then_some(&mut hasher),
        };
        let mut sink = Vec::new();
        let r = self.run(&wrapped, &mut hr, &mut sink, pw, None, Some(self.stall));
        let sent = remaining - hr.inner.limit();
        match r {
            Ok((0, _)) => {}
            Ok((code, err)) => {
                return Err(TransportError::Failed {
                    host: self.name.clone(),
                    op,
                    msg: format!(
                        "writing {part} failed (exit {code}): {}",
                        String::from_utf8_lossy(&err).trim()
                    ),
                })
            }
            Err(s) => return Err(self.fail(s, &op, None)),
        }
        if sent != remaining {
            return Err(TransportError::Failed {
                host: self.name.clone(),
                op,
                msg: format!("source ended after {} of {size} bytes", resumed_from + sent),
            });
        }
        let expected = match opts.sha256 {
            Some(d) => d,
            None => Digest::from_hex(&hex::encode(hasher.finalize())).map_err(|e| {
                TransportError::Failed {
                    host: self.name.clone(),
                    op: op.clone(),
                    msg: format!("digest: {e}"),
                }
            })?,
        };
        // 3. Verify on the node, then chmod + rename into place (one round trip).
        let chmod = opts
            .mode
            .map(|m| format!("chmod {m:o} {qpart} && "))
            .unwrap_or_default();
        let script = format!(
            "if command -v openssl >/dev/null 2>&1; then h=$(openssl dgst -sha256 -r < {qpart}); \
             elif command -v sha256sum >/dev/null 2>&1; then h=$(sha256sum < {qpart}); \
             else h=$(shasum -a 256 < {qpart}); fi; h=${{h%% *}}; \
             s=$(wc -c < {qpart}); s=$((s+0)); \
             if [ \"$h\" = {hex} ] && [ \"$s\" = {size} ]; then {chmod}mv -f {qpart} {qdest} && echo OK; \
             else rm -f {qpart}; echo \"BAD $h $s\"; fi",
            hex = expected.hex(),
            qdest = shell_quote(dest),
        );
        // Hashing on the node: allow for a slow disk (20 MB/s) on top of the stall timeout.
        let limit = self.stall + Duration::from_secs(size / 20_000_000);
        let (code, out, err) = self.helper(&script, b, &op, limit)?;
        let out = out.trim();
        if out == "OK" && code == 0 {
            return Ok(UploadReport {
                bytes_sent: sent,
                resumed_from,
            });
        }
        let msg = match out.strip_prefix("BAD ") {
            Some(rest) => {
                let mut it = rest.split_whitespace();
                format!(
                    "content check failed on the node: got sha256:{} ({} bytes), expected {expected} ({size} bytes); \
                     the partial file was removed, retry the upload",
                    it.next().unwrap_or("?"),
                    it.next().unwrap_or("?")
                )
            }
            None => format!(
                "verifying {part} failed (exit {code}): {} {}",
                out,
                err.trim()
            ),
        };
        Err(TransportError::Failed {
            host: self.name.clone(),
            op,
            msg,
        })
    }

    fn download(&mut self, src: &str, dest: &mut dyn Write) -> Result<u64, TransportError> {
        self.check_alive()?;
        let op = format!("download of {src}");
        struct Count<'a>(&'a mut dyn Write, u64);
        impl Write for Count<'_> {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                let n = self.0.write(b)?;
                self.1 += n as u64;
                Ok(n)
            }
            fn flush(&mut self) -> std::io::Result<()> {
                self.0.flush()
            }
        }
        let mut w = Count(dest, 0);
        let script = format!("cat -- {}", shell_quote(src));
        let stall = Some(self.stall);
        match self.run(&script, &mut std::io::empty(), &mut w, None, None, stall) {
            Ok((0, _)) => Ok(w.1),
            Ok((code, err)) => Err(TransportError::Failed {
                host: self.name.clone(),
                op,
                msg: format!("exit {code}: {}", String::from_utf8_lossy(&err).trim()),
            }),
            Err(s) => Err(self.fail(s, &op, None)),
        }
    }
}

impl Drop for SshTransport {
    fn drop(&mut self) {
        if self.dead.is_none() {
            self.sess.set_blocking(true);
            self.sess.set_timeout(1000);
            let _ = self.sess.disconnect(None, "darkport done", None);
        }
    }
}
