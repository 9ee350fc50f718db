//! `darkport inspect --html FILE`: one self-contained page (no script, no external file) with
//! the bundle's images as rows and its distinct layers as columns, a filled cell where an
//! image uses a layer. Columns are ordered by how many images share the layer, then by size,
//! so what deduplication stores once stands on the left; a hatched cell is a layer a delta
//! leaves to its base.

use super::bytes;
use crate::digest::Digest;
use crate::report::bundle::InspectReport;
use std::collections::BTreeMap;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The page for `r`.
pub fn page(r: &InspectReport) -> String {
    // Every distinct layer: size, users, in this file.
    let mut layers: BTreeMap<Digest, (u64, usize, bool)> = BTreeMap::new();
    for i in &r.images {
        for l in &i.layers {
            layers
                .entry(l.digest)
                .or_insert((l.size, l.shared_with.len() + 1, l.in_bundle));
        }
    }
    let mut cols: Vec<(Digest, (u64, usize, bool))> = layers.into_iter().collect();
    cols.sort_by(|a, b| {
        b.1 .1
            .cmp(&a.1 .1)
            .then(b.1 .0.cmp(&a.1 .0))
            .then(a.0.cmp(&b.0))
    });
    let mut h = String::new();
    h.push_str("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">\n");
    h.push_str(&format!(
        "<title>{} {}: images and layers</title>\n",
        esc(&r.product),
        esc(&r.version)
    ));
    h.push_str(
        "<style>body{font:14px sans-serif;margin:2em}table{border-collapse:collapse}\
td,th{border:1px solid #ccc;padding:2px 6px}th.l{writing-mode:vertical-rl;font-weight:normal;\
font-size:11px}td.u{background:#2b7bb9}td.b{background:repeating-linear-gradient(45deg,#2b7bb9,\
#2b7bb9 3px,#fff 3px,#fff 6px)}td.n{text-align:right;white-space:nowrap}</style></head><body>\n",
    );
    h.push_str(&format!(
        "<h1>{} {}</h1>\n<p>{} images, {} distinct layers. Sum of image sizes {}; every blob \
stored once: {} (dedup saved {}); in this file: {}{}.</p>\n",
        esc(&r.product),
        esc(&r.version),
        r.images.len(),
        cols.len(),
        bytes(r.image_bytes),
        bytes(r.unique_blob_bytes),
        bytes(r.dedup_saving_bytes),
        bytes(r.stored_blob_bytes),
        if r.delta_saving_bytes > 0 {
            format!(
                " (a delta: {} left to its base)",
                bytes(r.delta_saving_bytes)
            )
        } else {
            String::new()
        }
    ));
    h.push_str("<table>\n<tr><th>image</th><th>size</th>");
    for (d, (size, users, _)) in &cols {
        h.push_str(&format!(
            "<th class=\"l\" title=\"{d}\">{} {} ×{users}</th>",
            d.short(),
            bytes(*size)
        ));
    }
    h.push_str("</tr>\n");
    for i in &r.images {
        h.push_str(&format!(
            "<tr><td>{}</td><td class=\"n\">{}</td>",
            esc(&i.name),
            bytes(i.size)
        ));
        for (d, (_, _, present)) in &cols {
            let uses = i.layers.iter().any(|l| l.digest == *d);
            let class = match (uses, present) {
                (false, _) => "",
                (true, true) => " class=\"u\"",
                (true, false) => " class=\"b\"",
            };
            h.push_str(&format!("<td{class}></td>"));
        }
        h.push_str("</tr>\n");
    }
    h.push_str(
        "</table>\n<p>Filled: the image uses the layer. Hatched: the layer is the base \
bundle's (not in this file).</p>\n</body></html>\n",
    );
    h
}
