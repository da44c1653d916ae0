//! Things worth telling the operator that do not stop the process.

use std::fmt;

use crate::source::Source;

/// A finding about the settings that is reported but not fatal. The loader returns these
/// instead of printing them, so the binary decides how (and tests can check them).
///
/// Each displays as one line starting with where it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Warning {
    /// A key that is neither known nor on the ignored list: usually a typo, so the nearest
    /// known key is suggested when one is close.
    Unknown {
        /// Where the key was written.
        at: Source,
        /// The key as written.
        key: String,
        /// The nearest known key, if one is plausibly what was meant.
        suggestion: Option<&'static str>,
    },
    /// A RocketMQ key that raftmq accepts but does not use (reported once per key).
    Ignored {
        /// Where the key was (first) written.
        at: Source,
        /// The key as written.
        key: String,
        /// Why raftmq has no use for it.
        why: &'static str,
    },
    /// A key set twice in one file; the later line wins, as in Java.
    Duplicate {
        /// The later line, whose value is used.
        at: Source,
        /// The key as written on the later line.
        key: String,
        /// The key as written on the earlier line (differs when one is an alias).
        first_key: String,
        /// Where the earlier, now unused, value was.
        first: Source,
    },
    /// A finding of the caller's own, such as a setting that has no effect in combination
    /// with another.
    Note {
        /// Where the setting the note is about was written.
        at: Source,
        /// The key the note is about (its canonical name).
        key: &'static str,
        /// The note, one line, without the location.
        message: String,
    },
}

impl Warning {
    /// Where the warning points.
    pub fn at(&self) -> &Source {
        match self {
            Warning::Unknown { at, .. }
            | Warning::Ignored { at, .. }
            | Warning::Duplicate { at, .. }
            | Warning::Note { at, .. } => at,
        }
    }
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Warning::Unknown {
                at,
                key,
                suggestion: Some(known),
            } => {
                write!(
                    f,
                    "{at}: unknown key {key:?} is ignored; did you mean {known}?"
                )
            }
            Warning::Unknown {
                at,
                key,
                suggestion: None,
            } => {
                write!(f, "{at}: unknown key {key:?} is ignored")
            }
            Warning::Ignored { at, key, why } => write!(f, "{at}: {key} is ignored: {why}"),
            Warning::Duplicate {
                at,
                key,
                first_key,
                first,
            } => {
                write!(f, "{at}: {key} is set again")?;
                if first_key != key {
                    write!(f, " (as {first_key})")?;
                }
                write!(f, "; this value replaces the one at {}", first.short())
            }
            Warning::Note { at, message, .. } => write!(f, "{at}: {message}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn line(line: usize) -> Source {
        Source::File {
            path: PathBuf::from("conf/b.properties"),
            line,
        }
    }

    #[test]
    fn warnings_are_one_line_with_location() {
        let unknown = Warning::Unknown {
            at: line(4),
            key: "brokerRol".into(),
            suggestion: Some("brokerRole"),
        };
        assert_eq!(
            unknown.to_string(),
            "conf/b.properties:4: unknown key \"brokerRol\" is ignored; did you mean brokerRole?"
        );
        let ignored = Warning::Ignored {
            at: line(5),
            key: "rocketmqHome".into(),
            why: "Java only",
        };
        assert_eq!(
            ignored.to_string(),
            "conf/b.properties:5: rocketmqHome is ignored: Java only"
        );
        let dup = Warning::Duplicate {
            at: line(9),
            key: "mappedFileSizeCommitLog".into(),
            first_key: "mapedFileSizeCommitLog".into(),
            first: line(3),
        };
        assert_eq!(
            dup.to_string(),
            "conf/b.properties:9: mappedFileSizeCommitLog is set again (as mapedFileSizeCommitLog); \
             this value replaces the one at line 3"
        );
        assert_eq!(dup.at(), &line(9));
    }
}
