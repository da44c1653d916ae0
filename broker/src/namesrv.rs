//! Asking a nameserver what it knows, outside the registration loop: whether a group exists
//! (a classic replica with an empty store) and who holds a node id (a broker starting).

use std::time::Duration;

use proto::v1 as pb;
use proto::v1::name_service_client::NameServiceClient;
use tonic::transport::Endpoint;

/// The clusters, groups and members nameserver `addr` knows, if it answers within `deadline`
/// (connecting included).
pub async fn cluster_info(addr: &str, deadline: Duration) -> Option<pb::GetClusterInfoResponse> {
    let call = async {
        let channel = Endpoint::from_shared(format!("http://{addr}"))
            .ok()?
            .connect_timeout(deadline)
            .connect()
            .await
            .ok()?;
        let info = NameServiceClient::new(channel)
            .get_cluster_info(pb::GetClusterInfoRequest {})
            .await
            .ok()?
            .into_inner();
        Some(info)
    };
    tokio::time::timeout(deadline, call).await.ok().flatten()
}
