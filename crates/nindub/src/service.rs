//! An HTTP service on a background thread with its own small tokio runtime,
//! stopped by a signal from its owner or (where asked) by Ctrl-C: what the
//! Speaking Stone's server, the identity provider and the exchange all
//! are (feature `server`).

use std::future::Future;
use std::pin::Pin;

use crate::error::{Error, Result};

/// The future that completes when the service is asked to stop.
pub(crate) type Stop = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A spawned service: send on `shutdown` to stop it, join `thread` to wait.
pub(crate) struct Spawned {
    pub shutdown: tokio::sync::oneshot::Sender<()>,
    pub thread: std::thread::JoinHandle<std::io::Result<()>>,
}

/// Runs `serve(listener, stop)` on a thread named `name`.
pub(crate) fn spawn<F, Fut>(
    name: &str,
    listener: std::net::TcpListener,
    ctrl_c: bool,
    serve: F,
) -> Result<Spawned>
where
    F: FnOnce(tokio::net::TcpListener, Stop) -> Fut + Send + 'static,
    Fut: Future<Output = std::io::Result<()>>,
{
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener)?;
                let stop: Stop = Box::pin(async move {
                    tokio::select! {
                        _ = rx => {}
                        _ = async {
                            if ctrl_c {
                                let _ = tokio::signal::ctrl_c().await;
                            } else {
                                std::future::pending::<()>().await;
                            }
                        } => eprintln!("nindub: stopping"),
                    }
                });
                serve(listener, stop).await
            })
        })
        .map_err(|e| Error::io(format!("a thread for {name}"), e))?;
    Ok(Spawned {
        shutdown: tx,
        thread,
    })
}
