//! The crate's one error type.

use std::error::Error as _;
use std::fmt;
use std::io;
use std::net::SocketAddr;

/// Why the nameserver cannot start or stopped. Every variant displays as one line that says
/// what failed and where (file and line, or address).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration file cannot be read, or a value is not allowed for its key.
    #[error(transparent)]
    Config(#[from] raftmq_properties::Error),
    /// The listening socket cannot be opened (port in use, address not on this host, ...).
    #[error("cannot listen on {addr}: {source}{}", BindHint(source))]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why the operating system refused.
        #[source]
        source: io::Error,
    },
    /// A hosted witness's store cannot be opened.
    #[error("witness store: {why}")]
    Witness {
        /// What failed, naming the group and the path.
        why: String,
    },
    /// The gRPC server failed while running.
    #[error("gRPC server failed: {}", Sources(source))]
    Serve {
        /// What tonic reported.
        #[source]
        source: tonic::transport::Error,
    },
}

/// What to do about the most common bind failures.
struct BindHint<'a>(&'a io::Error);

impl fmt::Display for BindHint<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.kind() {
            io::ErrorKind::AddrInUse => f.write_str(
                "; another process is listening there: stop it or choose another listenPort",
            ),
            io::ErrorKind::AddrNotAvailable => {
                f.write_str("; bindAddress must be an address of this host")
            }
            io::ErrorKind::PermissionDenied => {
                f.write_str("; ports below 1024 need privileges: choose another listenPort")
            }
            _ => Ok(()),
        }
    }
}

/// An error and its causes on one line (tonic's transport error says little by itself).
struct Sources<'a>(&'a tonic::transport::Error);

impl fmt::Display for Sources<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(err) = cause {
            write!(f, ": {err}")?;
            cause = err.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_in_use_is_one_line_naming_the_address() {
        let err = Error::Bind {
            addr: "127.0.0.1:9876".parse().unwrap(),
            source: io::Error::from(io::ErrorKind::AddrInUse),
        };
        let text = err.to_string();
        assert!(
            text.starts_with("cannot listen on 127.0.0.1:9876: "),
            "{text}"
        );
        assert!(text.ends_with("choose another listenPort"), "{text}");
        assert!(!text.contains('\n'));
    }
}
