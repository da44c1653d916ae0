//! The nameserver's configuration (DESIGN §7): a RocketMQ `namesrv.properties` file plus
//! `--set key=value` overrides, read with [`raftmq_properties`]. A bad value is an error
//! naming the file, line, key and what is allowed; an unknown key is a warning suggesting
//! the nearest known one; RocketMQ's JVM and Netty tuning keys are accepted and ignored.
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `listenPort` | 9876 | port brokers and clients reach the nameserver on; 0 = ephemeral |
//! | `bindAddress` (alias `listenAddress`) | 127.0.0.1 | local address to listen on |
//! | `brokerExpiryMs` | 5000 | a broker is dropped after this long without a heartbeat |
//! | `scanNotActiveBrokerInterval` | 200 | how often expired brokers are looked for, ms |
//! | `witnessStorePath` | `~/namesrv/witness` | where hosted witnesses keep votes and log ids |

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use raftmq_properties::value::{integer_in, non_empty};
use raftmq_properties::{
    escape_key, escape_value, parse_override, read_file, IgnoredKeys, Key, Property, Schema,
    Warning, NETTY_SERVER_KEYS, NETTY_WORKER_THREADS,
};

use crate::Error;

/// One day: longer expiries or scan intervals are typos, not choices.
const MAX_MS: u64 = 86_400_000;

/// RocketMQ's default nameserver port.
pub(crate) const LISTEN_PORT: Key<u16> = Key {
    name: "listenPort",
    aliases: &[],
    default: Some("9876"),
    parse: |raw| integer_in(raw, 0, u16::MAX),
};
/// RocketMQ's `bindAddress` defaults to 0.0.0.0; raftmq runs loopback-first (a whole layout
/// on one machine), so listening on every interface has to be asked for.
pub(crate) const BIND_ADDRESS: Key<IpAddr> = Key {
    name: "bindAddress",
    aliases: &["listenAddress"],
    default: Some("127.0.0.1"),
    parse: |raw| {
        raw.parse::<IpAddr>().map_err(|_| {
            "an IP address of this host to listen on, such as 127.0.0.1 or 0.0.0.0".to_owned()
        })
    },
};
/// Milliseconds. RocketMQ hard-codes 120 s; raftmq brokers heartbeat every second, so a
/// dead master leaves the routes within seconds (DESIGN §5). A broker may ask for its own
/// timeout in its registration.
pub(crate) const BROKER_EXPIRY_MS: Key<u64> = Key {
    name: "brokerExpiryMs",
    aliases: &[],
    default: Some("5000"),
    parse: |raw| integer_in(raw, 1, MAX_MS),
};
/// Milliseconds. RocketMQ scans every 5 s; a scan is cheap here and watchers should see an
/// expiry close to when it happens.
/// Where the witnesses this nameserver hosts keep their votes and log ids, one directory per
/// broker group (raftmq's own key; RocketMQ nameservers store nothing). `~` is the home
/// directory, as in RocketMQ's `kvConfigPath` default.
pub(crate) const WITNESS_STORE_PATH: Key<PathBuf> = Key {
    name: "witnessStorePath",
    aliases: &[],
    default: Some("~/namesrv/witness"),
    parse: |raw| non_empty(raw).map(PathBuf::from),
};
pub(crate) const SCAN_NOT_ACTIVE_BROKER_INTERVAL: Key<u64> = Key {
    name: "scanNotActiveBrokerInterval",
    aliases: &[],
    default: Some("200"),
    parse: |raw| integer_in(raw, 1, MAX_MS),
};

/// Every key of `namesrv.properties`, plus the RocketMQ keys accepted without effect.
pub(crate) static SCHEMA: Schema = Schema {
    keys: &[
        &LISTEN_PORT,
        &BIND_ADDRESS,
        &BROKER_EXPIRY_MS,
        &SCAN_NOT_ACTIVE_BROKER_INTERVAL,
        &WITNESS_STORE_PATH,
    ],
    ignored: &[
        IgnoredKeys {
            why: "the Java installation directory",
            names: &["rocketmqHome"],
        },
        IgnoredKeys {
            why: "RocketMQ's KV config store; raftmq's nameserver keeps no such files",
            names: &["kvConfigPath", "configStorePath"],
        },
        IgnoredKeys {
            why: "a RocketMQ nameserver feature raftmq does not have",
            names: &[
                "productEnvName",
                "clusterTest",
                "orderMessageEnable",
                "returnOrderTopicConfigToBroker",
                "enableAllTopicList",
                "enableTopicList",
                "notifyMinBrokerIdChanged",
                "enableControllerInNamesrv",
                "needWaitForService",
                "waitSecondsForService",
                "deleteTopicWithBrokerRegistration",
                "supportActingMaster",
                "configBlackList",
            ],
        },
        IgnoredKeys {
            why: "a JVM thread-pool setting; raftmq runs on an async runtime",
            names: &[
                "defaultThreadPoolNums",
                "clientRequestThreadPoolNums",
                "defaultThreadPoolQueueCapacity",
                "clientRequestThreadPoolQueueCapacity",
                "unRegisterBrokerQueueCapacity",
            ],
        },
        NETTY_SERVER_KEYS,
        NETTY_WORKER_THREADS,
    ],
};

/// The effective configuration of one nameserver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamesrvConfig {
    /// `listenPort` (default 9876; 0 picks an ephemeral port).
    pub listen_port: u16,
    /// `bindAddress` / `listenAddress` (default 127.0.0.1).
    pub bind_address: IpAddr,
    /// `brokerExpiryMs`: heartbeat timeout of brokers that do not send their own (5 s).
    pub broker_expiry: Duration,
    /// `scanNotActiveBrokerInterval`: how often expired brokers are dropped (200 ms).
    pub scan_interval: Duration,
    /// Route events buffered per watcher before it counts as lagging and is sent a fresh
    /// snapshot instead. Not a property key: a knob for tests and embedding programs.
    pub watch_buffer: usize,
    /// `witnessStorePath`: where hosted witnesses keep their votes and log ids, one directory
    /// per group (default `~/namesrv/witness`, `~` expanded).
    pub witness_store_path: PathBuf,
}

impl Default for NamesrvConfig {
    /// Every key at its default.
    fn default() -> Self {
        NamesrvConfig {
            listen_port: 9876,
            bind_address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            broker_expiry: Duration::from_millis(5000),
            scan_interval: Duration::from_millis(200),
            watch_buffer: 1024,
            witness_store_path: expand_home(Path::new("~/namesrv/witness")),
        }
    }
}

impl NamesrvConfig {
    /// Loads a properties file (none: all defaults) with `--set key=value` overrides on top.
    /// Returns the warnings (unknown, ignored and repeated keys) for the caller to show.
    pub fn load(path: Option<&Path>, overrides: &[String]) -> Result<(Self, Vec<Warning>), Error> {
        let file = path.map(read_file).transpose()?.unwrap_or_default();
        Self::from_properties(&file, overrides)
    }

    /// [`NamesrvConfig::load`] from already parsed pairs: the pure core.
    pub fn from_properties(
        file: &[Property],
        overrides: &[String],
    ) -> Result<(Self, Vec<Warning>), Error> {
        let overrides = overrides
            .iter()
            .map(|arg| parse_override(arg))
            .collect::<Result<Vec<_>, _>>()?;
        let (settings, mut warnings) = SCHEMA.resolve(file, &overrides)?;
        let config = NamesrvConfig {
            listen_port: settings.value(&LISTEN_PORT)?,
            bind_address: settings.value(&BIND_ADDRESS)?,
            broker_expiry: Duration::from_millis(settings.value(&BROKER_EXPIRY_MS)?),
            scan_interval: Duration::from_millis(settings.value(&SCAN_NOT_ACTIVE_BROKER_INTERVAL)?),
            witness_store_path: expand_home(&settings.value(&WITNESS_STORE_PATH)?),
            ..NamesrvConfig::default()
        };
        if config.scan_interval > config.broker_expiry {
            warnings.push(Warning::Note {
                at: settings.source(&SCAN_NOT_ACTIVE_BROKER_INTERVAL),
                key: SCAN_NOT_ACTIVE_BROKER_INTERVAL.name,
                message: format!(
                    "scanNotActiveBrokerInterval = {} ms is longer than brokerExpiryMs = {} ms \
                     ({}): dead brokers stay in the routes up to a scan interval too long",
                    config.scan_interval.as_millis(),
                    config.broker_expiry.as_millis(),
                    settings.source(&BROKER_EXPIRY_MS).short()
                ),
            });
        }
        Ok((config, warnings))
    }

    /// The address to listen on.
    pub fn listen_addr(&self) -> SocketAddr {
        SocketAddr::new(self.bind_address, self.listen_port)
    }

    /// The effective value of every key, as `key=value` lines a properties file could hold
    /// (what `mqnamesrv -p` prints).
    pub fn to_properties_text(&self) -> String {
        [
            (LISTEN_PORT.name, self.listen_port.to_string()),
            (BIND_ADDRESS.name, self.bind_address.to_string()),
            (
                BROKER_EXPIRY_MS.name,
                self.broker_expiry.as_millis().to_string(),
            ),
            (
                SCAN_NOT_ACTIVE_BROKER_INTERVAL.name,
                self.scan_interval.as_millis().to_string(),
            ),
            (
                WITNESS_STORE_PATH.name,
                self.witness_store_path.display().to_string(),
            ),
        ]
        .into_iter()
        .map(|(key, value)| format!("{}={}\n", escape_key(key), escape_value(&value)))
        .collect()
    }
}

/// `path` with a leading `~` replaced by `$HOME` (left as it is without a home).
fn expand_home(path: &Path) -> PathBuf {
    match (path.strip_prefix("~"), std::env::var_os("HOME")) {
        (Ok(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => path.to_path_buf(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raftmq_properties::parse_str;
    use std::collections::HashSet;

    fn load(text: &str, overrides: &[&str]) -> Result<(NamesrvConfig, Vec<Warning>), Error> {
        let file = parse_str(text, Path::new("conf/namesrv.properties"))?;
        let overrides: Vec<String> = overrides.iter().map(|s| (*s).to_owned()).collect();
        NamesrvConfig::from_properties(&file, &overrides)
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let (config, warnings) = load("", &[]).unwrap();
        assert!(warnings.is_empty());
        assert_eq!(config, NamesrvConfig::default());
        assert_eq!(config.listen_addr().to_string(), "127.0.0.1:9876");
    }

    #[test]
    fn every_default_parses_and_no_spelling_is_listed_twice() {
        let mut seen = HashSet::new();
        for spec in SCHEMA.keys {
            if let Some(default) = spec.default_text() {
                assert_eq!(spec.check(default), Ok(()), "default of {}", spec.name());
            }
            for name in std::iter::once(spec.name()).chain(spec.aliases().iter().copied()) {
                assert!(seen.insert(name), "{name} twice");
            }
        }
        for name in SCHEMA.ignored_names() {
            assert!(seen.insert(name), "{name} twice");
        }
    }

    #[test]
    fn file_and_overrides_set_every_key() {
        let text = "listenPort=9877\nlistenAddress=0.0.0.0\nbrokerExpiryMs=1000\n";
        let (config, warnings) = load(text, &["scanNotActiveBrokerInterval=50"]).unwrap();
        assert!(warnings.is_empty());
        assert_eq!(config.listen_addr().to_string(), "0.0.0.0:9877");
        assert_eq!(config.broker_expiry, Duration::from_millis(1000));
        assert_eq!(config.scan_interval, Duration::from_millis(50));
        // What -p prints loads back to the same configuration.
        let (again, _) = load(&config.to_properties_text(), &[]).unwrap();
        assert_eq!(again, config);
    }

    #[test]
    fn bad_value_names_file_line_and_key() {
        let err = load("# nameserver\nlistenPort=9876\nbrokerExpiryMs=5s\n", &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "conf/namesrv.properties:3: brokerExpiryMs = 5s is not allowed; \
             expected an integer from 1 to 86400000"
        );
        let err = load("bindAddress=localhost", &[]).unwrap_err();
        assert!(err
            .to_string()
            .starts_with("conf/namesrv.properties:1: bindAddress = localhost is not allowed"));
        let err = load("", &["listenPort=70000"]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "--set: listenPort = 70000 is not allowed; expected an integer from 0 to 65535"
        );
        let err = load("", &["listenPort"]).unwrap_err();
        assert_eq!(err.to_string(), "--set \"listenPort\": expected key=value");
    }

    #[test]
    fn rocketmq_keys_are_ignored_and_typos_suggested() {
        let text = "rocketmqHome=/opt/rocketmq\nlistenPrt=1\nserverWorkerThreads=8\n";
        let (_, warnings) = load(text, &[]).unwrap();
        let lines: Vec<String> = warnings.iter().map(ToString::to_string).collect();
        assert_eq!(
            lines,
            [
                "conf/namesrv.properties:1: rocketmqHome is ignored: the Java installation directory",
                "conf/namesrv.properties:2: unknown key \"listenPrt\" is ignored; did you mean listenPort?",
                "conf/namesrv.properties:3: serverWorkerThreads is ignored: a Netty transport setting; raftmq speaks gRPC",
            ]
        );
    }

    #[test]
    fn scan_slower_than_expiry_is_a_note() {
        let (_, warnings) =
            load("brokerExpiryMs=100\nscanNotActiveBrokerInterval=1000", &[]).unwrap();
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0]
            .to_string()
            .starts_with("conf/namesrv.properties:2: scanNotActiveBrokerInterval = 1000 ms"));
    }

    #[test]
    fn shipped_conf_file_loads_cleanly_with_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../conf/namesrv.properties");
        let (config, warnings) = NamesrvConfig::load(Some(&path), &[]).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(config, NamesrvConfig::default());
    }

    #[test]
    fn missing_file_is_one_line_naming_it() {
        let err = NamesrvConfig::load(Some(Path::new("/nonexistent/namesrv.properties")), &[])
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("/nonexistent/namesrv.properties: cannot read:"),
            "{text}"
        );
        assert!(!text.contains('\n'));
    }
}
