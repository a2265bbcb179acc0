//! `flasher --list-ports [--json]`: the serial ports sysfs shows, as a table or JSON.

use std::process::ExitCode;

use crate::cli::ListPorts;
use crate::port;

/// Prints the serial ports sysfs shows; a sysfs that cannot be read is an error.
pub fn list_ports(list: &ListPorts) -> ExitCode {
    match port::list(&port::sysfs::Roots::system()) {
        Ok(ports) if list.json => {
            println!("{:#}", port::to_json(&ports));
            ExitCode::SUCCESS
        }
        Ok(ports) => {
            print!("{}", port::table(&ports));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.kind().code())
        }
    }
}
