//! Debian control-file (deb822) parsing: the dpkg `status` database and DEP-5 copyright files.

use super::{LicenceSource, Package, PackageKind};
use crate::digest::Digest;

/// One deb822 paragraph: fields in order, multi-line values joined with `\n` (the first line
/// as written, continuation lines without their leading space, ` .` as an empty line).
pub type Paragraph = Vec<(String, String)>;

/// Split deb822 text into paragraphs. Lenient: lines that are neither `Field: value` nor a
/// continuation are ignored, and comment lines (`#`) are skipped.
pub fn paragraphs(text: &str) -> Vec<Paragraph> {
    let mut out = Vec::new();
    let mut cur: Paragraph = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        if line.starts_with(' ') || line.starts_with('\t') {
            if let Some((_, v)) = cur.last_mut() {
                let l = line[1..].trim_end();
                v.push('\n');
                if l != "." {
                    v.push_str(l);
                }
            }
            continue;
        }
        if let Some((k, v)) = line.split_once(':') {
            cur.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// The value of `field` (case-insensitive) in a paragraph.
pub fn field<'a>(p: &'a Paragraph, name: &str) -> Option<&'a str> {
    p.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Installed packages of a dpkg `status` file (or a distroless `status.d/<pkg>` file, where
/// the `Status` field may be absent). `origin` names the file in error messages.
pub fn parse_status(data: &[u8], origin: &str) -> Result<Vec<Package>, String> {
    let text = std::str::from_utf8(data).map_err(|e| format!("/{origin}: not UTF-8 ({e})"))?;
    let mut out = Vec::new();
    for p in paragraphs(text) {
        let Some(name) = field(&p, "Package") else {
            continue;
        };
        if let Some(status) = field(&p, "Status") {
            // "want flag state": only fully installed packages ship files.
            if status.split_whitespace().nth(2) != Some("installed") {
                continue;
            }
        }
        let Some(version) = field(&p, "Version") else {
            return Err(format!("/{origin}: package {name} has no Version field"));
        };
        let source = field(&p, "Source").map(|s| {
            // "Source: name (version)" when the source version differs.
            s.split_whitespace().next().unwrap_or(s).to_string()
        });
        out.push(Package {
            kind: PackageKind::Deb,
            name: name.to_string(),
            version: version.to_string(),
            arch: field(&p, "Architecture").unwrap_or("").to_string(),
            source: source.filter(|s| s != name),
            maintainer: field(&p, "Maintainer").map(str::to_string),
            homepage: field(&p, "Homepage").map(str::to_string),
            description: field(&p, "Description")
                .map(|d| d.lines().next().unwrap_or("").to_string()),
            licenses: Vec::new(),
            license_source: LicenceSource::None,
            layer: Digest::from_bytes([0; 32]),
            layer_index: 0,
        });
    }
    Ok(out)
}

/// Whether a copyright file is in the DEP-5 machine-readable format.
pub fn is_dep5(paras: &[Paragraph]) -> bool {
    paras
        .first()
        .and_then(|p| field(p, "Format"))
        .map(|f| {
            let f = f.to_ascii_lowercase();
            f.contains("copyright-format") || f.contains("dep5") || f.contains("dep-5")
        })
        .unwrap_or(false)
}

/// The `License:` short names of a DEP-5 copyright file: from the header and the `Files`
/// paragraphs (stand-alone `License` paragraphs only define texts for those), each the first
/// line of its field, in order of appearance. Falls back to every paragraph when no `Files`
/// paragraph names a licence.
pub fn dep5_licence_fields(paras: &[Paragraph]) -> Vec<String> {
    let pick = |only_files: bool| -> Vec<String> {
        paras
            .iter()
            .enumerate()
            .filter(|(i, p)| !only_files || *i == 0 || field(p, "Files").is_some())
            .filter_map(|(_, p)| field(p, "License"))
            .map(|l| l.lines().next().unwrap_or("").trim().to_string())
            .filter(|l| !l.is_empty())
            .collect()
    };
    let v = pick(true);
    if v.is_empty() {
        pick(false)
    } else {
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "Package: bash\nEssential: yes\nStatus: install ok installed\nPriority: required\nArchitecture: amd64\nVersion: 5.2.15-2+b8\nDescription: GNU Bourne Again SHell\n Bash is ...\n .\n more\n\nPackage: gone\nStatus: deinstall ok config-files\nArchitecture: amd64\nVersion: 1.0\n\nPackage: libz\nStatus: install ok installed\nArchitecture: amd64\nSource: zlib (1:1.2.13)\nVersion: 1:1.2.13.dfsg-1\n";

    #[test]
    fn status_keeps_installed_only() {
        let p = parse_status(STATUS.as_bytes(), "var/lib/dpkg/status").unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].name, "bash");
        assert_eq!(p[0].version, "5.2.15-2+b8");
        assert_eq!(p[0].description.as_deref(), Some("GNU Bourne Again SHell"));
        assert_eq!(p[1].source.as_deref(), Some("zlib"));
    }

    #[test]
    fn missing_version_is_an_error_naming_the_file() {
        let e = parse_status(b"Package: x\n", "var/lib/dpkg/status.d/x").unwrap_err();
        assert!(e.contains("status.d/x") && e.contains("package x"), "{e}");
    }

    #[test]
    fn dep5_fields() {
        let t = "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\nFiles: *\nCopyright: me\nLicense: GPL-2+\n\nFiles: a/*\nLicense: MIT or Apache-2.0\n\nLicense: GPL-2+\n text\n";
        let p = paragraphs(t);
        assert!(is_dep5(&p));
        assert_eq!(dep5_licence_fields(&p), vec!["GPL-2+", "MIT or Apache-2.0"]);
    }
}
