//! The flasher: writes an ESP32-family board from the firmware bundle of a flash image.
//!
//! The bundle format ([`bundle`], [`image`], [`partition`], [`sdkconfig`]) is shared with
//! `imagegen`, which builds with the `device` feature off.

pub mod bundle;
pub mod chip;
pub mod image;
pub mod partition;
pub mod sdkconfig;
pub mod size;
