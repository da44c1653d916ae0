//! The one error type of the client library.

use std::path::PathBuf;
use std::time::Duration;

use proto::v1::ResponseCode;

/// Everything a client call can fail with. Each variant's text says what failed and where
/// (address, topic, group), so a tool can print it as one line.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The `-n` nameserver list cannot be parsed.
    #[error("bad nameserver list {input:?}: {reason} (expected \"host:port;host:port\")")]
    BadNameServerList {
        /// The list as given.
        input: String,
        /// What is wrong with it.
        reason: String,
    },

    /// No nameserver of the list answered.
    #[error("cannot reach any nameserver of {addrs}: {reason}")]
    NameServerUnreachable {
        /// The list that was tried, `;`-separated.
        addrs: String,
        /// Why the last one failed.
        reason: String,
    },

    /// The nameserver knows no live broker hosting the topic, and the broker refused to create it.
    #[error("topic {topic} does not exist: {remark}")]
    TopicNotExist {
        /// Topic name.
        topic: String,
        /// Where that was found out.
        remark: String,
    },

    /// A broker group has no known leader, and none appeared before the deadline.
    #[error("broker group {broker_name} has no leader{}", if .detail.is_empty() { String::new() } else { format!(": {}", .detail) })]
    NoLeader {
        /// brokerName of the group.
        broker_name: String,
        /// What was tried.
        detail: String,
    },

    /// The cluster has no broker group at all (nothing registered with the nameserver).
    #[error("no broker group is registered with the nameservers")]
    NoBrokers,

    /// A broker or nameserver answered with a status other than OK.
    #[error("{addr} answered {code:?}: {remark}")]
    Refused {
        /// Address of the server that answered.
        addr: String,
        /// The status code.
        code: ResponseCode,
        /// The server's remark.
        remark: String,
    },

    /// The request could not be delivered or its answer did not arrive.
    ///
    /// `maybe_delivered` tells a non-idempotent caller (a send) whether the server may have
    /// acted on it: false when the connection was never made, true when it broke after the
    /// request may have left.
    #[error("{addr}: {reason}")]
    Transport {
        /// Address of the server.
        addr: String,
        /// What went wrong, with its cause chain.
        reason: String,
        /// Whether the server may have received and executed the request.
        maybe_delivered: bool,
    },

    /// No answer within the deadline.
    #[error("{what} timed out after {after:?}")]
    Timeout {
        /// The operation.
        what: String,
        /// How long it was given.
        after: Duration,
    },

    /// A send gave up after its retries; `last` is the final attempt's error.
    #[error("send to topic {topic} failed after {attempts} attempt(s): {last}")]
    SendFailed {
        /// Topic of the message(s).
        topic: String,
        /// Attempts made (NOT_LEADER redirects included).
        attempts: u32,
        /// Why the last attempt failed.
        last: Box<ClientError>,
    },

    /// A change meant for several broker groups failed on some of them.
    #[error("{what} failed on {failed} of {total} group(s): {detail}")]
    GroupsFailed {
        /// The operation.
        what: String,
        /// Groups that failed.
        failed: usize,
        /// Groups tried.
        total: usize,
        /// Each failed group with its error.
        detail: String,
    },

    /// The caller passed something unusable (empty topic, empty batch, ...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// A message id that does not decode.
    #[error(transparent)]
    MsgId(#[from] proto::MsgIdError),

    /// A local file (record file, broadcasting offsets) could not be read or written.
    #[error("{}: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },

    /// A file's contents are not what was expected.
    #[error("{}:{line}: {reason}", .path.display())]
    BadFile {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },

    /// The client (consumer, producer) was shut down.
    #[error("the client is shut down")]
    Shutdown,

    /// A background task of the client failed (a bug).
    #[error("internal error: {0}")]
    Internal(String),
}

/// Result alias of the client library.
pub type Result<T, E = ClientError> = std::result::Result<T, E>;

impl ClientError {
    /// Builds the error for a failed gRPC call to `addr`, telling from the cause whether the
    /// request may have reached the server.
    pub(crate) fn from_status(addr: &str, status: &tonic::Status) -> Self {
        let never_connected =
            source_chain(status).any(|e| e.downcast_ref::<tonic::ConnectError>().is_some());
        let reason = if never_connected {
            // The innermost cause says it best ("Connection refused (os error 111)").
            let deepest = source_chain(status).last().map(|e| e.to_string());
            format!(
                "cannot connect: {}",
                deepest.unwrap_or_else(|| status.message().to_owned())
            )
        } else {
            let mut reason = format!("{:?}: {}", status.code(), status.message());
            for cause in source_chain(status).skip(1) {
                let text = cause.to_string();
                if !reason.contains(&text) {
                    reason.push_str(": ");
                    reason.push_str(&text);
                }
            }
            reason
        };
        // A server that answered with a gRPC error status (UNIMPLEMENTED, INVALID_ARGUMENT)
        // rejected the request before acting on it; only broken transports are ambiguous.
        let maybe_delivered = !never_connected
            && matches!(
                status.code(),
                tonic::Code::Unavailable
                    | tonic::Code::Unknown
                    | tonic::Code::Internal
                    | tonic::Code::Cancelled
                    | tonic::Code::DeadlineExceeded
            );
        ClientError::Transport {
            addr: addr.to_owned(),
            reason,
            maybe_delivered,
        }
    }

    /// Whether a request that failed this way may still have been executed by the server.
    pub fn maybe_delivered(&self) -> bool {
        match self {
            ClientError::Transport {
                maybe_delivered, ..
            } => *maybe_delivered,
            ClientError::Timeout { .. } => true,
            ClientError::SendFailed { last, .. } => last.maybe_delivered(),
            _ => false,
        }
    }

    /// The status code of a refusal, if this is one.
    pub fn code(&self) -> Option<ResponseCode> {
        match self {
            ClientError::Refused { code, .. } => Some(*code),
            ClientError::SendFailed { last, .. } => last.code(),
            _ => None,
        }
    }
}

/// `err` followed by its causes.
fn source_chain<'a>(
    err: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(err), |e| e.source())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_side_grpc_errors_are_not_ambiguous() {
        let e = ClientError::from_status("a:1", &tonic::Status::unimplemented("no"));
        assert!(!e.maybe_delivered());
        let e = ClientError::from_status("a:1", &tonic::Status::unavailable("reset"));
        assert!(e.maybe_delivered());
        assert!(e.to_string().starts_with("a:1: "));
    }
}
