//! The broker-assigned message id (`StoredMessage.msg_id`), RocketMQ's "offset msg id":
//! the address of the broker that stored the message and the message's position in the
//! commitlog, as upper-case hex.
//!
//! ```text
//! IPv4: ip 4 bytes | port u32 big-endian | commit_log_offset u64 big-endian  = 32 hex digits
//! IPv6: ip 16 bytes | port u32 big-endian | commit_log_offset u64 big-endian = 56 hex digits
//! ```
//! The position is the same on every replica of the group, so any replica can serve a
//! lookup by id even after the storing broker's address changed hands.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

/// Hex length of an id whose address is IPv4.
const V4_HEX_LEN: usize = 2 * (4 + 4 + 8);
/// Hex length of an id whose address is IPv6.
const V6_HEX_LEN: usize = 2 * (16 + 4 + 8);

/// A decoded message id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OffsetMsgId {
    /// Client address of the broker that stored the message.
    pub store_addr: SocketAddr,
    /// Byte position of the message's entry in its group's commitlog.
    pub commit_log_offset: u64,
}

/// Why a string is not a message id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MsgIdError {
    /// Neither the IPv4 nor the IPv6 length.
    #[error("message id {id:?} has {len} characters; expected {V4_HEX_LEN} (IPv4) or {V6_HEX_LEN} (IPv6) hex digits")]
    BadLength {
        /// The rejected id.
        id: String,
        /// Its length in characters.
        len: usize,
    },
    /// A character that is not a hex digit.
    #[error("message id {id:?} has a non-hex character at position {at}")]
    NotHex {
        /// The rejected id.
        id: String,
        /// Byte index of the first bad character.
        at: usize,
    },
}

impl OffsetMsgId {
    /// The id of the message stored by `store_addr` at `commit_log_offset`.
    pub fn new(store_addr: SocketAddr, commit_log_offset: u64) -> Self {
        Self {
            store_addr,
            commit_log_offset,
        }
    }
}

impl fmt::Display for OffsetMsgId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Built in a stack buffer and written once: a broker formats one id per stored
        // message, and a `write!` per byte showed up in its profile.
        let mut buf = [0u8; V6_HEX_LEN];
        let mut len = 0;
        let mut put = |bytes: &[u8]| {
            for b in bytes {
                buf[len] = HEX[usize::from(b >> 4)];
                buf[len + 1] = HEX[usize::from(b & 15)];
                len += 2;
            }
        };
        match self.store_addr.ip() {
            IpAddr::V4(ip) => put(&ip.octets()),
            IpAddr::V6(ip) => put(&ip.octets()),
        }
        put(&u32::from(self.store_addr.port()).to_be_bytes());
        put(&self.commit_log_offset.to_be_bytes());
        // Only ASCII hex digits were written.
        f.write_str(std::str::from_utf8(&buf[..len]).map_err(|_| fmt::Error)?)
    }
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

impl FromStr for OffsetMsgId {
    type Err = MsgIdError;

    /// Parses an id; hex digits of either case are accepted.
    fn from_str(id: &str) -> Result<Self, MsgIdError> {
        let ip_len = match id.len() {
            V4_HEX_LEN => 4,
            V6_HEX_LEN => 16,
            len => {
                return Err(MsgIdError::BadLength {
                    id: id.to_owned(),
                    len,
                })
            }
        };
        let bytes = decode_hex(id)?;
        let (ip, rest) = bytes.split_at(ip_len);
        let ip = match ip_len {
            4 => IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(ip).expect("4 bytes"))),
            _ => IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(ip).expect("16 bytes"))),
        };
        let (port, offset) = rest.split_at(4);
        let port = u32::from_be_bytes(port.try_into().expect("4 bytes"));
        let commit_log_offset = u64::from_be_bytes(offset.try_into().expect("8 bytes"));
        Ok(Self {
            // RocketMQ writes the port as an int; only the low 16 bits can be a port.
            store_addr: SocketAddr::new(ip, port as u16),
            commit_log_offset,
        })
    }
}

fn decode_hex(id: &str) -> Result<Vec<u8>, MsgIdError> {
    let digit = |at: usize| {
        char::from(id.as_bytes()[at])
            .to_digit(16)
            .map(|d| d as u8)
            .ok_or_else(|| MsgIdError::NotHex {
                id: id.to_owned(),
                at,
            })
    };
    (0..id.len())
        .step_by(2)
        .map(|at| Ok(digit(at)? << 4 | digit(at + 1)?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_rocketmq_layout_for_ipv4() {
        let id = OffsetMsgId::new("192.168.1.10:10911".parse().unwrap(), 0x1234);
        // C0A8010A = 192.168.1.10, 00002A9F = 10911, then the offset.
        assert_eq!(id.to_string(), "C0A8010A00002A9F0000000000001234");
        assert_eq!("c0a8010a00002a9f0000000000001234".parse(), Ok(id));
    }

    #[test]
    fn round_trips_ipv6() {
        let id = OffsetMsgId::new("[::1]:10911".parse().unwrap(), u64::MAX);
        let text = id.to_string();
        assert_eq!(text.len(), V6_HEX_LEN);
        assert_eq!(text.parse(), Ok(id));
    }

    #[test]
    fn rejects_bad_ids_saying_why() {
        assert!(matches!(
            "ABC".parse::<OffsetMsgId>(),
            Err(MsgIdError::BadLength { len: 3, .. })
        ));
        assert!(matches!(
            "C0A8010A00002A9F00000000000012Z4".parse::<OffsetMsgId>(),
            Err(MsgIdError::NotHex { at: 30, .. })
        ));
        // A multi-byte character must not panic on a char boundary.
        let odd = format!("{}é", "0".repeat(V4_HEX_LEN - 2));
        assert!("é".len() == 2 && odd.parse::<OffsetMsgId>().is_err());
    }
}
