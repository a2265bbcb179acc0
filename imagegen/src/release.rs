//! What a release of a bundle is called: the tags and the annotations of every image built from
//! it (flash image, OTA index, raw OTA artifacts), written once here.

use std::collections::BTreeMap;

use crate::bundle::Bundle;
use crate::oci::Timestamp;

/// Prefix of this project's own annotations.
pub const ANNOTATION_PREFIX: &str = "io.esp-flash";

/// Annotation listing the targets of an image (`esp32,esp32c3`).
pub const TARGETS: &str = "io.esp-flash.targets";
/// Annotation naming the one target of a raw OTA artifact.
pub const TARGET: &str = "io.esp-flash.target";
/// Annotation carrying the application type.
pub const APP_TYPE: &str = "io.esp-flash.app-type";

/// Release details that go into tags and annotations.
#[derive(Debug, Clone, Default)]
pub struct Release {
    /// Creation time.
    pub created: Timestamp,
    /// Source repository URL.
    pub source: Option<String>,
    /// Extra tags for the index.
    pub extra_tags: Vec<String>,
}

/// The names a bundle's images get: tag parts and the details annotations carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Naming {
    /// `<app_type>` of tags: as given, else the first target's app name.
    pub app_type: String,
    /// `<version>` of tags: as given, else the first target's app version.
    pub version: String,
    /// The first seven characters of the revision, if there is one.
    pub sha7: Option<String>,
    /// The full source revision, if there is one.
    pub revision: Option<String>,
    /// The first target's app name (titles).
    pub app_name: String,
    /// The targets' names, in order.
    pub targets: Vec<String>,
}

impl Naming {
    /// The names of `bundle`'s images.
    pub fn of(bundle: &Bundle) -> Naming {
        let m = bundle.manifest();
        let first = m.targets.first().map(|t| &t.app);
        let or = |given: &Option<String>, derived: Option<&String>, default: &str| {
            given
                .clone()
                .or_else(|| derived.cloned())
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| default.into())
        };
        Naming {
            app_type: or(&m.app_type, first.map(|a| &a.name), "app"),
            version: or(&m.version, first.map(|a| &a.version), "0.0.0"),
            sha7: m.revision.as_deref().map(|r| r.chars().take(7).collect()),
            revision: m.revision.clone(),
            app_name: first.map_or("app", |a| a.name.as_str()).to_string(),
            targets: m.targets.iter().map(|t| t.name.clone()).collect(),
        }
    }

    /// The index tags: `<app_type>-<version>`, then the extra tags.
    pub fn index_tags(&self, release: &Release) -> Vec<String> {
        let mut tags = vec![format!("{}-{}", self.app_type, self.version)];
        tags.extend(release.extra_tags.iter().cloned());
        tags
    }

    /// The tag of one image of the index: `<prefix>-<app_type>-<version>[-<sha7>]`, where the
    /// prefix is the architecture (flash image) or the target (OTA).
    pub fn image_tag(&self, prefix: &str) -> String {
        let tag = format!("{prefix}-{}-{}", self.app_type, self.version);
        match &self.sha7 {
            Some(sha) => format!("{tag}-{sha}"),
            None => tag,
        }
    }

    /// The annotations every image of the release carries: creation time, `version`, the title
    /// `<app>-<kind>` (`flash`, `ota`), revision, source and app type.
    pub fn annotations(
        &self,
        release: &Release,
        kind: &str,
        version: &str,
    ) -> BTreeMap<String, String> {
        let oci = |k: &str| format!("org.opencontainers.image.{k}");
        let mut a = BTreeMap::new();
        a.insert(oci("created"), release.created.as_str().to_string());
        a.insert(oci("version"), version.to_string());
        a.insert(oci("title"), format!("{}-{kind}", self.app_name));
        if let Some(rev) = &self.revision {
            a.insert(oci("revision"), rev.clone());
        }
        if let Some(src) = &release.source {
            a.insert(oci("source"), src.clone());
        }
        a.insert(APP_TYPE.into(), self.app_type.clone());
        a
    }
}
