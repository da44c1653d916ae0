//! The `.properties` text format, read the way `java.util.Properties#load` reads it.
//!
//! RocketMQ loads its broker and nameserver files with `Properties#load`, so a file that
//! works there must mean the same thing here:
//!
//! - natural lines end at `\n`, `\r\n` or `\r`; leading whitespace (space, tab, form feed)
//!   is skipped;
//! - a line whose first non-blank character is `#` or `!` is a comment, even if it ends in
//!   a backslash (comments are never continued);
//! - a line ending in an odd number of backslashes continues on the next natural line, whose
//!   leading whitespace is dropped; an empty or blank next line ends the logical line (and
//!   is consumed), and a backslash at the very end of the file is dropped;
//! - the key ends at the first unescaped `=`, `:` or whitespace; then whitespace and at most
//!   one `=` or `:` are skipped, and the rest is the value (a line with only a key has the
//!   empty value);
//! - escapes `\t \n \r \f \uXXXX` decode to their characters (UTF-16 surrogate pairs are
//!   joined), any other `\c` is `c` (so `\\ \= \: \# \!` and `\ ` work).
//!
//! One deliberate difference: **trailing unescaped whitespace is trimmed from values.** Java
//! keeps it, and RocketMQ then fails on `listenPort=10911 ` or registers a broker IP with a
//! space in it; users leave such spaces by accident far more often than on purpose, and a
//! trailing space that is really wanted can still be written as `\ `.
//!
//! Files are decoded as UTF-8; a file that is not valid UTF-8 is decoded as ISO-8859-1,
//! which is what `Properties#load(InputStream)` (RocketMQ's call) always does.

use std::fs;
use std::path::Path;

use crate::error::Error;
use crate::source::{Property, Source};

/// Java's whitespace for this format: space, tab and form feed (not other Unicode spaces).
const BLANKS: [char; 3] = [' ', '\t', '\x0c'];

/// Reads and parses a properties file; every pair's source names `path` as given.
pub fn read_file(path: &Path) -> Result<Vec<Property>, Error> {
    let bytes = fs::read(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })?;
    parse_bytes(bytes, path)
}

/// Parses the bytes of a properties file as [`read_file`] does: UTF-8, else ISO-8859-1.
pub fn parse_bytes(bytes: Vec<u8>, path: &Path) -> Result<Vec<Property>, Error> {
    let text = match String::from_utf8(bytes) {
        Ok(text) => text,
        // Java reads RocketMQ's files as ISO-8859-1, where every byte is the code point of
        // the same value; a Latin-1 file (an accented comment, say) thus still loads.
        Err(not_utf8) => not_utf8
            .into_bytes()
            .iter()
            .map(|&b| char::from(b))
            .collect(),
    };
    parse_str(&text, path)
}

/// Parses properties text in file order, duplicates included (the caller decides what a
/// repeated key means); `path` is only used to label each pair's [`Source`].
pub fn parse_str(text: &str, path: &Path) -> Result<Vec<Property>, Error> {
    // A UTF-8 byte-order mark would otherwise become part of the first key.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines = natural_lines(text);
    let mut pairs = Vec::new();
    let mut next = 0;
    while next < lines.len() {
        let line_number = next + 1;
        let first = lines[next].trim_start_matches(BLANKS);
        next += 1;
        if first.is_empty() || first.starts_with(['#', '!']) {
            continue;
        }
        let mut logical = String::new();
        let mut part = first;
        while ends_in_continuation(part) {
            logical.push_str(&part[..part.len() - 1]);
            // An absent or blank next line ends the logical line; Java consumes it.
            part = match lines.get(next) {
                Some(line) => {
                    next += 1;
                    line.trim_start_matches(BLANKS)
                }
                None => "",
            };
        }
        logical.push_str(part);

        let at = Source::File {
            path: path.to_owned(),
            line: line_number,
        };
        let (raw_key, raw_value) = split_key_value(&logical);
        let key = unescape(raw_key).map_err(|message| Error::Syntax {
            at: at.clone(),
            message,
        })?;
        let value = unescape(trim_unescaped_end(raw_value)).map_err(|message| Error::Syntax {
            at: at.clone(),
            message,
        })?;
        pairs.push(Property { key, value, at });
    }
    Ok(pairs)
}

/// Parses one `--set key=value` override. Command-line text is taken literally (no escapes:
/// the shell already had its chance), split at the first `=`, and both sides are trimmed.
pub fn parse_override(arg: &str) -> Result<Property, Error> {
    let bad = || Error::BadOverride {
        arg: arg.to_owned(),
    };
    let (key, value) = arg.split_once('=').ok_or_else(bad)?;
    let key = key.trim();
    if key.is_empty() {
        return Err(bad());
    }
    Ok(Property {
        key: key.to_owned(),
        value: value.trim().to_owned(),
        at: Source::CommandLine,
    })
}

/// Escapes a key so that [`parse_str`] (and Java) reads it back unchanged.
pub fn escape_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for (i, c) in key.chars().enumerate() {
        match c {
            ' ' | '=' | ':' => {
                out.push('\\');
                out.push(c);
            }
            // Only at the start would these turn the line into a comment.
            '#' | '!' if i == 0 => {
                out.push('\\');
                out.push(c);
            }
            // At the start of a file it would be read as a byte-order mark and dropped.
            '\u{feff}' if i == 0 => out.push_str("\\uFEFF"),
            _ => push_escaped_char(&mut out, c),
        }
    }
    out
}

/// Escapes a value so that [`parse_str`] reads it back unchanged, including leading and
/// trailing spaces, which would otherwise be skipped or trimmed.
pub fn escape_value(value: &str) -> String {
    let trailing_blanks = value.len() - value.trim_end_matches(BLANKS).len();
    let protected_from = value.len() - trailing_blanks;
    let mut out = String::with_capacity(value.len());
    for (i, c) in value.char_indices() {
        if c == ' ' && (i == 0 || i >= protected_from) {
            out.push_str("\\ ");
        } else {
            push_escaped_char(&mut out, c);
        }
    }
    out
}

fn push_escaped_char(out: &mut String, c: char) {
    match c {
        '\\' => out.push_str("\\\\"),
        '\t' => out.push_str("\\t"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\x0c' => out.push_str("\\f"),
        _ => out.push(c),
    }
}

/// Splits text into natural lines at `\n`, `\r\n` or `\r`, as Java's `LineReader` does.
fn natural_lines(text: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        match rest.find(['\n', '\r']) {
            Some(end) => {
                lines.push(&rest[..end]);
                let terminator = if rest[end..].starts_with("\r\n") {
                    2
                } else {
                    1
                };
                rest = &rest[end + terminator..];
            }
            None => {
                lines.push(rest);
                break;
            }
        }
    }
    lines
}

/// True when the line ends in an odd number of backslashes (an even number is escaped
/// backslashes, not a continuation).
fn ends_in_continuation(line: &str) -> bool {
    trailing_backslashes(line) % 2 == 1
}

fn trailing_backslashes(text: &str) -> usize {
    text.bytes().rev().take_while(|&b| b == b'\\').count()
}

/// Splits a logical line into raw (still escaped) key and value, following
/// `Properties#load0`. Byte indexing is safe: every delimiter is ASCII, and UTF-8
/// continuation bytes never equal an ASCII byte.
fn split_key_value(line: &str) -> (&str, &str) {
    let mut key_end = line.len();
    let mut value_start = line.len();
    let mut has_separator = false;
    let mut escaped = false;
    for (i, b) in line.bytes().enumerate() {
        if !escaped && (b == b'=' || b == b':') {
            (key_end, value_start, has_separator) = (i, i + 1, true);
            break;
        }
        if !escaped && (b == b' ' || b == b'\t' || b == 0x0c) {
            (key_end, value_start) = (i, i + 1);
            break;
        }
        escaped = b == b'\\' && !escaped;
    }
    // After a whitespace-terminated key, one `=` or `:` may still follow (`key = value`).
    let mut value = line[value_start..].trim_start_matches(BLANKS);
    if !has_separator {
        if let Some(after) = value.strip_prefix(['=', ':']) {
            value = after.trim_start_matches(BLANKS);
        }
    }
    (&line[..key_end], value)
}

/// Trims trailing whitespace that is not itself escaped (`a\ ` keeps its space).
fn trim_unescaped_end(raw: &str) -> &str {
    let mut end = raw.len();
    while let Some(last) = raw[..end].chars().next_back() {
        if !BLANKS.contains(&last) || trailing_backslashes(&raw[..end - 1]) % 2 == 1 {
            break;
        }
        end -= 1; // every blank is one byte
    }
    &raw[..end]
}

/// Decodes escapes; the error says what is malformed.
fn unescape(raw: &str) -> Result<String, String> {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            // A lone backslash at the end (only possible at end of file) is dropped, as in Java.
            None => {}
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\x0c'),
            Some('u') => {
                let unit = hex4(&mut chars)?;
                let code = if (0xD800..0xDC00).contains(&unit) {
                    // A high surrogate must be followed by an escaped low surrogate; together
                    // they are one character outside the Basic Multilingual Plane.
                    let low = chars
                        .as_str()
                        .strip_prefix("\\u")
                        .map(|rest| {
                            chars = rest.chars();
                            hex4(&mut chars)
                        })
                        .transpose()?
                        .filter(|low| (0xDC00..0xE000).contains(low))
                        .ok_or_else(|| format!("\\u{unit:04X} is a lone UTF-16 surrogate"))?;
                    0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)
                } else {
                    unit
                };
                out.push(
                    char::from_u32(code)
                        .ok_or_else(|| format!("\\u{code:04X} is a lone UTF-16 surrogate"))?,
                );
            }
            Some(other) => out.push(other),
        }
    }
    Ok(out)
}

fn hex4(chars: &mut std::str::Chars<'_>) -> Result<u32, String> {
    let mut unit = 0;
    for _ in 0..4 {
        let digit = chars
            .next()
            .and_then(|c| c.to_digit(16))
            .ok_or_else(|| "malformed \\uXXXX escape (needs four hex digits)".to_owned())?;
        unit = unit * 16 + digit;
    }
    Ok(unit)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(text: &str) -> Vec<(String, String, usize)> {
        parse_str(text, Path::new("t.properties"))
            .unwrap()
            .into_iter()
            .map(|p| match p.at {
                Source::File { line, .. } => (p.key, p.value, line),
                other => panic!("unexpected source {other:?}"),
            })
            .collect()
    }

    fn one(text: &str) -> (String, String) {
        let mut all = pairs(text);
        assert_eq!(all.len(), 1, "{text:?} gave {all:?}");
        let (k, v, _) = all.remove(0);
        (k, v)
    }

    fn kv(k: &str, v: &str) -> (String, String) {
        (k.to_owned(), v.to_owned())
    }

    #[test]
    fn the_three_separators() {
        assert_eq!(one("brokerId=1"), kv("brokerId", "1"));
        assert_eq!(one("brokerId: 1"), kv("brokerId", "1"));
        assert_eq!(one("brokerId 1"), kv("brokerId", "1"));
        assert_eq!(one("brokerId\t1"), kv("brokerId", "1"));
        assert_eq!(
            one("brokerClusterName = DefaultCluster"),
            kv("brokerClusterName", "DefaultCluster")
        );
        assert_eq!(one("  key   :   value"), kv("key", "value"));
    }

    #[test]
    fn only_the_first_separator_splits() {
        assert_eq!(one("a=b=c"), kv("a", "b=c"));
        assert_eq!(one("a = = b"), kv("a", "= b"));
        assert_eq!(one("addr=127.0.0.1:9876"), kv("addr", "127.0.0.1:9876"));
        assert_eq!(one("a b c"), kv("a", "b c"));
    }

    #[test]
    fn key_without_value_has_empty_value() {
        assert_eq!(one("namesrvAddr"), kv("namesrvAddr", ""));
        assert_eq!(one("namesrvAddr="), kv("namesrvAddr", ""));
        assert_eq!(one("namesrvAddr =   "), kv("namesrvAddr", ""));
    }

    #[test]
    fn comments_and_blank_lines_are_skipped_and_lines_counted() {
        let text = "# comment\n! also comment\n\n   \n  # indented comment\nkey=value\n\t\nb=2";
        assert_eq!(
            pairs(text),
            vec![
                ("key".into(), "value".into(), 6),
                ("b".into(), "2".into(), 8)
            ]
        );
    }

    #[test]
    fn hash_inside_a_value_is_not_a_comment() {
        assert_eq!(one("a=b # not a comment"), kv("a", "b # not a comment"));
    }

    #[test]
    fn values_keep_interior_spaces_and_lose_trailing_whitespace() {
        assert_eq!(one("a =  x  y z \t "), kv("a", "x  y z"));
        assert_eq!(one("listenPort=10911 "), kv("listenPort", "10911"));
    }

    #[test]
    fn escaped_trailing_space_is_kept() {
        assert_eq!(one(r"a=x\ "), kv("a", "x "));
        assert_eq!(one("a=x\\  "), kv("a", "x "));
        // An escaped backslash followed by a blank: the blank is not escaped.
        assert_eq!(one(r"a=x\\ "), kv("a", r"x\"));
    }

    #[test]
    fn continuation_joins_lines_and_drops_leading_whitespace() {
        let text = "dLegerPeers=n0-127.0.0.1:40911;\\\n    n1-127.0.0.1:40912;\\\n\tn2-127.0.0.1:40913\nnext=1";
        assert_eq!(
            pairs(text),
            vec![
                (
                    "dLegerPeers".into(),
                    "n0-127.0.0.1:40911;n1-127.0.0.1:40912;n2-127.0.0.1:40913".into(),
                    1
                ),
                ("next".into(), "1".into(), 4),
            ]
        );
    }

    #[test]
    fn continuation_line_starting_with_hash_is_not_a_comment() {
        assert_eq!(one("a=x\\\n  #y"), kv("a", "x#y"));
    }

    #[test]
    fn blank_line_ends_a_continuation_and_is_consumed() {
        assert_eq!(
            pairs("a=x\\\n   \nb=y"),
            vec![("a".into(), "x".into(), 1), ("b".into(), "y".into(), 3)]
        );
    }

    #[test]
    fn even_backslashes_do_not_continue() {
        assert_eq!(
            pairs("a=x\\\\\nb=y"),
            vec![("a".into(), "x\\".into(), 1), ("b".into(), "y".into(), 2)]
        );
    }

    #[test]
    fn backslash_at_end_of_file_is_dropped() {
        assert_eq!(one("a=x\\"), kv("a", "x"));
    }

    #[test]
    fn comment_ending_in_backslash_does_not_continue() {
        assert_eq!(one("# comment \\\na=1"), kv("a", "1"));
    }

    #[test]
    fn crlf_and_cr_line_ends() {
        assert_eq!(
            pairs("a=1\r\nb=2\rc=3\r\n"),
            vec![
                ("a".into(), "1".into(), 1),
                ("b".into(), "2".into(), 2),
                ("c".into(), "3".into(), 3)
            ]
        );
        assert_eq!(one("a=x\\\r\n  y"), kv("a", "xy"));
    }

    #[test]
    fn escapes_decode() {
        assert_eq!(one(r"a=tab\there"), kv("a", "tab\there"));
        assert_eq!(one(r"a=line\nbreak\r\f"), kv("a", "line\nbreak\r\x0c"));
        assert_eq!(one(r"a=back\\slash"), kv("a", r"back\slash"));
        assert_eq!(one(r"a=\=\:\#\!"), kv("a", "=:#!"));
        assert_eq!(one(r"a=\q"), kv("a", "q"));
        assert_eq!(one(r"a=caf\u00e9 \u4E2D"), kv("a", "café 中"));
        assert_eq!(one(r"a=\uD83D\uDE00"), kv("a", "😀"));
        assert_eq!(one(r"a=\ lead"), kv("a", " lead"));
    }

    #[test]
    fn escaped_separators_stay_in_the_key() {
        assert_eq!(one(r"my\=key=v"), kv("my=key", "v"));
        assert_eq!(one(r"my\:key\ two = v"), kv("my:key two", "v"));
    }

    #[test]
    fn malformed_unicode_escape_is_a_syntax_error_with_line() {
        let err = parse_str("ok=1\na=\\u12G4", Path::new("conf/x.properties")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "conf/x.properties:2: malformed \\uXXXX escape (needs four hex digits)"
        );
        let err = parse_str(r"a=\uD83D", Path::new("x")).unwrap_err();
        assert_eq!(err.to_string(), "x:1: \\uD83D is a lone UTF-16 surrogate");
        assert!(parse_str(r"a=\uDE00", Path::new("x")).is_err());
    }

    #[test]
    fn byte_order_mark_is_not_part_of_the_first_key() {
        assert_eq!(one("\u{feff}brokerId=0"), kv("brokerId", "0"));
    }

    #[test]
    fn duplicates_are_all_returned_in_order() {
        let all = pairs("a=1\na=2");
        assert_eq!(
            all,
            vec![("a".into(), "1".into(), 1), ("a".into(), "2".into(), 2)]
        );
    }

    #[test]
    fn overrides_split_at_the_first_equals_and_are_literal() {
        let p = parse_override(" brokerRole = SLAVE ").unwrap();
        assert_eq!(
            (p.key.as_str(), p.value.as_str(), p.at),
            ("brokerRole", "SLAVE", Source::CommandLine)
        );
        let p = parse_override(r"storePathRootDir=C:\data=x").unwrap();
        assert_eq!(p.value, r"C:\data=x");
        assert_eq!(parse_override("namesrvAddr=").unwrap().value, "");
    }

    #[test]
    fn override_without_equals_or_key_is_refused() {
        assert_eq!(
            parse_override("brokerRole SLAVE").unwrap_err().to_string(),
            "--set \"brokerRole SLAVE\": expected key=value"
        );
        assert!(parse_override("=x").is_err());
    }

    #[test]
    fn escaping_round_trips() {
        for (key, value) in [
            ("plain", "value"),
            ("with space", " lead and trail  "),
            ("k=:", "a=b:c"),
            ("#hash", "#not comment"),
            ("!bang", "back\\slash\\"),
            ("ctl", "tab\tnl\ncr\rff\x0c"),
            ("unicode", "café 中 😀"),
            ("empty", ""),
            // Found by the properties_parse fuzz target: a key that starts with U+FEFF, on
            // the first line, lost it to the byte-order-mark rule.
            ("\u{feff}bom", "v"),
        ] {
            let line = format!("{}={}", escape_key(key), escape_value(value));
            assert_eq!(one(&line), kv(key, value), "line {line:?}");
        }
    }

    #[test]
    fn read_file_labels_pairs_with_the_path_and_reads_latin1() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("broker.properties");
        // 0xE9 alone is not UTF-8: Latin-1 'é', as Java would read it.
        fs::write(&path, b"# caf\xe9\nbrokerName=caf\xe9\n").unwrap();
        let got = read_file(&path).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].value, "café");
        assert_eq!(
            got[0].at,
            Source::File {
                path: path.clone(),
                line: 2
            }
        );
    }

    #[test]
    fn missing_file_error_names_the_path() {
        let err = read_file(Path::new("conf/missing.properties")).unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("conf/missing.properties: cannot read: "),
            "{text}"
        );
        assert!(
            matches!(err, Error::Read { path, .. } if path == Path::new("conf/missing.properties"))
        );
    }
}
