//! Why an NVS input is refused.

use std::path::PathBuf;

use thiserror::Error;

use super::Encoding;
use crate::csv::CsvError;

/// Why one entry (a key with its value, or a namespace) cannot go into the image.
#[derive(Debug, Error)]
pub enum Problem {
    /// The key is empty.
    #[error("the key is empty; give every row a key")]
    EmptyKey,
    /// The key is longer than NVS keys can be.
    #[error("the key is {len} bytes long; NVS keys are at most 15 bytes, shorten it")]
    KeyTooLong {
        /// Length in bytes.
        len: usize,
    },
    /// The key has a character other than printable ASCII.
    #[error(
        "the key has a character that is not printable ASCII; use ASCII letters, digits and punctuation"
    )]
    KeyNotAscii,
    /// The key starts with `#`, which the generator's CSV reader takes as a comment line.
    #[error("the key starts with `#`, which the reference generator reads as a comment; rename it")]
    KeyIsComment,
    /// The type column holds something other than `data`, `file` or `namespace`.
    #[error("unknown type `{0}`; use data, file or namespace")]
    UnknownType(String),
    /// The encoding column holds something the generator does not know.
    #[error(
        "unknown encoding `{0}`; use one of u8, i8, u16, i16, u32, i32, u64, i64, string, hex2bin, base64, binary"
    )]
    UnknownEncoding(String),
    /// A namespace row has an encoding or a value, which the generator would ignore.
    #[error("a namespace row takes no encoding or value (found `{0}`); leave those columns empty")]
    NamespaceWithValue(String),
    /// An entry comes before any namespace row.
    #[error("the entry comes before any namespace row; put a `NAME,namespace,,` row first")]
    NoNamespace,
    /// A namespace is opened again after another one (the reference generator would then
    /// write the following entries into the other namespace).
    #[error(
        "namespace `{name}` is opened again after `{current}`, and the reference generator would put the following entries in `{current}`; keep each namespace's rows together"
    )]
    NamespaceReopened {
        /// The namespace opened again.
        name: String,
        /// The namespace open before it.
        current: String,
    },
    /// More namespaces than NVS can index.
    #[error("more than 254 namespaces; NVS indexes at most 254, merge some")]
    TooManyNamespaces,
    /// A required column is empty or missing on a data or file row.
    #[error("the value is missing; give a value (or a file path for type file)")]
    MissingValue,
    /// The value is not a decimal integer.
    #[error("`{value}` is not a decimal integer, which {encoding} needs; write it in decimal")]
    NotAnInteger {
        /// The encoding asked for.
        encoding: Encoding,
        /// The value as given.
        value: String,
    },
    /// The integer does not fit the encoding's range.
    #[error(
        "{value} does not fit {encoding} ({min}..={max}); give a value in range or a wider encoding"
    )]
    OutOfRange {
        /// The encoding asked for.
        encoding: Encoding,
        /// The value as given.
        value: String,
        /// Smallest value of the encoding.
        min: i128,
        /// Largest value of the encoding.
        max: i128,
    },
    /// hex2bin data with an odd number of digits.
    #[error("hex2bin data has an odd number of digits ({0}); give two digits per byte")]
    OddHexLength(usize),
    /// hex2bin data with a character that is not a hex digit.
    #[error("hex2bin data has `{0}`, not a hex digit; use only 0-9, a-f, A-F")]
    BadHexDigit(char),
    /// base64 data that does not decode.
    #[error("base64 data does not decode ({0}); give standard base64 with `=` padding")]
    BadBase64(String),
    /// A string longer than the generator can write.
    #[error(
        "the string is {len} bytes; NVS strings written by the generator hold at most 3967 bytes, shorten it or store it as a blob (hex2bin, base64, binary)"
    )]
    StringTooLong {
        /// Length in bytes, without the terminating NUL.
        len: usize,
    },
    /// A string file that is not UTF-8.
    #[error(
        "the file is not UTF-8 text, which string needs; use the binary encoding for raw bytes"
    )]
    FileNotUtf8,
    /// Binary data given inline with characters outside ASCII (the generator miscounts them).
    #[error("inline binary data must be ASCII; put the bytes in a file (type file) or use hex2bin")]
    BinaryNotAscii,
    /// A file entry's file cannot be read.
    #[error(
        "cannot read {path}: {source}; check the path (relative paths start at the files directory)"
    )]
    FileRead {
        /// The file as resolved.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A Wi-Fi key the generator handles specially is given with a type other than data.
    #[error(
        "the reference generator derives extra Wi-Fi entries from `{0}` and needs it as type data; give the value inline"
    )]
    WifiKeyNotData(String),
    /// A blob that needs more chunks than NVS can index.
    #[error(
        "the blob is {len} bytes and needs more than 127 chunks; NVS cannot index it, split it into several keys"
    )]
    BlobTooLarge {
        /// Length in bytes.
        len: usize,
    },
    /// The entries up to and including this one need more pages than the partition has.
    #[error(
        "the data up to this entry needs more than the {pages} data pages of a {size:#x} partition (one page stays reserved); give a larger partition size"
    )]
    DoesNotFit {
        /// Data pages available.
        pages: usize,
        /// Partition size in bytes.
        size: u32,
    },
}

/// An entry refused, with its key and its position in the input (0-based row index).
#[derive(Debug, Error)]
#[error("key `{key}`: {problem}")]
pub struct EntryError {
    /// Index of the row in the input rows.
    pub index: usize,
    /// The row's key.
    pub key: String,
    /// Why it is refused.
    pub problem: Problem,
}

/// A partition size the generator does not accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum SizeError {
    /// Not a multiple of the 4096-byte page.
    #[error("partition size {0:#x} is not a multiple of 0x1000 (4096); round it to whole pages")]
    NotPageMultiple(u32),
    /// Smaller than a read/write NVS partition can be.
    #[error(
        "partition size {0:#x} is below 0x3000, the smallest read/write NVS partition; give at least 0x3000"
    )]
    TooSmall(u32),
}

/// Why an NVS image cannot be made from a CSV file.
#[derive(Debug, Error)]
pub enum NvsError {
    /// The partition size is refused.
    #[error(transparent)]
    Size(#[from] SizeError),
    /// The CSV text cannot be split.
    #[error("{0}")]
    Csv(#[from] CsvError),
    /// The header is not the generator's `key,type,encoding,value`.
    #[error(
        "the header is `{found}`; the first line must name the columns key,type,encoding,value{hint}"
    )]
    Header {
        /// The header as read.
        found: String,
        /// Extra advice (a byte order mark, for one).
        hint: &'static str,
    },
    /// A row has more fields than the header names.
    #[error("line {line}: {count} fields but the header names 4; quote values that hold commas")]
    ExtraFields {
        /// Line of the row.
        line: usize,
        /// Fields found.
        count: usize,
    },
    /// A row is refused.
    #[error("line {line}, key `{key}`: {problem}")]
    Entry {
        /// Line of the row.
        line: usize,
        /// The row's key.
        key: String,
        /// Why.
        problem: Problem,
    },
}
