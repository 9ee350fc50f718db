use clap::Parser;
use darkport::{cli::Cli, commands, ui};

fn main() {
    // A panic is an internal error: exit 2, not Rust's default 101.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if stdout_closed(info.payload()) {
            // `darkport inspect | head`: the reader went away; stop quietly, as `cat` does.
            std::process::exit(0);
        }
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
            ui::json::print_error(&e);
            eprint!("{}", ui::render_error(&e));
            // 1: bad input, a refused bundle, an unreachable or failing host; 2: a bug.
            darkport::report::exit_code(&e)
        }
    };
    std::process::exit(code);
}

/// `print!` panics when stdout is a pipe whose reader exited (Rust ignores SIGPIPE).
fn stdout_closed(payload: &(dyn std::any::Any + Send)) -> bool {
    let msg = payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or("");
    msg.starts_with("failed printing to stdout") && msg.contains("Broken pipe")
}
