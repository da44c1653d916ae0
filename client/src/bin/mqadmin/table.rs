//! Output of mqadmin: aligned text tables for people, JSON for scripts, from one value.

use serde_json::{Map, Value};

/// Rows of named columns. Printed as an aligned table (headers are the column keys in
/// upper case) or as a JSON array of objects keyed by column.
pub struct Table {
    columns: Vec<&'static str>,
    rows: Vec<Vec<Value>>,
}

impl Table {
    /// A table with these column keys (snake_case; they are the JSON keys).
    pub fn new(columns: &[&'static str]) -> Self {
        Self {
            columns: columns.to_vec(),
            rows: Vec::new(),
        }
    }

    /// Adds a row; one value per column.
    pub fn row(&mut self, values: Vec<Value>) {
        debug_assert_eq!(values.len(), self.columns.len());
        self.rows.push(values);
    }

    /// The rows as JSON objects.
    pub fn to_json(&self) -> Value {
        Value::Array(
            self.rows
                .iter()
                .map(|row| {
                    let object: Map<String, Value> = self
                        .columns
                        .iter()
                        .zip(row)
                        .map(|(c, v)| ((*c).to_owned(), v.clone()))
                        .collect();
                    Value::Object(object)
                })
                .collect(),
        )
    }

    /// The aligned text form: numbers right-aligned, everything else left-aligned.
    pub fn to_text(&self) -> String {
        let headers: Vec<String> = self
            .columns
            .iter()
            .map(|c| c.replace('_', " ").to_uppercase())
            .collect();
        let cells: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|r| r.iter().map(cell).collect())
            .collect();
        let widths: Vec<usize> = (0..headers.len())
            .map(|i| {
                cells
                    .iter()
                    .map(|r| r[i].chars().count())
                    .chain([headers[i].len()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let numeric: Vec<bool> = (0..headers.len())
            .map(|i| !self.rows.is_empty() && self.rows.iter().all(|r| r[i].is_number()))
            .collect();
        let line = |values: &[String]| {
            let mut out = String::new();
            for (i, v) in values.iter().enumerate() {
                let pad = widths[i].saturating_sub(v.chars().count());
                if i > 0 {
                    out.push_str("  ");
                }
                if numeric[i] {
                    out.push_str(&" ".repeat(pad));
                    out.push_str(v);
                } else {
                    out.push_str(v);
                    if i + 1 < values.len() {
                        out.push_str(&" ".repeat(pad));
                    }
                }
            }
            out.trim_end().to_owned()
        };
        let mut text = line(&headers);
        for row in &cells {
            text.push('\n');
            text.push_str(&line(row));
        }
        text
    }
}

/// The text of one cell: strings without quotes, null as "-". Control characters (message
/// fields hold whatever producers sent) are shown escaped (`\n`, `\u{1b}`), never sent to the
/// terminal.
fn cell(value: &Value) -> String {
    match value {
        Value::String(s) if s.chars().any(char::is_control) => s
            .chars()
            .map(|c| {
                if c.is_control() {
                    c.escape_default().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect(),
        Value::String(s) => s.clone(),
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    }
}

/// Key/value lines, aligned on the colon (for one object: a broker, a message).
pub fn key_values(pairs: &[(&str, Value)]) -> String {
    let width = pairs.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    pairs
        .iter()
        .map(|(k, v)| format!("{k:<width$} : {}", cell(v)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Milliseconds since the Unix epoch as `YYYY-MM-DD HH:MM:SS.mmm` UTC; "-" for 0.
pub fn fmt_time_ms(ms: i64) -> String {
    if ms <= 0 {
        return "-".to_owned();
    }
    let (secs, millis) = (ms.div_euclid(1000), ms.rem_euclid(1000));
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}.{millis:03}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn control_characters_are_escaped_not_printed() {
        let text = key_values(&[("keys", json!("a\u{1b}[2Jb")), ("body", json!("x\ny"))]);
        assert_eq!(text, "keys : a\\u{1b}[2Jb\nbody : x\\ny");
        assert!(!text.contains('\u{1b}'));
    }

    #[test]
    fn aligns_text_and_keeps_json_typed() {
        let mut t = Table::new(&["broker_name", "queue_id"]);
        t.row(vec![json!("broker-a"), json!(0)]);
        t.row(vec![json!("b"), json!(12)]);
        assert_eq!(
            t.to_text(),
            "BROKER NAME  QUEUE ID\nbroker-a            0\nb                  12"
        );
        assert_eq!(t.to_json()[1], json!({"broker_name": "b", "queue_id": 12}));
    }

    #[test]
    fn formats_times_in_utc() {
        assert_eq!(fmt_time_ms(0), "-");
        assert_eq!(fmt_time_ms(1_000), "1970-01-01 00:00:01.000");
        assert_eq!(fmt_time_ms(1_709_251_200_123), "2024-03-01 00:00:00.123");
    }

    #[test]
    fn key_values_align() {
        let text = key_values(&[("a", json!(1)), ("long", json!("x"))]);
        assert_eq!(text, "a    : 1\nlong : x");
    }
}
