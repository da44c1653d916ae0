//! The crate's one error type.

use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::source::Source;

/// Why a properties file or override could not be turned into settings.
///
/// Every variant displays as one line that starts with where the problem is
/// (`path:line`, `--set`, or the path alone when the file cannot be read).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read at all.
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        /// The file as named by the caller.
        path: PathBuf,
        /// The underlying IO error.
        #[source]
        source: io::Error,
    },
    /// A line is not valid `.properties` text (a malformed `\uXXXX` escape).
    #[error("{at}: {message}")]
    Syntax {
        /// Where the bad text is.
        at: Source,
        /// What is wrong with it.
        message: String,
    },
    /// A `--set` argument that is not `key=value`.
    #[error("--set {arg:?}: expected key=value")]
    BadOverride {
        /// The argument as given.
        arg: String,
    },
    /// A known key with a value its parser refuses.
    #[error("{at}: {key} = {} is not allowed; expected {expected}", Shown(value))]
    InvalidValue {
        /// Where the value was set.
        at: Source,
        /// The key as written (possibly an alias).
        key: String,
        /// The refused value.
        value: String,
        /// What is allowed, phrased to follow the word "expected".
        expected: String,
    },
    /// [`crate::Settings::value`] was asked for a key that is neither set nor has a default.
    #[error("{key} is not set and has no default")]
    NoValue {
        /// The key's canonical name.
        key: &'static str,
    },
    /// A server program could not be run to print its effective configuration.
    #[error("{}: cannot run: {source}", program.display())]
    Run {
        /// The program.
        program: PathBuf,
        /// The underlying IO error.
        #[source]
        source: io::Error,
    },
    /// A server program refused a property file (or an override) when asked to print the
    /// effective configuration.
    #[error("{}: {} rejects it: {message}", file.display(), program.display())]
    Rejected {
        /// The program.
        program: PathBuf,
        /// The property file it was given.
        file: PathBuf,
        /// The last line the program printed on stderr.
        message: String,
    },
}

/// Shows an empty value as `""` so the message does not read `key =  is not allowed`.
struct Shown<'a>(&'a str);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("\"\"")
        } else {
            f.write_str(self.0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_value_is_one_line_naming_file_line_key_value_and_allowed() {
        let err = Error::InvalidValue {
            at: Source::File {
                path: PathBuf::from("conf/broker-a.properties"),
                line: 7,
            },
            key: "brokerRole".into(),
            value: "MASTR".into(),
            expected: "one of ASYNC_MASTER, SYNC_MASTER, SLAVE".into(),
        };
        assert_eq!(
            err.to_string(),
            "conf/broker-a.properties:7: brokerRole = MASTR is not allowed; \
             expected one of ASYNC_MASTER, SYNC_MASTER, SLAVE"
        );
    }

    #[test]
    fn empty_value_is_shown_quoted() {
        let err = Error::InvalidValue {
            at: Source::CommandLine,
            key: "listenPort".into(),
            value: String::new(),
            expected: "a port".into(),
        };
        assert_eq!(
            err.to_string(),
            "--set: listenPort = \"\" is not allowed; expected a port"
        );
    }
}
