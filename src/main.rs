//! The `ftagent` binary: parse flags, run the library, map errors to exit codes (§2).

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = ftagent::cli::Cli::parse();
    match ftagent::cli::app::main_with(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("ftagent: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
