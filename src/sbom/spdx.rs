//! SPDX 2.3 JSON writer: one document per image. The image is a `CONTAINER` package the
//! document `DESCRIBES`; it `CONTAINS` one package per OS package, with its version, a
//! package URL, the declared licence (Debian short names mapped to SPDX identifiers,
//! others as `LicenseRef-…` declared in `hasExtractedLicensingInfos`) and, in `sourceInfo`,
//! the layer that installed it.

use super::license::{licence_ref, to_spdx_id};
use super::{ImageSbom, LicenceSource, Package, PackageKind};
use crate::digest::Digest;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// Document-level settings.
pub struct RenderOpts {
    /// `creationInfo.created`, `YYYY-MM-DDThh:mm:ssZ` (pass the bundle's build time for
    /// reproducible output).
    pub created: String,
    /// `creationInfo.creators` tool entry, e.g. `darkport-0.1.0`.
    pub tool: String,
}

impl RenderOpts {
    /// Now, and this darkport's version.
    pub fn now() -> Self {
        RenderOpts {
            created: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            tool: format!("darkport-{}", env!("CARGO_PKG_VERSION")),
        }
    }
}

/// Percent-encode for a package URL component (unreserved characters kept).
pub fn purl_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The package URL of an OS package (`pkg:deb/debian/bash@5.2.15-2%2Bb8?arch=amd64&distro=debian-12`).
pub fn purl(img: &ImageSbom, p: &Package) -> String {
    let (ty, default_ns) = match p.kind {
        PackageKind::Deb => ("deb", "debian"),
        PackageKind::Apk => ("apk", "alpine"),
    };
    let ns = img.os_id.as_deref().unwrap_or(default_ns);
    let mut s = format!(
        "pkg:{ty}/{}/{}@{}",
        purl_encode(ns),
        purl_encode(&p.name),
        purl_encode(&p.version)
    );
    let mut q = Vec::new();
    if !p.arch.is_empty() {
        q.push(format!("arch={}", purl_encode(&p.arch)));
    }
    if let (Some(id), Some(v)) = (&img.os_id, &img.os_version_id) {
        q.push(format!("distro={}", purl_encode(&format!("{id}-{v}"))));
    }
    if !q.is_empty() {
        s.push('?');
        s.push_str(&q.join("&"));
    }
    s
}

fn spdx_id_part(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// The SPDX expression declared for a package, recording any `LicenseRef-` it needs.
fn declared(p: &Package, refs: &mut BTreeMap<String, String>) -> String {
    if p.licenses.is_empty() {
        return "NOASSERTION".into();
    }
    let mut terms: Vec<String> = Vec::new();
    for l in &p.licenses {
        let t = match to_spdx_id(l) {
            Some(id) => id,
            None => {
                let r = licence_ref(l);
                refs.entry(r.clone()).or_insert_with(|| l.clone());
                r
            }
        };
        if !terms.contains(&t) {
            terms.push(t);
        }
    }
    terms.join(" AND ")
}

/// A deterministic document namespace for an image.
fn namespace(img: &ImageSbom) -> String {
    let id = match &img.manifest {
        Some(m) => m.hex(),
        None => {
            let joined: Vec<String> = img.layers.iter().map(|d| d.to_string()).collect();
            Digest::of(format!("{}\n{}", img.name, joined.join("\n")).as_bytes()).hex()
        }
    };
    format!(
        "https://darkport.invalid/spdx/{}-{}",
        spdx_id_part(&img.name),
        id
    )
}

/// Render an image's inventory as an SPDX 2.3 JSON document.
pub fn render(img: &ImageSbom, opts: &RenderOpts) -> Value {
    let mut refs: BTreeMap<String, String> = BTreeMap::new();
    let mut packages = Vec::with_capacity(img.packages.len() + 1);
    let mut relationships = vec![json!({
        "spdxElementId": "SPDXRef-DOCUMENT",
        "relationshipType": "DESCRIBES",
        "relatedSpdxElement": "SPDXRef-Image",
    })];

    let mut image_comment = format!(
        "Container image with {} layer(s): {}.",
        img.layers.len(),
        img.layers
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    if let Some(os) = &img.os {
        image_comment.push_str(&format!(" Operating system: {os}."));
    }
    for r in &img.rpm {
        image_comment.push_str(&format!(
            " RPM database {} present (layer {} {}): RPM packages are detected, not listed.",
            r.path, r.layer_index, r.layer
        ));
    }
    let mut image = json!({
        "SPDXID": "SPDXRef-Image",
        "name": img.name,
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": false,
        "licenseConcluded": "NOASSERTION",
        "licenseDeclared": "NOASSERTION",
        "copyrightText": "NOASSERTION",
        "primaryPackagePurpose": "CONTAINER",
        "comment": image_comment,
    });
    if let Some(m) = &img.manifest {
        image["versionInfo"] = json!(m.to_string());
        image["checksums"] = json!([{"algorithm": "SHA256", "checksumValue": m.hex()}]);
        image["externalRefs"] = json!([{
            "referenceCategory": "PACKAGE-MANAGER",
            "referenceType": "purl",
            "referenceLocator": format!(
                "pkg:oci/{}@{}",
                purl_encode(img.name.rsplit('/').next().unwrap_or(&img.name).split(':').next().unwrap_or("image")),
                purl_encode(&m.to_string())
            ),
        }]);
    }
    packages.push(image);

    for (i, p) in img.packages.iter().enumerate() {
        let id = format!(
            "SPDXRef-Package-{}-{}-{}",
            p.kind.as_str(),
            i + 1,
            spdx_id_part(&p.name)
        );
        let mut v = json!({
            "SPDXID": id,
            "name": p.name,
            "versionInfo": p.version,
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": false,
            "licenseConcluded": "NOASSERTION",
            "licenseDeclared": declared(p, &mut refs),
            "copyrightText": "NOASSERTION",
            "sourceInfo": format!("installed by layer {} ({}), recorded in the {} database", p.layer_index, p.layer, p.kind.as_str()),
            "externalRefs": [{
                "referenceCategory": "PACKAGE-MANAGER",
                "referenceType": "purl",
                "referenceLocator": purl(img, p),
            }],
        });
        if let Some(d) = &p.description {
            v["summary"] = json!(d);
        }
        if let Some(h) = &p.homepage {
            if h.starts_with("http://") || h.starts_with("https://") {
                v["homepage"] = json!(h);
            }
        }
        if let Some(s) = &p.source {
            v["comment"] = json!(format!("source package: {s}"));
        }
        if !p.licenses.is_empty() {
            let how = match p.license_source {
                LicenceSource::Dep5 => "DEP-5 License fields of /usr/share/doc/{}/copyright",
                LicenceSource::CopyrightText => {
                    "licences recognised in /usr/share/doc/{}/copyright"
                }
                LicenceSource::ApkDb => "L: field of /lib/apk/db/installed for {}",
                LicenceSource::None => "{}",
            };
            v["licenseComments"] = json!(format!(
                "{}: {}",
                how.replace("{}", &p.name),
                p.licenses.join(", ")
            ));
        }
        relationships.push(json!({
            "spdxElementId": "SPDXRef-Image",
            "relationshipType": "CONTAINS",
            "relatedSpdxElement": id,
        }));
        packages.push(v);
    }

    let mut doc = json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": format!("{} OS packages", img.name),
        "documentNamespace": namespace(img),
        "creationInfo": {
            "created": opts.created,
            "creators": [format!("Tool: {}", opts.tool)],
        },
        "packages": packages,
        "relationships": relationships,
    });
    if !refs.is_empty() {
        doc["hasExtractedLicensingInfos"] = Value::Array(
            refs.into_iter()
                .map(|(id, name)| {
                    json!({
                        "licenseId": id,
                        "name": name,
                        "extractedText": format!(
                            "Licence named \"{name}\" in the package's copyright information; its text is in the image (usually /usr/share/doc/<package>/copyright)."
                        ),
                    })
                })
                .collect(),
        );
    }
    if !img.warnings.is_empty() {
        doc["comment"] = json!(format!("Scanner warnings: {}", img.warnings.join("; ")));
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purl_encoding() {
        assert_eq!(purl_encode("1:1.2.13.dfsg-1"), "1%3A1.2.13.dfsg-1");
        assert_eq!(purl_encode("5.2.15-2+b8"), "5.2.15-2%2Bb8");
    }
}
