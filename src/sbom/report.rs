//! Human-readable renderings: the package table and the licence summary.

use super::{ImageSbom, LicenceEntry};
use std::fmt::Write;

fn columns(rows: &[Vec<String>]) -> String {
    let n = rows.iter().map(|r| r.len()).max().unwrap_or(0);
    let mut w = vec![0usize; n];
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            if i + 1 == r.len() {
                line.push_str(c);
            } else {
                let _ = write!(line, "{c:<width$}  ", width = w[i]);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// One block per image: a header line, then TYPE NAME VERSION ARCH LAYER LICENCES rows.
pub fn table(images: &[ImageSbom]) -> String {
    let mut out = String::new();
    for (n, img) in images.iter().enumerate() {
        if n > 0 {
            out.push('\n');
        }
        let _ = writeln!(
            out,
            "image {}{}: {} package(s), {} layer(s){}",
            img.name,
            img.platform
                .as_deref()
                .map(|p| format!(" ({p})"))
                .unwrap_or_default(),
            img.packages.len(),
            img.layers.len(),
            img.os
                .as_deref()
                .map(|o| format!(", {o}"))
                .unwrap_or_default()
        );
        for r in &img.rpm {
            let _ = writeln!(
                out,
                "  RPM database {} (layer {}): RPM packages detected, not listed",
                r.path, r.layer_index
            );
        }
        for w in &img.warnings {
            let _ = writeln!(out, "  warning: {w}");
        }
        let mut rows = vec![vec![
            "TYPE".to_string(),
            "NAME".into(),
            "VERSION".into(),
            "ARCH".into(),
            "LAYER".into(),
            "LICENCES".into(),
        ]];
        for p in &img.packages {
            rows.push(vec![
                p.kind.as_str().to_string(),
                p.name.clone(),
                p.version.clone(),
                p.arch.clone(),
                format!("{} {}", p.layer_index, &p.layer.hex()[..12]),
                if p.licenses.is_empty() {
                    "(unknown)".into()
                } else {
                    p.licenses.join(", ")
                },
            ]);
        }
        out.push_str(&columns(&rows));
    }
    out
}

/// LICENCE SPDX COPYLEFT PACKAGES IMAGES, one row per licence.
pub fn licence_table(entries: &[LicenceEntry]) -> String {
    let mut rows = vec![vec![
        "LICENCE".to_string(),
        "SPDX".into(),
        "COPYLEFT".into(),
        "#PKGS".into(),
        "IMAGES".into(),
        "PACKAGES".into(),
    ]];
    for e in entries {
        rows.push(vec![
            e.licence.clone(),
            e.spdx.clone().unwrap_or_else(|| "-".into()),
            if e.copyleft { "yes".into() } else { "-".into() },
            e.packages.len().to_string(),
            e.images.join(","),
            e.packages.join(" "),
        ]);
    }
    let mut out = columns(&rows);
    let copyleft = entries.iter().filter(|e| e.copyleft).count();
    let _ = writeln!(out, "{} licence(s), {} copyleft", entries.len(), copyleft);
    out
}
