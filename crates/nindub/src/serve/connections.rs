//! The connections themselves: how many the server holds at once and how
//! long a client may take before it has said what it wants.
//!
//! Every open connection costs a file descriptor and a task. A client that
//! opens connections and sends nothing (or one header byte a second: the
//! "slowloris") would otherwise hold them forever, until the process runs
//! out of descriptors and `/health` itself goes unanswered. So:
//!
//! - a connection must deliver a request's complete headers within
//!   `header_timeout`, and an idle keep-alive connection is closed after
//!   the same time (hyper's header-read timer starts whenever the
//!   connection waits for a request);
//! - at most `max_connections` are held; one more is answered `503` with
//!   `Retry-After` and closed at once, so the server always answers;
//! - a request body must arrive within the body timeout (in the routes),
//!   and a generation ends at the request's deadline (the queue).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use super::metrics::Metrics;

/// The limits on connections.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub max_connections: usize,
    pub header_timeout: Duration,
}

// ANCHOR: accept
/// Accepts connections on `listener` and serves `app` on each (HTTP/1.1)
/// until `stop` completes; then lets the requests in flight finish, for a
/// few seconds at most.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    metrics: Arc<Metrics>,
    stop: impl Future<Output = ()>,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    tokio::pin!(stop);
    loop {
        let stream = tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                // Out of descriptors (EMFILE) or a connection reset before
                // it was accepted: wait a moment and accept again.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            metrics.connections_refused.inc();
            tokio::spawn(refuse(stream));
            continue;
        };
        let service = TowerToHyperService::new(app.clone());
        let conn = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        let open = metrics.clone();
        open.connections_open.inc();
        tokio::spawn(async move {
            let _ = conn.await;
            open.connections_open.dec();
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(Duration::from_secs(5)) => {}
    }
}
// ANCHOR_END: accept

/// A connection beyond the limit: a complete 503 answer, then closed.
async fn refuse(mut stream: TcpStream) {
    let body = r#"{"error":{"message":"the server holds as many connections as it may; retry shortly","type":"server_busy","param":null,"code":"too_many_connections"}}"#;
    let head = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body.as_bytes()).await?;
        stream.shutdown().await
    })
    .await;
}
