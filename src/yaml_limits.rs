//! Bounds every YAML loader shares (playbooks, roles, vars files, `from_yaml`, inventories and
//! their `group_vars/`/`host_vars/`), so a small hostile file cannot make a loader grow until
//! the machine runs out of memory.
//!
//! * A document may hold at most [`MAX_DOCUMENT_BYTES`].
//! * Aliases (`*a`) copy the node their anchor names, and a copy may hold aliases itself, so
//!   nine lines can stand for 9^9 nodes ("billion laughs"). [`AliasBudget`] follows the parser's
//!   events, knows what each anchored node costs (nodes and scalar bytes, its own aliases
//!   expanded), and refuses once the copies made by aliases exceed [`MAX_ALIAS_NODES`] nodes or
//!   [`MAX_ALIAS_BYTES`] bytes of scalars. Both limits are far above what a real playbook or
//!   inventory uses (an alias usually copies a few keys).

use saphyr_parser::{Event, Parser};
use std::collections::HashMap;

/// Why a document did not load, and where (1-based; 0 when unknown).
#[derive(Debug)]
pub struct YamlError {
    pub line: u64,
    pub column: u64,
    pub message: String,
}

/// `text` checked against the bounds here, then deserialized with serde-saphyr. The crate's
/// message is cut to its first line without its own "line N column M" prefix, because
/// callers print `file:line:col` themselves.
pub fn from_str<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, YamlError> {
    check(text).map_err(|e| YamlError {
        line: e.line as u64,
        column: e.col as u64,
        message: e.msg,
    })?;
    serde_saphyr::from_str(text).map_err(|e| {
        let (line, column) = e
            .location()
            .map(|l| (l.line(), l.column()))
            .unwrap_or((0, 0));
        let full = e.to_string();
        let first = full.lines().next().unwrap_or("invalid YAML").trim();
        let message = match first.strip_prefix("error: ") {
            Some(rest) if rest.starts_with("line ") => {
                rest.split_once(": ").map(|x| x.1).unwrap_or(rest)
            }
            Some(rest) => rest,
            None => first,
        }
        .to_string();
        YamlError {
            line,
            column,
            message,
        }
    })
}

/// The largest YAML document any loader reads.
pub const MAX_DOCUMENT_BYTES: usize = 64 << 20;
/// The most nodes that alias expansion may add to one stream.
pub const MAX_ALIAS_NODES: u64 = 1_000_000;
/// The most scalar bytes that alias expansion may add to one stream.
pub const MAX_ALIAS_BYTES: u64 = 64 << 20;

/// What a document of `len` bytes may not exceed: `Err` says why, in words.
pub fn check_document_size(len: usize) -> Result<(), String> {
    if len > MAX_DOCUMENT_BYTES {
        return Err(format!(
            "the document is larger than the {} MiB a YAML file may hold; refusing to load it",
            MAX_DOCUMENT_BYTES >> 20
        ));
    }
    Ok(())
}

/// Read a YAML file, but never more than one byte past [`MAX_DOCUMENT_BYTES`]: a larger file
/// is an error (in [`check_document_size`]'s words) before it fills memory.
pub fn read_to_string(path: &std::path::Path) -> std::io::Result<String> {
    use std::io::{Error, ErrorKind, Read};
    let mut buf = Vec::new();
    std::fs::File::open(path)?
        .take(MAX_DOCUMENT_BYTES as u64 + 1)
        .read_to_end(&mut buf)?;
    check_document_size(buf.len()).map_err(|m| Error::new(ErrorKind::InvalidData, m))?;
    String::from_utf8(buf).map_err(|e| Error::new(ErrorKind::InvalidData, e))
}

#[derive(Clone, Copy, Debug, Default)]
struct Cost {
    nodes: u64,
    bytes: u64,
}

impl Cost {
    fn add(&mut self, o: Cost) {
        self.nodes = self.nodes.saturating_add(o.nodes);
        self.bytes = self.bytes.saturating_add(o.bytes);
    }
}

/// Counts what alias expansion produces while a loader walks the parser's events.
/// Feed it every node event in order; [`AliasBudget::alias`] refuses the alias that goes over.
#[derive(Debug, Default)]
pub struct AliasBudget {
    /// Cost of each anchored node, by the parser's anchor id.
    anchors: HashMap<usize, Cost>,
    /// Open collections: the cost so far and the collection's anchor id (0 = none).
    open: Vec<(Cost, usize)>,
    /// Total cost of the copies aliases made.
    expanded: Cost,
}

impl AliasBudget {
    fn done(&mut self, cost: Cost, anchor: usize) {
        if anchor != 0 {
            self.anchors.insert(anchor, cost);
        }
        if let Some((parent, _)) = self.open.last_mut() {
            parent.add(cost);
        }
    }

    /// Account for one parser event; `Err` (in words) for the alias that goes over a bound.
    pub fn event(&mut self, ev: &Event) -> Result<(), String> {
        match ev {
            Event::Scalar(v, _, anchor, _) => self.scalar(v.len(), *anchor),
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => self.start(*anchor),
            Event::SequenceEnd | Event::MappingEnd => self.end(),
            Event::Alias(id) => return self.alias(*id),
            _ => {}
        }
        Ok(())
    }

    /// A scalar of `len` bytes.
    pub fn scalar(&mut self, len: usize, anchor: usize) {
        let cost = Cost {
            nodes: 1,
            bytes: len as u64,
        };
        self.done(cost, anchor);
    }

    /// A sequence or mapping starts.
    pub fn start(&mut self, anchor: usize) {
        self.open.push((Cost { nodes: 1, bytes: 0 }, anchor));
    }

    /// The innermost sequence or mapping ends.
    pub fn end(&mut self) {
        if let Some((cost, anchor)) = self.open.pop() {
            self.done(cost, anchor);
        }
    }

    /// An alias to anchor `id` (an unknown id costs nothing: the loader reports it).
    pub fn alias(&mut self, id: usize) -> Result<(), String> {
        let cost = self.anchors.get(&id).copied().unwrap_or_default();
        self.expanded.add(cost);
        self.done(cost, 0);
        if self.expanded.nodes > MAX_ALIAS_NODES {
            return Err(format!(
                "aliases expand to more than {MAX_ALIAS_NODES} nodes (an alias bomb, \
                 \"billion laughs\"?); refusing to load it"
            ));
        }
        if self.expanded.bytes > MAX_ALIAS_BYTES {
            return Err(format!(
                "aliases expand to more than {} MiB of text (an alias bomb?); \
                 refusing to load it",
                MAX_ALIAS_BYTES >> 20
            ));
        }
        Ok(())
    }
}

/// A refusal with the 1-based position it happened at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitError {
    pub line: usize,
    pub col: usize,
    pub msg: String,
}

/// Check `src` against the shared bounds before a loader that expands aliases itself builds
/// anything. Syntax errors pass: the loader reports them in its own words.
pub fn check(src: &str) -> Result<(), LimitError> {
    check_document_size(src.len()).map_err(|msg| LimitError {
        line: 1,
        col: 1,
        msg,
    })?;
    if !src.contains('*') {
        return Ok(()); // no alias at all
    }
    let mut budget = AliasBudget::default();
    for ev in Parser::new_from_str(src) {
        let Ok((ev, span)) = ev else {
            return Ok(());
        };
        budget.event(&ev).map_err(|msg| LimitError {
            line: span.start.line(),
            col: span.start.col() + 1,
            msg,
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn laughs(levels: usize) -> String {
        let mut s = String::from("a0: &a0 [x,x,x,x,x,x,x,x,x]\n");
        for i in 1..levels {
            let refs = vec![format!("*a{}", i - 1); 9].join(",");
            s.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
        }
        s
    }

    #[test]
    fn alias_bomb_refused_at_the_alias_that_goes_over() {
        let e = check(&laughs(9)).unwrap_err();
        assert!(e.msg.contains("billion laughs"), "{e:?}");
        // a5 stands for ~600,000 nodes: the copies of it on a6's line (line 7) go past 10^6.
        assert_eq!(e.line, 7, "{e:?}");
        assert!(check(&laughs(5)).is_ok());
    }

    #[test]
    fn big_scalars_copied_by_aliases_are_refused() {
        let big = "x".repeat(1 << 20);
        let refs = vec!["*a"; 100].join(",");
        let e = check(&format!("a: &a {big}\nl: [{refs}]\n")).unwrap_err();
        assert!(e.msg.contains("MiB of text"), "{e:?}");
        assert_eq!(e.line, 2);
        let refs = ["*a"; 10].join(",");
        assert!(check(&format!("a: &a {big}\nl: [{refs}]\n")).is_ok());
    }

    #[test]
    fn ordinary_aliases_and_merge_keys_pass() {
        let src = "base: &b {x: 1, y: [1, 2, 3]}\nd:\n  <<: *b\n  y: 3\nl: *b\nm: [*b, *b]\n";
        assert!(check(src).is_ok());
        assert!(check("a: [unbalanced\n*").is_ok());
    }
}
