//! The ESP32-family firmware format that `imagegen` and `flasher` share.
//!
//! Everything here is pure: it reads and checks bytes and never touches a board or the network.
//!
//! - [`chip`]: the chips and their fixed facts (image chip id, bootloader offset), and build
//!   target names with their PSRAM variant (`esp32s3r8`).
//! - [`flash_size`]: flash sizes as users and ESP-IDF write them.
//! - [`encrypt`]: flash encryption on the host, byte for byte as `espsecure` encrypts.
//! - [`esp_image`]: ESP firmware image headers, the app descriptor, header patching.
//! - [`partition`]: partition tables, binary and CSV, read without panics.
//! - [`sdkconfig`]: ESP-IDF `sdkconfig` files and the offsets they configure.
//! - [`manifest`]: the bundle (`/firmware`) and its `manifest.json`.
//! - [`legacy`]: the folder rules of bundles made by the original esptool-based image.
//! - [`override_table`]: the partition table `--override_pt` generates.
//! - [`placement`]: the rules every flash layout obeys (files inside their partitions and the
//!   flash, nothing overlapping, the table's own sector free), written once and returning typed
//!   violations that each tool words in its own terms.
//! - [`revision`]: the chip revisions an image accepts, checked against a board's.
//! - [`secure_boot`]: Secure Boot V2 public key digests, as `espsecure` computes them.
//! - [`time`]: RFC 3339 timestamps.
#![warn(missing_docs)]

pub mod chip;
pub mod encrypt;
pub mod esp_image;
pub mod flash_size;
pub mod legacy;
pub mod manifest;
pub mod override_table;
pub mod partition;
pub mod placement;
pub mod revision;
pub mod sdkconfig;
pub mod secure_boot;
pub mod time;
