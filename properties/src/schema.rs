//! Typed keys: a table of known keys, applied to parsed pairs.
//!
//! A [`Key<T>`] is a `const` describing one setting (canonical RocketMQ name, aliases,
//! default text, parser). A [`Schema`] lists the keys of one program plus the RocketMQ keys
//! it accepts but ignores. [`Schema::resolve`] applies the schema to a file's pairs and the
//! command-line overrides, with these rules:
//!
//! - within the file the last occurrence of a key (or of any of its aliases) wins, as in
//!   Java, and each repeat is a [`Warning::Duplicate`];
//! - overrides are applied after the file and silently replace its values;
//! - only the winning value of each key is parsed, so a bad value that is overridden is
//!   harmless (it would be in Java too); the first bad winner, in file order then override
//!   order, is the error;
//! - an ignored key is a [`Warning::Ignored`], once per key; any other unknown key is a
//!   [`Warning::Unknown`] with the nearest known key suggested.
//!
//! The defaults are text, parsed by the same parser as file values, so a default can never
//! be something a user could not have written.

use std::collections::{HashMap, HashSet};

use crate::error::Error;
use crate::source::{Property, Source};
use crate::suggest::nearest;
use crate::warning::Warning;

/// One typed setting.
pub struct Key<T> {
    /// The canonical RocketMQ name.
    pub name: &'static str,
    /// Other spellings accepted for the same setting (legacy names such as
    /// `mapedFileSizeCommitLog`).
    pub aliases: &'static [&'static str],
    /// The default as text, parsed by `parse`; `None` when the default is not a constant
    /// (derived from other keys or the environment), which the caller then computes.
    pub default: Option<&'static str>,
    /// Parses raw text, or says what is allowed (see [`crate::value`]).
    pub parse: fn(&str) -> Result<T, String>,
}

/// The type-erased view of a [`Key`] that a [`Schema`] table holds.
pub trait KeySpec: Sync {
    /// The canonical name.
    fn name(&self) -> &'static str;
    /// Accepted other spellings.
    fn aliases(&self) -> &'static [&'static str];
    /// The default as text, if it is a constant.
    fn default_text(&self) -> Option<&'static str>;
    /// Checks raw text; `Err` says what is allowed.
    fn check(&self, raw: &str) -> Result<(), String>;
}

impl<T> KeySpec for Key<T> {
    fn name(&self) -> &'static str {
        self.name
    }

    fn aliases(&self) -> &'static [&'static str] {
        self.aliases
    }

    fn default_text(&self) -> Option<&'static str> {
        self.default
    }

    fn check(&self, raw: &str) -> Result<(), String> {
        (self.parse)(raw).map(drop)
    }
}

/// RocketMQ keys that are accepted but have no effect here, grouped by the reason.
#[derive(Debug, Clone, Copy)]
pub struct IgnoredKeys {
    /// Why these keys do not apply, e.g. "a JVM thread-pool setting".
    pub why: &'static str,
    /// The RocketMQ keys.
    pub names: &'static [&'static str],
}

/// The Netty server settings every RocketMQ server process (broker, nameserver) accepts:
/// raftmq speaks gRPC, so they are accepted and ignored by both.
pub const NETTY_SERVER_KEYS: IgnoredKeys = IgnoredKeys {
    why: "a Netty transport setting; raftmq speaks gRPC",
    names: &[
        "serverCallbackExecutorThreads",
        "serverSelectorThreads",
        "serverOnewaySemaphoreValue",
        "serverAsyncSemaphoreValue",
        "serverChannelMaxIdleTimeSeconds",
        "serverSocketSndBufSize",
        "serverSocketRcvBufSize",
        "serverPooledByteBufAllocatorEnable",
        "useEpollNativeSelector",
    ],
};

/// `serverWorkerThreads`, split from [`NETTY_SERVER_KEYS`] because the broker gives it a
/// meaning (its async runtime's worker threads) while the nameserver ignores it.
pub const NETTY_WORKER_THREADS: IgnoredKeys = IgnoredKeys {
    why: "a Netty transport setting; raftmq speaks gRPC",
    names: &["serverWorkerThreads"],
};

/// The keys one program understands, plus those it knowingly ignores.
pub struct Schema {
    /// The known keys, in the order they are best listed to a user.
    pub keys: &'static [&'static dyn KeySpec],
    /// Keys accepted without effect.
    pub ignored: &'static [IgnoredKeys],
}

impl Schema {
    /// The known key that `name` spells (canonical name or alias).
    pub fn lookup(&self, name: &str) -> Option<&'static dyn KeySpec> {
        self.keys
            .iter()
            .copied()
            .find(|spec| spec.name() == name || spec.aliases().contains(&name))
    }

    /// Why `name` is ignored, if it is one of the ignored keys.
    pub fn ignored(&self, name: &str) -> Option<&'static str> {
        self.ignored
            .iter()
            .find(|group| group.names.contains(&name))
            .map(|group| group.why)
    }

    /// Every ignored key.
    pub fn ignored_names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.ignored
            .iter()
            .flat_map(|group| group.names.iter().copied())
    }

    /// The known or ignored key nearest to an unknown `name`, if one is close enough to be
    /// a plausible typo. Known keys win ties over ignored ones.
    pub fn suggest(&self, name: &str) -> Option<&'static str> {
        let known = self
            .keys
            .iter()
            .flat_map(|spec| std::iter::once(spec.name()).chain(spec.aliases().iter().copied()));
        let ignored = self.ignored_names();
        // An alias is a fine suggestion only if it is what the user nearly typed; report the
        // canonical name, which is the spelling we want to see in new files.
        nearest(name, known.chain(ignored))
            .map(|hit| self.lookup(hit).map_or(hit, |spec| spec.name()))
    }

    /// Applies the schema to a file's pairs (in file order) and then to overrides (in
    /// command-line order). See the module documentation for the rules.
    pub fn resolve(
        &self,
        file: &[Property],
        overrides: &[Property],
    ) -> Result<(Settings, Vec<Warning>), Error> {
        let mut winners: HashMap<&'static str, Property> = HashMap::new();
        let mut warnings = Vec::new();
        let mut reported: HashSet<&str> = HashSet::new();
        let all = file
            .iter()
            .map(|p| (true, p))
            .chain(overrides.iter().map(|p| (false, p)));

        for (from_file, property) in all.clone() {
            let Some(spec) = self.lookup(&property.key) else {
                if reported.insert(&property.key) {
                    warnings.push(match self.ignored(&property.key) {
                        Some(why) => Warning::Ignored {
                            at: property.at.clone(),
                            key: property.key.clone(),
                            why,
                        },
                        None => Warning::Unknown {
                            at: property.at.clone(),
                            key: property.key.clone(),
                            suggestion: self.suggest(&property.key),
                        },
                    });
                }
                continue;
            };
            if let Some(first) = winners.insert(spec.name(), property.clone()) {
                // Overriding a file value from the command line is the point of --set, so
                // only repeats inside the file are worth a warning.
                if from_file {
                    warnings.push(Warning::Duplicate {
                        at: property.at.clone(),
                        key: property.key.clone(),
                        first_key: first.key,
                        first: first.at,
                    });
                }
            }
        }

        for (_, property) in all {
            let Some(spec) = self.lookup(&property.key) else {
                continue;
            };
            if winners.get(spec.name()) != Some(property) {
                continue; // replaced later: never parsed, as in Java
            }
            spec.check(&property.value)
                .map_err(|expected| Error::InvalidValue {
                    at: property.at.clone(),
                    key: property.key.clone(),
                    value: property.value.clone(),
                    expected,
                })?;
        }
        Ok((Settings { winners }, warnings))
    }
}

/// The effective value of every key that was set, after [`Schema::resolve`]; typed values
/// come out through the same [`Key`]s.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// Canonical name → the pair that won.
    winners: HashMap<&'static str, Property>,
}

impl Settings {
    /// The pair that set `key`, if any.
    pub fn property<T>(&self, key: &Key<T>) -> Option<&Property> {
        self.winners.get(key.name)
    }

    /// Whether `key` was set in the file or by an override.
    pub fn is_set<T>(&self, key: &Key<T>) -> bool {
        self.winners.contains_key(key.name)
    }

    /// Where the effective value of `key` comes from ([`Source::Default`] when unset).
    pub fn source<T>(&self, key: &Key<T>) -> Source {
        self.source_of(key.name)
    }

    /// Like [`Settings::source`], by canonical name, for code that handles keys of
    /// different types together.
    pub fn source_of(&self, name: &str) -> Source {
        self.winners
            .get(name)
            .map_or(Source::Default, |p| p.at.clone())
    }

    /// The set value of `key`, else its default, else `None`.
    ///
    /// Set values were already checked by [`Schema::resolve`], so an error here means the
    /// key was missing from the schema or its default text is bad: a bug, reported rather
    /// than panicked on.
    pub fn get<T>(&self, key: &Key<T>) -> Result<Option<T>, Error> {
        let (at, written, raw) = match (self.property(key), key.default) {
            (Some(p), _) => (p.at.clone(), p.key.as_str(), p.value.as_str()),
            (None, Some(default)) => (Source::Default, key.name, default),
            (None, None) => return Ok(None),
        };
        (key.parse)(raw)
            .map(Some)
            .map_err(|expected| Error::InvalidValue {
                at,
                key: written.to_owned(),
                value: raw.to_owned(),
                expected,
            })
    }

    /// Like [`Settings::get`] for keys that always have a value (a constant default).
    pub fn value<T>(&self, key: &Key<T>) -> Result<T, Error> {
        self.get(key)?.ok_or(Error::NoValue { key: key.name })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::{parse_override, parse_str};
    use crate::value;
    use std::path::Path;

    const ROLE: Key<&'static str> = Key {
        name: "brokerRole",
        aliases: &[],
        default: Some("ASYNC_MASTER"),
        parse: |raw| {
            value::one_of(
                raw,
                &[
                    ("ASYNC_MASTER", "ASYNC_MASTER"),
                    ("SYNC_MASTER", "SYNC_MASTER"),
                    ("SLAVE", "SLAVE"),
                ],
            )
        },
    };
    const SIZE: Key<u64> = Key {
        name: "mappedFileSizeCommitLog",
        aliases: &["mapedFileSizeCommitLog"],
        default: Some("1073741824"),
        parse: |raw| value::integer_in(raw, 4096, u64::MAX),
    };
    const NAME: Key<String> = Key {
        name: "brokerName",
        aliases: &[],
        default: None,
        parse: value::non_empty,
    };
    const BAD_DEFAULT: Key<u8> = Key {
        name: "listenPort",
        aliases: &[],
        default: Some("x"),
        parse: |raw| value::integer_in(raw, 0, 9),
    };

    static SCHEMA: Schema = Schema {
        keys: &[&ROLE, &SIZE, &NAME],
        ignored: &[IgnoredKeys {
            why: "a JVM thread-pool size",
            names: &["sendMessageThreadPoolNums"],
        }],
    };

    fn file(text: &str) -> Vec<Property> {
        parse_str(text, Path::new("conf/broker-a.properties")).unwrap()
    }

    fn sets(args: &[&str]) -> Vec<Property> {
        args.iter().map(|a| parse_override(a).unwrap()).collect()
    }

    fn warnings_of(text: &str, overrides: &[&str]) -> Vec<String> {
        let (_, warnings) = SCHEMA.resolve(&file(text), &sets(overrides)).unwrap();
        warnings.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn values_defaults_and_unset() {
        let (settings, warnings) = SCHEMA.resolve(&file("brokerRole=SLAVE"), &[]).unwrap();
        assert!(warnings.is_empty());
        assert_eq!(settings.value(&ROLE).unwrap(), "SLAVE");
        assert_eq!(settings.value(&SIZE).unwrap(), 1 << 30);
        assert!(settings.is_set(&ROLE) && !settings.is_set(&SIZE));
        assert_eq!(settings.get(&NAME).unwrap(), None);
        assert!(matches!(
            settings.value(&NAME),
            Err(Error::NoValue { key: "brokerName" })
        ));
        assert_eq!(settings.source(&SIZE), Source::Default);
        assert_eq!(
            settings.source(&ROLE).to_string(),
            "conf/broker-a.properties:1"
        );
    }

    #[test]
    fn bad_value_error_names_file_line_key_value_and_allowed() {
        let err = SCHEMA
            .resolve(&file("# c\nbrokerName=a\nbrokerRole = MASTR"), &[])
            .err()
            .unwrap();
        assert_eq!(
            err.to_string(),
            "conf/broker-a.properties:3: brokerRole = MASTR is not allowed; \
             expected one of ASYNC_MASTER, SYNC_MASTER, SLAVE"
        );
    }

    #[test]
    fn first_bad_value_in_file_order_is_reported() {
        let err = SCHEMA
            .resolve(&file("mapedFileSizeCommitLog=1\nbrokerRole=x"), &[])
            .err()
            .unwrap();
        assert_eq!(
            err.to_string(),
            "conf/broker-a.properties:1: mapedFileSizeCommitLog = 1 is not allowed; \
             expected an integer from 4096 to 18446744073709551615"
        );
    }

    #[test]
    fn alias_sets_the_canonical_key() {
        let (settings, warnings) = SCHEMA
            .resolve(&file("mapedFileSizeCommitLog=65536"), &[])
            .unwrap();
        assert!(warnings.is_empty());
        assert_eq!(settings.value(&SIZE).unwrap(), 65536);
    }

    #[test]
    fn duplicate_in_file_last_wins_with_warning() {
        let text = "brokerRole=SLAVE\nbrokerRole=SYNC_MASTER";
        let (settings, _) = SCHEMA.resolve(&file(text), &[]).unwrap();
        assert_eq!(settings.value(&ROLE).unwrap(), "SYNC_MASTER");
        assert_eq!(
            warnings_of(text, &[]),
            ["conf/broker-a.properties:2: brokerRole is set again; this value replaces the one at line 1"]
        );
        assert_eq!(
            warnings_of(
                "mapedFileSizeCommitLog=65536\nmappedFileSizeCommitLog=8192",
                &[]
            ),
            [
                "conf/broker-a.properties:2: mappedFileSizeCommitLog is set again \
              (as mapedFileSizeCommitLog); this value replaces the one at line 1"
            ]
        );
    }

    #[test]
    fn overridden_bad_value_is_not_an_error() {
        let (settings, _) = SCHEMA
            .resolve(&file("brokerRole=MASTR\nbrokerRole=SLAVE"), &[])
            .unwrap();
        assert_eq!(settings.value(&ROLE).unwrap(), "SLAVE");
        let (settings, _) = SCHEMA
            .resolve(&file("brokerRole=MASTR"), &sets(&["brokerRole=SLAVE"]))
            .unwrap();
        assert_eq!(settings.value(&ROLE).unwrap(), "SLAVE");
    }

    #[test]
    fn overrides_replace_file_values_without_warning() {
        let (settings, warnings) = SCHEMA
            .resolve(
                &file("brokerRole=SLAVE"),
                &sets(&["brokerRole=SYNC_MASTER"]),
            )
            .unwrap();
        assert!(warnings.is_empty());
        assert_eq!(settings.value(&ROLE).unwrap(), "SYNC_MASTER");
        assert_eq!(settings.source(&ROLE), Source::CommandLine);
    }

    #[test]
    fn bad_override_error_names_set() {
        let err = SCHEMA
            .resolve(&[], &sets(&["brokerRole=MASTR"]))
            .err()
            .unwrap();
        assert_eq!(
            err.to_string(),
            "--set: brokerRole = MASTR is not allowed; expected one of ASYNC_MASTER, SYNC_MASTER, SLAVE"
        );
    }

    #[test]
    fn unknown_keys_warn_with_a_suggestion_when_close() {
        assert_eq!(
            warnings_of("brokerRol=SLAVE\ntotallyDifferent=1", &["mapedFileSizeCommitLo=1"]),
            [
                "conf/broker-a.properties:1: unknown key \"brokerRol\" is ignored; did you mean brokerRole?",
                "conf/broker-a.properties:2: unknown key \"totallyDifferent\" is ignored",
                "--set: unknown key \"mapedFileSizeCommitLo\" is ignored; did you mean mappedFileSizeCommitLog?",
            ]
        );
    }

    #[test]
    fn ignored_keys_are_reported_once() {
        assert_eq!(
            warnings_of("sendMessageThreadPoolNums=16\nsendMessageThreadPoolNums=32", &["sendMessageThreadPoolNums=8"]),
            ["conf/broker-a.properties:1: sendMessageThreadPoolNums is ignored: a JVM thread-pool size"]
        );
        // A typo of an ignored key is still caught.
        assert_eq!(
            SCHEMA.suggest("sendMessageThreadPoolNum"),
            Some("sendMessageThreadPoolNums")
        );
    }

    #[test]
    fn bad_default_is_reported_not_panicked() {
        let settings = Settings::default();
        assert_eq!(
            settings.get(&BAD_DEFAULT).err().unwrap().to_string(),
            "default: listenPort = x is not allowed; expected an integer from 0 to 9"
        );
    }
}
