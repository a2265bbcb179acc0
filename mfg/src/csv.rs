//! A CSV reader that splits fields the way Python's `csv` module (default "excel" dialect)
//! does, since both ESP-IDF generators read their inputs with it.
//!
//! Lines are normalised as Python's universal newlines do (`\r\n` and `\r` read as `\n`).
//! Quoted fields may hold commas, doubled quotes and newlines; a quote inside an unquoted
//! field is kept as text; characters after a closing quote continue the field. An unterminated
//! quoted field is refused (Python would keep it silently).

use thiserror::Error;

/// One CSV record and the line it starts on (1-based, counting every line of the file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    pub line: usize,
    pub fields: Vec<String>,
}

/// Why a CSV text could not be split into records.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CsvError {
    /// A quoted field runs to the end of the file.
    #[error("line {line}: a quoted field is never closed; add the closing `\"`")]
    UnclosedQuote {
        /// Line where the quoted field starts.
        line: usize,
    },
}

/// Which physical lines the reader leaves out before splitting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LineFilter {
    /// Lines starting with `#` (nvs_partition_gen's comment rule).
    Comments,
    /// Lines holding only whitespace (mfg_gen's blank-line rule).
    Blank,
}

/// Splits `text` into records, leaving out the lines `filter` drops and empty records.
pub(crate) fn records(text: &str, filter: LineFilter) -> Result<Vec<Record>, CsvError> {
    let kept = kept_lines(text, filter);
    let mut parser = Parser::default();
    for (line, content) in kept {
        parser.feed_line(line, &content);
    }
    parser.finish()
}

/// The file's lines (each ending in `\n`) with their numbers, minus the filtered ones.
fn kept_lines(text: &str, filter: LineFilter) -> Vec<(usize, String)> {
    let normalised = text.replace("\r\n", "\n").replace('\r', "\n");
    normalised
        .split_inclusive('\n')
        .enumerate()
        .map(|(i, l)| (i + 1, l.to_string()))
        .filter(|(_, l)| match filter {
            LineFilter::Comments => !l.starts_with('#'),
            LineFilter::Blank => !l.chars().all(char::is_whitespace),
        })
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum State {
    #[default]
    StartRecord,
    StartField,
    InField,
    InQuoted,
    QuoteInQuoted,
}

#[derive(Default)]
struct Parser {
    state: State,
    field: String,
    fields: Vec<String>,
    record_line: usize,
    done: Vec<Record>,
}

impl Parser {
    fn feed_line(&mut self, line: usize, content: &str) {
        if self.state == State::StartRecord {
            self.record_line = line;
        }
        for c in content.chars() {
            self.feed(c);
        }
        if !content.ends_with('\n') {
            self.feed('\n');
        }
    }

    fn feed(&mut self, c: char) {
        match (self.state, c) {
            (State::StartRecord, '\n') => {}
            (State::StartRecord | State::StartField, '"') => self.state = State::InQuoted,
            (State::StartRecord | State::StartField, ',') => self.end_field(),
            (State::StartField | State::InField, '\n') => self.end_record(),
            (State::InField, ',') => self.end_field(),
            (State::StartRecord | State::StartField | State::InField, c) => {
                self.field.push(c);
                self.state = State::InField;
            }
            (State::InQuoted, '"') => self.state = State::QuoteInQuoted,
            (State::InQuoted, c) => self.field.push(c),
            (State::QuoteInQuoted, '"') => {
                self.field.push('"');
                self.state = State::InQuoted;
            }
            (State::QuoteInQuoted, ',') => self.end_field(),
            (State::QuoteInQuoted, '\n') => self.end_record(),
            (State::QuoteInQuoted, c) => {
                self.field.push(c);
                self.state = State::InField;
            }
        }
    }

    fn end_field(&mut self) {
        self.fields.push(std::mem::take(&mut self.field));
        self.state = State::StartField;
    }

    fn end_record(&mut self) {
        self.fields.push(std::mem::take(&mut self.field));
        let fields = std::mem::take(&mut self.fields);
        self.done.push(Record {
            line: self.record_line,
            fields,
        });
        self.state = State::StartRecord;
    }

    fn finish(self) -> Result<Vec<Record>, CsvError> {
        match self.state {
            State::InQuoted => Err(CsvError::UnclosedQuote {
                line: self.record_line,
            }),
            _ => Ok(self.done),
        }
    }
}

/// Writes one record as Python's `csv.writer` does (minimal quoting, `\r\n` line ends).
pub(crate) fn write_record(out: &mut String, fields: &[&str]) {
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let needs_quotes =
            field.contains([',', '"', '\r', '\n']) || (fields.len() == 1 && field.is_empty());
        if needs_quotes {
            out.push('"');
            out.push_str(&field.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(field);
        }
    }
    out.push_str("\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(text: &str) -> Vec<Vec<String>> {
        records(text, LineFilter::Comments)
            .unwrap()
            .into_iter()
            .map(|r| r.fields)
            .collect()
    }

    #[test]
    fn splits_like_python() {
        assert_eq!(fields("a,b,,\n"), vec![vec!["a", "b", "", ""]]);
        assert_eq!(
            fields("\"a,b\",\"x\"\"y\"\r\nc"),
            vec![vec!["a,b", "x\"y"], vec!["c"]]
        );
        assert_eq!(fields("a\"b,\"q\"r\n"), vec![vec!["a\"b", "qr"]]);
        assert_eq!(
            fields("\"multi\nline\",z\n\n#c\nw\n"),
            vec![vec!["multi\nline", "z"], vec!["w"]]
        );
    }

    #[test]
    fn numbers_records_by_first_line() {
        let recs = records("#x\n\na\n\"b\nc\"\nd", LineFilter::Comments).unwrap();
        let lines: Vec<usize> = recs.iter().map(|r| r.line).collect();
        assert_eq!(lines, vec![3, 4, 6]);
    }

    #[test]
    fn refuses_unclosed_quote() {
        assert_eq!(
            records("a\n\"b,c\n", LineFilter::Blank),
            Err(CsvError::UnclosedQuote { line: 2 })
        );
    }

    #[test]
    fn writes_minimal_quoting() {
        let mut out = String::new();
        write_record(&mut out, &["k", "a,b", "q\"", ""]);
        assert_eq!(out, "k,\"a,b\",\"q\"\"\",\r\n");
    }
}
