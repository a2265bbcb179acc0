//! imagegen: builds the multi-arch OCI flash images (and, later, OTA images) for ESP32-family
//! boards from ESP-IDF builds, without a container engine.
//!
//! The pipeline is inputs → bundle → image → sink:
//! [`inputs`] reads ESP-IDF builds, [`bundle`] checks them and lays out `/firmware` with its
//! manifest, [`flash_image`] (over the generic [`image`] types) assembles the per-platform images
//! and the index, and [`sink`] writes an OCI layout or an archive.

pub mod bundle;
pub mod elf;
pub mod error;
pub mod flash_image;
pub mod image;
pub mod inputs;
pub mod platform;
pub mod sink;
pub mod unpack;
