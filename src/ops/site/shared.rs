//! One SSH session per host for the whole run, shared by the site flow and the playbook engine.

use crate::transport::{
    ExecOpts, ExecOutput, ReadSeek, Transport, TransportError, UploadOpts, UploadReport,
};
use std::io::Write;
use std::sync::{Arc, Mutex};

/// A transport shared between the install flow and the playbook engine, so the whole run
/// uses one SSH session per host.
#[derive(Clone)]
pub struct Shared {
    name: String,
    t: Arc<Mutex<Box<dyn Transport>>>,
}

impl Shared {
    pub fn new(t: Box<dyn Transport>) -> Shared {
        Shared {
            name: t.host().to_string(),
            t: Arc::new(Mutex::new(t)),
        }
    }
    fn lock(&self) -> std::sync::MutexGuard<'_, Box<dyn Transport>> {
        self.t.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Transport for Shared {
    fn host(&self) -> &str {
        &self.name
    }
    fn exec(&mut self, cmd: &str, opts: &ExecOpts) -> Result<ExecOutput, TransportError> {
        self.lock().exec(cmd, opts)
    }
    fn upload(
        &mut self,
        src: &mut dyn ReadSeek,
        size: u64,
        dest: &str,
        opts: &UploadOpts,
    ) -> Result<UploadReport, TransportError> {
        self.lock().upload(src, size, dest, opts)
    }
    fn download(&mut self, src: &str, dest: &mut dyn Write) -> Result<u64, TransportError> {
        self.lock().download(src, dest)
    }
    fn exec_streaming(
        &mut self,
        cmd: &str,
        stdin: &mut dyn std::io::Read,
        stdout: &mut dyn Write,
    ) -> Result<(i32, Vec<u8>), TransportError> {
        self.lock().exec_streaming(cmd, stdin, stdout)
    }
}
