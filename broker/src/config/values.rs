//! The value types of broker settings, and their parsers (raw text → value, or what is
//! allowed).

use std::fmt;
use std::net::IpAddr;

use raftmq_properties::value;

/// `brokerRole`: how a replica acknowledges sends (DESIGN §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerRole {
    /// Ack once the master has appended the message.
    AsyncMaster,
    /// Ack once the master and every in-sync replica have it (quorum commit in DLedger mode).
    SyncMaster,
    /// A replica that follows the group's master.
    Slave,
}

impl BrokerRole {
    const WORDS: [(&'static str, BrokerRole); 3] = [
        ("ASYNC_MASTER", BrokerRole::AsyncMaster),
        ("SYNC_MASTER", BrokerRole::SyncMaster),
        ("SLAVE", BrokerRole::Slave),
    ];

    /// The role as the wire names it.
    pub fn to_pb(self) -> proto::v1::BrokerRole {
        match self {
            BrokerRole::AsyncMaster => proto::v1::BrokerRole::AsyncMaster,
            BrokerRole::SyncMaster => proto::v1::BrokerRole::SyncMaster,
            BrokerRole::Slave => proto::v1::BrokerRole::Slave,
        }
    }

    /// The RocketMQ spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            BrokerRole::AsyncMaster => "ASYNC_MASTER",
            BrokerRole::SyncMaster => "SYNC_MASTER",
            BrokerRole::Slave => "SLAVE",
        }
    }

    /// True for the two master roles.
    pub fn is_master(self) -> bool {
        self != BrokerRole::Slave
    }

    pub(crate) fn parse(raw: &str) -> Result<Self, String> {
        value::one_of(raw, &Self::WORDS)
    }
}

impl fmt::Display for BrokerRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `flushDiskType`: when an append counts as durable (DESIGN §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushDiskType {
    /// Flush every `flushIntervalCommitLog`.
    AsyncFlush,
    /// fsync (group commit) before the append is reported.
    SyncFlush,
}

impl FlushDiskType {
    const WORDS: [(&'static str, FlushDiskType); 2] = [
        ("ASYNC_FLUSH", FlushDiskType::AsyncFlush),
        ("SYNC_FLUSH", FlushDiskType::SyncFlush),
    ];

    /// The RocketMQ spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            FlushDiskType::AsyncFlush => "ASYNC_FLUSH",
            FlushDiskType::SyncFlush => "SYNC_FLUSH",
        }
    }

    pub(crate) fn parse(raw: &str) -> Result<Self, String> {
        value::one_of(raw, &Self::WORDS)
    }
}

impl fmt::Display for FlushDiskType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `host:port` address as RocketMQ writes them (`namesrvAddr`, `dLegerPeers`). IPv6
/// literals are bracketed: `[::1]:9876`. The host is not resolved here: config loading does
/// no IO beyond reading the file.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPort {
    /// IP literal or DNS name, without brackets.
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl HostPort {
    const EXPECTED: &'static str = "host:port";

    pub(crate) fn parse(raw: &str) -> Result<Self, String> {
        let expected = || Self::EXPECTED.to_owned();
        let (host, port) = raw.rsplit_once(':').ok_or_else(expected)?;
        let port = port
            .parse::<u16>()
            .ok()
            .filter(|&p| p != 0)
            .ok_or_else(expected)?;
        let host = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            Some(v6) if v6.parse::<IpAddr>().is_ok_and(|ip| ip.is_ipv6()) => v6,
            Some(_) => return Err(expected()),
            // An unbracketed IPv6 literal cannot be told apart from its port.
            None if host.contains(':') => return Err(expected()),
            None => host_name(host).map_err(|_| expected())?,
        };
        Ok(HostPort {
            host: host.to_owned(),
            port,
        })
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// An IPv4/IPv6 literal or a DNS name (letters, digits, `-`, `.`, `_`), for `brokerIP1`.
pub(crate) fn host_name(raw: &str) -> Result<&str, String> {
    let dns_like = !raw.is_empty()
        && raw
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
    if dns_like || raw.parse::<IpAddr>().is_ok() {
        Ok(raw)
    } else {
        Err("an IP address or host name".to_owned())
    }
}

/// One member of a DLedger group, from `dLegerPeers` (`n0-127.0.0.1:40911`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DLedgerPeer {
    /// The peer id, as `dLegerSelfId` names it.
    pub id: String,
    /// The peer's replication address.
    pub addr: HostPort,
}

impl fmt::Display for DLedgerPeer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.id, self.addr)
    }
}

const PEERS_EXPECTED: &str =
    "id-host:port peers separated by ';', e.g. n0-127.0.0.1:40911;n1-127.0.0.1:40912";

/// Parses `dLegerPeers`; ids and addresses must be unique.
///
/// The id ends at the first `-` (ids are `n0`-like words; host names may contain `-`,
/// which DLedger's own parser would have mangled).
pub(crate) fn parse_peers(raw: &str) -> Result<Vec<DLedgerPeer>, String> {
    let peers = value::list(raw, ';', |item| {
        let (id, addr) = item
            .split_once('-')
            .ok_or_else(|| "id-host:port".to_owned())?;
        peer_id(id).map_err(|_| "id-host:port".to_owned())?;
        let addr = HostPort::parse(addr).map_err(|_| "id-host:port".to_owned())?;
        Ok(DLedgerPeer {
            id: id.to_owned(),
            addr,
        })
    })
    .map_err(|detail| format!("{PEERS_EXPECTED}; {detail}"))?;
    for (i, peer) in peers.iter().enumerate() {
        if let Some(other) = peers[..i]
            .iter()
            .find(|p| p.id == peer.id || p.addr == peer.addr)
        {
            let what = if other.id == peer.id { "id" } else { "address" };
            return Err(format!("{PEERS_EXPECTED}, with distinct ids and addresses ({other} and {peer} share an {what})"));
        }
    }
    Ok(peers)
}

/// A DLedger peer id: letters, digits and `_` (no `-`, which separates id from address).
pub(crate) fn peer_id(raw: &str) -> Result<String, String> {
    if !raw.is_empty() && raw.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        Ok(raw.to_owned())
    } else {
        Err("a peer id of letters, digits and '_', such as n0".to_owned())
    }
}

/// A cluster, broker or group name: non-empty, no whitespace or control characters (they
/// end up in routes, file names and log lines).
pub(crate) fn name(raw: &str) -> Result<String, String> {
    if !raw.is_empty() && !raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Ok(raw.to_owned())
    } else {
        Err("a name without spaces".to_owned())
    }
}

/// `deleteWhen`: hours of the day (`04`, `04;16`) at which expired segments are deleted.
pub(crate) fn parse_hours(raw: &str) -> Result<Vec<u8>, String> {
    let hours = value::list(raw, ';', |hour| {
        value::integer_in(hour, 0u8, 23).map_err(|_| "hours 00 to 23".to_owned())
    })?;
    if hours.is_empty() {
        Err("hours 00 to 23 separated by ';', such as 04".to_owned())
    } else {
        Ok(hours)
    }
}

/// Renders hours the way RocketMQ's files write them (`04;16`).
pub(crate) fn render_hours(hours: &[u8]) -> String {
    hours
        .iter()
        .map(|h| format!("{h:02}"))
        .collect::<Vec<_>>()
        .join(";")
}

/// `mappedFileSizeConsumeQueue`: rounded up to a whole number of 20-byte consume-queue
/// units, exactly as RocketMQ's getter does, rather than refused.
pub(crate) fn consume_queue_file_size(raw: &str) -> Result<u64, String> {
    const UNIT: u64 = 20;
    let size = value::integer_in(raw, UNIT, i32::MAX as u64)?;
    Ok(size.div_ceil(UNIT) * UNIT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_and_flush_types_use_rocketmq_spellings() {
        assert_eq!(BrokerRole::parse("SYNC_MASTER"), Ok(BrokerRole::SyncMaster));
        assert_eq!(
            BrokerRole::parse("MASTR"),
            Err("one of ASYNC_MASTER, SYNC_MASTER, SLAVE".into())
        );
        assert!(
            BrokerRole::parse("slave").is_err(),
            "Java's valueOf is case-sensitive"
        );
        assert!(!BrokerRole::Slave.is_master() && BrokerRole::AsyncMaster.is_master());
        for (word, role) in BrokerRole::WORDS {
            assert_eq!(role.as_str(), word);
        }
        for (word, flush) in FlushDiskType::WORDS {
            assert_eq!(flush.as_str(), word);
            assert_eq!(FlushDiskType::parse(word), Ok(flush));
        }
    }

    #[test]
    fn host_ports() {
        let hp = HostPort::parse("127.0.0.1:9876").unwrap();
        assert_eq!((hp.host.as_str(), hp.port), ("127.0.0.1", 9876));
        assert_eq!(
            HostPort::parse("ns-1.example.com:9876")
                .unwrap()
                .to_string(),
            "ns-1.example.com:9876"
        );
        let v6 = HostPort::parse("[::1]:9876").unwrap();
        assert_eq!(
            (v6.host.as_str(), v6.to_string()),
            ("::1", "[::1]:9876".to_owned())
        );
        for bad in [
            "localhost",
            "host:",
            ":9876",
            "host:0",
            "host:65536",
            "a b:1",
            "[x]:1",
            "::1:9876",
        ] {
            assert_eq!(HostPort::parse(bad), Err("host:port".into()), "{bad}");
        }
    }

    #[test]
    fn peers_parse_and_must_be_distinct() {
        let peers = parse_peers("n0-127.0.0.1:40911;n1-127.0.0.1:40912;n2-my-host:40913").unwrap();
        assert_eq!(peers.len(), 3);
        assert_eq!(peers[2].id, "n2");
        assert_eq!(peers[2].addr.host, "my-host");
        assert_eq!(peers[0].to_string(), "n0-127.0.0.1:40911");

        let err = parse_peers("n0-127.0.0.1:40911;n1:40912").unwrap_err();
        assert_eq!(
            err,
            format!("{PEERS_EXPECTED}; id-host:port, separated by ';' (entry 2 is \"n1:40912\")")
        );
        let err = parse_peers("n0-127.0.0.1:40911;n0-127.0.0.1:40912").unwrap_err();
        assert!(
            err.ends_with("(n0-127.0.0.1:40911 and n0-127.0.0.1:40912 share an id)"),
            "{err}"
        );
        let err = parse_peers("n0-127.0.0.1:40911;n1-127.0.0.1:40911").unwrap_err();
        assert!(err.ends_with("share an address)"), "{err}");
    }

    #[test]
    fn hours() {
        assert_eq!(parse_hours("04"), Ok(vec![4]));
        assert_eq!(parse_hours("04;16;"), Ok(vec![4, 16]));
        assert_eq!(render_hours(&[4, 16]), "04;16");
        assert!(parse_hours("24").is_err());
        assert!(parse_hours("").is_err());
    }

    #[test]
    fn consume_queue_size_rounds_up_to_whole_units() {
        assert_eq!(consume_queue_file_size("6000000"), Ok(6_000_000));
        assert_eq!(consume_queue_file_size("6000001"), Ok(6_000_020));
        assert!(consume_queue_file_size("19").is_err());
    }

    #[test]
    fn names_and_hosts() {
        assert_eq!(name("broker-a"), Ok("broker-a".into()));
        assert!(name("broker a").is_err() && name("").is_err());
        assert!(
            host_name("127.0.0.1").is_ok()
                && host_name("::1").is_ok()
                && host_name("node-1.lan").is_ok()
        );
        assert!(host_name("127.0.0.1 ").is_err() && host_name("").is_err());
        assert!(peer_id("n0").is_ok() && peer_id("n-0").is_err());
    }
}
