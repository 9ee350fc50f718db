//! `darkport registry receive`: store blobs streamed on standard input into this node's CAS.
//!
//! The installer runs it over SSH on a registry host (with the binary it placed there) and
//! streams every large blob the host lacks through ONE channel. Each blob is written to
//! `<root>/blobs/sha256/<hex>.part` and hashed while it arrives, so the node does not read it
//! a second time to check it; only a blob whose sha256 matches its name is renamed into place
//! (read-only). An interrupted stream leaves the `.part` behind for the next run to resume.
//!
//! # Wire format (stdin)
//! A sequence of frames, each a header line followed by exactly LENGTH bytes:
//!
//! ```text
//! blob <hex> <offset> <length>\n<length bytes>
//! ```
//!
//! OFFSET is how many bytes of the blob the `.part` already holds (the sender asked the node
//! before it started); those are hashed from disk, the LENGTH bytes are appended, and
//! OFFSET + LENGTH is the blob's size. One line per frame on stdout:
//!
//! ```text
//! ok <hex>                      stored
//! bad <hex> <sha256 of what arrived>   not stored, the .part removed
//! err <hex> <message>           not stored (e.g. the .part was not OFFSET bytes long)
//! hashing <hex> <bytes>         progress while the .part of a resumed blob is hashed
//! ```
//!
//! Exit 0 when every frame was stored, 1 otherwise (including input that ends inside a frame).

use crate::digest::Digest;
use sha2::{Digest as _, Sha256};
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, Read, Write};
use std::path::{Path, PathBuf};

/// Read buffer: large, so a stream of hundreds of MiB costs few system calls.
const BUF: usize = 1 << 20;
/// While it hashes what a resumed `.part` holds, a line every this many bytes.
const NOTE_EVERY: u64 = if cfg!(test) { 1 << 20 } else { 64 << 20 };

#[derive(Debug, Default, PartialEq, Eq)]
pub struct ReceiveReport {
    pub stored: usize,
    /// Frames that were not stored (bad digest or a refused resume).
    pub failed: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    #[error("malformed frame header {0:?} (expected 'blob <hex> <offset> <length>')")]
    Header(String),
    #[error("input ended after {got} of {want} bytes of blob {hex} (kept as .part to resume)")]
    Truncated { hex: String, got: u64, want: u64 },
    #[error("failed to {op} {}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// The frame header line for a blob (what the sender writes before its bytes).
pub fn frame_header(d: &Digest, offset: u64, len: u64) -> String {
    format!("blob {} {offset} {len}\n", d.hex())
}

/// Receive frames from `input` until it ends; report one line per frame on `out`.
pub fn receive(
    root: &Path,
    input: &mut dyn BufRead,
    out: &mut dyn Write,
) -> Result<ReceiveReport, ReceiveError> {
    let dir = root.join("blobs/sha256");
    std::fs::create_dir_all(&dir).map_err(|source| ReceiveError::Io {
        op: "create",
        path: dir.clone(),
        source,
    })?;
    let mut rep = ReceiveReport::default();
    let mut buf = vec![0u8; BUF];
    let mut line = String::new();
    loop {
        line.clear();
        let n = input
            .read_line(&mut line)
            .map_err(|source| ReceiveError::Io {
                op: "read the input for",
                path: dir.clone(),
                source,
            })?;
        if n == 0 {
            return Ok(rep);
        }
        let (hex, offset, len) = parse_header(&line)?;
        let verdict = one_blob(&dir, &hex, offset, len, input, out, &mut buf)?;
        let msg = match verdict {
            Verdict::Stored => {
                rep.stored += 1;
                format!("ok {hex}")
            }
            Verdict::Bad(actual) => {
                rep.failed += 1;
                format!("bad {hex} {actual}")
            }
            Verdict::Refused(why) => {
                rep.failed += 1;
                format!("err {hex} {why}")
            }
        };
        // The sender reads these while it streams; a closed stdout must not stop the storing.
        let _ = writeln!(out, "{msg}").and_then(|_| out.flush());
    }
}

fn parse_header(line: &str) -> Result<(String, u64, u64), ReceiveError> {
    let bad = || ReceiveError::Header(line.trim_end().chars().take(200).collect());
    let mut it = line.trim_end_matches('\n').split(' ');
    if it.next() != Some("blob") {
        return Err(bad());
    }
    let hex = it.next().ok_or_else(bad)?;
    Digest::from_hex(hex).map_err(|_| bad())?;
    let offset: u64 = it.next().and_then(|x| x.parse().ok()).ok_or_else(bad)?;
    let len: u64 = it.next().and_then(|x| x.parse().ok()).ok_or_else(bad)?;
    if it.next().is_some() || offset.checked_add(len).is_none() {
        return Err(bad());
    }
    Ok((hex.to_string(), offset, len))
}

enum Verdict {
    Stored,
    Bad(String),
    Refused(String),
}

fn one_blob(
    dir: &Path,
    hex: &str,
    offset: u64,
    len: u64,
    input: &mut dyn BufRead,
    out: &mut dyn Write,
    buf: &mut [u8],
) -> Result<Verdict, ReceiveError> {
    let part = dir.join(format!("{hex}.part"));
    let io_err = |op: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| ReceiveError::Io { op, path, source }
    };
    let mut hasher = Sha256::new();
    // The bytes an interrupted run left: hashed from disk, then appended to.
    let mut file = if offset > 0 {
        let have = std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
        if have != offset {
            skip(input, len, hex)?;
            return Ok(Verdict::Refused(format!(
                "{hex}.part holds {have} bytes, the sender resumed at {offset}"
            )));
        }
        let mut f = OpenOptions::new()
            .read(true)
            .append(true)
            .open(&part)
            .map_err(io_err("open", &part))?;
        let mut left = offset;
        let mut since_note = 0u64;
        while left > 0 {
            let want = left.min(buf.len() as u64) as usize;
            let n = f.read(&mut buf[..want]).map_err(io_err("read", &part))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            left -= n as u64;
            // The sender waits meanwhile: tell it the node is busy, not stalled.
            since_note += n as u64;
            if since_note >= NOTE_EVERY {
                since_note = 0;
                let _ = writeln!(out, "hashing {hex} {}", offset - left).and_then(|_| out.flush());
            }
        }
        f
    } else {
        File::create(&part).map_err(io_err("create", &part))?
    };
    let mut left = len;
    while left > 0 {
        let want = left.min(buf.len() as u64) as usize;
        let n = match input.read(&mut buf[..want]) {
            Ok(0) => {
                return Err(ReceiveError::Truncated {
                    hex: hex.to_string(),
                    got: offset + len - left,
                    want: offset + len,
                })
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_err("read the input for", &part)(e)),
        };
        file.write_all(&buf[..n]).map_err(io_err("write", &part))?;
        hasher.update(&buf[..n]);
        left -= n as u64;
    }
    drop(file);
    let actual = hex::encode(hasher.finalize());
    if actual != hex {
        let _ = std::fs::remove_file(&part);
        return Ok(Verdict::Bad(actual));
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&part, std::fs::Permissions::from_mode(0o444))
        .map_err(io_err("chmod", &part))?;
    let dest = dir.join(hex);
    std::fs::rename(&part, &dest).map_err(io_err("rename into place", &dest))?;
    Ok(Verdict::Stored)
}

/// Read and drop `len` bytes of a frame that is not stored.
fn skip(input: &mut dyn BufRead, len: u64, hex: &str) -> Result<(), ReceiveError> {
    let n = io::copy(&mut input.take(len), &mut io::sink()).map_err(|source| ReceiveError::Io {
        op: "read the input for",
        path: PathBuf::from(hex),
        source,
    })?;
    if n < len {
        return Err(ReceiveError::Truncated {
            hex: hex.to_string(),
            got: n,
            want: len,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn frame(data: &[u8], offset: usize) -> Vec<u8> {
        let d = Digest::of(data);
        let mut v = frame_header(&d, offset as u64, (data.len() - offset) as u64).into_bytes();
        v.extend_from_slice(&data[offset..]);
        v
    }

    #[test]
    fn stores_resumes_and_refuses() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let cas = root.join("blobs/sha256");
        let a = vec![7u8; 3 << 20];
        let b: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let c = b"resumed blob".to_vec();
        // c was half sent by an earlier run.
        std::fs::create_dir_all(&cas).unwrap();
        std::fs::write(cas.join(format!("{}.part", Digest::of(&c).hex())), &c[..5]).unwrap();
        // A frame whose bytes are not those of its name.
        let claimed = Digest::of(b"what was signed");
        let mut lie = frame_header(&claimed, 0, 4).into_bytes();
        lie.extend_from_slice(b"evil");
        let mut input = Vec::new();
        input.extend(frame(&a, 0));
        input.extend(lie);
        input.extend(frame(&b, 0));
        input.extend(frame(&c, 5));
        let mut out = Vec::new();
        let r = receive(root, &mut Cursor::new(input), &mut out).unwrap();
        assert_eq!(r.stored, 3);
        assert_eq!(r.failed, 1);
        let out = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], format!("ok {}", Digest::of(&a).hex()));
        assert!(
            lines[1].starts_with(&format!("bad {} ", claimed.hex())),
            "{out}"
        );
        assert_eq!(lines[3], format!("ok {}", Digest::of(&c).hex()));
        for x in [&a, &b, &c] {
            assert_eq!(&std::fs::read(cas.join(Digest::of(x).hex())).unwrap(), x);
        }
        assert!(!cas.join(claimed.hex()).exists());
        assert!(!cas.join(format!("{}.part", claimed.hex())).exists());
        let left: Vec<_> = std::fs::read_dir(&cas).unwrap().collect();
        assert_eq!(left.len(), 3, "only the three blobs remain");
    }

    #[test]
    fn a_resume_that_does_not_match_the_part_is_refused_and_the_stream_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let x = b"0123456789".to_vec();
        let y = b"next".to_vec();
        let mut input = frame(&x, 4); // no .part with 4 bytes exists
        input.extend(frame(&y, 0));
        let mut out = Vec::new();
        let r = receive(dir.path(), &mut Cursor::new(input), &mut out).unwrap();
        assert_eq!((r.stored, r.failed), (1, 1));
        let out = String::from_utf8(out).unwrap();
        assert!(
            out.starts_with(&format!("err {} ", Digest::of(&x).hex())),
            "{out}"
        );
        assert!(
            out.contains(&format!("ok {}", Digest::of(&y).hex())),
            "{out}"
        );
    }

    #[test]
    fn input_ending_inside_a_frame_keeps_the_part() {
        let dir = tempfile::tempdir().unwrap();
        let data = vec![1u8; 50_000];
        let mut input = frame(&data, 0);
        input.truncate(input.len() - 10_000);
        let e = receive(dir.path(), &mut Cursor::new(input), &mut Vec::new()).unwrap_err();
        assert!(e.to_string().contains("40000 of 50000"), "{e}");
        let part = dir
            .path()
            .join(format!("blobs/sha256/{}.part", Digest::of(&data).hex()));
        assert_eq!(std::fs::metadata(part).unwrap().len(), 40_000);
    }

    #[test]
    fn a_long_resumed_prefix_reports_progress_while_it_is_hashed() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..(5u32 << 20)).map(|i| (i % 253) as u8).collect();
        let d = Digest::of(&data);
        let cas = dir.path().join("blobs/sha256");
        std::fs::create_dir_all(&cas).unwrap();
        std::fs::write(cas.join(format!("{}.part", d.hex())), &data[..4 << 20]).unwrap();
        let mut out = Vec::new();
        let r = receive(
            dir.path(),
            &mut Cursor::new(frame(&data, 4 << 20)),
            &mut out,
        )
        .unwrap();
        assert_eq!(r.stored, 1);
        let out = String::from_utf8(out).unwrap();
        let notes = out.lines().filter(|l| l.starts_with("hashing ")).count();
        assert_eq!(notes, 4, "{out}");
        assert!(out.ends_with(&format!("ok {}\n", d.hex())), "{out}");
    }

    #[test]
    fn malformed_headers_are_named() {
        for h in [
            "blub x 0 1\n",
            "blob nothex 0 1\n",
            "blob 00 0\n",
            "blob 0000000000000000000000000000000000000000000000000000000000000000 1 2 3\n",
        ] {
            let dir = tempfile::tempdir().unwrap();
            let e =
                receive(dir.path(), &mut Cursor::new(h.as_bytes()), &mut Vec::new()).unwrap_err();
            assert!(matches!(e, ReceiveError::Header(_)), "{h}: {e}");
        }
    }
}
