//! Running a nameserver: bind, serve gRPC, expire silent brokers, stop on a signal.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::time::MissedTickBehavior;
use tonic::transport::server::TcpIncoming;
use tonic::transport::Server;
use tracing::info;

use raftmq_raft::service::{Member, MemberDirectory, RaftGrpcService};
use raftmq_raft::typ::NodeId;

use crate::config::NamesrvConfig;
use crate::registry::Registry;
use crate::service::RouteService;
use crate::witness::{WitnessConfig, WitnessHost};
use crate::Error;

/// The witness host, shared with the replication service.
struct WitnessDirectory(Arc<WitnessHost>);

#[tonic::async_trait]
impl MemberDirectory<WitnessConfig> for WitnessDirectory {
    async fn member(
        &self,
        group: &str,
        target: NodeId,
        appending: bool,
    ) -> Result<Arc<Member<WitnessConfig>>, tonic::Status> {
        self.0.member(group, target, appending).await
    }

    async fn forget_witness_tail(
        &self,
        req: proto::v1::ForgetWitnessTailRequest,
    ) -> Result<proto::v1::ForgetWitnessTailResponse, tonic::Status> {
        self.0.forget_witness_tail(req).await
    }
}

/// Opens the listening socket of `config` (`bindAddress:listenPort`; port 0 picks a free
/// one, see [`TcpListener::local_addr`]).
pub async fn bind(config: &NamesrvConfig) -> Result<TcpListener, Error> {
    let addr = config.listen_addr();
    TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind { addr, source })
}

/// Serves the nameserver on `listener` until `shutdown` resolves, then stops gracefully:
/// no new connections, watch streams end, in-flight calls finish. The route table starts
/// empty and is rebuilt from the brokers' heartbeats.
///
/// This is the whole nameserver: `mqnamesrv` is this plus configuration and signals, and
/// tests and `mqcluster` can run it in-process.
pub async fn serve(
    listener: TcpListener,
    config: NamesrvConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), Error> {
    let registry = Arc::new(Registry::new(&config));
    info!(
        epoch = registry.epoch(),
        expiry_ms = config.broker_expiry.as_millis() as u64,
        "route registry started"
    );
    let known: crate::witness::KnownGroup = {
        let registry = Arc::clone(&registry);
        Arc::new(move |group: &str| registry.knows_group(group))
    };
    let witnesses = Arc::new(
        WitnessHost::open(&config.witness_store_path, known)
            .await
            .map_err(|why| Error::Witness { why })?,
    );
    let (stopping, stopped) = tokio::sync::watch::channel(false);
    let expiry = tokio::spawn(expire_silent_brokers(
        Arc::clone(&registry),
        config.scan_interval,
    ));
    let signal = {
        let registry = Arc::clone(&registry);
        async move {
            shutdown.await;
            info!("shutting down");
            registry.close();
            let _ = stopping.send(true);
        }
    };
    // The witnesses' Raft traffic shares the nameserver's port (DESIGN §4: a witness is hosted
    // by a nameserver); it is small, entries carry no payload.
    let raft = RaftGrpcService::<WitnessConfig, _>::new(WitnessDirectory(Arc::clone(&witnesses)))
        .with_shutdown(stopped);
    let served = Server::builder()
        .add_service(proto::NameServiceServer::new(RouteService::new(
            Arc::clone(&registry),
        )))
        .add_service(raft.into_server())
        .serve_with_incoming_shutdown(no_delay(listener), signal)
        .await;
    registry.close();
    witnesses.shutdown().await;
    // The task only ends by seeing the close; a panic in it has been logged by then.
    let _ = expiry.await;
    served.map_err(|source| Error::Serve { source })
}

/// The accepted connections of `listener`, with TCP_NODELAY. tonic applies
/// `Server::tcp_nodelay` only to listeners it binds itself, not to `serve_with_incoming*`; with
/// Nagle on, a reply written in pieces (headers, data, trailers) waited for the client's delayed
/// ACK: ListTopics of 300 topics took 44 ms instead of about 1.
fn no_delay(listener: TcpListener) -> TcpIncoming {
    TcpIncoming::from(listener).with_nodelay(Some(true))
}

/// Drops expired brokers every `interval` until the registry closes.
async fn expire_silent_brokers(registry: Arc<Registry>, interval: Duration) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = registry.closed() => return,
            _ = ticks.tick() => registry.expire(Instant::now()),
        }
    }
}
