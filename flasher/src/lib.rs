//! The flasher: writes an ESP32-family board from the firmware bundle of a flash image.
//!
//! The bundle format (manifest, chips, images, partition tables, placement rules) is the
//! `firmware` crate, shared with `imagegen`.
//!
//! Flashing has two stages: [`plan`] works out every region to write from the bundle and the
//! arguments without touching the board; [`device`] writes the plan with espflash, and
//! [`boards`] writes several boards at once, [`nvs`] gives each its own row of per-board
//! data. [`cli`] is the command line, [`error`] the typed
//! errors and their exit codes, [`report`] the records of each board (JSON report, JSON Lines
//! log), [`profile`] the security profile of secure production (`--security`), [`port`] finds and opens serial ports and network bridges, and [`app`] the program: a
//! run from the parsed command line to its exit code.
#![warn(missing_docs)]

pub mod app;
pub mod boards;
pub mod cli;
pub mod device;
pub mod error;
pub mod nvs;
pub mod plan;
pub mod port;
pub mod profile;
pub mod report;
pub mod sink;
mod termios;
