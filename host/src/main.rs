//! The `rzil` command: see `cli.rs` for the subcommands and
//! `rzil --help` for their use.
mod cli;

fn main() -> std::process::ExitCode {
    restore_sigpipe();
    cli::main()
}

/// Rust ignores SIGPIPE, which turns `rzil dump DEV | head` into a panic in
/// `println!` once `head` exits. Like every Unix filter, end quietly
/// instead: take the default action (terminate) again.
fn restore_sigpipe() {
    // SAFETY: signal(2) with SIG_DFL installs no handler of ours (no code
    // of ours runs on the signal), and runs before any thread is started.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
