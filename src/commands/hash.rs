use crate::cli::HashArgs;
use crate::digest::Digest;
use anyhow::Context;
use rayon::prelude::*;
use std::time::Instant;

pub fn run(a: HashArgs) -> anyhow::Result<i32> {
    let start = Instant::now();
    let results: Vec<anyhow::Result<(Digest, u64)>> = a
        .files
        .par_iter()
        .map(|p| Digest::of_file(p).with_context(|| format!("failed to hash {}", p.display())))
        .collect();
    let secs = start.elapsed().as_secs_f64();
    let mut total = 0u64;
    let mut failed = false;
    for (p, r) in a.files.iter().zip(results) {
        match r {
            Ok((d, n)) => {
                total += n;
                if a.json {
                    println!("{}", serde_json::json!({"path": p, "digest": d, "size": n}));
                } else {
                    println!("{d}  {n}  {}", p.display());
                }
            }
            Err(e) => {
                failed = true;
                eprint!("{}", crate::ui::render_error(&e));
            }
        }
    }
    let rate = total as f64 / secs.max(1e-9) / (1 << 20) as f64;
    if a.json {
        println!(
            "{}",
            serde_json::json!({"bytes": total, "seconds": secs, "mib_per_s": rate})
        );
    } else {
        eprintln!(
            "hashed {} in {secs:.3}s ({rate:.0} MiB/s)",
            crate::ui::bytes(total)
        );
    }
    Ok(if failed { 1 } else { 0 })
}
