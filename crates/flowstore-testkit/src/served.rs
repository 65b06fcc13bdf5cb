//! The server as a process serves it (`flowstore_server::serve`), on a free loopback
//! port, for tests that speak HTTP to it over a real connection.

use std::io;
use std::net::SocketAddr;

use flowstore_server::AppState;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A server on a loopback port, running until it is stopped (gracefully: it answers
/// the requests in flight first).
pub struct Served {
    /// Where it listens.
    pub addr: SocketAddr,
    /// `http://` and its address, to put paths after.
    pub base: String,
    stop: Option<oneshot::Sender<()>>,
    server: JoinHandle<io::Result<()>>,
}

impl Served {
    /// Serves `state` on a free loopback port.
    pub async fn start(state: AppState) -> Served {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(flowstore_server::serve(listener, state, async move {
            let _ = stopped.await;
        }));
        Served {
            addr,
            base: format!("http://{addr}"),
            stop: Some(stop),
            server,
        }
    }

    /// Asks the server to stop; false when it had already ended.
    pub fn begin_stop(&mut self) -> bool {
        self.stop.take().is_some_and(|stop| stop.send(()).is_ok())
    }

    /// Waits until the server has ended, which it must without an error.
    pub async fn stopped(self) {
        self.server.await.unwrap().unwrap();
    }

    /// Stops the server and waits until it has.
    pub async fn stop(mut self) {
        self.begin_stop();
        self.stopped().await;
    }
}
