//! The identity provider and the exchange as small axum services
//! ([`crate::service`]), stopped when dropped.

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
        let spawned = crate::service::spawn(
            &format!("nindub-{addr}"),
            listener,
            ctrl_c,
            |listener, stop| async move {
                axum::serve(listener, app)
                    .with_graceful_shutdown(stop)
                    .await
            },
        )?;
        Ok(Running {
            addr,
            shutdown: Some(spawned.shutdown),
            thread: Some(spawned.thread),
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
