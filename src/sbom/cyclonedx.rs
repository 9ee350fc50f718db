//! CycloneDX 1.5 JSON writer: the image is `metadata.component` (type `container`); each OS
//! package is a component with its package URL, licences and `darkport:layer` properties.

use super::license::to_spdx_id;
use super::spdx::{purl, RenderOpts};
use super::ImageSbom;
use crate::digest::Digest;
use serde_json::{json, Value};

/// A deterministic RFC 4122 (version 5 layout) serial number from the image's identity.
fn serial(img: &ImageSbom) -> String {
    let seed = match &img.manifest {
        Some(m) => format!("{}\n{m}", img.name),
        None => {
            let l: Vec<String> = img.layers.iter().map(|d| d.to_string()).collect();
            format!("{}\n{}", img.name, l.join("\n"))
        }
    };
    let mut b = *Digest::of(seed.as_bytes()).as_bytes();
    b[6] = (b[6] & 0x0f) | 0x50;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(&b[..16]);
    format!(
        "urn:uuid:{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Render an image's inventory as a CycloneDX 1.5 JSON BOM.
pub fn render(img: &ImageSbom, opts: &RenderOpts) -> Value {
    let mut components = Vec::with_capacity(img.packages.len());
    let mut refs = Vec::with_capacity(img.packages.len());
    for (i, p) in img.packages.iter().enumerate() {
        let bom_ref = format!("{}-{}-{}", p.kind.as_str(), i + 1, p.name);
        let licenses: Vec<Value> = p
            .licenses
            .iter()
            .map(|l| match to_spdx_id(l) {
                Some(id) if !id.contains(' ') => json!({"license": {"id": id}}),
                _ => json!({"license": {"name": l}}),
            })
            .collect();
        let mut props = vec![
            json!({"name": "darkport:package-type", "value": p.kind.as_str()}),
            json!({"name": "darkport:layer", "value": p.layer.to_string()}),
            json!({"name": "darkport:layer-index", "value": p.layer_index.to_string()}),
        ];
        if !p.arch.is_empty() {
            props.push(json!({"name": "darkport:arch", "value": p.arch}));
        }
        if let Some(s) = &p.source {
            props.push(json!({"name": "darkport:source-package", "value": s}));
        }
        let mut c = json!({
            "type": "library",
            "bom-ref": bom_ref,
            "name": p.name,
            "version": p.version,
            "purl": purl(img, p),
            "properties": props,
        });
        if !licenses.is_empty() {
            c["licenses"] = Value::Array(licenses);
        }
        if let Some(d) = &p.description {
            c["description"] = json!(d);
        }
        refs.push(json!(bom_ref));
        components.push(c);
    }
    let mut image = json!({
        "type": "container",
        "bom-ref": "image",
        "name": img.name,
    });
    if let Some(m) = &img.manifest {
        image["version"] = json!(m.to_string());
        image["hashes"] = json!([{"alg": "SHA-256", "content": m.hex()}]);
    }
    let mut props: Vec<Value> = img
        .layers
        .iter()
        .enumerate()
        .map(|(i, d)| json!({"name": format!("darkport:layer:{i}"), "value": d.to_string()}))
        .collect();
    if let Some(os) = &img.os {
        props.push(json!({"name": "darkport:os", "value": os}));
    }
    for r in &img.rpm {
        props.push(json!({"name": "darkport:rpm-database", "value": format!("{} (layer {}, {}): RPM packages detected, not listed", r.path, r.layer_index, r.layer)}));
    }
    for w in &img.warnings {
        props.push(json!({"name": "darkport:warning", "value": w}));
    }
    let (tool_name, tool_version) = opts
        .tool
        .split_once('-')
        .unwrap_or((opts.tool.as_str(), ""));
    json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": serial(img),
        "version": 1,
        "metadata": {
            "timestamp": opts.created,
            "tools": {"components": [{"type": "application", "name": tool_name, "version": tool_version}]},
            "component": image,
            "properties": props,
        },
        "components": components,
        "dependencies": [{"ref": "image", "dependsOn": refs}],
    })
}
