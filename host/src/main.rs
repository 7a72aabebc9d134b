//! The `rzil` command.
fn main() {
    std::process::exit(2);
}
