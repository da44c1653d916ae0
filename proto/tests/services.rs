//! The three services exist under the names and with the RPCs that servers and clients are
//! written against: checked against the generated server types and the embedded descriptor
//! set (the one a gRPC reflection service would publish).

use prost::Message as _;
use prost_types::FileDescriptorSet;
use tonic::server::NamedService;

/// Compiles only while the service traits exist under these paths.
#[allow(dead_code)]
fn implementable<B: proto::BrokerService, N: proto::NameService, R: proto::RaftService>() {}

/// The RPC names of `service` in the embedded descriptor set, in declaration order.
fn rpcs(service: &str) -> Vec<String> {
    let set = FileDescriptorSet::decode(proto::FILE_DESCRIPTOR_SET)
        .expect("embedded descriptor set decodes");
    let found: Vec<_> = set
        .file
        .iter()
        .filter(|f| f.package() == "raftmq.v1")
        .flat_map(|f| &f.service)
        .filter(|s| s.name() == service)
        .collect();
    assert_eq!(found.len(), 1, "service {service} declared once");
    found[0]
        .method
        .iter()
        .map(|m| m.name().to_owned())
        .collect()
}

#[test]
fn servers_are_named_by_their_fully_qualified_service() {
    type Broker = proto::BrokerServiceServer<()>;
    type Names = proto::NameServiceServer<()>;
    type Raft = proto::RaftServiceServer<()>;
    assert_eq!(<Broker as NamedService>::NAME, "raftmq.v1.BrokerService");
    assert_eq!(<Names as NamedService>::NAME, "raftmq.v1.NameService");
    assert_eq!(<Raft as NamedService>::NAME, "raftmq.v1.RaftService");
}

#[test]
fn broker_service_has_client_and_admin_rpcs() {
    assert_eq!(
        rpcs("BrokerService"),
        [
            "SendMessage",
            "SendMessageStream",
            "PullMessage",
            "CommitConsumerOffset",
            "QueryConsumerOffset",
            "GetQueueOffsets",
            "GetConsumeStats",
            "QueryMessageById",
            "BrokerStatus",
            "CreateOrUpdateTopic",
            "DeleteTopic",
            "ListTopics",
            "HeartbeatConsumer",
            "UnregisterConsumer",
            "ListConsumerGroupMembers",
        ]
    );
}

#[test]
fn name_service_has_registry_and_route_rpcs() {
    assert_eq!(
        rpcs("NameService"),
        [
            "RegisterBroker",
            "UnregisterBroker",
            "QueryRoute",
            "WatchRoutes",
            "GetClusterInfo",
            "ListTopics",
        ]
    );
    let set = FileDescriptorSet::decode(proto::FILE_DESCRIPTOR_SET).unwrap();
    let watch = set
        .file
        .iter()
        .flat_map(|f| &f.service)
        .flat_map(|s| &s.method)
        .find(|m| m.name() == "WatchRoutes")
        .unwrap();
    assert!(watch.server_streaming() && !watch.client_streaming());
}

#[test]
fn raft_service_carries_openraft_rpcs() {
    assert_eq!(
        rpcs("RaftService"),
        [
            "AppendEntries",
            "AppendEntriesStream",
            "Vote",
            "InstallSnapshot",
            "JoinGroup",
            "TimeoutNow",
            "ReplicaState",
            "ForgetWitnessTail"
        ]
    );
}
