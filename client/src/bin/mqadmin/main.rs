//! `mqadmin`: raftmq's admin tool, with RocketMQ's sub-command names.
//!
//! Exit codes: 0 success, 1 the command failed (one line `mqadmin: ...` on stderr),
//! 2 bad usage (one line on stderr; `--help` shows the usage).

mod body;
mod cluster;
mod consumer;
mod message;
mod table;
mod topic;

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use client::{cli, Admin, ClientOptions, Cluster, NameServerList};
use serde_json::Value;

/// raftmq admin tool (RocketMQ mqadmin sub-commands).
#[derive(Parser, Debug)]
#[command(name = "mqadmin", version, propagate_version = true)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

/// Flags every sub-command takes.
#[derive(Args, Debug, Clone)]
struct Global {
    /// Nameserver list "host:port;host:port" [default: $NAMESRV_ADDR, else 127.0.0.1:9876]
    #[arg(short = 'n', long = "namesrvAddr", global = true, value_name = "ADDRS", value_parser = cli::parse_namesrv)]
    namesrv: Option<NameServerList>,
    /// Print JSON instead of tables (for scripts)
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// List clusters, broker groups and their members, with each group's leader and term
    #[command(name = "clusterList")]
    ClusterList,
    /// List every topic hosted by a live broker
    #[command(name = "topicList")]
    TopicList(topic::ListArgs),
    /// Show a topic's queues per broker group and the groups' members
    #[command(name = "topicRoute")]
    TopicRoute(topic::TopicArg),
    /// Show min and max offset of every queue of a topic
    #[command(name = "topicStatus")]
    TopicStatus(topic::TopicArg),
    /// Create a topic or change its queue counts and permission
    #[command(name = "updateTopic")]
    UpdateTopic(topic::UpdateArgs),
    /// Delete a topic from every broker group hosting it
    #[command(name = "deleteTopic")]
    DeleteTopic(topic::DeleteArgs),
    /// Show a broker's identity, Raft state, storage and counters
    #[command(name = "brokerStatus")]
    BrokerStatus(cluster::BrokerStatusArgs),
    /// Show a consumer group's offsets and lag per queue
    #[command(name = "consumerProgress")]
    ConsumerProgress(consumer::ProgressArgs),
    /// Send one message
    #[command(name = "sendMessage")]
    SendMessage(message::SendArgs),
    /// Read messages of a topic (without committing offsets)
    #[command(name = "consumeMessage")]
    ConsumeMessage(message::ConsumeArgs),
    /// Show one message by the id the broker gave it
    #[command(name = "queryMsgById")]
    QueryMsgById(message::QueryByIdArgs),
}

/// What a command prints: text for people, JSON for scripts.
pub struct Output {
    text: String,
    json: Value,
}

impl Output {
    /// An output with both forms.
    pub fn new(text: impl Into<String>, json: Value) -> Self {
        Self {
            text: text.into(),
            json,
        }
    }

    /// A table, printed as such.
    pub fn table(table: &table::Table) -> Self {
        Self::new(table.to_text(), table.to_json())
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return cli::usage_error("mqadmin", e),
    };
    // Quiet unless asked: errors reach the user as the one `mqadmin:` line.
    raftmq_properties::process::init_logging("off");
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return cli::failure("mqadmin", &format!("cannot start the async runtime: {e}")),
    };
    let json = cli.global.json;
    match runtime.block_on(run(cli)) {
        Ok(output) => {
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&output.json).unwrap_or_default()
                );
            } else if !output.text.is_empty() {
                println!("{}", output.text);
            }
            ExitCode::SUCCESS
        }
        Err(e) => cli::failure("mqadmin", &format!("{e:#}")),
    }
}

async fn run(cli: Cli) -> anyhow::Result<Output> {
    let namesrv = match cli.global.namesrv {
        Some(list) => list,
        None => NameServerList::from_env_or_default()?,
    };
    let options = ClientOptions {
        watch_routes: false,
        ..ClientOptions::default()
    };
    let cluster = Cluster::connect_list(namesrv, options).await?;
    let admin = Admin::new(cluster);
    match cli.command {
        Command::ClusterList => cluster::cluster_list(&admin).await,
        Command::TopicList(args) => topic::topic_list(&admin, args).await,
        Command::TopicRoute(args) => topic::topic_route(&admin, args).await,
        Command::TopicStatus(args) => topic::topic_status(&admin, args).await,
        Command::UpdateTopic(args) => topic::update_topic(&admin, args).await,
        Command::DeleteTopic(args) => topic::delete_topic(&admin, args).await,
        Command::BrokerStatus(args) => cluster::broker_status(&admin, args).await,
        Command::ConsumerProgress(args) => consumer::consumer_progress(&admin, args).await,
        Command::SendMessage(args) => message::send_message(&admin, args).await,
        Command::ConsumeMessage(args) => message::consume_message(&admin, args).await,
        Command::QueryMsgById(args) => message::query_msg_by_id(&admin, args).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("mqadmin").chain(args.iter().copied()))
    }

    #[test]
    fn parses_rocketmq_style_commands() {
        let cli = parse(&[
            "updateTopic",
            "-n",
            "a:1;b:2",
            "-t",
            "T",
            "-c",
            "DefaultCluster",
            "-r",
            "4",
        ])
        .unwrap();
        assert_eq!(
            cli.global.namesrv.map(|l| l.to_string()).as_deref(),
            Some("a:1;b:2")
        );
        match cli.command {
            Command::UpdateTopic(a) => {
                assert_eq!(
                    (a.topic.as_str(), a.read_queue_nums, a.write_queue_nums),
                    ("T", 4, 8)
                );
                assert_eq!(a.cluster.as_deref(), Some("DefaultCluster"));
            }
            other => panic!("parsed as {other:?}"),
        }
        assert!(parse(&["--json", "clusterList"]).unwrap().global.json);
        assert!(parse(&[
            "sendMessage",
            "-t",
            "T",
            "-p",
            "hi",
            "-k",
            "k1",
            "-c",
            "TagA"
        ])
        .is_ok());
        assert!(parse(&["consumeMessage", "-t", "T", "-q", "1", "-o", "5", "-c", "3"]).is_ok());
    }

    #[test]
    fn rejects_bad_usage() {
        assert!(parse(&["topicRoute"]).is_err(), "-t is required");
        assert!(parse(&["updateTopic", "-t", "T", "-c", "C", "-b", "a:1"]).is_err());
        assert!(parse(&["noSuchCommand"]).is_err());
        let e = parse(&["clusterList", "--bogus"]).unwrap_err();
        assert_eq!(
            cli::first_paragraph(&e.to_string()),
            "unexpected argument '--bogus' found"
        );
    }
}
