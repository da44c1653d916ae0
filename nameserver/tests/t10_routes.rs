//! Registration and route queries against a real `mqnamesrv` process.

mod common;

use common::{group_in, member, node_ids, query_route, register, Namesrv, TOPIC};
use proto::v1 as pb;
use proto::v1::ResponseCode;

#[tokio::test]
async fn t10_three_member_group_is_routed_to_its_leader() {
    let namesrv = Namesrv::start(&[]);
    let mut client = namesrv.client();

    let first = register(&mut client, member("RaftNode00", 0, 1, true)).await;
    assert!(first.leader_accepted);
    for node in [1, 2] {
        let response = register(&mut client, member("RaftNode00", node, 1, false)).await;
        assert!(
            !response.leader_accepted,
            "a follower is never the accepted leader"
        );
    }

    let route = query_route(&mut client, TOPIC).await.unwrap();
    assert!(route.status.as_ref().unwrap().is_ok(), "{:?}", route.status);
    let queues = route.topic.as_ref().unwrap();
    assert_eq!(queues.topic, TOPIC);
    assert_eq!(queues.queue_datas.len(), 1);
    assert_eq!(queues.queue_datas[0].broker_name, "RaftNode00");
    assert_eq!(queues.queue_datas[0].write_queue_nums, 4);
    assert_eq!(queues.queue_datas[0].perm, 6);
    let group = group_in(&route, "RaftNode00").unwrap();
    assert_eq!(group.cluster_name, "RaftCluster");
    assert_eq!(node_ids(group), [0, 1, 2]);
    assert_eq!(group.leader_node_id, Some(0));
    assert_eq!(group.leader_addr, "127.0.0.1:30910");
    assert_eq!(group.term, 1);
    assert_eq!(group.members[0].raft_role(), pb::RaftRole::Leader);
    assert_eq!(group.members[1].ha_addr, "127.0.0.1:40911");
    assert_eq!(group.members[2].heartbeat_timeout_ms, 5000);

    let clusters = client
        .get_cluster_info(pb::GetClusterInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(clusters.clusters.len(), 1);
    assert_eq!(clusters.clusters[0].cluster_name, "RaftCluster");
    assert_eq!(clusters.clusters[0].groups[0].members.len(), 3);

    let topics = client
        .list_topics(pb::ListTopicNamesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(topics.topics, [TOPIC]);
    let none = client
        .list_topics(pb::ListTopicNamesRequest {
            cluster_name: "OtherCluster".to_owned(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(none.topics.is_empty());
}

#[tokio::test]
async fn t11_unknown_topic_is_topic_not_exist() {
    let namesrv = Namesrv::start(&[]);
    let mut client = namesrv.client();
    register(&mut client, member("RaftNode00", 0, 1, true)).await;
    let route = query_route(&mut client, "NoSuchTopic").await.unwrap();
    let status = route.status.unwrap();
    assert_eq!(status.code(), ResponseCode::TopicNotExist);
    assert!(status.remark.contains("NoSuchTopic"), "{}", status.remark);
    assert!(route.topic.is_none() && route.groups.is_empty());
}

#[tokio::test]
async fn t12_bad_requests_get_a_status_naming_the_field() {
    let namesrv = Namesrv::start(&[]);
    let mut client = namesrv.client();
    let response = client
        .register_broker(pb::RegisterBrokerRequest {
            broker_addr: String::new(),
            ..member("RaftNode00", 0, 1, true)
        })
        .await
        .unwrap()
        .into_inner();
    let status = response.status.unwrap();
    assert_eq!(status.code(), ResponseCode::IllegalArgument);
    assert_eq!(status.remark, "broker_addr is empty");
    assert!(!response.leader_accepted);

    let response = client
        .unregister_broker(pb::UnregisterBrokerRequest {
            broker_name: "RaftNode00".to_owned(),
            node_id: 0,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(response.status.unwrap().code(), ResponseCode::NotFound);
}

#[tokio::test]
async fn t13_unregister_removes_a_member_at_once() {
    let namesrv = Namesrv::start(&[]);
    let mut client = namesrv.client();
    register(&mut client, member("RaftNode00", 0, 1, true)).await;
    register(&mut client, member("RaftNode00", 1, 1, false)).await;
    let response = client
        .unregister_broker(pb::UnregisterBrokerRequest {
            cluster_name: "RaftCluster".to_owned(),
            broker_name: "RaftNode00".to_owned(),
            broker_id: 0,
            node_id: 0,
            broker_addr: "127.0.0.1:30910".to_owned(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(response.status.unwrap().is_ok());
    let route = query_route(&mut client, TOPIC).await.unwrap();
    let group = group_in(&route, "RaftNode00").unwrap();
    assert_eq!(node_ids(group), [1]);
    assert_eq!(
        group.leader_node_id, None,
        "the unregistered leader is gone"
    );
    assert_eq!(group.leader_addr, "");
}
