//! `properties_parse`: any bytes as a broker property file.
//!
//! Checks, beyond "no panic": every pair read back from its own escaped form is the same pair
//! (`escape_key`/`escape_value` promise it), and a configuration that loads renders, as
//! `mqbroker -p` prints it, to text that loads back to the same configuration. The lines of
//! the input that hold a `=` also go through the `--set` path.

use std::path::{Path, PathBuf};

use broker::config::{BrokerConfig, Environment};
use raftmq_properties::{escape_key, escape_value, parse_bytes, parse_str, Property};

/// The host facts the broker's defaults come from, fixed so a case means the same each run.
fn environment() -> Environment {
    Environment {
        hostname: Some("fuzzhost".into()),
        home: Some(PathBuf::from("/home/fuzz")),
    }
}

/// The body of the `properties_parse` target.
pub fn properties_parse(data: &[u8]) {
    let env = environment();
    let overrides: Vec<String> = String::from_utf8_lossy(data)
        .lines()
        .filter(|line| line.contains('='))
        .map(str::to_owned)
        .collect();
    if let Ok((config, warnings)) = BrokerConfig::from_properties(&[], &overrides, &env) {
        check_renders_back(&config, &env);
        warnings.iter().for_each(crate::shown);
    }

    let pairs = match parse_bytes(data.to_vec(), Path::new("fuzz.properties")) {
        Ok(pairs) => pairs,
        Err(e) => return crate::shown(e),
    };
    for pair in &pairs {
        check_escapes_read_back(pair);
    }
    match BrokerConfig::from_properties(&pairs, &[], &env) {
        Ok((config, warnings)) => {
            check_renders_back(&config, &env);
            warnings.iter().for_each(crate::shown);
        }
        Err(e) => crate::shown(e),
    }
}

fn check_escapes_read_back(pair: &Property) {
    let line = format!("{}={}\n", escape_key(&pair.key), escape_value(&pair.value));
    let read = parse_str(&line, Path::new("escaped.properties"))
        .unwrap_or_else(|e| panic!("escaped pair {line:?} does not parse: {e}"));
    let read: Vec<(&str, &str)> = read
        .iter()
        .map(|p| (p.key.as_str(), p.value.as_str()))
        .collect();
    assert_eq!(
        read,
        [(pair.key.as_str(), pair.value.as_str())],
        "the escaped form {line:?} reads back as another pair"
    );
}

fn check_renders_back(config: &BrokerConfig, env: &Environment) {
    let text = config.to_properties_text();
    let pairs = parse_str(&text, Path::new("effective.properties"))
        .unwrap_or_else(|e| panic!("the effective configuration does not parse: {e}\n{text}"));
    match BrokerConfig::from_properties(&pairs, &[], env) {
        Ok((again, _)) => assert_eq!(
            &again, config,
            "the effective configuration loads as another one:\n{text}"
        ),
        Err(e) => panic!("the effective configuration does not load: {e}\n{text}"),
    }
}

/// The shipped property files (`conf/**/*.properties`): the seeds the mutants start from.
pub fn seeds() -> Vec<Vec<u8>> {
    let conf = Path::new(env!("CARGO_MANIFEST_DIR")).join("../conf");
    let mut files = Vec::new();
    let mut dirs = vec![conf];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for path in entries.filter_map(|e| e.ok().map(|e| e.path())) {
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "properties") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
        .iter()
        .filter_map(|path| std::fs::read(path).ok())
        .collect()
}

/// Words that mean something in a property file: separators, escapes, comment marks, line
/// ends, numbers at the edges of the key types.
pub const TOKENS: &[&str] = &[
    "=",
    ":",
    " ",
    "\t",
    "\\",
    "\\\n",
    "\n",
    "\r\n",
    "\r",
    "#",
    "!",
    "\\u",
    "\\u00e9",
    "\\uD83D\\uDE00",
    "\\uD83D",
    "\\uZZZZ",
    "\u{feff}",
    "~",
    ";",
    "-",
    "0",
    "-1",
    "+1",
    "65535",
    "65536",
    "4294967296",
    "9223372036854775808",
    "99999999999999999999",
    "true",
    "FALSE",
    "SYNC_MASTER",
    "SLAVE",
    "ASYNC_FLUSH",
    "127.0.0.1:9876",
    "n0-127.0.0.1:40911;",
    "enableDLegerCommitLog=true\n",
    "brokerRole=SLAVE\n",
    "brokerId=1\n",
    "é",
    "\u{1F600}",
];
