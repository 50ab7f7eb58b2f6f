//! What an HTTP/1.1 message's headers say about its body and its connection (RFC 9112 §6 and §9.3), read
//! the same way by `http_load`'s fast path (answers) and the fault proxy's HTTP relay (requests and answers).

/// The body-framing and connection headers of one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Framing {
    /// `content-length`, when given.
    pub length: Option<u64>,
    /// `transfer-encoding` ends in `chunked`.
    pub chunked: bool,
    /// `transfer-encoding` names a coding other than chunked last (a request like that cannot be framed).
    pub other_coding: bool,
    /// The connection stays open after this message: HTTP/1.1 unless `connection: close`, HTTP/1.0 only with
    /// `connection: keep-alive`.
    pub keep_alive: bool,
    /// `connection: upgrade` was asked (a WebSocket, for one).
    pub upgrade: bool,
}

/// Two `content-length`s that disagree, or one that is not a number: whoever reads such a message differently
/// from the next hop is how requests get smuggled, so it is refused.
#[derive(Debug, PartialEq, Eq)]
pub struct BadLength;

/// Reads the framing headers; `minor_version` is httparse's (0 or 1).
pub fn framing(headers: &[httparse::Header], minor_version: u8) -> Result<Framing, BadLength> {
    let mut framing =
        Framing { length: None, chunked: false, other_coding: false, keep_alive: minor_version == 1, upgrade: false };
    for header in headers {
        if header.name.eq_ignore_ascii_case("content-length") {
            let value = std::str::from_utf8(header.value).ok().and_then(|v| v.trim().parse::<u64>().ok());
            let value = value.ok_or(BadLength)?;
            if framing.length.is_some_and(|known| known != value) {
                return Err(BadLength);
            }
            framing.length = Some(value);
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            let last = header.value.split(|b| *b == b',').map(<[u8]>::trim_ascii).rfind(|c| !c.is_empty());
            let chunked = last.is_some_and(|c| c.eq_ignore_ascii_case(b"chunked"));
            framing.chunked = chunked;
            framing.other_coding = !chunked;
        } else if header.name.eq_ignore_ascii_case("connection") {
            for option in header.value.split(|b| *b == b',').map(<[u8]>::trim_ascii) {
                if option.eq_ignore_ascii_case(b"close") {
                    framing.keep_alive = false;
                } else if option.eq_ignore_ascii_case(b"keep-alive") {
                    framing.keep_alive = true;
                } else if option.eq_ignore_ascii_case(b"upgrade") {
                    framing.upgrade = true;
                }
            }
        }
    }
    Ok(framing)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header<'a>(name: &'a str, value: &'a str) -> httparse::Header<'a> {
        httparse::Header { name, value: value.as_bytes() }
    }

    #[test]
    fn framing_reads_length_chunked_and_connection_and_refuses_lengths_that_disagree() {
        let f = framing(&[header("Content-Length", " 12 ")], 1).unwrap();
        assert_eq!((f.length, f.chunked, f.keep_alive), (Some(12), false, true));
        let f = framing(&[header("transfer-encoding", "gzip, chunked"), header("connection", "close")], 1).unwrap();
        assert_eq!((f.chunked, f.other_coding, f.keep_alive), (true, false, false));
        let f = framing(&[header("transfer-encoding", "chunked, gzip")], 1).unwrap();
        assert!(!f.chunked && f.other_coding);
        assert!(!framing(&[], 0).unwrap().keep_alive);
        assert!(framing(&[header("connection", "Keep-Alive")], 0).unwrap().keep_alive);
        assert!(framing(&[header("connection", "keep-alive, Upgrade")], 1).unwrap().upgrade);
        assert_eq!(framing(&[header("content-length", "1"), header("content-length", "2")], 1), Err(BadLength));
        assert_eq!(framing(&[header("content-length", "x")], 1), Err(BadLength));
        assert!(framing(&[header("content-length", "3"), header("content-length", "3")], 1).is_ok());
    }
}
