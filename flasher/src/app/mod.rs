//! The flasher program over the library: the command line parsed into a [`Command`], and
//! [`run`], which carries it out and maps the outcome to the process's exit code.
//!
//! A run has one lifecycle (`flash`): open the log, resolve the ports, make the plan, write the
//! boards (or the merged image), then sum the boards' records up ([`outcome`]): the summary line,
//! the exit code, the report file. [`list`] is `--list-ports`, `info` is `--info`, `records`
//! is `records` (the boards' records in the line's database), `station` is `--station` (the
//! one-board pipeline of `flash` under the `station` crate's loop).

pub mod list;
pub mod outcome;

mod flash;
mod info;
mod records;
mod station;
mod view;

use std::ffi::OsString;
use std::process::ExitCode;

use clap::Parser;
use clap::error::ErrorKind;

use crate::cli::{Args, ListPorts, Records};
use crate::error::ExitKind;

/// What the command line asks for.
#[derive(Debug, Clone)]
pub enum Command {
    /// Plan, then write the boards, a merged image or the plan on the terminal.
    Flash(Box<Args>),
    /// `--list-ports [--json]`.
    ListPorts(ListPorts),
    /// `--port PORT… --info [--json]`: what the boards are, nothing written.
    Info(Box<Args>),
    /// `records --db URL …`: the boards' records in the line's database.
    Records(Records),
}

impl Command {
    /// Parses `argv` (program name first). `--list-ports` takes no other option, so it is
    /// parsed on its own.
    pub fn parse(argv: impl IntoIterator<Item = OsString>) -> Result<Command, Stop> {
        let argv: Vec<OsString> = argv.into_iter().collect();
        if let Some(records) = Records::requested(&argv) {
            return records.map(Command::Records).map_err(Stop);
        }
        if let Some(list) = ListPorts::requested(&argv) {
            return list.map(Command::ListPorts).map_err(Stop);
        }
        Args::try_parse_from(&argv)
            .map(|args| match args.desk.info {
                true => Command::Info(Box::new(args)),
                false => Command::Flash(Box::new(args)),
            })
            .map_err(Stop)
    }
}

/// Why the command line gives no command: `--help` or `--version` were asked for, or an
/// argument is wrong.
#[derive(Debug)]
pub struct Stop(clap::Error);

impl Stop {
    /// Whether this is `--help` or `--version` rather than an error.
    pub fn is_info(&self) -> bool {
        matches!(
            self.0.kind(),
            ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
        )
    }

    /// Prints the help or version text to stdout, or the error on one line to stderr.
    pub fn print(&self) {
        if self.is_info() {
            let _ = self.0.print();
        } else {
            eprintln!("error: {}", one_line(&self.0));
        }
    }

    /// 0 for `--help` and `--version`, else the usage exit code (2).
    pub fn exit_code(&self) -> ExitCode {
        if self.is_info() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(ExitKind::Usage.code())
        }
    }
}

/// Carries out `command` and returns the process's exit code. Every error is printed on one
/// line; panics (the serial library's, on garbled replies, are caught and retried) print as one
/// `warning:` line each.
pub fn run(command: Command) -> ExitCode {
    std::panic::set_hook(Box::new(|info| {
        eprintln!("warning: {}", info.to_string().replace('\n', " "));
    }));
    match command {
        Command::Flash(args) => ExitCode::from(flash::flash(&args)),
        Command::ListPorts(list) => list::list_ports(&list),
        Command::Info(args) => ExitCode::from(info::info(&args)),
        Command::Records(query) => ExitCode::from(records::records(&query)),
    }
}

/// clap's message without the usage block, on one line.
fn one_line(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .filter(|l| !l.is_empty())
        .collect();
    let line = lines.join(" ");
    format!(
        "{} (see --help)",
        line.strip_prefix("error: ").unwrap_or(&line)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Command, Stop> {
        Command::parse(
            std::iter::once("flasher")
                .chain(args.iter().copied())
                .map(OsString::from),
        )
    }

    #[test]
    fn list_ports_is_parsed_on_its_own() {
        assert!(matches!(
            parse(&["--list-ports", "--json"]),
            Ok(Command::ListPorts(ListPorts { json: true, .. }))
        ));
        assert!(matches!(
            parse(&["--chip", "esp32", "--flash_size", "4MB"]),
            Ok(Command::Flash(_))
        ));
    }

    #[test]
    fn bad_arguments_stop_on_one_line_with_exit_2() {
        let stop = parse(&["--chip", "esp8266", "--flash_size", "4MB"]).unwrap_err();
        assert!(!stop.is_info());
        assert_eq!(stop.exit_code(), ExitCode::from(2));
        let line = one_line(&stop.0);
        assert!(!line.contains('\n') && !line.contains("Usage:"), "{line}");
        assert!(
            line.contains("esp8266") && line.ends_with("(see --help)"),
            "{line}"
        );
        let stop = parse(&["--list-ports", "--bogus"]).unwrap_err();
        assert_eq!(stop.exit_code(), ExitCode::from(2));
    }

    #[test]
    fn help_and_version_are_not_errors() {
        for asked in ["--help", "--version"] {
            let stop = parse(&[asked]).unwrap_err();
            assert!(stop.is_info(), "{asked}");
            assert_eq!(stop.exit_code(), ExitCode::SUCCESS);
        }
        assert!(parse(&["--list-ports", "--help"]).unwrap_err().is_info());
    }
}
