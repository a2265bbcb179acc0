//! Turning a value as written in the CSV (or a file's bytes) into the bytes NVS stores,
//! with the generator's rules for each encoding.

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

use super::Encoding;
use super::error::Problem;

/// What an entry stores, decoded and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Payload {
    /// An integer of the encoding's width, little-endian.
    Primitive {
        /// The NVS item type code.
        code: u8,
        /// The value's bytes (1, 2, 4 or 8).
        bytes: Vec<u8>,
    },
    /// A string's bytes, with the terminating NUL.
    Str(Vec<u8>),
    /// A blob's bytes.
    Blob(Vec<u8>),
}

/// The longest string (with its NUL) the generator writes: a string never spans pages and the
/// generator keeps it clear of a page's last entry, so it has at most 124 data entries.
pub(crate) const MAX_STRING_WITH_NUL: usize = 124 * 32;

/// The raw value of an entry: inline text from the CSV, or a file's bytes.
pub(crate) enum Raw<'a> {
    /// The CSV's value column.
    Inline(&'a str),
    /// The bytes of the file the value column names.
    File(Vec<u8>),
}

impl Raw<'_> {
    fn bytes(&self) -> &[u8] {
        match self {
            Raw::Inline(text) => text.as_bytes(),
            Raw::File(bytes) => bytes,
        }
    }
}

/// Decodes `raw` for `encoding` as the generator does, refusing what it would mangle.
pub(crate) fn decode(encoding: Encoding, raw: &Raw<'_>) -> Result<Payload, Problem> {
    match encoding {
        Encoding::String => string(raw),
        Encoding::Hex2bin => hex(raw.bytes()).map(Payload::Blob),
        Encoding::Base64 => base64(raw.bytes()).map(Payload::Blob),
        Encoding::Binary => binary(raw).map(Payload::Blob),
        _ => primitive(encoding, raw),
    }
}

fn string(raw: &Raw<'_>) -> Result<Payload, Problem> {
    let text = std::str::from_utf8(raw.bytes()).map_err(|_| Problem::FileNotUtf8)?;
    let mut bytes = text.as_bytes().to_vec();
    bytes.push(0);
    if bytes.len() > MAX_STRING_WITH_NUL {
        return Err(Problem::StringTooLong { len: text.len() });
    }
    Ok(Payload::Str(bytes))
}

fn binary(raw: &Raw<'_>) -> Result<Vec<u8>, Problem> {
    match raw {
        Raw::Inline(text) if !text.is_ascii() => Err(Problem::BinaryNotAscii),
        _ => Ok(raw.bytes().to_vec()),
    }
}

/// `binascii.a2b_hex(value.strip())`, with the generator's even-length check.
fn hex(bytes: &[u8]) -> Result<Vec<u8>, Problem> {
    let digits = bytes.trim_ascii();
    if let Some(bad) = String::from_utf8_lossy(digits)
        .chars()
        .find(|c| !c.is_ascii_hexdigit())
    {
        return Err(Problem::BadHexDigit(bad));
    }
    if !digits.len().is_multiple_of(2) {
        return Err(Problem::OddHexLength(digits.len()));
    }
    Ok(digits
        .chunks(2)
        .map(|pair| {
            let text = std::str::from_utf8(pair).expect("hex digits are ASCII");
            u8::from_str_radix(text, 16).expect("checked hex digits")
        })
        .collect())
}

/// `binascii.a2b_base64` for input it decodes faithfully: whitespace is skipped as Python skips
/// it, while other stray characters and data after the padding (which Python drops silently)
/// are refused.
fn base64(bytes: &[u8]) -> Result<Vec<u8>, Problem> {
    let compact: Vec<u8> = bytes
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace() && *b != 0x0b)
        .collect();
    let config = GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::RequireCanonical);
    GeneralPurpose::new(&base64::alphabet::STANDARD, config)
        .decode(&compact)
        .map_err(|e| Problem::BadBase64(e.to_string()))
}

fn primitive(encoding: Encoding, raw: &Raw<'_>) -> Result<Payload, Problem> {
    let (code, width, min, max) = encoding
        .primitive()
        .expect("only integer encodings reach here");
    let text = String::from_utf8_lossy(raw.bytes()).into_owned();
    let not_integer = || Problem::NotAnInteger {
        encoding,
        value: text.trim().to_string(),
    };
    let value = match python_int(&text) {
        Some(Ok(value)) => value,
        Some(Err(())) => i128::MAX,
        None => return Err(not_integer()),
    };
    if value < min || value > max {
        return Err(Problem::OutOfRange {
            encoding,
            value: text.trim().to_string(),
            min,
            max,
        });
    }
    let bytes = value.to_le_bytes()[..width].to_vec();
    Ok(Payload::Primitive { code, bytes })
}

/// Python's `int(text)`: surrounding whitespace, an optional sign, decimal digits with single
/// underscores between them. `None` when it is not an integer, `Some(Err)` past `i128`.
fn python_int(text: &str) -> Option<Result<i128, ()>> {
    let t = text.trim();
    let (negative, digits) = match t.as_bytes().first()? {
        b'-' => (true, &t[1..]),
        b'+' => (false, &t[1..]),
        _ => (false, t),
    };
    let well_formed = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit() || b == b'_')
        && !digits.starts_with('_')
        && !digits.ends_with('_')
        && !digits.contains("__");
    if !well_formed {
        return None;
    }
    let magnitude = digits
        .bytes()
        .filter(u8::is_ascii_digit)
        .try_fold(0i128, |acc, d| {
            acc.checked_mul(10)
                .and_then(|v| v.checked_add(i128::from(d - b'0')))
        });
    Some(magnitude.map(|m| if negative { -m } else { m }).ok_or(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_read_as_python_int() {
        assert_eq!(python_int(" 42\n"), Some(Ok(42)));
        assert_eq!(python_int("-1_000"), Some(Ok(-1000)));
        assert_eq!(python_int("+007"), Some(Ok(7)));
        for bad in ["", "0x10", "1__0", "_1", "1_", "- 1", "1.0", "1e3"] {
            assert_eq!(python_int(bad), None, "{bad}");
        }
    }

    #[test]
    fn hex_and_base64() {
        assert_eq!(hex(b" 0aFf\n").unwrap(), vec![0x0a, 0xff]);
        assert!(matches!(hex(b"abc"), Err(Problem::OddHexLength(3))));
        assert!(matches!(hex(b"zz"), Err(Problem::BadHexDigit('z'))));
        assert_eq!(base64(b"QUJD\nRA==\n").unwrap(), b"ABCD");
        assert!(base64(b"QQ").is_err());
        assert!(base64(b"QQ==QQ==").is_err());
        assert!(base64(b"QU*J").is_err());
    }
}
