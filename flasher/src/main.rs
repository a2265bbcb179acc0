//! `flasher`: the entrypoint of a flash image (see `flasher::app`): parses the command line and
//! runs it.

use std::process::ExitCode;

use flasher::app::{self, Command};

fn main() -> ExitCode {
    match Command::parse(std::env::args_os()) {
        Ok(command) => app::run(command),
        Err(stop) => {
            stop.print();
            stop.exit_code()
        }
    }
}
