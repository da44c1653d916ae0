//! Where a setting came from, so errors and warnings can point at the line to fix.

use std::fmt;
use std::path::PathBuf;

/// The origin of one key/value pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A line of a properties file; `line` is 1-based and is the line where the (possibly
    /// continued) logical line starts.
    File {
        /// The file as it was named to the loader (kept relative if it was given relative,
        /// because that is what the user typed and will recognise).
        path: PathBuf,
        /// 1-based line number.
        line: usize,
    },
    /// A `--set key=value` command-line override.
    CommandLine,
    /// Not set anywhere: the key table's default.
    Default,
}

impl Source {
    /// Describes this source relative to the file being loaded: `line 7`, `from --set` or
    /// `by default`. For messages that already name the file at their start.
    pub fn short(&self) -> String {
        match self {
            Source::File { line, .. } => format!("line {line}"),
            Source::CommandLine => "from --set".to_owned(),
            Source::Default => "by default".to_owned(),
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::File { path, line } => write!(f, "{}:{line}", path.display()),
            Source::CommandLine => f.write_str("--set"),
            Source::Default => f.write_str("default"),
        }
    }
}

/// One `key=value` pair with its origin, after escapes have been decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Property {
    /// The key exactly as written (after unescaping), which may be an alias.
    pub key: String,
    /// The value with escapes decoded and surrounding whitespace removed.
    pub value: String,
    /// Where the pair was written.
    pub at: Source,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_display_as_file_line_or_set() {
        let file = Source::File {
            path: PathBuf::from("conf/broker-a.properties"),
            line: 7,
        };
        assert_eq!(file.to_string(), "conf/broker-a.properties:7");
        assert_eq!(file.short(), "line 7");
        assert_eq!(Source::CommandLine.to_string(), "--set");
        assert_eq!(Source::CommandLine.short(), "from --set");
        assert_eq!(Source::Default.short(), "by default");
    }
}
