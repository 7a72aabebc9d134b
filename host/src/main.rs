//! The `rzil` command: see `cli.rs` for the subcommands and
//! `rzil --help` for their use.
mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
