//! A small axum service on a background thread, stopped when dropped: what
//! the identity provider and the exchange both are.

use std::net::{SocketAddr, TcpListener};

use axum::Router;

use crate::error::{Error, Result};

pub(crate) fn bind(addr: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .and_then(|l| l.set_nonblocking(true).map(|_| l))
        .map_err(|e| Error::io(format!("address {addr}"), e))
}

/// A running service; dropping it stops it.
pub struct Running {
    pub addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<std::io::Result<()>>>,
}

impl Running {
    pub(crate) fn spawn(listener: TcpListener, app: Router, ctrl_c: bool) -> Result<Self> {
        let addr = listener.local_addr().map_err(|e| Error::io("socket", e))?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(format!("nindub-{addr}"))
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()?;
                rt.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener)?;
                    let stop = async move {
                        tokio::select! {
                            _ = rx => {}
                            _ = async {
                                if ctrl_c {
                                    let _ = tokio::signal::ctrl_c().await;
                                } else {
                                    std::future::pending::<()>().await;
                                }
                            } => {}
                        }
                    };
                    axum::serve(listener, app)
                        .with_graceful_shutdown(stop)
                        .await
                })
            })
            .map_err(|e| Error::io("thread", e))?;
        Ok(Running {
            addr,
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Blocks until the service stops (Ctrl-C, where asked for).
    pub fn wait(mut self) -> Result<()> {
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(Err(e))) => Err(Error::io(format!("serving {}", self.addr), e)),
            Some(Err(_)) => Err(Error::invalid("service", "its thread panicked")),
            _ => Ok(()),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
