//! `imagegen`: the command line over the imagegen library (see `imagegen::cli`).

use std::process::ExitCode;

use imagegen::cli::{NotRun, parse, run};

fn main() -> ExitCode {
    let result = match parse(std::env::args_os()) {
        Ok(cli) => run(cli),
        Err(NotRun::Print(text)) => {
            print!("{text}");
            return ExitCode::SUCCESS;
        }
        Err(NotRun::Usage(e)) => Err(e),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("imagegen: error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
