//! Output of `darkport support-bundle`.

use crate::ops::support::SupportReport;

pub fn print_report(rep: &SupportReport, json: bool) {
    if json {
        let v = serde_json::json!({
            "output": rep.output,
            "bytes": rep.bundle_bytes,
            "index": rep.index,
        });
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return;
    }
    for n in &rep.index.nodes {
        let extra = if n.errors.is_empty() {
            String::new()
        } else {
            format!(", {} errors", n.errors.len())
        };
        println!("{}: {} ({} files{extra})", n.host, n.status, n.files.len());
    }
    for u in &rep.index.unreachable {
        println!("{}: UNREACHABLE: {}", u.host, u.error);
    }
    println!(
        "wrote {} ({}): {} nodes collected, {} unreachable",
        rep.output.display(),
        super::bytes(rep.bundle_bytes),
        rep.index.nodes.len(),
        rep.index.unreachable.len()
    );
}
