//! Parsers that key tables are built from.
//!
//! Each takes the raw text of a value and returns the typed value, or a description of what
//! is allowed, phrased to follow the word "expected" (it ends up in
//! [`crate::Error::InvalidValue`]: `... is not allowed; expected one of A, B`).

use std::fmt::Display;
use std::str::FromStr;

/// `true` or `false`, in any letter case.
///
/// Stricter than Java's `Boolean.parseBoolean`, which reads every other word (`ture`, `yes`)
/// as `false` without a word of complaint.
pub fn boolean(raw: &str) -> Result<bool, String> {
    if raw.eq_ignore_ascii_case("true") {
        Ok(true)
    } else if raw.eq_ignore_ascii_case("false") {
        Ok(false)
    } else {
        Err("true or false".to_owned())
    }
}

/// An integer in `min..=max` (decimal, optional leading `+`, as Java's `parseInt` reads it).
pub fn integer_in<T>(raw: &str, min: T, max: T) -> Result<T, String>
where
    T: FromStr + PartialOrd + Display + Copy,
{
    match raw.parse::<T>() {
        Ok(n) if n >= min && n <= max => Ok(n),
        _ => Err(format!("an integer from {min} to {max}")),
    }
}

/// One of a fixed set of words, matched exactly (as Java's `Enum.valueOf` does).
pub fn one_of<T: Copy>(raw: &str, choices: &[(&str, T)]) -> Result<T, String> {
    choices
        .iter()
        .find(|(word, _)| *word == raw)
        .map(|&(_, value)| value)
        .ok_or_else(|| {
            let words: Vec<&str> = choices.iter().map(|&(word, _)| word).collect();
            format!("one of {}", words.join(", "))
        })
}

/// Any non-empty text.
pub fn non_empty(raw: &str) -> Result<String, String> {
    if raw.is_empty() {
        Err("a non-empty value".to_owned())
    } else {
        Ok(raw.to_owned())
    }
}

/// The empty value means "not set"; anything else goes to `parse`.
///
/// For keys whose Java field is `null` by default: RocketMQ users write `dLegerGroup=` in
/// templates, and that must read as "not set", not as a bad value.
pub fn optional<T>(raw: &str, parse: fn(&str) -> Result<T, String>) -> Result<Option<T>, String> {
    if raw.is_empty() {
        Ok(None)
    } else {
        parse(raw).map(Some)
    }
}

/// Items separated by `separator`, each trimmed and given to `item`; empty items (a
/// trailing `;`) are skipped, and the empty value is the empty list. A bad item's message
/// says which one it is.
pub fn list<T>(
    raw: &str,
    separator: char,
    item: impl Fn(&str) -> Result<T, String>,
) -> Result<Vec<T>, String> {
    raw.split(separator)
        .map(str::trim)
        .filter(|piece| !piece.is_empty())
        .enumerate()
        .map(|(i, piece)| {
            item(piece).map_err(|expected| {
                format!(
                    "{expected}, separated by '{separator}' (entry {} is {piece:?})",
                    i + 1
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans_are_strict_but_case_blind() {
        assert_eq!(boolean("true"), Ok(true));
        assert_eq!(boolean("FALSE"), Ok(false));
        assert_eq!(boolean("True"), Ok(true));
        assert_eq!(boolean("yes"), Err("true or false".into()));
        assert_eq!(boolean(""), Err("true or false".into()));
    }

    #[test]
    fn integers_are_range_checked() {
        assert_eq!(integer_in("75", 10u8, 95), Ok(75));
        assert_eq!(integer_in("+10", 10u8, 95), Ok(10));
        assert_eq!(
            integer_in("96", 10u8, 95),
            Err("an integer from 10 to 95".into())
        );
        assert_eq!(
            integer_in("9", 10u8, 95),
            Err("an integer from 10 to 95".into())
        );
        assert_eq!(
            integer_in("300", 10u8, 95),
            Err("an integer from 10 to 95".into())
        );
        assert_eq!(
            integer_in("7.5", 0u32, 9),
            Err("an integer from 0 to 9".into())
        );
        assert_eq!(
            integer_in(" 7", 0u32, 9),
            Err("an integer from 0 to 9".into())
        );
    }

    #[test]
    fn one_of_lists_the_choices() {
        let choices = [("A", 1), ("B", 2)];
        assert_eq!(one_of("B", &choices), Ok(2));
        assert_eq!(one_of("b", &choices), Err("one of A, B".into()));
    }

    #[test]
    fn optional_and_non_empty() {
        assert_eq!(optional("", non_empty), Ok(None));
        assert_eq!(optional("x", non_empty), Ok(Some("x".to_owned())));
        assert_eq!(non_empty(""), Err("a non-empty value".into()));
    }

    #[test]
    fn lists_skip_empty_items_and_name_the_bad_one() {
        let digit = |s: &str| integer_in(s, 0u8, 9);
        assert_eq!(list("1; 2;3;", ';', digit), Ok(vec![1, 2, 3]));
        assert_eq!(list("", ';', digit), Ok(vec![]));
        assert_eq!(
            list("1;x", ';', digit),
            Err("an integer from 0 to 9, separated by ';' (entry 2 is \"x\")".into())
        );
    }
}
