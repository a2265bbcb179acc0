//! ESP-IDF's mass manufacturing inputs (`tools/mass_mfg/mfg_gen.py`): a config CSV
//! (`key,type,encoding[,REPEAT]`, with `namespace` rows) and a values CSV (a header row of
//! keys, then one row per board). For one row, [`Batch::image`] gives the NVS image
//! `mfg_gen.py generate` writes for it, that is `nvs_partition_gen.py` run on the per-row CSV
//! `mfg_gen.py` makes ([`Batch::row_csv`]).
//!
//! The first column of the values file is the row id: a column not in the config (`id`, as in
//! ESP-IDF's samples) or the first config key itself. Row ids are unique and not empty.
//! Every other column is a config key, in config order. Rows are refused, with their row id,
//! key and reason, when a value does not fit its encoding or the data does not fit the
//! partition; [`Batch::check`] runs that for every row before a board is written.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::RowId;
use crate::csv::{self, CsvError, LineFilter};
use crate::nvs::{self, Encoding, PartitionSize, Problem, Row, RowKind, SizeError, Source};

/// The encodings `mfg_gen.py` accepts in a config file (no i16, u64 or i64).
const MFG_ENCODINGS: [Encoding; 9] = [
    Encoding::String,
    Encoding::Binary,
    Encoding::Hex2bin,
    Encoding::U8,
    Encoding::I8,
    Encoding::U16,
    Encoding::U32,
    Encoding::I32,
    Encoding::Base64,
];

/// Which of the two input files an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputFile {
    /// The config CSV.
    Config,
    /// The values CSV.
    Values,
}

impl fmt::Display for InputFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            InputFile::Config => "config file",
            InputFile::Values => "values file",
        })
    }
}

/// Why a config line is refused.
#[derive(Debug, Error)]
pub enum ConfigProblem {
    /// Not `key,type,encoding` or `key,type,encoding,REPEAT`.
    #[error("{0} fields; a config line is key,type,encoding with an optional REPEAT")]
    FieldCount(usize),
    /// A type other than data, file, namespace.
    #[error("unknown type `{0}`; use data, file or namespace")]
    UnknownType(String),
    /// An encoding `mfg_gen.py` does not accept.
    #[error(
        "encoding `{0}` is not one mfg_gen accepts; use string, binary, hex2bin, base64, u8, i8, u16, u32 or i32"
    )]
    UnknownEncoding(String),
    /// `namespace` or `REPEAT` used as a key or encoding, which `mfg_gen.py` misreads.
    #[error("`{0}` as a key or encoding is misread by mfg_gen; rename it")]
    ReservedWord(String),
    /// A namespace row with an encoding or REPEAT.
    #[error(
        "a namespace line is `NAME,namespace,` (no encoding, no REPEAT); remove the extra field"
    )]
    NamespaceExtra,
    /// A key line before any namespace line.
    #[error("the key comes before any namespace line; start with `NAME,namespace,`")]
    NoNamespace,
    /// The key itself is refused.
    #[error("{0}")]
    Key(Problem),
}

/// Why the mass manufacturing inputs, or one row of them, are refused.
#[derive(Debug, Error)]
pub enum MassError {
    /// The partition size is refused.
    #[error(transparent)]
    Size(#[from] SizeError),
    /// A file cannot be read.
    #[error("cannot read the {which} {path}: {source}; check the path")]
    Read {
        /// Which input.
        which: InputFile,
        /// Its path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file cannot be split into CSV records.
    #[error("{which}: {error}")]
    Csv {
        /// Which input.
        which: InputFile,
        /// Why.
        error: CsvError,
    },
    /// A file has no rows.
    #[error("the {0} is empty; give it its rows")]
    Empty(InputFile),
    /// A config line is refused.
    #[error("config file line {line}, key `{key}`: {problem}")]
    Config {
        /// Line in the config file.
        line: usize,
        /// The line's key.
        key: String,
        /// Why.
        problem: ConfigProblem,
    },
    /// The values header does not name the config keys.
    #[error(
        "values file header `{found}` does not match the config: it must be the config keys in order ({expected}), optionally after a row-id column; add, remove or reorder columns"
    )]
    Header {
        /// The header as read.
        found: String,
        /// The config keys.
        expected: String,
    },
    /// A values row has a different number of cells than the header.
    #[error(
        "values file line {line}: {count} cells but the header names {expected}; give every row one cell per column"
    )]
    CellCount {
        /// Line in the values file.
        line: usize,
        /// Cells found.
        count: usize,
        /// Columns in the header.
        expected: usize,
    },
    /// A values row with no row id.
    #[error("values file line {line}: the row id (first column) is empty; give every row an id")]
    EmptyRowId {
        /// Line in the values file.
        line: usize,
    },
    /// Two values rows with the same id.
    #[error(
        "values file line {line}: row id `{row}` is already used on line {first}; give every row its own id"
    )]
    DuplicateRowId {
        /// The id.
        row: RowId,
        /// Line of the second use.
        line: usize,
        /// Line of the first use.
        first: usize,
    },
    /// A cell spanning several lines (`mfg_gen.py` rewrites its line ends).
    #[error(
        "row `{row}`, key `{key}`: the value spans several lines; keep it on one line or put it in a file (type file)"
    )]
    MultiLine {
        /// The row.
        row: RowId,
        /// The column's key.
        key: String,
    },
    /// A REPEAT key with a value of its own past the first row (`mfg_gen.py` would drop it).
    #[error(
        "row `{row}`, key `{key}`: REPEAT takes the first row's value `{first}` for every row, but this row gives `{found}`; leave the cell empty or give the same value"
    )]
    RepeatConflict {
        /// The row.
        row: RowId,
        /// The REPEAT key.
        key: String,
        /// The first row's value.
        first: String,
        /// This row's value.
        found: String,
    },
    /// A row id equal to the first config key, which `mfg_gen.py` takes as that key's value.
    #[error(
        "row `{row}`: the row id equals the key `{row}`, which mfg_gen would take as that key's value; change the id"
    )]
    IdIsKey {
        /// The row.
        row: RowId,
    },
    /// A row id not in the values file.
    #[error("row `{0}` is not in the values file; use one of its row ids")]
    UnknownRow(RowId),
    /// One of a row's entries is refused.
    #[error("row `{row}`, key `{key}`: {problem}")]
    Entry {
        /// The row.
        row: RowId,
        /// The key.
        key: String,
        /// Why.
        problem: Problem,
    },
}

/// One line of the config file.
#[derive(Debug, Clone)]
struct ConfigLine {
    key: String,
    kind: ConfigKind,
    repeat: bool,
}

#[derive(Debug, Clone, Copy)]
enum ConfigKind {
    Namespace,
    Entry { file: bool, encoding: Encoding },
}

/// One board's row of the values file.
#[derive(Debug, Clone)]
struct ValuesRow {
    id: RowId,
    /// The config keys' values, in config key order (REPEAT values already filled in).
    values: Vec<String>,
}

/// The config and values of a production batch, checked and ready to give each row's image.
#[derive(Debug, Clone)]
pub struct Batch {
    config: Vec<ConfigLine>,
    rows: Vec<ValuesRow>,
    size: PartitionSize,
    files_dir: PathBuf,
}

impl Batch {
    /// Reads the config and values files; `file` values are read relative to the values
    /// file's directory.
    pub fn open(config: &Path, values: &Path, size: u32) -> Result<Batch, MassError> {
        let read = |which, path: &Path| {
            std::fs::read_to_string(path).map_err(|source| MassError::Read {
                which,
                path: path.to_path_buf(),
                source,
            })
        };
        let files_dir = values.parent().unwrap_or(Path::new("")).to_path_buf();
        Batch::new(
            &read(InputFile::Config, config)?,
            &read(InputFile::Values, values)?,
            size,
            &files_dir,
        )
    }

    /// Parses and checks the config and values texts; `file` values are read relative to
    /// `files_dir` (`mfg_gen.py` reads them relative to its working directory).
    pub fn new(
        config: &str,
        values: &str,
        size: u32,
        files_dir: &Path,
    ) -> Result<Batch, MassError> {
        let size = PartitionSize::new(size)?;
        let config = parse_config(config)?;
        let keys: Vec<&str> = config
            .iter()
            .filter(|c| !matches!(c.kind, ConfigKind::Namespace))
            .map(|c| c.key.as_str())
            .collect();
        let rows = parse_values(values, &keys, &config)?;
        Ok(Batch {
            config,
            rows,
            size,
            files_dir: files_dir.to_path_buf(),
        })
    }

    /// The row ids, in values file order.
    pub fn row_ids(&self) -> Vec<RowId> {
        self.rows.iter().map(|r| r.id.clone()).collect()
    }

    /// The NVS image for row `id`.
    pub fn image(&self, id: &RowId) -> Result<Vec<u8>, MassError> {
        let row = self.row(id)?;
        let nvs_rows = self.nvs_rows(row);
        nvs::image(&nvs_rows, self.size, &self.files_dir).map_err(|e| MassError::Entry {
            row: row.id.clone(),
            key: e.key,
            problem: e.problem,
        })
    }

    /// Makes every row's image and returns every row's refusal (empty when all rows are good).
    pub fn check(&self) -> Vec<MassError> {
        self.rows
            .iter()
            .filter_map(|r| self.image(&r.id).err())
            .collect()
    }

    /// The per-row CSV `mfg_gen.py` writes for row `id` (its `csv/PREFIX-ID.csv`), which
    /// `nvs_partition_gen.py` turns into the same image as [`Batch::image`].
    pub fn row_csv(&self, id: &RowId) -> Result<String, MassError> {
        let row = self.row(id)?;
        let mut out = String::new();
        csv::write_record(&mut out, &["key", "type", "encoding", "value"]);
        for r in self.nvs_rows(row) {
            match r.kind {
                RowKind::Namespace => csv::write_record(&mut out, &[&r.key, "namespace", "", ""]),
                RowKind::Entry { encoding, source } => {
                    let (kind, value) = match &source {
                        Source::Data(v) => ("data", v.clone()),
                        Source::File(p) => ("file", p.to_string_lossy().into_owned()),
                    };
                    csv::write_record(&mut out, &[&r.key, kind, encoding.name(), &value]);
                }
            }
        }
        Ok(out)
    }

    fn row(&self, id: &RowId) -> Result<&ValuesRow, MassError> {
        self.rows
            .iter()
            .find(|r| &r.id == id)
            .ok_or_else(|| MassError::UnknownRow(id.clone()))
    }

    /// The generator's rows for one board: the config lines with the row's values.
    fn nvs_rows(&self, row: &ValuesRow) -> Vec<Row> {
        let mut values = row.values.iter();
        self.config
            .iter()
            .map(|c| {
                let kind = match c.kind {
                    ConfigKind::Namespace => RowKind::Namespace,
                    ConfigKind::Entry { file, encoding } => {
                        let value = values.next().expect("one value per config key").clone();
                        let source = if file {
                            Source::File(PathBuf::from(value))
                        } else {
                            Source::Data(value)
                        };
                        RowKind::Entry { encoding, source }
                    }
                };
                Row {
                    key: c.key.clone(),
                    kind,
                }
            })
            .collect()
    }
}

fn records(text: &str, which: InputFile) -> Result<Vec<csv::Record>, MassError> {
    let records =
        csv::records(text, LineFilter::Blank).map_err(|error| MassError::Csv { which, error })?;
    if records.is_empty() {
        return Err(MassError::Empty(which));
    }
    Ok(records)
}

/// Reads the config file with `mfg_gen.py`'s checks (and refuses what it misreads).
fn parse_config(text: &str) -> Result<Vec<ConfigLine>, MassError> {
    let mut lines = Vec::new();
    let mut in_namespace = false;
    for record in records(text, InputFile::Config)? {
        let key = record.fields[0].clone();
        let fail = |problem| MassError::Config {
            line: record.line,
            key: key.clone(),
            problem,
        };
        let config = config_line(&record.fields).map_err(fail)?;
        match config.0 {
            ConfigKind::Namespace => in_namespace = true,
            ConfigKind::Entry { .. } if !in_namespace => {
                return Err(fail(ConfigProblem::NoNamespace));
            }
            ConfigKind::Entry { .. } => {}
        }
        nvs::check_key(&key).map_err(|p| fail(ConfigProblem::Key(p)))?;
        lines.push(ConfigLine {
            key,
            kind: config.0,
            repeat: config.1,
        });
    }
    Ok(lines)
}

/// One config line's kind and REPEAT flag.
fn config_line(fields: &[String]) -> Result<(ConfigKind, bool), ConfigProblem> {
    let repeat = match fields {
        [_, _, _] => false,
        [_, _, _, last] if last == "REPEAT" => true,
        _ => return Err(ConfigProblem::FieldCount(fields.len())),
    };
    let (key, kind, encoding) = (&fields[0], &fields[1], &fields[2]);
    if let Some(word) = [key, encoding]
        .into_iter()
        .find(|f| *f == "namespace" || *f == "REPEAT")
    {
        return Err(ConfigProblem::ReservedWord(word.clone()));
    }
    match kind.as_str() {
        "namespace" if encoding.is_empty() && !repeat => Ok((ConfigKind::Namespace, false)),
        "namespace" => Err(ConfigProblem::NamespaceExtra),
        "data" | "file" => {
            let encoding = Encoding::from_name(encoding)
                .filter(|e| MFG_ENCODINGS.contains(e))
                .ok_or_else(|| ConfigProblem::UnknownEncoding(encoding.clone()))?;
            Ok((
                ConfigKind::Entry {
                    file: kind == "file",
                    encoding,
                },
                repeat,
            ))
        }
        other => Err(ConfigProblem::UnknownType(other.to_string())),
    }
}

/// Reads the values file: header check, then one row per board with REPEAT filled in.
fn parse_values(
    text: &str,
    keys: &[&str],
    config: &[ConfigLine],
) -> Result<Vec<ValuesRow>, MassError> {
    let records = records(text, InputFile::Values)?;
    let (header, body) = records.split_first().expect("records are not empty");
    let first_key_column = header_offset(&header.fields, keys)?;
    let repeats: Vec<bool> = config
        .iter()
        .filter(|c| !matches!(c.kind, ConfigKind::Namespace))
        .map(|c| c.repeat)
        .collect();
    let mut rows: Vec<ValuesRow> = Vec::with_capacity(body.len());
    let mut first_lines: HashMap<RowId, usize> = HashMap::new();
    for record in body {
        if record.fields.len() != header.fields.len() {
            return Err(MassError::CellCount {
                line: record.line,
                count: record.fields.len(),
                expected: header.fields.len(),
            });
        }
        let id = RowId::new(&record.fields[0]);
        if id.as_str().is_empty() {
            return Err(MassError::EmptyRowId { line: record.line });
        }
        if let Some(&first) = first_lines.get(&id) {
            return Err(MassError::DuplicateRowId {
                row: id,
                line: record.line,
                first,
            });
        }
        first_lines.insert(id.clone(), record.line);
        if first_key_column == 1 && id.as_str() == keys[0] {
            return Err(MassError::IdIsKey { row: id });
        }
        let mut values: Vec<String> = record.fields[first_key_column..].to_vec();
        for (i, value) in values.iter_mut().enumerate() {
            if value.contains('\n') {
                return Err(MassError::MultiLine {
                    row: id,
                    key: keys[i].to_string(),
                });
            }
            if let (true, Some(first)) = (repeats[i], rows.first()) {
                let first = &first.values[i];
                if !value.is_empty() && value != first {
                    return Err(MassError::RepeatConflict {
                        row: id,
                        key: keys[i].to_string(),
                        first: first.clone(),
                        found: value.clone(),
                    });
                }
                value.clone_from(first);
            }
        }
        rows.push(ValuesRow { id, values });
    }
    Ok(rows)
}

/// Where the config keys start in the header: 0 when the header is exactly the keys (the
/// first key is the row id), 1 when a row-id column comes first.
fn header_offset(header: &[String], keys: &[&str]) -> Result<usize, MassError> {
    if header.iter().map(String::as_str).eq(keys.iter().copied()) {
        return Ok(0);
    }
    if header.len() == keys.len() + 1
        && header[1..]
            .iter()
            .map(String::as_str)
            .eq(keys.iter().copied())
    {
        return Ok(1);
    }
    Err(MassError::Header {
        found: header.join(","),
        expected: keys.join(","),
    })
}
