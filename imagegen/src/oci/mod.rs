//! OCI images in memory and where they go, in the manner of go-containerregistry: one model, a
//! [`Store`] of tagged manifests and indexes with their blobs, that every source produces and
//! every sink consumes.
//!
//! - [`image`]: reproducible single- and multi-platform images built in memory ([`Index`]);
//! - [`Layout`]: an OCI image layout directory, read into a store (digests checked) or written
//!   from one;
//! - [`archive`]: the archive `docker load` and `oci-archive:` tools take;
//! - [`remote`]: pushing a store to a registry, over a small client of the distribution API
//!   (`registry`) that trusts what [`trust`] says.

pub mod archive;
mod blob;
pub mod image;
pub mod layout;
mod registry;
pub mod remote;
mod store;
pub mod trust;

pub use blob::Blob;
pub use image::{Entry, Image, ImageSpec, Index, Layer, Timestamp, with_parent_dirs};
pub use layout::Layout;
pub use store::{Document, Plan, REF_NAME, Store, StoreError, check_tag, tag_of};
