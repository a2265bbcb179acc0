//! How one attempt failed, and what espflash's errors say about the line.

use crate::error::DeviceError;

/// A failure of one attempt, by what another attempt may change.
pub(super) enum Failure {
    /// The line failed while writing at the attempt's rate; a lower rate may help.
    Line(DeviceError),
    /// The line failed while connecting or identifying the board (at the ROM's rate);
    /// another attempt may work.
    Connect(DeviceError),
    /// Writing did not leave the flash right (a region's MD5 differs); another attempt may.
    Verify(DeviceError),
    /// Retrying cannot help.
    Fatal(DeviceError),
}

/// Whether `e` may come from a bad line: lost, garbled or refused packets, timeouts.
/// Loader errors count too, since a garbled block shows up as a checksum or inflate error.
pub(super) fn is_line_error(e: &espflash::Error) -> bool {
    use espflash::Error as E;
    matches!(
        e,
        E::Connection(_)
            | E::InvalidResponse(_)
            | E::IncorrectResponse
            | E::ReadMoreThanExpected
            | E::Flashing(_)
            | E::RomError(_)
            | E::VerifyFailed
    )
}

/// `e` with its causes, on one line (espflash's own messages are often just the outer layer).
pub(super) fn describe(e: &espflash::Error) -> String {
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        let next = c.to_string();
        if !text.contains(&next) {
            text = format!("{text}: {next}");
        }
        cause = c.source();
    }
    text.replace('\n', " ")
}

/// Whether connecting failed because no loader answered the sync at all; espflash has already
/// tried again and again, so another attempt would only repeat it.
pub(super) fn nothing_answered(e: &espflash::Error) -> bool {
    let text = describe(e);
    matches!(e, espflash::Error::Connection(_))
        && ["Failed to connect", "no sync reply", "boot mode"]
            .iter()
            .any(|m| text.contains(m))
}

/// The failure of talking to the board on `port` while `doing`: a line failure when the line
/// may be to blame, else fatal.
pub(super) fn line(port: &str, doing: &'static str) -> impl Fn(espflash::Error) -> Failure {
    move |e: espflash::Error| {
        let err = DeviceError::Line {
            port: port.to_string(),
            doing,
            reason: describe(&e),
        };
        if is_line_error(&e) {
            Failure::Line(err)
        } else {
            Failure::Fatal(err)
        }
    }
}
