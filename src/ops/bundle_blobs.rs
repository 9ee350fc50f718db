//! A verified bundle as the blob source of `node::push` (blobs read in place, no unpacking).

use crate::bundle::Bundle;
use crate::digest::Digest;
use crate::node::push::BlobSource;
use crate::transport::ReadSeek;
use std::io;

impl BlobSource for Bundle {
    fn open_blob(&self, digest: &Digest) -> io::Result<(Box<dyn ReadSeek>, u64)> {
        let m = self.blob(digest).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "blob {digest} is not in bundle {} (delta bundle?)",
                    self.path().display()
                ),
            )
        })?;
        let r = self.member_range(m).map_err(io::Error::other)?;
        let size = r.len();
        Ok((Box::new(r), size))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Seek, SeekFrom};

    #[test]
    fn bundle_serves_blobs_with_seek() {
        let d = tempfile::tempdir().unwrap();
        let mut store = crate::store::Store::open(&d.path().join("s")).unwrap();
        let data: Vec<u8> = (0..5000u32).map(|i| (i * 7) as u8).collect();
        let dg = store.put_bytes(&data).unwrap();
        let m = crate::bundle::Manifest {
            format: crate::bundle::FORMAT_V1.into(),
            product: "p".into(),
            version: "1.0.0".into(),
            upgrades_from: None,
            platforms: vec!["linux/amd64".into()],
            created: None,
            images: vec![],
            blobs: vec![crate::bundle::BlobEntry {
                digest: dg,
                size: 5000,
                media_type: "x".into(),
                present: true,
            }],
            files: vec![],
            playbooks: vec![],
            migrations: vec![],
            delta_base: vec![],
            compose: vec![],
            sboms: vec![],
        };
        let out = d.path().join("b.darkport");
        crate::bundle::writer::write_bundle(
            m,
            &store,
            None,
            None,
            vec![],
            &out,
            &crate::bundle::NoReport,
        )
        .unwrap();
        let b = Bundle::open(
            &out,
            &crate::bundle::Trust {
                keys: vec![],
                allow_unsigned: true,
            },
        )
        .unwrap();
        let (mut r, n) = BlobSource::open_blob(&b, &dg).unwrap();
        assert_eq!(n, 5000);
        r.seek(SeekFrom::Start(4000)).unwrap();
        let mut v = Vec::new();
        r.read_to_end(&mut v).unwrap();
        assert_eq!(v, &data[4000..]);
        assert!(BlobSource::open_blob(&b, &Digest::of(b"nope")).is_err());
    }
}
