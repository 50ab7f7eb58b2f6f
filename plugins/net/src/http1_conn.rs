//! The fast path of `net/http_load` for plain-HTTP/1.1 targets: each worker owns one keep-alive connection and
//! sends on it in turn, as wrk does, with no pool between the worker and the socket. (HTTPS and HTTP/2 go
//! through reqwest, whose pool and TLS they need.)

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// What every request of a run shares.
pub struct Template {
    pub addr: SocketAddr,
    pub method: hyper::Method,
    /// Path and query.
    pub target: String,
    pub host: String,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
}

pub enum Failure {
    Connect,
    Timeout,
    Other,
}

/// One worker's connection, opened on first use and again after an error.
#[derive(Default)]
pub struct Connection {
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Connection {
    async fn open(template: &Template) -> Result<SendRequest<Full<Bytes>>, Failure> {
        let stream = TcpStream::connect(template.addr).await.map_err(|_| Failure::Connect)?;
        let _ = stream.set_nodelay(true);
        let (sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|_| Failure::Connect)?;
        tokio::spawn(async move {
            // The connection ends when the sender is dropped or the server closes it; either is fine.
            let _ = connection.await;
        });
        Ok(sender)
    }

    /// Sends one request and reads the whole answer: (status, body bytes).
    pub async fn send(&mut self, template: &Template, timeout: Duration) -> Result<(u16, u64), Failure> {
        let outcome = tokio::time::timeout(timeout, self.exchange(template)).await;
        let result = match outcome {
            Ok(result) => result,
            Err(_) => Err(Failure::Timeout),
        };
        if result.is_err() {
            // Whatever state the connection is in now, the next request starts on a fresh one.
            self.sender = None;
        }
        result
    }

    async fn exchange(&mut self, template: &Template) -> Result<(u16, u64), Failure> {
        let sender = match &mut self.sender {
            Some(sender) if !sender.is_closed() => sender,
            _ => self.sender.insert(Self::open(template).await?),
        };
        sender.ready().await.map_err(|_| Failure::Other)?;
        let mut request = hyper::Request::builder()
            .method(template.method.clone())
            .uri(template.target.as_str())
            .header(hyper::header::HOST, template.host.as_str())
            .body(Full::new(template.body.clone()))
            .map_err(|_| Failure::Other)?;
        request.headers_mut().extend(template.headers.clone());
        let response = sender.send_request(request).await.map_err(|_| Failure::Other)?;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.map_err(|_| Failure::Other)?;
        Ok((status, body.to_bytes().len() as u64))
    }
}
