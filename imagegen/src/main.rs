//! `imagegen`: the command line over the imagegen library (see `imagegen::cli`).

use std::process::ExitCode;

use clap::Parser;
use imagegen::cli::{Cli, run};

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("imagegen: error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
