//! Licence names: reading them from copyright files, mapping Debian short names to SPDX
//! identifiers, and flagging copyleft.

use super::dpkg;
use super::LicenceSource;
use regex::Regex;
use std::sync::OnceLock;

/// Debian (DEP-5) short names → SPDX identifiers (lower-case keys).
const DEBIAN_TO_SPDX: &[(&str, &str)] = &[
    ("gpl-1", "GPL-1.0-only"),
    ("gpl-1+", "GPL-1.0-or-later"),
    ("gpl-2", "GPL-2.0-only"),
    ("gpl-2+", "GPL-2.0-or-later"),
    ("gpl-3", "GPL-3.0-only"),
    ("gpl-3+", "GPL-3.0-or-later"),
    ("lgpl-2", "LGPL-2.0-only"),
    ("lgpl-2+", "LGPL-2.0-or-later"),
    ("lgpl-2.1", "LGPL-2.1-only"),
    ("lgpl-2.1+", "LGPL-2.1-or-later"),
    ("lgpl-3", "LGPL-3.0-only"),
    ("lgpl-3+", "LGPL-3.0-or-later"),
    ("agpl-3", "AGPL-3.0-only"),
    ("agpl-3+", "AGPL-3.0-or-later"),
    ("gfdl-1.2", "GFDL-1.2-only"),
    ("gfdl-1.2+", "GFDL-1.2-or-later"),
    ("gfdl-1.3", "GFDL-1.3-only"),
    ("gfdl-1.3+", "GFDL-1.3-or-later"),
    ("gfdl-niv-1.2", "GFDL-1.2-no-invariants-only"),
    ("gfdl-niv-1.2+", "GFDL-1.2-no-invariants-or-later"),
    ("gfdl-niv-1.3", "GFDL-1.3-no-invariants-only"),
    ("gfdl-niv-1.3+", "GFDL-1.3-no-invariants-or-later"),
    ("apache-2", "Apache-2.0"),
    ("apache-2.0", "Apache-2.0"),
    ("artistic", "Artistic-1.0-Perl"),
    ("artistic-1", "Artistic-1.0"),
    ("artistic-2", "Artistic-2.0"),
    ("artistic-2.0", "Artistic-2.0"),
    ("bsd-2-clause", "BSD-2-Clause"),
    ("bsd-3-clause", "BSD-3-Clause"),
    ("bsd-4-clause", "BSD-4-Clause"),
    ("bsd-4-clause-uc", "BSD-4-Clause-UC"),
    ("expat", "MIT"),
    ("mit", "MIT"),
    ("isc", "ISC"),
    ("zlib", "Zlib"),
    ("mpl-1.1", "MPL-1.1"),
    ("mpl-2.0", "MPL-2.0"),
    ("epl-1.0", "EPL-1.0"),
    ("epl-2.0", "EPL-2.0"),
    ("cddl-1.0", "CDDL-1.0"),
    ("cc0", "CC0-1.0"),
    ("cc0-1.0", "CC0-1.0"),
    ("psf-2", "PSF-2.0"),
    ("python-2.0", "Python-2.0"),
    ("openssl", "OpenSSL"),
    ("fsful", "FSFUL"),
    ("fsfullr", "FSFULLR"),
    ("fsfap", "FSFAP"),
    ("x11", "X11"),
    ("curl", "curl"),
    ("bsl-1.0", "BSL-1.0"),
    ("unlicense", "Unlicense"),
    ("wtfpl", "WTFPL"),
    ("0bsd", "0BSD"),
    ("ofl-1.1", "OFL-1.1"),
    ("unicode-dfs-2016", "Unicode-DFS-2016"),
    ("gpl-2.0", "GPL-2.0-only"),
    ("gpl-3.0", "GPL-3.0-only"),
    ("lgpl-2.1-only", "LGPL-2.1-only"),
];

/// SPDX identifiers accepted as written (apk records use them); matched case-insensitively.
const SPDX_IDS: &[&str] = &[
    "0BSD",
    "AGPL-3.0-only",
    "AGPL-3.0-or-later",
    "Apache-2.0",
    "Artistic-1.0",
    "Artistic-1.0-Perl",
    "Artistic-2.0",
    "BSD-1-Clause",
    "BSD-2-Clause",
    "BSD-3-Clause",
    "BSD-4-Clause",
    "BSD-4-Clause-UC",
    "BSL-1.0",
    "bzip2-1.0.6",
    "CC-BY-4.0",
    "CC-BY-SA-4.0",
    "CC0-1.0",
    "CDDL-1.0",
    "curl",
    "EPL-1.0",
    "EPL-2.0",
    "FSFAP",
    "FSFUL",
    "FSFULLR",
    "GFDL-1.2-only",
    "GFDL-1.2-or-later",
    "GFDL-1.3-only",
    "GFDL-1.3-or-later",
    "GFDL-1.2-no-invariants-only",
    "GFDL-1.2-no-invariants-or-later",
    "GFDL-1.3-no-invariants-only",
    "GFDL-1.3-no-invariants-or-later",
    "GPL-1.0-only",
    "GPL-1.0-or-later",
    "GPL-2.0-only",
    "GPL-2.0-or-later",
    "GPL-3.0-only",
    "GPL-3.0-or-later",
    "ISC",
    "LGPL-2.0-only",
    "LGPL-2.0-or-later",
    "LGPL-2.1-only",
    "LGPL-2.1-or-later",
    "LGPL-3.0-only",
    "LGPL-3.0-or-later",
    "MIT",
    "MIT-0",
    "MPL-1.1",
    "MPL-2.0",
    "OFL-1.1",
    "OpenSSL",
    "PSF-2.0",
    "Python-2.0",
    "Unicode-DFS-2016",
    "Unlicense",
    "WTFPL",
    "X11",
    "Zlib",
    "zlib-acknowledgement",
    "BSD-4-Clause-UC",
    "Beerware",
    "Ruby",
    "PHP-3.01",
    "PostgreSQL",
    "Vim",
    "HPND",
    "libtiff",
    "IJG",
    "Libpng",
    "libpng-2.0",
    "Sleepycat",
    "SSPL-1.0",
    "EUPL-1.2",
];

/// Licence exceptions (as Debian writes them after `with`) → SPDX exception identifiers.
const EXCEPTIONS: &[(&str, &str)] = &[
    ("bison exception", "Bison-exception-2.2"),
    ("gcc exception", "GCC-exception-3.1"),
    ("gcc-exception-3.1", "GCC-exception-3.1"),
    ("classpath exception", "Classpath-exception-2.0"),
    ("font exception", "Font-exception-2.0"),
    ("libtool exception", "Libtool-exception"),
    ("linux-syscall-note", "Linux-syscall-note"),
    ("openssl exception", "OpenSSL-exception"),
];

fn re(cell: &'static OnceLock<Regex>, pat: &str) -> &'static Regex {
    cell.get_or_init(|| Regex::new(pat).expect("static regex"))
}

/// Split a licence expression (Debian `GPL-2+ or Artistic`, SPDX `MIT AND (BSD-2-Clause OR
/// ISC)`, apk's older `GPL2+, LGPL`) into distinct licence names, keeping `with <exception>`
/// attached. Conjunction and disjunction are both flattened: every licence named is listed.
pub fn split_expression(expr: &str) -> Vec<String> {
    static SPLIT: OnceLock<Regex> = OnceLock::new();
    let split = re(&SPLIT, r"(?i)\s+(?:and|or)\s+|\s*[,;|&]\s*");
    let mut out: Vec<String> = Vec::new();
    for part in split.split(expr) {
        let atom = part
            .trim_matches(|c: char| c == '(' || c == ')' || c.is_whitespace())
            .to_string();
        if !atom.is_empty() && !out.contains(&atom) {
            out.push(atom);
        }
    }
    out
}

/// Licences of a Debian `copyright` file: DEP-5 `License:` fields when the file is
/// machine-readable, else recognised references and texts.
pub fn from_debian_copyright(text: &str) -> (Vec<String>, LicenceSource) {
    let paras = dpkg::paragraphs(text);
    if dpkg::is_dep5(&paras) {
        let mut out: Vec<String> = Vec::new();
        for f in dpkg::dep5_licence_fields(&paras) {
            for a in split_expression(&f) {
                if !out.contains(&a) {
                    out.push(a);
                }
            }
        }
        if !out.is_empty() {
            return (out, LicenceSource::Dep5);
        }
    }
    let found = recognise_text(text);
    if found.is_empty() {
        (found, LicenceSource::None)
    } else {
        (found, LicenceSource::CopyrightText)
    }
}

/// Recognise licences in a free-form copyright file: references to
/// `/usr/share/common-licenses/<NAME>`, and a few well-known licence texts.
pub fn recognise_text(text: &str) -> Vec<String> {
    static COMMON: OnceLock<Regex> = OnceLock::new();
    static GPL: OnceLock<Regex> = OnceLock::new();
    let common = re(
        &COMMON,
        r"/usr/share/common-licenses/([A-Za-z0-9][A-Za-z0-9.+_-]*)",
    );
    let gpl = re(
        &GPL,
        r"(?is)GNU\s+(Lesser\s+|Library\s+|Affero\s+)?General\s+Public\s+License.{0,120}?version\s+(\d(?:\.\d)?)",
    );
    let mut out: Vec<String> = Vec::new();
    fn add(out: &mut Vec<String>, s: String) {
        if !out.contains(&s) {
            out.push(s);
        }
    }
    for c in common.captures_iter(text) {
        add(&mut out, c[1].trim_end_matches('.').to_string());
    }
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    // A versioned grant in the text ("version 2 of the License, or any later version") is
    // more precise than a reference to the versionless `common-licenses/GPL`.
    if out.iter().all(|l| l == "GPL" || l == "LGPL") {
        let mut versioned = Vec::new();
        for c in gpl.captures_iter(&flat) {
            let family = match c.get(1).map(|m| m.as_str().trim().to_ascii_lowercase()) {
                Some(ref s) if s == "affero" => "AGPL",
                Some(_) => "LGPL",
                None => "GPL",
            };
            let mut v = c[2].to_string();
            if v.ends_with(".0") {
                v.truncate(v.len() - 2);
            }
            let later = flat[c.get(0).unwrap().end()..]
                .chars()
                .take(80)
                .collect::<String>()
                .to_ascii_lowercase()
                .contains("any later version");
            versioned.push(format!("{family}-{v}{}", if later { "+" } else { "" }));
        }
        for v in versioned {
            let family = v.split('-').next().unwrap_or("").to_string();
            out.retain(|l| *l != family);
            add(&mut out, v);
        }
    }
    // A bare `GPL`/`LGPL` reference says nothing a versioned one does not.
    for fam in ["GPL", "LGPL"] {
        let pre = format!("{fam}-");
        if out.iter().any(|l| l.starts_with(&pre)) {
            out.retain(|l| l != fam);
        }
    }
    if flat.contains("Apache License") && flat.contains("Version 2.0") {
        add(&mut out, "Apache-2.0".into());
    }
    if flat.contains("Permission is hereby granted, free of charge") {
        add(&mut out, "Expat".into());
    }
    if flat.contains("Redistribution and use in source and binary forms") {
        if flat.contains("advertising materials") {
            add(&mut out, "BSD-4-clause".into());
        } else if flat.contains("endorse or promote") {
            add(&mut out, "BSD-3-clause".into());
        } else {
            add(&mut out, "BSD-2-clause".into());
        }
    }
    if flat.contains("This software is provided 'as-is', without any express or implied warranty") {
        add(&mut out, "Zlib".into());
    }
    out
}

/// The SPDX identifier (or `ID WITH exception` expression) for one licence name, if known.
pub fn to_spdx_id(name: &str) -> Option<String> {
    static WITH: OnceLock<Regex> = OnceLock::new();
    let with = re(&WITH, r"(?i)^(.+?)\s+with\s+(.+)$");
    if let Some(c) = with.captures(name) {
        let base = to_spdx_id(c[1].trim())?;
        let exc = c[2].trim().to_ascii_lowercase();
        let e = EXCEPTIONS.iter().find(|(k, _)| *k == exc)?.1;
        return Some(format!("{base} WITH {e}"));
    }
    let lower = name.trim().to_ascii_lowercase();
    if let Some((_, s)) = DEBIAN_TO_SPDX.iter().find(|(k, _)| *k == lower) {
        return Some(s.to_string());
    }
    SPDX_IDS
        .iter()
        .find(|id| id.eq_ignore_ascii_case(&lower))
        .map(|s| s.to_string())
}

/// `LicenseRef-<name>` for a licence without an SPDX identifier (only letters, digits, `.`
/// and `-` are allowed in the reference).
pub fn licence_ref(name: &str) -> String {
    let mut s = String::from("LicenseRef-");
    let mut dash = false;
    for c in name.chars() {
        if c.is_ascii_alphanumeric() || c == '.' {
            s.push(c);
            dash = false;
        } else if c == '+' {
            s.push_str("-or-later");
            dash = false;
        } else if !dash {
            s.push('-');
            dash = true;
        }
    }
    while s.ends_with('-') {
        s.pop();
    }
    s
}

/// Whether a licence is copyleft (strong or weak): GPL, LGPL, AGPL, MPL, EPL, CDDL, EUPL,
/// OSL, CPL, CeCILL, SSPL, GFDL, CC-BY-SA, MS-RL, RPL, QPL.
pub fn is_copyleft(name: &str) -> bool {
    static CL: OnceLock<Regex> = OnceLock::new();
    let cl = re(
        &CL,
        r"(?i)^(a|l)?gpl|^gfdl|^mpl|^epl|^cddl|^eupl|^osl|^cpl|^cecill|^sspl|^cc-by-sa|^ms-rl|^rpl|^qpl|^gnu ",
    );
    cl.is_match(name.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split() {
        assert_eq!(
            split_expression("GPL-3+ with Bison exception and MIT-like"),
            vec!["GPL-3+ with Bison exception", "MIT-like"]
        );
        assert_eq!(
            split_expression("MIT AND (BSD-2-Clause OR ISC)"),
            vec!["MIT", "BSD-2-Clause", "ISC"]
        );
        assert_eq!(
            split_expression("GPL-2+, Artistic"),
            vec!["GPL-2+", "Artistic"]
        );
    }

    #[test]
    fn spdx_mapping() {
        assert_eq!(to_spdx_id("GPL-3+").as_deref(), Some("GPL-3.0-or-later"));
        assert_eq!(to_spdx_id("Expat").as_deref(), Some("MIT"));
        assert_eq!(to_spdx_id("zlib").as_deref(), Some("Zlib"));
        assert_eq!(to_spdx_id("GPL-2.0-only").as_deref(), Some("GPL-2.0-only"));
        assert_eq!(
            to_spdx_id("GPL-3+ with Bison exception").as_deref(),
            Some("GPL-3.0-or-later WITH Bison-exception-2.2")
        );
        assert_eq!(to_spdx_id("GPL-2+ with Foo exception"), None);
        assert_eq!(to_spdx_id("public-domain"), None);
        assert_eq!(
            licence_ref("GPL-2+ with Foo exception"),
            "LicenseRef-GPL-2-or-later-with-Foo-exception"
        );
        assert_eq!(licence_ref("public-domain"), "LicenseRef-public-domain");
    }

    #[test]
    fn copyleft() {
        for c in [
            "GPL-2+",
            "LGPL-2.1",
            "AGPL-3.0-only",
            "MPL-2.0",
            "EPL-2.0",
            "CDDL-1.0",
            "GFDL-NIV-1.3",
            "GPL-3+ with Bison exception",
        ] {
            assert!(is_copyleft(c), "{c}");
        }
        for c in [
            "MIT",
            "Expat",
            "BSD-3-clause",
            "Zlib",
            "Apache-2.0",
            "ISC",
            "public-domain",
        ] {
            assert!(!is_copyleft(c), "{c}");
        }
    }

    #[test]
    fn free_form_copyright() {
        let t = "This package was debianized by someone.\n\nOn Debian systems, the complete text of the GNU General\nPublic License version 2 can be found in `/usr/share/common-licenses/GPL-2'.\nSee also /usr/share/common-licenses/LGPL-2.1.\n";
        assert_eq!(recognise_text(t), vec!["GPL-2", "LGPL-2.1"]);
        let t = "in `/usr/share/common-licenses/GPL', version 3 in `/usr/share/common-licenses/GPL-3'. See /usr/share/common-licenses/Artistic";
        assert_eq!(recognise_text(t), vec!["GPL-3", "Artistic"]);
        let t = "This program is free software; you can redistribute it under the terms of the GNU General Public License as published by the Free Software Foundation; either version 3 of the License, or (at your option) any later version.";
        assert_eq!(recognise_text(t), vec!["GPL-3+"]);
        let t = "under the terms of the GNU General Public License as published by the Free Software Foundation; either version 2 of the License, or (at your option) any later version. On Debian systems, the complete text of the GNU General Public License can be found in `/usr/share/common-licenses/GPL'.";
        assert_eq!(recognise_text(t), vec!["GPL-2+"]);
        let t = "Permission is hereby granted, free of charge, to any person obtaining a copy";
        assert_eq!(
            from_debian_copyright(t),
            (vec!["Expat".to_string()], LicenceSource::CopyrightText)
        );
        assert_eq!(from_debian_copyright("nothing here").1, LicenceSource::None);
    }
}
