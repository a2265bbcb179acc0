//! `flasher --port PORT… --info [--json]`: what each board is, one line (or one JSON object)
//! per board, in port order; nothing is written or erased.

use crate::cli::Args;
use crate::device::info::{self, BoardInfo};
use crate::device::{Console, Options};
use crate::error::{DeviceError, ExitKind, UsageError};
use crate::port::{self, ResolvedPort};

use super::outcome;

/// Reads every board on `--port` at once and prints what each is; returns the exit code
/// (the boards' common failure, or 7 when they failed differently).
pub(super) fn info(args: &Args) -> u8 {
    let ports = match resolve(args) {
        Ok(ports) => ports,
        Err(e) => {
            eprintln!("error: {}", format!("{e:#}").replace('\n', " "));
            return outcome::exit_kind(&e).code();
        }
    };
    let options = Options {
        baud: args.baud,
        before: args.before,
        after: args.after,
        verify: false,
        skip: false,
        console: Console::single(),
        boot: None,
        check_untouched: None,
        streams: Default::default(),
        secure: None,
        per_board: None,
    };
    let results: Vec<Result<BoardInfo, DeviceError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = ports
            .iter()
            .map(|port| {
                let options = &options;
                scope.spawn(move || info::read(port, args.chip.as_ref(), args.flash_size, options))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a board's thread does not panic"))
            .collect()
    });
    print_results(&ports, &results, args.desk.json)
}

/// The ports of `--port`, resolved and expanded; `--info` needs at least one, and
/// `--before no-reset-no-sync` cannot detect the chip, so it needs `--chip`.
fn resolve(args: &Args) -> anyhow::Result<Vec<ResolvedPort>> {
    if args.port.is_empty() {
        return Err(UsageError::MissingPort.into());
    }
    if args.before == crate::cli::Before::NoResetNoSync && args.chip.is_none() {
        return Err(UsageError::InfoNeedsChip.into());
    }
    Ok(port::expand(port::resolve_all(&args.port)?)?)
}

/// Prints one line (or JSON object) per board on stdout and one `error:` line per failed
/// board on stderr; returns the exit code.
fn print_results(
    ports: &[ResolvedPort],
    results: &[Result<BoardInfo, DeviceError>],
    json: bool,
) -> u8 {
    let several = ports.len() > 1;
    let mut codes = Vec::new();
    for (port, result) in ports.iter().zip(results) {
        let prefix = if several {
            format!("[{}] ", port::short_name(&port.port))
        } else {
            String::new()
        };
        match result {
            Ok(board) if json => println!(
                "{}",
                serde_json::to_string(board).expect("board info serializes")
            ),
            Ok(board) => println!("{prefix}{}", board.line()),
            Err(e) => {
                eprintln!("error: {prefix}{e}");
                codes.push(e.kind().code());
            }
        }
    }
    match codes.first() {
        None => 0,
        Some(&first) if codes.iter().all(|&c| c == first) => first,
        Some(_) => ExitKind::Mixed.code(),
    }
}
