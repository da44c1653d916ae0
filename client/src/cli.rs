//! What `mqadmin` and `mqbench` share: how they report bad usage and failures (one line
//! on stderr; exit 2 for usage, 1 for failures) and read `-n`. They log through
//! [`raftmq_properties::process::init_logging`], as the servers do.

use std::process::ExitCode;

use crate::namesrv_list::NameServerList;

/// Exit code of a command that failed.
pub const EXIT_FAILURE: u8 = 1;
/// Exit code of a command line that could not be parsed.
pub const EXIT_USAGE: u8 = 2;

/// Parses `-n` as a clap value parser, so a malformed list is a usage error.
pub fn parse_namesrv(text: &str) -> Result<NameServerList, String> {
    text.parse().map_err(|e: crate::ClientError| e.to_string())
}

/// Reports a clap error: help and version go to stdout with exit 0 (help shown because
/// a sub-command is missing exits 2); anything else is one line `TOOL: ...` on stderr
/// with exit 2.
pub fn usage_error(tool: &str, e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = e.print();
            ExitCode::SUCCESS
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            ExitCode::from(EXIT_USAGE)
        }
        _ => {
            eprintln!(
                "{tool}: {} (see {tool} --help)",
                first_paragraph(&e.to_string())
            );
            ExitCode::from(EXIT_USAGE)
        }
    }
}

/// Reports a failure as one line `TOOL: message` on stderr; exit 1.
pub fn failure(tool: &str, message: &str) -> ExitCode {
    eprintln!("{tool}: {}", message.replace('\n', " "));
    ExitCode::from(EXIT_FAILURE)
}

/// The first paragraph of a clap message on one line, without its "error: " prefix
/// ("the following required arguments were not provided: --topic <TOPIC>").
pub fn first_paragraph(text: &str) -> String {
    let paragraph: Vec<&str> = text
        .lines()
        .skip_while(|l| l.trim().is_empty())
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim)
        .collect();
    let line = paragraph.join(" ");
    line.strip_prefix("error: ").unwrap_or(&line).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clap_messages_become_one_line() {
        let text = "error: the following required arguments were not provided:\n  --topic <TOPIC>\n\nUsage: x\n";
        assert_eq!(
            first_paragraph(text),
            "the following required arguments were not provided: --topic <TOPIC>"
        );
        assert_eq!(
            first_paragraph("error: unexpected argument '--x' found\n\n  tip: y"),
            "unexpected argument '--x' found"
        );
    }

    #[test]
    fn namesrv_values_parse_or_explain() {
        assert_eq!(parse_namesrv("a:1;b:2").unwrap().addrs().len(), 2);
        assert!(parse_namesrv("a").unwrap_err().contains("has no port"));
    }
}
