//! Small constructors and predicates on [`ResponseStatus`] and [`ResponseCode`], so that every
//! server builds statuses the same way and every client reads them the same way.

use crate::v1::response_status::Detail;
use crate::v1::{LeaderHint, OffsetOutOfRange, ResponseCode, ResponseStatus};

impl ResponseStatus {
    /// Success, no remark.
    pub fn ok() -> Self {
        Self::new(ResponseCode::Ok, String::new())
    }

    /// A status with `code` and a human-readable `remark`, no detail.
    pub fn new(code: ResponseCode, remark: impl Into<String>) -> Self {
        Self {
            code: code as i32,
            remark: remark.into(),
            detail: None,
        }
    }

    /// `NOT_LEADER`, pointing at where the leader is (as far as the sender knows).
    pub fn not_leader(hint: LeaderHint, remark: impl Into<String>) -> Self {
        Self {
            detail: Some(Detail::LeaderHint(hint)),
            ..Self::new(ResponseCode::NotLeader, remark)
        }
    }

    /// `OFFSET_OUT_OF_RANGE`, telling which side was crossed and the valid range.
    pub fn offset_out_of_range(range: OffsetOutOfRange, remark: impl Into<String>) -> Self {
        Self {
            detail: Some(Detail::OffsetOutOfRange(range)),
            ..Self::new(ResponseCode::OffsetOutOfRange, remark)
        }
    }

    /// True for `OK` only.
    pub fn is_ok(&self) -> bool {
        self.code() == ResponseCode::Ok
    }

    /// The leader hint, when this is a `NOT_LEADER` that carries one.
    pub fn leader_hint(&self) -> Option<&LeaderHint> {
        match &self.detail {
            Some(Detail::LeaderHint(hint)) => Some(hint),
            _ => None,
        }
    }
}

impl ResponseCode {
    /// Whether a send that got this code left its messages in the leader's log, so the
    /// per-message results are filled: `OK` and the three degraded RocketMQ send statuses
    /// (`FLUSH_DISK_TIMEOUT`, `FLUSH_SLAVE_TIMEOUT`, `SLAVE_NOT_AVAILABLE`). A producer must
    /// not blindly resend such messages: that would store them twice.
    pub fn message_stored(self) -> bool {
        matches!(
            self,
            Self::Ok | Self::FlushDiskTimeout | Self::FlushSlaveTimeout | Self::SlaveNotAvailable
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_code_reads_as_unspecified_not_ok() {
        let status = ResponseStatus::default();
        assert_eq!(status.code(), ResponseCode::Unspecified);
        assert!(!status.is_ok());
        assert!(ResponseStatus::ok().is_ok());
    }

    #[test]
    fn not_leader_carries_its_hint() {
        let hint = LeaderHint {
            broker_name: "broker-a".into(),
            leader_node_id: Some(0),
            leader_addr: "127.0.0.1:10911".into(),
            term: 7,
        };
        let status = ResponseStatus::not_leader(hint.clone(), "follower");
        assert_eq!(status.code(), ResponseCode::NotLeader);
        assert_eq!(status.leader_hint(), Some(&hint));
        assert_eq!(ResponseStatus::ok().leader_hint(), None);
    }

    #[test]
    fn only_the_four_send_statuses_mean_stored() {
        let stored: Vec<ResponseCode> = (0..64)
            .filter_map(|c| ResponseCode::try_from(c).ok())
            .filter(|c| c.message_stored())
            .collect();
        assert_eq!(
            stored,
            [
                ResponseCode::Ok,
                ResponseCode::FlushDiskTimeout,
                ResponseCode::FlushSlaveTimeout,
                ResponseCode::SlaveNotAvailable
            ]
        );
    }
}
