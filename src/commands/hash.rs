use crate::cli::HashArgs;
use crate::ops::hash::hash_files;

pub fn run(a: HashArgs) -> anyhow::Result<i32> {
    let r = hash_files(&a.files);
    for (p, res) in &r.files {
        match res {
            Ok((d, n)) if a.json => {
                println!("{}", serde_json::json!({"path": p, "digest": d, "size": n}))
            }
            Ok((d, n)) => println!("{d}  {n}  {}", p.display()),
            Err(e) => eprint!("{}", crate::ui::render_error(e)),
        }
    }
    if a.json {
        println!(
            "{}",
            serde_json::json!({"bytes": r.bytes, "seconds": r.seconds, "mib_per_s": r.mib_per_s()})
        );
    } else {
        eprintln!(
            "hashed {} in {:.3}s ({:.0} MiB/s)",
            crate::ui::bytes(r.bytes),
            r.seconds,
            r.mib_per_s()
        );
    }
    Ok(if r.any_failed() { 1 } else { 0 })
}
