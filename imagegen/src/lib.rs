//! imagegen: builds the multi-arch OCI flash images and the OTA images for ESP32-family boards
//! from ESP-IDF builds, and pushes them to registries, without a container engine.
//!
//! The pipeline is inputs → bundle → image → sink:
//! [`inputs`] reads ESP-IDF builds, [`bundle`] checks them and lays out `/firmware` with its
//! manifest, [`flash_image`] (over the generic [`oci`] types, named and annotated by
//! [`release`]) assembles the per-platform images and the index as an [`oci::Store`], which an
//! [`oci::Layout`], an [`oci::archive`] or a registry ([`oci::remote`], with [`credentials`])
//! receives. [`ota`] builds the OTA images from the same bundle; [`unpack`] reads one platform
//! back out of a layout. [`sign`] signs what is pushed in [`cosign`]'s format and [`verify`]
//! checks those signatures. [`atomic`] is how every output is written. [`cli`] is the command line
//! the binary runs.
#![warn(missing_docs)]

pub(crate) mod atomic;
pub mod build_args;
pub mod bundle;
pub mod cli;
pub mod cosign;
pub mod credentials;
pub mod elf;
pub mod error;
pub mod flash_image;
pub mod inputs;
pub mod oci;
pub mod ota;
pub mod platform;
pub mod release;
pub mod sign;
pub mod unpack;
pub mod verify;
