//! `make nodes N=5` / `make nodes-down`: start test nodes that outlive this process.
//! Usage: nodes up N [--cluster] DIR | nodes down DIR
#[path = "../tests/support/nodes/mod.rs"]
mod common;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("up") if args.len() >= 3 => {
            let n: usize = args[1].parse().expect("N must be a number");
            let cluster = args.iter().any(|a| a == "--cluster");
            let dir = std::path::PathBuf::from(args.last().unwrap());
            common::Nodes::down(&dir);
            let _ = std::fs::remove_dir_all(&dir);
            let nodes = if cluster {
                common::Nodes::cluster_in(n, dir)
            } else {
                common::Nodes::sshd_in(n, dir)
            };
            println!("{}", nodes.inventory_path().display());
            nodes.detach();
        }
        Some("down") if args.len() == 2 => {
            common::Nodes::down(std::path::Path::new(&args[1]));
        }
        _ => {
            eprintln!("usage: nodes up N [--cluster] DIR | nodes down DIR");
            std::process::exit(2);
        }
    }
}
