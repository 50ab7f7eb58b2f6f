//! JSON for the errors hyper answers by itself. A request head hyper cannot take (over the 64 KiB it reads
//! for one, a target over its URI limit, bytes that are no HTTP) never reaches a router: hyper writes a
//! bodiless `431`, `414` or `400` and closes, and offers no hook to say more. This wrapper of a connection's
//! stream recognises exactly that response, a `4xx` head with `content-length: 0` and nothing after it (every
//! error the routers write has a JSON body), and writes it again with the JSON error every other refusal has.
//! Anything else passes through untouched, `writev` included.

use std::io::IoSlice;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A connection's stream whose bodiless HTTP/1 `4xx` answers become JSON errors.
pub struct JsonParseErrors<S> {
    inner: S,
    /// A rewritten answer being written: its bytes, how many are out, and how many of hyper's it stands for.
    pending: Option<(Vec<u8>, usize, usize)>,
}

impl<S> JsonParseErrors<S> {
    pub fn new(inner: S) -> Self {
        Self { inner, pending: None }
    }
}

/// The JSON answer standing for `head` when it is one of hyper's own: a whole `HTTP/1.1 4xx` head with
/// `content-length: 0`.
fn rewrite(head: &[u8]) -> Option<Vec<u8>> {
    if !head.starts_with(b"HTTP/1.1 4") || !head.ends_with(b"\r\n\r\n") || head.len() > 1024 {
        return None;
    }
    let text = std::str::from_utf8(head).ok()?;
    if !text.to_ascii_lowercase().contains("\r\ncontent-length: 0\r\n") {
        return None;
    }
    let status_line = text.split("\r\n").next()?;
    let code = status_line.get(9..12)?;
    let message = match code {
        "431" => "the request's head is larger than this agent reads (64 KiB)",
        "414" => "the request target is longer than this agent reads",
        _ => "the request is not HTTP this agent can read",
    };
    let body = format!(r#"{{"error":"{message}","field":null}}"#);
    Some(
        format!(
            "{status_line}\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}

impl<S: AsyncWrite + Unpin> JsonParseErrors<S> {
    /// Writes what is pending; `Ready(Ok(n))` with the length of hyper's bytes it stands for, once all is out.
    fn drive_pending(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<usize>> {
        while let Some((bytes, written, claimed)) = &mut self.pending {
            if *written == bytes.len() {
                let claimed = *claimed;
                self.pending = None;
                return Poll::Ready(Ok(claimed));
            }
            match Pin::new(&mut self.inner).poll_write(cx, &bytes[*written..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => *written += n,
                Poll::Ready(Err(err)) => return Poll::Ready(Err(err)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(0))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for JsonParseErrors<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for JsonParseErrors<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        if self.pending.is_none() {
            match rewrite(buf) {
                Some(answer) => self.pending = Some((answer, 0, buf.len())),
                None => return Pin::new(&mut self.inner).poll_write(cx, buf),
            }
        }
        self.drive_pending(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        if self.pending.is_none() {
            // hyper's own answer is one buffer: its head, and no body after it.
            let whole = bufs.iter().filter(|b| !b.is_empty()).count() == 1;
            match bufs.iter().find(|b| !b.is_empty()).filter(|_| whole).and_then(|head| rewrite(head)) {
                Some(answer) => {
                    let claimed = bufs.iter().map(|b| b.len()).sum();
                    self.pending = Some((answer, 0, claimed));
                }
                None => return Pin::new(&mut self.inner).poll_write_vectored(cx, bufs),
            }
        }
        self.drive_pending(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::rewrite;

    #[test]
    fn only_bodiless_client_errors_are_rewritten() {
        let hyper = b"HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\ncontent-length: 0\r\ndate: Fri, 04 Dec 2026 19:31:10 GMT\r\n\r\n";
        let answer = String::from_utf8(rewrite(hyper).unwrap()).unwrap();
        assert!(
            answer.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\n")
        );
        let (_, body) = answer.split_once("\r\n\r\n").unwrap();
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert!(json["error"].as_str().unwrap().contains("64 KiB"));
        assert!(answer.contains(&format!("content-length: {}\r\n", body.len())));
        let ours = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 30\r\n\r\n";
        assert!(rewrite(ours).is_none(), "a router's answer has a body");
        assert!(rewrite(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").is_none());
        assert!(rewrite(b"HTTP/1.1 431 X\r\ncontent-length: 0\r\n\r\n{\"partial").is_none(), "a head and more");
    }
}
