//! How mqadmin shows a message body: a body is bytes, and a terminal that is sent raw control
//! bytes (an escape sequence in a binary body) can be made to do anything from garbling the
//! screen to rewriting its title. Printable UTF-8 is shown as text; anything else as its size
//! and first bytes in hex, or, with `--body-format hex`, as a complete hex dump.

use clap::ValueEnum;
use serde_json::{json, Map, Value};

/// Bytes of a binary body shown after its size.
const PREVIEW_BYTES: usize = 16;
/// Bytes per line of a hex dump.
const DUMP_WIDTH: usize = 16;

/// `--body-format`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum BodyFormat {
    /// Printable UTF-8 as text; anything else as `<N bytes, binary>` and its first bytes in hex
    #[default]
    Auto,
    /// Every byte in hex, whatever the body holds
    Hex,
}

/// The body as text, if it is UTF-8 a terminal shows as is: no control characters but line
/// breaks and tabs.
pub fn printable_text(body: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(body).ok()?;
    text.chars()
        .all(|c| !c.is_control() || matches!(c, '\n' | '\r' | '\t'))
        .then_some(text)
}

/// The body on one line: its text, or `<N bytes, binary> 00 01 ...` (`Auto`); its bytes in
/// hex (`Hex`).
pub fn one_line(body: &[u8], format: BodyFormat) -> String {
    match (format, printable_text(body)) {
        (BodyFormat::Auto, Some(text)) => text.to_owned(),
        (BodyFormat::Auto, None) => {
            let shown = &body[..body.len().min(PREVIEW_BYTES)];
            let more = if body.len() > shown.len() { " ..." } else { "" };
            format!(
                "<{} bytes, binary> {}{more} (--body-format hex shows every byte)",
                body.len(),
                hex_bytes(shown)
            )
        }
        (BodyFormat::Hex, _) => hex_bytes(body),
    }
}

/// `xxd`-style lines: offset, 16 bytes in hex, and the printable ASCII among them.
pub fn hex_dump(body: &[u8]) -> String {
    body.chunks(DUMP_WIDTH)
        .enumerate()
        .map(|(i, chunk)| {
            let ascii: String = chunk
                .iter()
                .map(|&b| {
                    if b.is_ascii_graphic() || b == b' ' {
                        char::from(b)
                    } else {
                        '.'
                    }
                })
                .collect();
            format!(
                "{:08x}  {:<width$}  |{ascii}|",
                i * DUMP_WIDTH,
                hex_bytes(chunk),
                width = DUMP_WIDTH * 3 - 1
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The body's JSON fields: `body` as text when it is UTF-8 and `Auto` is asked for (JSON
/// escapes any control character), else as hex; `body_encoding` says which.
pub fn json_fields(body: &[u8], format: BodyFormat) -> Map<String, Value> {
    let text = match format {
        BodyFormat::Auto => std::str::from_utf8(body).ok(),
        BodyFormat::Hex => None,
    };
    let (body, encoding) = match text {
        Some(text) => (json!(text), "utf8"),
        None => (json!(hex_bytes(body).replace(' ', "")), "hex"),
    };
    Map::from_iter([
        ("body".to_owned(), body),
        ("body_encoding".to_owned(), json!(encoding)),
    ])
}

fn hex_bytes(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_utf8_is_text_and_control_bytes_never_are() {
        assert_eq!(
            printable_text("héllo\nwörld\t!".as_bytes()),
            Some("héllo\nwörld\t!")
        );
        assert_eq!(printable_text(b""), Some(""));
        assert_eq!(printable_text(b"\x1b[31mred"), None, "an escape sequence");
        assert_eq!(printable_text(b"bell\x07"), None);
        assert_eq!(printable_text("c1 \u{9b}".as_bytes()), None, "a C1 control");
        assert_eq!(printable_text(&[0xff, 0xfe, 0x00]), None, "not UTF-8");
    }

    #[test]
    fn binary_bodies_show_their_size_and_first_bytes_only() {
        assert_eq!(one_line(b"hello", BodyFormat::Auto), "hello");
        let gzip = [0x1f, 0x8b, 0x08, 0x00, 0x1b];
        let shown = one_line(&gzip, BodyFormat::Auto);
        assert_eq!(
            shown,
            "<5 bytes, binary> 1f 8b 08 00 1b (--body-format hex shows every byte)"
        );
        let long: Vec<u8> = (0u8..40).collect();
        let shown = one_line(&long, BodyFormat::Auto);
        assert!(shown.starts_with("<40 bytes, binary> 00 01 02"), "{shown}");
        assert!(shown.contains("0e 0f ..."), "{shown}");
        assert!(!shown.contains(" 10 "), "only the first 16 bytes: {shown}");
        for b in [&gzip[..], &long[..]] {
            assert!(!one_line(b, BodyFormat::Auto).chars().any(char::is_control));
        }
        assert_eq!(one_line(b"hi", BodyFormat::Hex), "68 69");
    }

    #[test]
    fn hex_dump_lines_hold_offsets_bytes_and_ascii() {
        let body: Vec<u8> = b"ABCDEFGHIJKLMNOP\x1b[0m".to_vec();
        let dump = hex_dump(&body);
        let lines: Vec<&str> = dump.lines().collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(
            lines[0],
            "00000000  41 42 43 44 45 46 47 48 49 4a 4b 4c 4d 4e 4f 50  |ABCDEFGHIJKLMNOP|"
        );
        assert_eq!(
            lines[1],
            "00000010  1b 5b 30 6d                                      |.[0m|"
        );
        assert!(!dump.contains('\x1b'));
    }

    #[test]
    fn json_keeps_utf8_as_text_and_the_rest_as_hex() {
        let text = json_fields(b"hi", BodyFormat::Auto);
        assert_eq!(
            (&text["body"], &text["body_encoding"]),
            (&json!("hi"), &json!("utf8"))
        );
        let binary = json_fields(&[0xff, 0x00], BodyFormat::Auto);
        assert_eq!(binary["body"], json!("ff00"));
        assert_eq!(binary["body_encoding"], json!("hex"));
        assert_eq!(json_fields(b"hi", BodyFormat::Hex)["body"], json!("6869"));
    }
}
