//! The nameserver list of `-n "host:port;host:port"` (RocketMQ's `namesrvAddr`).

use std::fmt;
use std::str::FromStr;

use crate::error::ClientError;

/// Environment variable RocketMQ's tools read the nameserver list from.
pub const NAMESRV_ADDR_ENV: &str = "NAMESRV_ADDR";

/// Nameserver used when neither `-n` nor `NAMESRV_ADDR` says otherwise.
pub const DEFAULT_NAMESRV_ADDR: &str = "127.0.0.1:9876";

/// A non-empty list of nameserver addresses, in the order given. Clients ask the first and
/// fail over to the next on error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameServerList(Vec<String>);

impl NameServerList {
    /// The addresses, in order.
    pub fn addrs(&self) -> &[String] {
        &self.0
    }

    /// The list of `NAMESRV_ADDR` when set and non-empty, else [`DEFAULT_NAMESRV_ADDR`].
    pub fn from_env_or_default() -> Result<Self, ClientError> {
        match std::env::var(NAMESRV_ADDR_ENV) {
            Ok(v) if !v.trim().is_empty() => v.parse(),
            _ => DEFAULT_NAMESRV_ADDR.parse(),
        }
    }
}

impl FromStr for NameServerList {
    type Err = ClientError;

    /// Parses `host:port` entries separated by `;` (RocketMQ) or `,`, ignoring blanks around
    /// entries and empty entries (a trailing `;`); duplicates are dropped.
    fn from_str(input: &str) -> Result<Self, ClientError> {
        let bad = |reason: String| ClientError::BadNameServerList {
            input: input.to_owned(),
            reason,
        };
        let mut addrs: Vec<String> = Vec::new();
        for entry in input
            .split([';', ','])
            .map(str::trim)
            .filter(|e| !e.is_empty())
        {
            let (host, port) = entry
                .rsplit_once(':')
                .ok_or_else(|| bad(format!("{entry:?} has no port")))?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            if host.is_empty() || host.contains(char::is_whitespace) {
                return Err(bad(format!("{entry:?} has no host")));
            }
            match port.parse::<u16>() {
                Ok(p) if p > 0 => {}
                _ => return Err(bad(format!("{entry:?} has a bad port {port:?}"))),
            }
            if !addrs.iter().any(|a| a == entry) {
                addrs.push(entry.to_owned());
            }
        }
        if addrs.is_empty() {
            return Err(bad("no address".into()));
        }
        Ok(Self(addrs))
    }
}

impl fmt::Display for NameServerList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join(";"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Vec<String>, String> {
        s.parse::<NameServerList>()
            .map(|l| l.addrs().to_vec())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn parses_rocketmq_lists() {
        assert_eq!(parse("127.0.0.1:9876").unwrap(), ["127.0.0.1:9876"]);
        assert_eq!(
            parse(" a:1 ; b:2;").unwrap(),
            ["a:1".to_string(), "b:2".to_string()]
        );
        assert_eq!(parse("a:1,b:2,a:1").unwrap(), ["a:1", "b:2"]);
        assert_eq!(parse("[::1]:9876").unwrap(), ["[::1]:9876"]);
    }

    #[test]
    fn rejects_bad_entries_saying_which() {
        assert!(parse("").unwrap_err().contains("no address"));
        assert!(parse(";;").unwrap_err().contains("no address"));
        assert!(parse("localhost")
            .unwrap_err()
            .contains("\"localhost\" has no port"));
        assert!(parse("a:1;b:x").unwrap_err().contains("bad port \"x\""));
        assert!(parse("a:0").unwrap_err().contains("bad port"));
        assert!(parse(":9876").unwrap_err().contains("no host"));
    }

    #[test]
    fn displays_as_rocketmq_list() {
        let l: NameServerList = "a:1, b:2".parse().unwrap();
        assert_eq!(l.to_string(), "a:1;b:2");
    }
}
