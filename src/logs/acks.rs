//! A window of JetStream publishes and their acknowledgements, all answered on one reply subscription.
//!
//! JetStream acknowledges a publish by answering its reply subject. async-nats's `send_publish` makes a
//! request of each publish (an inbox subject, a oneshot channel, a semaphore permit, a timer, and an
//! untagged-enum parse of the answer); the shipper instead subscribes once to `<inbox>.*`, numbers its
//! publishes `<inbox>.<n>`, and matches each answer to its publish by that number. PERF(logship): the
//! per-request machinery was most of what was left of the shipper's own CPU in a profile of `tarsier ship`.
//!
//! Publishes settle in the order they were sent (a checkpoint can only move over a line once every line
//! before it is acknowledged); answers may come in any order and are kept until their turn.

use std::collections::VecDeque;
use std::time::Duration;

use async_nats::{Client, HeaderMap, StatusCode, Subject, Subscriber};
use bytes::Bytes;
use futures_util::{FutureExt as _, StreamExt as _};
use serde::Deserialize;

const ENDED: &str = "no acknowledgement: the connection's subscription ended";

/// One publish waiting in the window.
struct Waiting {
    answer: Answer,
    /// What the caller gave with it (the offset past its line and its size), handed back when it settles.
    end: u64,
    bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Awaited,
    Stored {
        duplicate: bool,
    },
    /// Never sent (the broker could not take it): settles without an answer.
    Skipped,
}

/// A publish whose turn came, acknowledged or skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settled {
    pub end: u64,
    pub bytes: u64,
    /// False for a line that was skipped, never sent.
    pub stored: bool,
    /// JetStream had the message id already (a record sent again after a lost acknowledgement).
    pub duplicate: bool,
}

/// Why a publish could not be sent.
#[derive(Debug)]
pub enum SendError {
    /// Larger than the servers' max payload: it can never be taken.
    TooLarge,
    Other(String),
}

/// The part of JetStream's answer to a publish that the shipper reads (a plain struct: unknown fields are
/// skipped without buffering the answer, as the untagged `Ok | Err` enum would).
#[derive(Deserialize)]
struct PubAck {
    #[serde(default)]
    error: Option<ApiError>,
    #[serde(default)]
    duplicate: bool,
}

#[derive(Deserialize)]
struct ApiError {
    #[serde(default)]
    description: String,
    #[serde(default)]
    err_code: u64,
}

pub struct AckWindow {
    client: Client,
    answers: Subscriber,
    prefix: String,
    /// The number of the window's first publish; the i-th waiting has number `first + i`.
    first: u64,
    waiting: VecDeque<Waiting>,
    timeout: Duration,
}

impl AckWindow {
    /// Subscribes to a fresh inbox of its own: answers to an earlier window's publishes never reach it.
    pub async fn open(client: &Client, timeout: Duration) -> Result<Self, String> {
        let prefix = client.new_inbox();
        let answers = client
            .subscribe(format!("{prefix}.*"))
            .await
            .map_err(|err| format!("cannot subscribe for acknowledgements: {err}"))?;
        Ok(Self { client: client.clone(), answers, prefix, first: 0, waiting: VecDeque::new(), timeout })
    }

    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// Publishes `payload` on `subject` with JetStream's message id `id`; its answer is waited for by
    /// [`AckWindow::settle_first`].
    pub async fn publish(
        &mut self,
        subject: &Subject,
        id: &str,
        payload: Bytes,
        end: u64,
        bytes: u64,
    ) -> Result<(), SendError> {
        let number = self.first + self.waiting.len() as u64;
        let reply = Subject::from(format!("{}.{number}", self.prefix));
        let mut headers = HeaderMap::new();
        headers.insert(async_nats::header::NATS_MESSAGE_ID, id);
        let send = self.client.publish_with_reply_and_headers(subject.clone(), reply, headers, payload);
        tokio::pin!(send);
        // Taken at once while the connection keeps up; a timer only when it does not (a connection that is
        // reconnecting takes nothing, and a shipper told to stop must not wait on it for ever).
        let sent = match send.as_mut().now_or_never() {
            Some(sent) => sent,
            None => match tokio::time::timeout(self.timeout, send).await {
                Ok(sent) => sent,
                Err(_) => {
                    let why = format!("the connection took no publish within {} s", self.timeout.as_secs());
                    return Err(SendError::Other(why));
                }
            },
        };
        match sent {
            Ok(()) => {
                self.waiting.push_back(Waiting { answer: Answer::Awaited, end, bytes });
                Ok(())
            }
            Err(err) if matches!(err.kind(), async_nats::client::PublishErrorKind::MaxPayloadExceeded) => {
                Err(SendError::TooLarge)
            }
            Err(err) => Err(SendError::Other(err.to_string())),
        }
    }

    /// Takes a place in the order for a line that is not sent, so the checkpoint still moves over it.
    pub fn skip(&mut self, end: u64) {
        self.waiting.push_back(Waiting { answer: Answer::Skipped, end, bytes: 0 });
    }

    /// Waits until the oldest publish is answered (taking the answers that come meanwhile) and removes it.
    /// An error when the servers refuse it, or none answers within the timeout: the later publishes
    /// cannot move the checkpoint past it, so the window is then of no more use.
    pub async fn settle_first(&mut self) -> Result<Option<Settled>, String> {
        if self.waiting.is_empty() {
            return Ok(None);
        }
        // The answers already here first, without a timer (PERF(logship): a timer armed per answer was 3 % of
        // the shipper's CPU; with 1,024 publishes out, the first one's answer is mostly here).
        while self.first_awaited() {
            match self.answers.next().now_or_never() {
                Some(Some(answer)) => self.take(answer)?,
                Some(None) => return Err(ENDED.into()),
                None => break,
            }
        }
        if self.first_awaited() {
            let deadline = tokio::time::sleep(self.timeout);
            tokio::pin!(deadline);
            while self.first_awaited() {
                tokio::select! {
                    biased;
                    answer = self.answers.next() => match answer {
                        Some(answer) => self.take(answer)?,
                        None => return Err(ENDED.into()),
                    },
                    () = &mut deadline => {
                        return Err(format!("no acknowledgement within {} s", self.timeout.as_secs()));
                    }
                }
            }
        }
        let settled = self.waiting.pop_front().map(|w| Settled {
            end: w.end,
            bytes: w.bytes,
            stored: w.answer != Answer::Skipped,
            duplicate: w.answer == Answer::Stored { duplicate: true },
        });
        self.first += 1;
        Ok(settled)
    }

    fn first_awaited(&self) -> bool {
        self.waiting.front().is_some_and(|w| w.answer == Answer::Awaited)
    }

    /// Files one answer at its publish's place.
    fn take(&mut self, answer: async_nats::Message) -> Result<(), String> {
        let number = answer.subject.rsplit('.').next().and_then(|n| n.parse::<u64>().ok());
        let Some(at) = number.and_then(|n| n.checked_sub(self.first)) else { return Ok(()) };
        let Some(waiting) = self.waiting.get_mut(at as usize) else { return Ok(()) };
        if answer.status == Some(StatusCode::NO_RESPONDERS) {
            return Err("no acknowledgement: no stream takes the subject (no responders)".into());
        }
        let ack: PubAck =
            serde_json::from_slice(&answer.payload).map_err(|err| format!("an acknowledgement unread: {err}"))?;
        if let Some(error) = ack.error {
            return Err(format!("the servers refused a record: {} (error {})", error.description, error.err_code));
        }
        waiting.answer = Answer::Stored { duplicate: ack.duplicate };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_is_read_for_its_error_and_duplicate_flag() {
        let ok: PubAck = serde_json::from_slice(br#"{"stream":"S","seq":7,"duplicate":true}"#).unwrap();
        assert!(ok.duplicate && ok.error.is_none());
        let refused: PubAck = serde_json::from_slice(
            br#"{"error":{"code":503,"err_code":10077,"description":"maximum messages exceeded"},"stream":"S","seq":0}"#,
        )
        .unwrap();
        let error = refused.error.unwrap();
        assert_eq!((error.err_code, error.description.as_str()), (10077, "maximum messages exceeded"));
    }
}
