//! What to erase before the regions are written: the whole chip (`--erase-all`), partitions by
//! label (`--erase-parts`), or the data partitions of the table being written
//! (`--erase-data-parts`, as espflash selects them: type `data`, optionally of given subtypes).

use std::fmt::Write as _;

use esp_idf_part::{DataType, SubType, Type};

use super::Plan;
use crate::error::PlanError;

/// What the command line asks to erase.
#[derive(Debug, Clone, Default)]
pub struct EraseRequest {
    /// Erase the whole chip first.
    pub all: bool,
    /// Partitions to erase, by label.
    pub labels: Vec<String>,
    /// Erase the table's data partitions: all of them (an empty list), or those of these
    /// subtypes.
    pub data: Option<Vec<DataType>>,
}

impl EraseRequest {
    /// Whether anything is to be erased.
    pub fn is_empty(&self) -> bool {
        !self.all && self.labels.is_empty() && self.data.is_none()
    }
}

/// A part of the flash erased before the regions are written; regions written over it end as
/// written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Erase {
    /// The whole chip (ERASE_FLASH), beyond the plan's flash size if the chip has more.
    Chip,
    /// One partition of the table (ERASE_REGION).
    Partition {
        /// The partition's label.
        label: String,
        /// Flash offset.
        offset: u32,
        /// Length in bytes.
        size: u32,
    },
}

impl Erase {
    /// The range of the plan's flash this erases: `(offset, size)`.
    pub fn range(&self, flash_bytes: u64) -> (u32, u32) {
        match self {
            Erase::Chip => (0, flash_bytes as u32),
            Erase::Partition { offset, size, .. } => (*offset, *size),
        }
    }

    /// The label shown in the plan and the report: the partition's, or `whole flash`.
    pub fn label(&self) -> &str {
        match self {
            Erase::Chip => "whole flash",
            Erase::Partition { label, .. } => label,
        }
    }
}

impl Plan {
    /// The plan with what `req` asks to erase, in offset order: an unknown label is an error
    /// naming the table's labels.
    pub fn with_erases(mut self, req: &EraseRequest) -> Result<Plan, PlanError> {
        if req.all {
            self.erases = vec![Erase::Chip];
            return Ok(self);
        }
        let mut erases = Vec::new();
        for label in &req.labels {
            let part = self
                .table
                .find(label)
                .ok_or_else(|| PlanError::UnknownPartition {
                    label: label.clone(),
                    labels: self.table_labels(),
                })?;
            erases.push(partition(part));
        }
        if let Some(subtypes) = &req.data {
            erases.extend(
                self.table
                    .partitions()
                    .iter()
                    .filter(|p| p.ty() == Type::Data)
                    .filter(|p| {
                        subtypes.is_empty()
                            || subtypes.iter().any(|&t| p.subtype() == SubType::Data(t))
                    })
                    .map(partition),
            );
        }
        erases.sort_by_key(|e| e.range(0).0);
        erases.dedup();
        self.erases = erases;
        Ok(self)
    }

    /// The labels of the table, comma-separated, for messages.
    fn table_labels(&self) -> String {
        let names: Vec<String> = self.table.partitions().iter().map(|p| p.name()).collect();
        names.join(", ")
    }

    /// The erase lines of `--dry-run`.
    pub(super) fn describe_erases(&self, s: &mut String) {
        if self.erases.is_empty() {
            return;
        }
        let _ = writeln!(
            s,
            "erased before writing (regions written over them end as written):"
        );
        for e in &self.erases {
            match e {
                Erase::Chip => {
                    let _ = writeln!(s, "  whole flash (the chip is erased, then written)");
                }
                Erase::Partition {
                    label,
                    offset,
                    size,
                } => {
                    let _ = writeln!(s, "  {offset:#09x} {label:<16} {size:>9} bytes");
                }
            }
        }
    }
}

fn partition(p: &esp_idf_part::Partition) -> Erase {
    Erase::Partition {
        label: p.name(),
        offset: p.offset(),
        size: p.size(),
    }
}
