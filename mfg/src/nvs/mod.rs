//! NVS partition images, byte for byte as ESP-IDF's `nvs_partition_gen.py`
//! (PyPI `esp-idf-nvs-partition-gen`, `generate` command, version 2 format) writes them.
//!
//! The input is the generator's CSV (`key,type,encoding,value`, with `namespace` rows) or the
//! same rows built in code ([`Row`]). Every row is decoded and checked before any page is laid
//! out, so a refused input yields an error and no image. Inputs the generator would write
//! wrongly or crash on are refused with the reason (see `docs/mfg.md`); encryption is not
//! supported.
//!
//! ```
//! let csv = "key,type,encoding,value\nstorage,namespace,,\nserial,data,string,SN-0001\n";
//! let image = mfg::nvs::image_from_csv(csv, std::path::Path::new("."), 0x3000).unwrap();
//! assert_eq!(image.len(), 0x3000);
//! ```

mod error;
mod layout;
mod value;
mod wifi;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

pub use error::{EntryError, NvsError, Problem, SizeError};

use crate::csv::{self, LineFilter};
use layout::{Layout, LayoutError, PAGE_SIZE};
use value::{Payload, Raw};
use wifi::WifiState;

/// How a value is encoded, as named in the generator's encoding column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// Unsigned 8-bit integer.
    U8,
    /// Signed 8-bit integer.
    I8,
    /// Unsigned 16-bit integer.
    U16,
    /// Signed 16-bit integer.
    I16,
    /// Unsigned 32-bit integer.
    U32,
    /// Signed 32-bit integer.
    I32,
    /// Unsigned 64-bit integer.
    U64,
    /// Signed 64-bit integer.
    I64,
    /// UTF-8 text, stored with a terminating NUL.
    String,
    /// Hex digits, stored as the bytes they spell (a blob).
    Hex2bin,
    /// Base64 text, stored as the bytes it decodes to (a blob).
    Base64,
    /// The value's (or file's) bytes as they are (a blob).
    Binary,
}

const ENCODINGS: [(Encoding, &str); 12] = [
    (Encoding::U8, "u8"),
    (Encoding::I8, "i8"),
    (Encoding::U16, "u16"),
    (Encoding::I16, "i16"),
    (Encoding::U32, "u32"),
    (Encoding::I32, "i32"),
    (Encoding::U64, "u64"),
    (Encoding::I64, "i64"),
    (Encoding::String, "string"),
    (Encoding::Hex2bin, "hex2bin"),
    (Encoding::Base64, "base64"),
    (Encoding::Binary, "binary"),
];

impl Encoding {
    /// The encoding named `name` (lower case, as the generator spells it).
    pub fn from_name(name: &str) -> Option<Encoding> {
        ENCODINGS.iter().find(|(_, n)| *n == name).map(|(e, _)| *e)
    }

    /// The generator's name for it.
    pub fn name(self) -> &'static str {
        ENCODINGS
            .iter()
            .find(|(e, _)| *e == self)
            .map(|(_, n)| *n)
            .expect("every encoding is named")
    }

    /// For integers: NVS type code, width in bytes, smallest and largest value.
    fn primitive(self) -> Option<(u8, usize, i128, i128)> {
        Some(match self {
            Encoding::U8 => (0x01, 1, 0, u8::MAX.into()),
            Encoding::I8 => (0x11, 1, i8::MIN.into(), i8::MAX.into()),
            Encoding::U16 => (0x02, 2, 0, u16::MAX.into()),
            Encoding::I16 => (0x12, 2, i16::MIN.into(), i16::MAX.into()),
            Encoding::U32 => (0x04, 4, 0, u32::MAX.into()),
            Encoding::I32 => (0x14, 4, i32::MIN.into(), i32::MAX.into()),
            Encoding::U64 => (0x08, 8, 0, u64::MAX.into()),
            Encoding::I64 => (0x18, 8, i64::MIN.into(), i64::MAX.into()),
            _ => return None,
        })
    }
}

impl fmt::Display for Encoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where an entry's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Inline in the CSV (type `data`).
    Data(String),
    /// A file's contents (type `file`); a relative path starts at the files directory.
    File(PathBuf),
}

/// What a row declares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowKind {
    /// A `namespace` row: the following entries go into the namespace named by the key.
    Namespace,
    /// A key with its encoding and value.
    Entry {
        /// How the value is encoded.
        encoding: Encoding,
        /// The value, inline or from a file.
        source: Source,
    },
}

/// One row of the generator's CSV.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// The key (or namespace name).
    pub key: String,
    /// What the row declares.
    pub kind: RowKind,
}

/// A partition size the generator accepts: whole 4096-byte pages, at least three.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionSize(u32);

impl PartitionSize {
    /// Checks `bytes` as the generator's `check_size` does. Sizes below 0x3000 (which the
    /// generator writes as short read-only images) are refused.
    pub fn new(bytes: u32) -> Result<PartitionSize, SizeError> {
        if !bytes.is_multiple_of(PAGE_SIZE as u32) {
            return Err(SizeError::NotPageMultiple(bytes));
        }
        if bytes < 3 * PAGE_SIZE as u32 {
            return Err(SizeError::TooSmall(bytes));
        }
        Ok(PartitionSize(bytes))
    }

    /// The size in bytes.
    pub fn bytes(self) -> u32 {
        self.0
    }

    fn pages(self) -> usize {
        self.0 as usize / PAGE_SIZE
    }
}

/// An entry checked and decoded, ready to lay out, with the row it comes from.
struct Item {
    row: usize,
    key: String,
    content: Content,
}

enum Content {
    /// A namespace's entry, with its index.
    Namespace(u8),
    /// A key's value in namespace `ns`.
    Value { ns: u8, payload: Payload },
}

/// The image for `rows` in a partition of `size`, reading `file` rows relative to `files_dir`.
pub fn image(rows: &[Row], size: PartitionSize, files_dir: &Path) -> Result<Vec<u8>, EntryError> {
    let items = resolve(rows, files_dir)?;
    lay_out(&items, size, rows)
}

/// The image for the generator's CSV `text` in a partition of `size` bytes, reading `file`
/// rows relative to `files_dir` (the generator reads them relative to its working directory).
pub fn image_from_csv(text: &str, files_dir: &Path, size: u32) -> Result<Vec<u8>, NvsError> {
    let size = PartitionSize::new(size)?;
    let (lines, rows) = read_csv(text)?;
    image(&rows, size, files_dir).map_err(|e| NvsError::Entry {
        line: lines[e.index],
        key: e.key,
        problem: e.problem,
    })
}

/// Reads the generator's CSV into rows, with the line each starts on.
pub fn read_csv(text: &str) -> Result<(Vec<usize>, Vec<Row>), NvsError> {
    let records = csv::records(text, LineFilter::Comments)?;
    let Some((header, body)) = records.split_first() else {
        return Err(NvsError::Header {
            found: String::new(),
            hint: "",
        });
    };
    let columns = header_columns(&header.fields)?;
    let mut lines = Vec::with_capacity(body.len());
    let mut rows = Vec::with_capacity(body.len());
    for record in body {
        if record.fields.len() > 4 {
            return Err(NvsError::ExtraFields {
                line: record.line,
                count: record.fields.len(),
            });
        }
        let field = |i: usize| record.fields.get(columns[i]).map(String::as_str);
        let key = field(0).unwrap_or("").to_string();
        let kind = row_kind(field(1), field(2), field(3)).map_err(|problem| NvsError::Entry {
            line: record.line,
            key: key.clone(),
            problem,
        })?;
        lines.push(record.line);
        rows.push(Row { key, kind });
    }
    Ok((lines, rows))
}

/// Positions of key, type, encoding and value in the header.
fn header_columns(header: &[String]) -> Result<[usize; 4], NvsError> {
    let found = header.join(",");
    let hint = if found.starts_with('\u{feff}') {
        " (the file starts with a byte order mark: save it as UTF-8 without BOM)"
    } else {
        ""
    };
    let bad = || NvsError::Header {
        found: found.clone(),
        hint,
    };
    let mut columns = [0; 4];
    for (slot, name) in columns.iter_mut().zip(["key", "type", "encoding", "value"]) {
        *slot = header.iter().position(|h| h == name).ok_or_else(bad)?;
    }
    if header.len() != 4 {
        return Err(bad());
    }
    Ok(columns)
}

/// Builds a row's kind from its type, encoding and value columns (absent when the row is short).
pub(crate) fn row_kind(
    kind: Option<&str>,
    encoding: Option<&str>,
    value: Option<&str>,
) -> Result<RowKind, Problem> {
    let (encoding, value) = (encoding.unwrap_or(""), value.unwrap_or(""));
    match kind.unwrap_or("") {
        "namespace" if encoding.is_empty() && value.is_empty() => Ok(RowKind::Namespace),
        "namespace" => Err(Problem::NamespaceWithValue(format!("{encoding}{value}"))),
        kind @ ("data" | "file") => {
            let encoding = Encoding::from_name(encoding)
                .ok_or_else(|| Problem::UnknownEncoding(encoding.to_string()))?;
            let source = if kind == "data" {
                Source::Data(value.to_string())
            } else {
                Source::File(PathBuf::from(value))
            };
            Ok(RowKind::Entry { encoding, source })
        }
        other => Err(Problem::UnknownType(other.to_string())),
    }
}

/// Checks and decodes every row, adding the entries the generator derives, in write order.
fn resolve(rows: &[Row], files_dir: &Path) -> Result<Vec<Item>, EntryError> {
    let mut namespaces = Namespaces::default();
    let mut wifi = WifiState::default();
    let mut items = Vec::with_capacity(rows.len());
    for (index, row) in rows.iter().enumerate() {
        let fail = |problem| EntryError {
            index,
            key: row.key.clone(),
            problem,
        };
        check_key(&row.key).map_err(fail)?;
        match &row.kind {
            RowKind::Namespace => {
                if wifi::KEYS.contains(&row.key.as_str()) {
                    return Err(fail(Problem::WifiKeyNotData(row.key.clone())));
                }
                if let Some(ns) = namespaces.open(&row.key).map_err(fail)? {
                    items.push(Item {
                        row: index,
                        key: row.key.clone(),
                        content: Content::Namespace(ns),
                    });
                }
            }
            RowKind::Entry { encoding, source } => {
                let ns = namespaces
                    .current()
                    .ok_or(Problem::NoNamespace)
                    .map_err(fail)?;
                let value = match source {
                    Source::Data(text) => text.as_str(),
                    Source::File(_) if wifi::KEYS.contains(&row.key.as_str()) => {
                        return Err(fail(Problem::WifiKeyNotData(row.key.clone())));
                    }
                    Source::File(_) => "",
                };
                let payload = load(*encoding, source, files_dir).map_err(fail)?;
                let item = |key: &str, payload| Item {
                    row: index,
                    key: key.to_string(),
                    content: Content::Value { ns, payload },
                };
                items.extend(
                    wifi.before(&row.key, value)
                        .into_iter()
                        .map(|d| item(d.key, d.payload)),
                );
                items.push(item(&row.key, payload));
                items.extend(
                    wifi.after(&row.key)
                        .into_iter()
                        .map(|d| item(d.key, d.payload)),
                );
            }
        }
    }
    Ok(items)
}

/// Keys are 1 to 15 bytes of printable ASCII and do not start with `#`.
pub(crate) fn check_key(key: &str) -> Result<(), Problem> {
    if key.is_empty() {
        return Err(Problem::EmptyKey);
    }
    if !key.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Err(Problem::KeyNotAscii);
    }
    if key.len() > 15 {
        return Err(Problem::KeyTooLong { len: key.len() });
    }
    if key.starts_with('#') {
        return Err(Problem::KeyIsComment);
    }
    Ok(())
}

/// Reads and decodes an entry's value.
fn load(encoding: Encoding, source: &Source, files_dir: &Path) -> Result<Payload, Problem> {
    let raw = match source {
        Source::Data(text) => Raw::Inline(text),
        Source::File(path) => {
            let path = files_dir.join(path);
            let bytes =
                std::fs::read(&path).map_err(|source| Problem::FileRead { path, source })?;
            Raw::File(bytes)
        }
    };
    value::decode(encoding, &raw)
}

/// The namespaces opened so far, as the generator numbers them.
#[derive(Default)]
struct Namespaces {
    indices: HashMap<String, u8>,
    current: Option<(String, u8)>,
}

impl Namespaces {
    /// Opens `name`: `Some(index)` when it is new and needs its entry written.
    fn open(&mut self, name: &str) -> Result<Option<u8>, Problem> {
        if let Some((current, _)) = &self.current
            && current != name
            && self.indices.contains_key(name)
        {
            return Err(Problem::NamespaceReopened {
                name: name.to_string(),
                current: current.clone(),
            });
        }
        if self.indices.contains_key(name) {
            return Ok(None);
        }
        let index = u8::try_from(self.indices.len() + 1)
            .ok()
            .filter(|i| *i <= 254)
            .ok_or(Problem::TooManyNamespaces)?;
        self.indices.insert(name.to_string(), index);
        self.current = Some((name.to_string(), index));
        Ok(Some(index))
    }

    fn current(&self) -> Option<u8> {
        self.current.as_ref().map(|(_, index)| *index)
    }
}

/// Lays the items out in pages; an item that does not fit names the row it came from.
fn lay_out(items: &[Item], size: PartitionSize, rows: &[Row]) -> Result<Vec<u8>, EntryError> {
    let mut layout = Layout::new(size.pages());
    for item in items {
        let written = match &item.content {
            Content::Namespace(index) => layout.namespace(&item.key, *index),
            Content::Value { ns, payload } => layout.entry(*ns, &item.key, payload),
        };
        written.map_err(|e| {
            let problem = match e {
                LayoutError::OutOfPages => Problem::DoesNotFit {
                    pages: layout.data_pages(),
                    size: size.bytes(),
                },
                LayoutError::TooManyChunks => Problem::BlobTooLarge {
                    len: payload_len(&item.content),
                },
            };
            EntryError {
                index: item.row,
                key: rows[item.row].key.clone(),
                problem,
            }
        })?;
    }
    Ok(layout.into_image())
}

fn payload_len(content: &Content) -> usize {
    match content {
        Content::Value {
            payload: Payload::Blob(bytes) | Payload::Str(bytes),
            ..
        } => bytes.len(),
        _ => 0,
    }
}
