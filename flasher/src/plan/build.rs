//! Turning a loaded target into the plan: one step per region kind (bootloader, partition
//! table, OTA data, app, model, data images), then the placement rules over the whole flash.

use esp_idf_part::{DataType, PartitionTable, SubType, Type};
use firmware::chip::TargetName;
use firmware::esp_image::{self, FlashMode, HeaderPatch, ImageError, ImageInfo};
use firmware::flash_size::FlashSize;
use firmware::override_table::{self, MODEL_PARTITION, OverrideMode, OverrideTableError};
use firmware::partition;
use firmware::placement::{
    self, DataViolation, Extent, ExtentViolation, ImageViolation, TableViolation, TooLarge,
};

use super::load::{BundleFile, DataFile, Loaded};
use super::{BoardData, Integrity, Plan, Region, Request, Source};
use crate::error::PlanError;

/// Which table the partitions come from: the build's, or `--override_pt`'s for this flash.
type Slots = Option<(OverrideMode, FlashSize)>;

/// The plan for `loaded` under `req`.
pub(super) fn build(req: &Request, loaded: Loaded) -> Result<Plan, PlanError> {
    let flash = req.flash_size;
    let slots = req.override_pt.map(|mode| (mode, flash));
    let mut notes = Vec::new();
    if loaded.integrity == Integrity::Unchecked {
        notes.push("this image has no manifest.json: no integrity check was possible".to_string());
    }
    let images = vec![
        (
            loaded.bootloader.path.clone(),
            check_image(&loaded.bootloader, &req.target)?,
        ),
        (
            loaded.app.path.clone(),
            check_image(&loaded.app, &req.target)?,
        ),
    ];
    let (table, table_region) = partition_table(req, &loaded)?;
    check_table(&table, &table_region, loaded.table_offset, flash)?;

    let mut regions = vec![bootloader(&loaded, flash, &mut notes)?, table_region];
    regions.extend(otadata(&table, &loaded, slots)?);
    regions.push(app(&table, &loaded, slots)?);
    regions.extend(model(&table, &loaded, slots, &mut notes)?);
    regions.extend(data(&table, &loaded, req.override_pt)?);
    let regions = place(regions, flash)?;
    Ok(Plan {
        target: loaded.target,
        chip: loaded.chip,
        flash_size: flash,
        table_offset: loaded.table_offset,
        table,
        regions,
        integrity: loaded.integrity,
        notes,
        images,
        erases: Vec::new(),
    })
}

fn check_image(file: &BundleFile, target: &TargetName) -> Result<ImageInfo, PlanError> {
    placement::check_image(&file.bytes, target.chip()).map_err(|v| match v {
        ImageViolation::Invalid(source) => PlanError::BadImage {
            file: file.path.clone(),
            source,
        },
        ImageViolation::WrongChip { built, expected } => PlanError::ImageChip {
            file: file.path.clone(),
            built,
            asked: target.to_string(),
            chip: expected,
        },
    })
}

fn read_table(file: &BundleFile) -> Result<PartitionTable, PlanError> {
    let bad = |reason: String| PlanError::BadTable {
        file: file.path.clone(),
        reason,
    };
    if file.path.ends_with(".csv") {
        let text = std::str::from_utf8(&file.bytes).map_err(|_| bad("not UTF-8 text".into()))?;
        partition::parse_csv(text).map_err(|e| bad(e.to_string()))
    } else {
        partition::parse_table(&file.bytes).map_err(|e| bad(e.to_string()))
    }
}

/// The partition table and its region: the bundle's, or generated across the whole flash.
fn partition_table(req: &Request, loaded: &Loaded) -> Result<(PartitionTable, Region), PlanError> {
    let from_csv = loaded.table.path.ends_with(".csv");
    let (table, bytes, source) = match req.override_pt {
        Some(mode) => {
            if mode.with_model() && loaded.model.is_none() {
                return Err(PlanError::NoModel { mode });
            }
            let model_len = loaded.model.as_ref().map(|m| m.bytes.len() as u64);
            let table = override_table::generate(
                loaded.table_offset,
                req.flash_size.bytes(),
                mode,
                model_len,
            )?;
            let bin = table
                .to_bin()
                .map_err(|e| OverrideTableError::Invalid(e.to_string()))?;
            let what = format!("--override_pt {mode} for {}", req.flash_size);
            (table, bin, Source::Generated(what))
        }
        None if from_csv => {
            let table = read_table(&loaded.table)?;
            let bin = table.to_bin().map_err(|e| PlanError::BadTable {
                file: loaded.table.path.clone(),
                reason: e.to_string(),
            })?;
            let what = format!("compiled from {}", loaded.table.path);
            (table, bin, Source::Generated(what))
        }
        None => (
            read_table(&loaded.table)?,
            loaded.table.bytes.clone(),
            Source::File(loaded.table.path.clone()),
        ),
    };
    let region = Region {
        offset: loaded.table_offset,
        bytes,
        label: "partition-table",
        source,
    };
    Ok((table, region))
}

/// No partition in the table's own sector, and the table inside the flash.
fn check_table(
    table: &PartitionTable,
    region: &Region,
    table_offset: u32,
    flash: FlashSize,
) -> Result<(), PlanError> {
    placement::check_table(table, table_offset, Some(flash.bytes())).map_err(|v| match v {
        TableViolation::InTableSector { .. } => PlanError::BadTable {
            file: region.source.to_string(),
            reason: v.to_string(),
        },
        TableViolation::BeyondFlash { end, .. } => too_small("the partition table", end, flash),
    })
}

fn too_small(what: &str, end: u64, flash: FlashSize) -> PlanError {
    PlanError::FlashTooSmall {
        what: what.to_string(),
        end,
        need_mb: end as f64 / f64::from(1 << 20),
        size: flash.to_string(),
    }
}

/// The bootloader, its header patched as esptool does for --flash_size/mode/freq.
fn bootloader(
    loaded: &Loaded,
    flash: FlashSize,
    notes: &mut Vec<String>,
) -> Result<Region, PlanError> {
    let file = &loaded.bootloader;
    let patch = HeaderPatch {
        mode: loaded.mode,
        freq_code: loaded
            .freq
            .as_deref()
            .and_then(|f| esp_image::flash_freq_code(loaded.chip, f)),
        size: Some(flash.bytes()),
    };
    let mut bytes = file.bytes.clone();
    let source = match esp_image::patch_header(&mut bytes, patch) {
        Ok(true) => Source::Patched(file.path.clone(), describe_patch(&file.bytes, &bytes)),
        Ok(false) => Source::File(file.path.clone()),
        Err(ImageError::Signed) => {
            notes.push(
                "the bootloader is signed (Secure Boot): its header is written as built".into(),
            );
            Source::File(file.path.clone())
        }
        Err(source) => {
            return Err(PlanError::BadImage {
                file: file.path.clone(),
                source,
            });
        }
    };
    Ok(Region {
        offset: loaded.bootloader_offset,
        bytes,
        label: "bootloader",
        source,
    })
}

/// OTA data: the bundle's ota_data_initial.bin, or an erased otadata partition.
fn otadata(
    table: &PartitionTable,
    loaded: &Loaded,
    slots: Slots,
) -> Result<Option<Region>, PlanError> {
    let Some(part) = partition::otadata_partition(table) else {
        return Ok(None);
    };
    let (bytes, source) = match &loaded.otadata {
        Some(f) => (f.bytes.clone(), Source::File(f.path.clone())),
        None => (
            vec![0xFF; part.size() as usize],
            Source::Generated("erased otadata".into()),
        ),
    };
    fits(&bytes, "ota_data_initial.bin", part, slots)?;
    Ok(Some(Region {
        offset: part.offset(),
        bytes,
        label: "otadata",
        source,
    }))
}

/// The app: into factory if the table has one, else ota_0.
fn app(table: &PartitionTable, loaded: &Loaded, slots: Slots) -> Result<Region, PlanError> {
    let part = partition::boot_app_partition(table)
        .ok_or_else(|| PlanError::NoAppPartition(loaded.target.clone()))?;
    fits(&loaded.app.bytes, &loaded.app.path, part, slots)?;
    Ok(Region {
        offset: part.offset(),
        bytes: loaded.app.bytes.clone(),
        label: "app",
        source: Source::File(loaded.app.path.clone()),
    })
}

/// The model, into tflite_model when the table has it.
fn model(
    table: &PartitionTable,
    loaded: &Loaded,
    slots: Slots,
    notes: &mut Vec<String>,
) -> Result<Option<Region>, PlanError> {
    let Some(model) = &loaded.model else {
        return Ok(None);
    };
    let Some(part) = table.find(MODEL_PARTITION).filter(|p| p.ty() == Type::Data) else {
        notes.push(format!(
            "{} is not written: the partition table has no {MODEL_PARTITION} partition",
            model.path
        ));
        return Ok(None);
    };
    fits(&model.bytes, &model.path, part, slots)?;
    Ok(Some(Region {
        offset: part.offset(),
        bytes: model.bytes.clone(),
        label: "model",
        source: Source::File(model.path.clone()),
    }))
}

/// The build's data images, each at its offset inside the partition it lands in. Under
/// `--override_pt` each goes into the generated partition of the same name, at the same place
/// within it; a generated table without that partition is refused.
fn data(
    table: &PartitionTable,
    loaded: &Loaded,
    override_pt: Option<OverrideMode>,
) -> Result<Vec<Region>, PlanError> {
    let build_table = match override_pt {
        Some(_) => Some(read_table(&loaded.table)?),
        None => None,
    };
    loaded
        .data
        .iter()
        .map(|d| {
            let offset = match (&build_table, override_pt) {
                (Some(built), Some(mode)) => moved_offset(built, table, d, mode)?,
                _ => d.offset,
            };
            let len = d.file.bytes.len() as u64;
            placement::check_data_lands(table, offset, len)
                .map_err(|v| data_placement(d, offset, v))?;
            Ok(Region {
                offset,
                bytes: d.file.bytes.clone(),
                label: "data",
                source: Source::Data(d.name.clone(), d.file.path.clone()),
            })
        })
        .collect()
}

/// Where a data image goes in the generated table: the same place within the partition of the
/// same name as in the build's table.
fn moved_offset(
    built: &PartitionTable,
    generated: &PartitionTable,
    d: &DataFile,
    mode: OverrideMode,
) -> Result<u32, PlanError> {
    let len = d.file.bytes.len() as u64;
    let part = placement::check_data_lands(built, d.offset, len)
        .map_err(|v| data_placement(d, d.offset, v))?;
    let target = generated
        .find(&part.name())
        .ok_or_else(|| PlanError::DataPartitionMissing {
            path: d.file.path.clone(),
            name: d.name.clone(),
            partition: part.name(),
            mode,
        })?;
    Ok(target.offset() + (d.offset - part.offset()))
}

fn data_placement(d: &DataFile, offset: u32, v: DataViolation) -> PlanError {
    PlanError::DataPlacement {
        path: d.file.path.clone(),
        name: d.name.clone(),
        offset,
        reason: v.to_string(),
    }
}

/// The data/nvs partition `label` of `table`, or an error naming the table's labels.
pub(super) fn nvs_partition<'t>(
    table: &'t PartitionTable,
    label: &str,
) -> Result<&'t esp_idf_part::Partition, PlanError> {
    let labels = |keep: &dyn Fn(&esp_idf_part::Partition) -> bool| {
        let names: Vec<String> = table
            .partitions()
            .iter()
            .filter(|p| keep(p))
            .map(|p| p.name())
            .collect();
        if names.is_empty() {
            "none".to_string()
        } else {
            names.join(", ")
        }
    };
    let is_nvs = |p: &esp_idf_part::Partition| p.subtype() == SubType::Data(DataType::Nvs);
    let part = table
        .find(label)
        .ok_or_else(|| PlanError::NoDataPartition {
            label: label.to_string(),
            available: labels(&|_| true),
        })?;
    if !is_nvs(part) {
        return Err(PlanError::NotNvs {
            label: label.to_string(),
            ty: part.ty().to_string(),
            subtype: part.subtype().to_string(),
            available: labels(&is_nvs),
        });
    }
    Ok(part)
}

/// `plan` plus one board's NVS image as the region `nvs` at its partition.
pub(super) fn with_board_data(plan: &Plan, data: BoardData) -> Result<Plan, PlanError> {
    let part = nvs_partition(&plan.table, &data.partition)?;
    fits(&data.bytes, &data.what, part, None)?;
    let region = Region {
        offset: part.offset(),
        bytes: data.bytes,
        label: "nvs",
        source: Source::Generated(data.what),
    };
    let mut regions = plan.regions.clone();
    regions.push(region);
    Ok(Plan {
        target: plan.target.clone(),
        chip: plan.chip,
        flash_size: plan.flash_size,
        table_offset: plan.table_offset,
        table: plan.table.clone(),
        regions: place(regions, plan.flash_size)?,
        integrity: plan.integrity,
        notes: plan.notes.clone(),
        images: plan.images.clone(),
        erases: plan.erases.clone(),
    })
}

/// Pads every region to a multiple of 4 as esptool does, sorts them, and checks that they lie
/// inside the flash without overlapping.
fn place(mut regions: Vec<Region>, flash: FlashSize) -> Result<Vec<Region>, PlanError> {
    for r in &mut regions {
        let padded = r.bytes.len().next_multiple_of(4);
        r.bytes.resize(padded, 0xFF);
    }
    regions.sort_by_key(|r| r.offset);
    let mut extents: Vec<Extent> = regions
        .iter()
        .map(|r| Extent::new(r.label, r.offset, r.bytes.len() as u64))
        .collect();
    placement::check_extents(&mut extents, Some(flash.bytes())).map_err(|v| match v {
        ExtentViolation::BeyondFlash { what, end, .. } => {
            too_small(&format!("the {what}"), end, flash)
        }
        ExtentViolation::Overlap {
            first,
            first_start,
            first_end,
            second,
            second_start,
        } => PlanError::Overlap {
            first,
            first_start: first_start as u32,
            first_end,
            second,
            second_start: second_start as u32,
        },
    })?;
    Ok(regions)
}

/// What patching changed in header bytes 2-3 (`size 4MB -> 8MB, mode qio -> dio`).
fn describe_patch(before: &[u8], after: &[u8]) -> String {
    let mut changes = Vec::new();
    let size = |b: u8| {
        esp_image::flash_size_from_code(b >> 4).map_or("?".into(), |s| format!("{}MB", s >> 20))
    };
    if before[3] >> 4 != after[3] >> 4 {
        changes.push(format!("size {} -> {}", size(before[3]), size(after[3])));
    }
    let mode =
        |b: u8| FlashMode::from_code(b).map_or("?".into(), |m| format!("{m:?}").to_lowercase());
    if before[2] != after[2] {
        changes.push(format!("mode {} -> {}", mode(before[2]), mode(after[2])));
    }
    if before[3] & 0xF != after[3] & 0xF {
        changes.push(format!(
            "freq code {:#x} -> {:#x}",
            before[3] & 0xF,
            after[3] & 0xF
        ));
    }
    changes.join(", ")
}

/// Checks that `bytes` fit `partition`; the error depends on whether the table was generated.
fn fits(
    bytes: &[u8],
    what: &str,
    partition: &esp_idf_part::Partition,
    slots: Slots,
) -> Result<(), PlanError> {
    placement::check_fits(bytes.len() as u64, partition).map_err(
        |TooLarge {
             partition, size, ..
         }| {
            let (what, len) = (what.to_string(), bytes.len());
            match slots {
                Some((mode, flash)) => PlanError::SlotTooSmall {
                    what,
                    len,
                    partition,
                    size,
                    mode,
                    flash: flash.to_string(),
                },
                None => PlanError::DoesNotFit {
                    what,
                    len,
                    partition,
                    size,
                },
            }
        },
    )
}
