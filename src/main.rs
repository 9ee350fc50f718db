use clap::Parser;
use darkport::{cli::Cli, commands, ui};

fn main() {
    // A panic is an internal error: exit 2, not Rust's default 101.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default_hook(info);
        if darkport::fanout::catching() {
            // A worker of one host: its item is reported failed, the others go on.
            return;
        }
        eprintln!("darkport: internal error; please report it with the command line used");
        std::process::exit(2);
    }));
    let cli = Cli::parse();
    let code = match commands::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprint!("{}", ui::render_error(&e));
            // 1: bad input, a refused bundle, an unreachable or failing host; 2: a bug.
            darkport::report::exit_code(&e)
        }
    };
    std::process::exit(code);
}
