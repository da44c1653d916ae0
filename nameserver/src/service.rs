//! The gRPC `NameService` (namesrv.proto): each call parses its request, then applies it
//! to the [`Registry`]. Outcomes travel in `ResponseStatus`; gRPC errors are left for the
//! transport.

use std::pin::Pin;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use proto::v1 as pb;
use proto::v1::{ResponseCode, ResponseStatus};
use tonic::{Request, Response, Status};

use crate::convert;
use crate::registry::Registry;

/// The server side of `raftmq.v1.NameService`.
#[derive(Clone)]
pub(crate) struct RouteService {
    registry: Arc<Registry>,
}

impl RouteService {
    /// A service answering from `registry`.
    pub fn new(registry: Arc<Registry>) -> Self {
        RouteService { registry }
    }
}

/// The WatchRoutes response stream.
type RouteEventStream = Pin<Box<dyn Stream<Item = Result<pb::RouteEvent, Status>> + Send>>;

#[tonic::async_trait]
impl proto::NameService for RouteService {
    async fn register_broker(
        &self,
        request: Request<pb::RegisterBrokerRequest>,
    ) -> Result<Response<pb::RegisterBrokerResponse>, Status> {
        let default_timeout = self.registry.default_heartbeat_timeout();
        let response = match convert::registration(request.into_inner(), default_timeout) {
            Ok(registration) => match self.registry.register(registration) {
                Ok(registered) => pb::RegisterBrokerResponse {
                    status: Some(ResponseStatus::ok()),
                    leader_accepted: registered.leader_accepted,
                    group: Some(registered.group),
                    node_id_taken: false,
                },
                Err(taken) => pb::RegisterBrokerResponse {
                    status: Some(ResponseStatus::new(
                        ResponseCode::IllegalArgument,
                        taken.to_string(),
                    )),
                    leader_accepted: false,
                    group: None,
                    node_id_taken: true,
                },
            },
            Err(remark) => pb::RegisterBrokerResponse {
                status: Some(ResponseStatus::new(ResponseCode::IllegalArgument, remark)),
                leader_accepted: false,
                group: None,
                node_id_taken: false,
            },
        };
        Ok(Response::new(response))
    }

    async fn unregister_broker(
        &self,
        request: Request<pb::UnregisterBrokerRequest>,
    ) -> Result<Response<pb::UnregisterBrokerResponse>, Status> {
        let pb::UnregisterBrokerRequest {
            broker_name,
            node_id,
            broker_addr,
            ..
        } = request.into_inner();
        let status = if broker_name.is_empty() {
            ResponseStatus::new(ResponseCode::IllegalArgument, "broker_name is empty")
        } else if self
            .registry
            .unregister(&broker_name, node_id, &broker_addr)
        {
            ResponseStatus::ok()
        } else {
            let at = if broker_addr.is_empty() {
                String::new()
            } else {
                format!(" at {broker_addr}")
            };
            ResponseStatus::new(
                ResponseCode::NotFound,
                format!("no node {node_id} of group {broker_name} is registered{at}"),
            )
        };
        Ok(Response::new(pb::UnregisterBrokerResponse {
            status: Some(status),
        }))
    }

    async fn query_route(
        &self,
        request: Request<pb::QueryRouteRequest>,
    ) -> Result<Response<pb::QueryRouteResponse>, Status> {
        let topic = request.into_inner().topic;
        let response = if topic.is_empty() {
            pb::QueryRouteResponse {
                status: Some(ResponseStatus::new(
                    ResponseCode::IllegalArgument,
                    "topic is empty",
                )),
                ..Default::default()
            }
        } else {
            match self.registry.query_route(&topic) {
                Some((queues, groups)) => pb::QueryRouteResponse {
                    status: Some(ResponseStatus::ok()),
                    topic: Some(queues),
                    groups,
                },
                None => pb::QueryRouteResponse {
                    status: Some(ResponseStatus::new(
                        ResponseCode::TopicNotExist,
                        format!("no live broker hosts topic {topic}"),
                    )),
                    ..Default::default()
                },
            }
        };
        Ok(Response::new(response))
    }

    type WatchRoutesStream = RouteEventStream;

    async fn watch_routes(
        &self,
        _request: Request<pb::WatchRoutesRequest>,
    ) -> Result<Response<Self::WatchRoutesStream>, Status> {
        let events = self.registry.watch().map(Ok);
        Ok(Response::new(Box::pin(events)))
    }

    async fn get_cluster_info(
        &self,
        _request: Request<pb::GetClusterInfoRequest>,
    ) -> Result<Response<pb::GetClusterInfoResponse>, Status> {
        Ok(Response::new(pb::GetClusterInfoResponse {
            status: Some(ResponseStatus::ok()),
            clusters: self.registry.clusters(),
        }))
    }

    async fn list_topics(
        &self,
        request: Request<pb::ListTopicNamesRequest>,
    ) -> Result<Response<pb::ListTopicNamesResponse>, Status> {
        let cluster = request.into_inner().cluster_name;
        let cluster = (!cluster.is_empty()).then_some(cluster.as_str());
        Ok(Response::new(pb::ListTopicNamesResponse {
            status: Some(ResponseStatus::ok()),
            topics: self.registry.topic_names(cluster),
        }))
    }
}
