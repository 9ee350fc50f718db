//! `node::push` with the node-side receiver (`darkport registry receive`, the real binary): large
//! blobs stream through one command, resume from their `.part`, and a blob whose bytes do not
//! match its name is never stored. Runs on the local transport (the SSH path is covered by the
//! install tests on sshd nodes).

use darkport::digest::Digest;
use darkport::node::push::{blob_path, push_missing};
use darkport::transport::local::LocalTransport;
use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;

const BIN: &str = env!("CARGO_BIN_EXE_darkport");

type Mem = BTreeMap<Digest, Vec<u8>>;

fn blob(seed: u8, len: usize) -> (Digest, Vec<u8>) {
    let v: Vec<u8> = (0..len)
        .map(|i| (i as u32).wrapping_mul(2654435761).to_le_bytes()[i % 4] ^ seed)
        .collect();
    (Digest::of(&v), v)
}

/// Everything in `wanted` sent to a node that holds nothing, through `receiver`.
fn push_all(
    root: &str,
    wanted: &BTreeSet<Digest>,
    src: &Mem,
    receiver: &str,
) -> Result<darkport::node::push::PushReport, darkport::node::push::PushError> {
    let mut t = LocalTransport::new("n1");
    push_missing(
        &mut t,
        root,
        wanted,
        &BTreeSet::new(),
        src,
        &(),
        Some(receiver),
    )
}

fn cas_names(root: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(root.join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn large_blobs_stream_through_the_receiver_and_resume() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap();
    let blobs = [
        blob(1, 3 << 20),
        blob(2, 5 << 20),
        blob(3, 10_000),
        blob(4, 20_000),
    ];
    let src = blobs.iter().cloned().collect::<Mem>();
    let wanted: BTreeSet<Digest> = blobs.iter().map(|x| x.0).collect();
    // An interrupted run left 2 MiB of the 5 MiB blob.
    std::fs::create_dir_all(dir.path().join("blobs/sha256")).unwrap();
    let half = &blobs[1].1[..2 << 20];
    std::fs::write(format!("{}.part", blob_path(root, &blobs[1].0)), half).unwrap();
    let r = push_all(root, &wanted, &src, BIN).unwrap();
    assert_eq!(r.blobs_sent, 4);
    assert_eq!(r.bytes_resumed, 2 << 20);
    let total: u64 = blobs.iter().map(|b| b.1.len() as u64).sum();
    assert_eq!(r.bytes_sent, total - (2 << 20));
    for (d, b) in &blobs {
        let p = blob_path(root, d);
        assert_eq!(&std::fs::read(&p).unwrap(), b);
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o444, "{p}");
    }
    let mut want: Vec<String> = blobs.iter().map(|b| b.0.hex()).collect();
    want.sort();
    assert_eq!(cas_names(dir.path()), want, "no .part or batch left behind");

    // Sending again: everything is present, nothing moves.
    let mut t = LocalTransport::new("n1");
    let r = push_missing(&mut t, root, &wanted, &wanted, &src, &(), Some(BIN)).unwrap();
    assert_eq!((r.blobs_sent, r.bytes_sent, r.blobs_present), (0, 0, 4));
}

#[test]
fn a_large_blob_that_does_not_match_its_name_is_refused_and_not_stored() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap();
    let good = blob(5, 2 << 20);
    let claimed = Digest::of(b"the layer the manifest signed");
    let src = Mem::from([good.clone(), (claimed, blob(6, 2 << 20).1)]);
    let wanted: BTreeSet<Digest> = [good.0, claimed].into();
    let e = push_all(root, &wanted, &src, BIN).unwrap_err();
    let msg = format!("{:#}", anyhow::Error::from(e));
    assert!(msg.contains(&claimed.to_string()), "{msg}");
    assert!(msg.contains("sha256"), "{msg}");
    assert!(!std::path::Path::new(&blob_path(root, &claimed)).exists());
    // The honest blob of the same stream was stored; nothing else is left.
    assert_eq!(cas_names(dir.path()), vec![good.0.hex()]);
}

#[test]
fn without_a_runnable_receiver_each_blob_is_uploaded_on_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap();
    let blobs = [blob(7, 2 << 20), blob(8, 3 << 20)];
    let src = blobs.iter().cloned().collect::<Mem>();
    let wanted: BTreeSet<Digest> = blobs.iter().map(|x| x.0).collect();
    let missing = dir.path().join("no-such-darkport");
    let r = push_all(root, &wanted, &src, missing.to_str().unwrap()).unwrap();
    assert_eq!(r.blobs_sent, 2);
    for (d, b) in &blobs {
        assert_eq!(&std::fs::read(blob_path(root, d)).unwrap(), b);
    }
}
