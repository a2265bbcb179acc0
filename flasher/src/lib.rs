//! The flasher: writes an ESP32-family board from the firmware bundle of a flash image.
//!
//! The bundle format ([`bundle`], [`image`], [`partition`], [`sdkconfig`]) is shared with
//! `imagegen`, which builds with the `device` feature off.
//!
//! Flashing has two stages: [`plan`] works out every region to write from the bundle and the
//! arguments (with [`layout`] generating the `--override_pt` table) without touching the board;
//! [`port`] (feature `device`) resolves `--port` values into the ports the boards are opened
//! on, [`device`] writes the plan to one board with espflash, and [`station`] writes several
//! boards at once. [`cli`] is the command line, [`error`] the typed errors and their exit
//! codes, [`report`] the records of each board (JSON report, JSON Lines log), and [`app`] the
//! program: a run from the parsed command line to its exit code.

#[cfg(feature = "device")]
pub mod app;
pub mod bundle;
pub mod chip;
#[cfg(feature = "device")]
pub mod cli;
#[cfg(feature = "device")]
pub mod device;
pub mod error;
pub mod image;
pub mod layout;
pub mod partition;
pub mod plan;
#[cfg(feature = "device")]
pub mod port;
pub mod report;
pub mod sdkconfig;
pub mod size;
#[cfg(feature = "device")]
pub mod station;
#[cfg(feature = "device")]
mod termios;
pub mod time;
