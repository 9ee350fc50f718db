//! `ansible_connection=local`: run on the controller itself through `/bin/sh`.

use super::*;
use crate::digest::HashingWriter;
use std::io::SeekFrom;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Instant;

pub struct LocalTransport {
    host: String,
}

impl LocalTransport {
    pub fn new(host: &str) -> Self {
        LocalTransport {
            host: host.to_string(),
        }
    }

    /// `/bin/sh -c SCRIPT` (become applied) with piped stdio in its own process group, and
    /// the bytes to feed stdin first (the become password, if any).
    fn spawn(
        &self,
        script: String,
        b: Option<&Become>,
    ) -> Result<(std::process::Child, Vec<u8>), TransportError> {
        let (script, prefix) = match b {
            None => (script, Vec::new()),
            Some(b) => (
                become_wrap(&script, b),
                b.password
                    .as_ref()
                    .map(|pw| format!("{pw}\n").into_bytes())
                    .unwrap_or_default(),
            ),
        };
        let child = Command::new("/bin/sh")
            .arg("-c")
            .arg(&script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .map_err(|e| self.io_err("exec", e))?;
        Ok((child, prefix))
    }

    fn io_err(&self, op: &str, source: std::io::Error) -> TransportError {
        TransportError::Io {
            host: self.host.clone(),
            op: op.to_string(),
            source,
        }
    }
}

impl Transport for LocalTransport {
    fn host(&self) -> &str {
        &self.host
    }

    fn exec(&mut self, cmd: &str, opts: &ExecOpts) -> Result<ExecOutput, TransportError> {
        let mut script = env_prefix(&opts.env);
        script.push_str(cmd);
        let (mut child, mut stdin) = self.spawn(script, opts.become_.as_ref())?;
        stdin.extend_from_slice(opts.stdin.as_deref().unwrap_or_default());
        let mut child_in = child.stdin.take().unwrap();
        let writer = std::thread::spawn(move || {
            let _ = child_in.write_all(&stdin);
        });
        let mut out = child.stdout.take().unwrap();
        let mut err = child.stderr.take().unwrap();
        let t_out = std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = out.read_to_end(&mut v);
            v
        });
        let t_err = std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = err.read_to_end(&mut v);
            v
        });
        let start = Instant::now();
        let status = loop {
            if let Some(st) = child.try_wait().map_err(|e| self.io_err("exec", e))? {
                break st;
            }
            if let Some(t) = opts.timeout {
                if start.elapsed() >= t {
                    // Kill the whole process group so grandchildren die too.
                    // SAFETY: kill(2) takes plain integers and touches no memory of ours;
                    // the child leads its own process group (set at spawn), so -pid names
                    // exactly that group.
                    unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
                    let _ = child.wait();
                    return Err(TransportError::Timeout {
                        host: self.host.clone(),
                        cmd: cmd.to_string(),
                        secs: t.as_secs_f64(),
                    });
                }
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        let _ = writer.join();
        let stdout = t_out.join().unwrap_or_default();
        let stderr = t_err.join().unwrap_or_default();
        use std::os::unix::process::ExitStatusExt;
        let exit_code = status
            .code()
            .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
        Ok(ExecOutput {
            exit_code,
            stdout,
            stderr,
        })
    }

    fn exec_streaming(
        &mut self,
        cmd: &str,
        stdin: &mut dyn Read,
        stdout: &mut dyn Write,
    ) -> Result<(i32, Vec<u8>), TransportError> {
        let (mut child, _) = self.spawn(cmd.to_string(), None)?;
        // stdout is read on a thread and handed over in chunks, so this thread can feed stdin
        // and still deliver the output while the command runs.
        let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
        let mut out = child.stdout.take().unwrap();
        let t_out = std::thread::spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            while let Ok(n) = out.read(&mut buf) {
                if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        let mut err = child.stderr.take().unwrap();
        let t_err = std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = err.read_to_end(&mut v);
            v
        });
        let deliver = |stdout: &mut dyn Write, chunk: Vec<u8>| {
            stdout
                .write_all(&chunk)
                .map_err(|e| self.io_err("writing output", e))
        };
        let mut child_in = child.stdin.take().unwrap();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = stdin
                .read(&mut buf)
                .map_err(|e| self.io_err("reading input", e))?;
            if n == 0 || child_in.write_all(&buf[..n]).is_err() {
                break; // end of input, or the command stopped reading
            }
            while let Ok(chunk) = rx.try_recv() {
                deliver(stdout, chunk)?;
            }
        }
        drop(child_in);
        for chunk in rx {
            deliver(stdout, chunk)?;
        }
        let _ = t_out.join();
        let stderr = t_err.join().unwrap_or_default();
        let status = child.wait().map_err(|e| self.io_err("exec", e))?;
        use std::os::unix::process::ExitStatusExt;
        let code = status
            .code()
            .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
        Ok((code, stderr))
    }

    fn upload(
        &mut self,
        src: &mut dyn ReadSeek,
        size: u64,
        dest: &str,
        opts: &UploadOpts,
    ) -> Result<UploadReport, TransportError> {
        let part = format!("{dest}.part");
        // As over SSH: the destination's directory is created.
        if let Some(parent) = std::path::Path::new(dest).parent() {
            std::fs::create_dir_all(parent).map_err(|e| self.io_err("upload", e))?;
        }
        let resumed_from = std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
        let resumed_from = if resumed_from <= size {
            resumed_from
        } else {
            0
        };
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(resumed_from > 0)
            .write(true)
            .truncate(resumed_from == 0)
            .open(&part)
            .map_err(|e| self.io_err("upload", e))?;
        src.seek(SeekFrom::Start(resumed_from))
            .map_err(|e| self.io_err("upload", e))?;
        let sent = std::io::copy(&mut src.take(size - resumed_from), &mut f)
            .map_err(|e| self.io_err("upload", e))?;
        f.sync_all().map_err(|e| self.io_err("upload", e))?;
        drop(f);
        // Verify the whole file as it sits on disk, then rename into place.
        let mut hw = HashingWriter::new(std::io::sink());
        let mut pf = std::fs::File::open(&part).map_err(|e| self.io_err("upload", e))?;
        std::io::copy(&mut pf, &mut hw).map_err(|e| self.io_err("upload", e))?;
        let (_, (got, len)) = hw.finish();
        let expected = match opts.sha256 {
            Some(d) => d,
            None => {
                src.seek(SeekFrom::Start(0))
                    .map_err(|e| self.io_err("upload", e))?;
                crate::digest::Digest::of_reader(src.take(size))
                    .map_err(|e| self.io_err("upload", e))?
                    .0
            }
        };
        if got != expected || len != size {
            let _ = std::fs::remove_file(&part);
            return Err(TransportError::Failed {
                host: self.host.clone(),
                op: format!("upload of {dest}"),
                msg: format!("content check failed: got {got} ({len} bytes), expected {expected} ({size} bytes)"),
            });
        }
        if let Some(mode) = opts.mode {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&part, std::fs::Permissions::from_mode(mode))
                .map_err(|e| self.io_err("upload", e))?;
        }
        std::fs::rename(&part, dest).map_err(|e| self.io_err("upload", e))?;
        Ok(UploadReport {
            bytes_sent: sent,
            resumed_from,
        })
    }

    fn download(&mut self, src: &str, dest: &mut dyn Write) -> Result<u64, TransportError> {
        let mut f =
            std::fs::File::open(src).map_err(|e| self.io_err(&format!("download of {src}"), e))?;
        std::io::copy(&mut f, dest).map_err(|e| self.io_err(&format!("download of {src}"), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn exec_captures_output_and_code() {
        let mut t = LocalTransport::new("localhost");
        let o = t
            .exec(
                "echo out; echo err >&2; cat; exit 3",
                &ExecOpts {
                    stdin: Some(b"in".to_vec()),
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!(o.exit_code, 3);
        assert_eq!(o.stdout, b"out\nin");
        assert_eq!(o.stderr, b"err\n");
    }

    #[test]
    fn exec_timeout_kills() {
        let mut t = LocalTransport::new("localhost");
        let start = Instant::now();
        let e = t
            .exec(
                "sleep 5",
                &ExecOpts {
                    timeout: Some(Duration::from_millis(200)),
                    ..Default::default()
                },
            )
            .unwrap_err();
        assert!(matches!(e, TransportError::Timeout { .. }));
        assert!(start.elapsed() < Duration::from_secs(3));
    }

    #[test]
    fn upload_resumes_and_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("f.bin");
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(dir.path().join("f.bin.part"), &data[..40_000]).unwrap();
        let mut t = LocalTransport::new("localhost");
        let r = t
            .upload(
                &mut Cursor::new(data.clone()),
                data.len() as u64,
                dest.to_str().unwrap(),
                &UploadOpts::default(),
            )
            .unwrap();
        assert_eq!(
            r,
            UploadReport {
                bytes_sent: 60_000,
                resumed_from: 40_000
            }
        );
        assert_eq!(std::fs::read(&dest).unwrap(), data);
        // A corrupt partial file is detected and nothing lands at dest.
        let dest2 = dir.path().join("g.bin");
        std::fs::write(dir.path().join("g.bin.part"), vec![0u8; 40_000]).unwrap();
        let e = t
            .upload(
                &mut Cursor::new(data.clone()),
                data.len() as u64,
                dest2.to_str().unwrap(),
                &UploadOpts::default(),
            )
            .unwrap_err();
        assert!(e.to_string().contains("content check failed"), "{e}");
        assert!(!dest2.exists());
    }
}
