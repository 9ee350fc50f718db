//! Alpine's `lib/apk/db/installed`: one record per package, `K:value` lines, records separated
//! by a blank line (`P` name, `V` version, `A` arch, `L` licence, `o` origin, `m` maintainer,
//! `U` url, `T` description; `F`/`R` list directories and files).

use super::{license, LicenceSource, Package, PackageKind};
use crate::digest::Digest;

pub fn parse_installed(data: &[u8]) -> Result<Vec<Package>, String> {
    let text =
        std::str::from_utf8(data).map_err(|e| format!("/lib/apk/db/installed: not UTF-8 ({e})"))?;
    let mut out = Vec::new();
    let mut rec: Vec<(char, &str)> = Vec::new();
    let mut flush = |rec: &mut Vec<(char, &str)>, line_no: usize| -> Result<(), String> {
        if rec.is_empty() {
            return Ok(());
        }
        let get = |k: char| rec.iter().find(|(c, _)| *c == k).map(|(_, v)| *v);
        let name = get('P').ok_or_else(|| {
            format!("/lib/apk/db/installed: record ending at line {line_no} has no P: field")
        })?;
        let version = get('V')
            .ok_or_else(|| format!("/lib/apk/db/installed: package {name} has no V: field"))?;
        let licenses = get('L').map(license::split_expression).unwrap_or_default();
        out.push(Package {
            kind: PackageKind::Apk,
            name: name.to_string(),
            version: version.to_string(),
            arch: get('A').unwrap_or("").to_string(),
            source: get('o').filter(|o| *o != name).map(str::to_string),
            maintainer: get('m').map(str::to_string),
            homepage: get('U').map(str::to_string),
            description: get('T').map(str::to_string),
            license_source: if licenses.is_empty() {
                LicenceSource::None
            } else {
                LicenceSource::ApkDb
            },
            licenses,
            layer: Digest::from_bytes([0; 32]),
            layer_index: 0,
        });
        rec.clear();
        Ok(())
    };
    let mut n = 0;
    for (i, line) in text.lines().enumerate() {
        n = i + 1;
        if line.trim().is_empty() {
            flush(&mut rec, n)?;
            continue;
        }
        let mut chars = line.chars();
        if let (Some(k), Some(':')) = (chars.next(), chars.next()) {
            // The rest after `K:`: `&line[2..]` cut a multi-byte key character (fuzzer).
            rec.push((k, chars.as_str()));
        }
    }
    flush(&mut rec, n)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_records() {
        let db = "C:Q1abc=\nP:musl\nV:1.2.4-r2\nA:x86_64\nS:383152\nI:622592\nT:the musl c library\nU:https://musl.libc.org/\nL:MIT\no:musl\nm:Someone <a@b>\nF:lib\nR:libc.musl-x86_64.so.1\n\nP:busybox\nV:1.36.1-r5\nA:x86_64\nL:GPL-2.0-only\no:busybox\n\n";
        let p = parse_installed(db.as_bytes()).unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].name, "musl");
        assert_eq!(p[0].licenses, vec!["MIT"]);
        assert_eq!(p[0].source, None);
        assert_eq!(p[1].licenses, vec!["GPL-2.0-only"]);
    }

    #[test]
    fn record_without_name_is_reported() {
        assert!(parse_installed(b"V:1\n\n")
            .unwrap_err()
            .contains("no P: field"));
    }
}
