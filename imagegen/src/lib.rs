//! imagegen: builds the multi-arch OCI flash images and the OTA images for ESP32-family boards
//! from ESP-IDF builds, and pushes them to registries, without a container engine.
//!
//! The pipeline is inputs → bundle → image → sink:
//! [`inputs`] reads ESP-IDF builds, [`bundle`] checks them and lays out `/firmware` with its
//! manifest, [`flash_image`] (over the generic [`image`] types) assembles the per-platform images
//! and the index, and [`sink`] writes an OCI layout or an archive. [`ota`] builds the OTA images
//! from the same bundle; [`remote`] pushes a layout to a registry with [`credentials`];
//! [`sign`] signs what is pushed in [`cosign`]'s format and [`verify`] checks those signatures;
//! [`unpack`] reads one platform back out of a layout. [`cli`] is the command line the binary
//! runs.

pub mod bundle;
pub mod cli;
pub mod cosign;
pub mod credentials;
pub mod elf;
pub mod error;
pub mod flash_image;
pub mod image;
pub mod inputs;
pub mod ota;
pub mod platform;
pub mod remote;
pub mod sign;
pub mod sink;
pub mod unpack;
pub mod verify;
