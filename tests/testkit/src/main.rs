//! `sample-firmware OUT_DIR [CHIP...]`: writes generated ESP-IDF build directories, one per chip
//! (default esp32, esp32s3, esp32c3), for demos and benchmarks without a real build.

use std::path::PathBuf;

use ::firmware::chip::Chip;
use anyhow::{Context, Result, bail};
use testkit::idf_build::{BuildSpec, write_build};

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let Some(out) = args.next().map(PathBuf::from) else {
        bail!("usage: sample-firmware OUT_DIR [CHIP...]  (chips default to esp32 esp32s3 esp32c3)");
    };
    let mut chips: Vec<Chip> = args.map(|a| a.parse()).collect::<Result<_, _>>()?;
    if chips.is_empty() {
        chips = vec![Chip::Esp32, Chip::Esp32s3, Chip::Esp32c3];
    }
    for chip in chips {
        let dir = out.join(chip.name());
        let mut spec = BuildSpec::new(chip);
        spec.app_len = 1536 * 1024;
        spec.app_slot = 0x18_0000;
        spec.table = testkit::idf_build::TableKind::OtaOnly;
        write_build(&dir, &spec).with_context(|| format!("writing {}", dir.display()))?;
        println!("{}", dir.display());
    }
    Ok(())
}
