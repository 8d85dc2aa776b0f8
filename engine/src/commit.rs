//! Group commit (spec/node.md §3): the driver hands in every event that is ready, then
//! [`Input::Idle`](crate::Input::Idle); what those events staged is written as one group (for
//! the log store: one `write` to the operating system) and made durable with one flush. Nothing
//! is promised before its flush ends: receipts go out and callers are answered only then.
//!
//! Our own messages are the exception that keeps latency low: they are written at once, even
//! while a flush runs, so that they can go out (a crash of the process can no longer lose
//! them), and their callers are told after the next flush.

use rapport_protocol::{Message, RelationshipId, Timestamp};
use tracing::warn;

use crate::outbound::Staged;
use crate::{ChannelId, CommandId, Error, Output, State, StoreFailure, Submitted, Topic, Write};

/// Work that waits for its writes: nothing is promised before they are durable.
#[derive(Debug)]
pub(crate) enum Pending {
    /// A peer's message is staged; once written and flushed, its receipt goes back.
    Receipt { channel: ChannelId, bytes: Vec<u8>, rel: Option<RelationshipId> },
    /// One of ours is staged with its outbox entry. Once written it goes out; once flushed the
    /// caller is told.
    Sent { staged: Staged, command: CommandId },
    /// A public message of ours is staged; once written it is published, once flushed the
    /// caller is told.
    Published { message: Message, topic: Topic, command: CommandId },
    /// One of ours, written and on its way, waiting for the flush to tell the caller.
    Reply { submitted: Submitted, command: CommandId },
}

/// What the group commit holds.
#[derive(Debug, Default)]
pub(crate) struct Commit {
    /// Writes staged since the last group, and the work waiting for them.
    writes: Vec<Write>,
    unwritten: Vec<Pending>,
    /// A group handed to the store, waiting for [`Input::Written`](crate::Input::Written).
    writing: Option<Vec<Pending>>,
    /// Work whose writes are in the store, waiting for the next flush.
    unflushed: Vec<Pending>,
    /// Work waiting on the flush in progress.
    flushing: Option<Vec<Pending>>,
    /// When something was first written since the last flush started.
    dirty_since: Option<Timestamp>,
    /// What to do once the group being written is in the store: start a flush if none runs,
    /// and whether a quiet one (for writes that promise nothing).
    then_flush: Option<bool>,
}

impl Commit {
    pub(crate) fn stage(&mut self, write: Write) {
        self.writes.push(write);
    }

    pub(crate) fn wait(&mut self, pending: Pending) {
        self.unwritten.push(pending);
    }

    pub(crate) fn staged(&self) -> &[Write] {
        &self.writes
    }

    fn has_unsent(&self) -> bool {
        self.unwritten.iter().any(|p| matches!(p, Pending::Sent { .. } | Pending::Published { .. }))
    }

    /// Whether the driver, now idle, should hand in a group: writes that promise nothing are
    /// written too (so that reads of the store see them at once), and flushed with the next
    /// group or once they have waited [`QUIET_FLUSH_MS`](crate::QUIET_FLUSH_MS).
    pub(crate) fn ready(&self) -> bool {
        if self.writing.is_some() {
            return false;
        }
        let staged = !self.unwritten.is_empty() || !self.writes.is_empty();
        let write = staged && (self.flushing.is_none() || self.has_unsent());
        write || (self.flushing.is_none() && !self.unflushed.is_empty())
    }

    /// Whether as much work has gathered as a group holds.
    pub(crate) fn full(&self, max: usize) -> bool {
        self.writing.is_none() && self.unwritten.len() + self.unflushed.len() >= max
    }

    /// When writes that promise nothing should be flushed, if any wait.
    pub(crate) fn quiet_due(&self, delay: u64) -> Option<Timestamp> {
        if self.flushing.is_some() || self.writing.is_some() {
            return None;
        }
        if !self.writes.is_empty() || !self.unwritten.is_empty() {
            // Written at the next idle turn; its flush is timed from then.
            return None;
        }
        self.dirty_since.map(|t| t + delay)
    }

    pub(crate) fn settled(&self) -> bool {
        self.writes.is_empty()
            && self.unwritten.is_empty()
            && self.writing.is_none()
            && self.unflushed.is_empty()
            && self.flushing.is_none()
            && self.dirty_since.is_none()
    }
}

impl State {
    /// Writes the staged group and starts its flush. While a flush runs, only a group holding
    /// our own messages is written (everything staged before them, in order, goes with it);
    /// the rest waits for that flush to end and is then written and flushed in one go.
    pub(crate) fn commit_group(&mut self) {
        if self.commit.writing.is_some() {
            return;
        }
        if (self.commit.flushing.is_none() || self.commit.has_unsent()) && self.write_staged(false) {
            return;
        }
        self.maybe_flush(false);
    }

    /// Writes and flushes what promises nothing (receipts we hold, delivered outbox entries,
    /// delivery attempts), if no flush runs.
    pub(crate) fn commit_quiet(&mut self) {
        let c = &self.commit;
        if c.writing.is_some() || c.flushing.is_some() {
            return;
        }
        let due = c.dirty_since.is_some_and(|t| t + crate::QUIET_FLUSH_MS <= self.now);
        if !due && c.writes.is_empty() && c.unwritten.is_empty() {
            return;
        }
        if !self.write_staged(true) {
            self.maybe_flush(true);
        }
    }

    /// Writes and flushes everything staged or written, if no write or flush runs.
    pub(crate) fn commit_drain(&mut self) {
        if self.commit.writing.is_some() || self.commit.flushing.is_some() {
            return;
        }
        if !self.write_staged(true) {
            self.maybe_flush(true);
        }
    }

    /// Hands the staged group to the store; whether there was one (then
    /// [`Input::Written`](crate::Input::Written) continues).
    fn write_staged(&mut self, quiet: bool) -> bool {
        if self.commit.writes.is_empty() && self.commit.unwritten.is_empty() {
            return false;
        }
        let writes = std::mem::take(&mut self.commit.writes);
        self.commit.writing = Some(std::mem::take(&mut self.commit.unwritten));
        self.commit.then_flush = Some(quiet);
        self.output(Output::Write(writes));
        true
    }

    /// The group handed to the store is written, or failed. Our own messages go out at once;
    /// receipts and the callers' replies wait for the flush.
    pub(crate) fn on_written(&mut self, result: Result<(), StoreFailure>) {
        let Some(batch) = self.commit.writing.take() else {
            warn!("a write reported that was not asked for");
            return;
        };
        let quiet = self.commit.then_flush.take().unwrap_or(false);
        if let Err(e) = result {
            warn!(error = %e, count = batch.len(), "write failed; receipts withheld, sends refused");
            return self.settle(batch, &Err(e));
        }
        self.commit.dirty_since.get_or_insert(self.now);
        for pending in batch {
            match pending {
                Pending::Sent { staged, command } => {
                    let submitted = staged.submitted.clone();
                    self.sent(staged);
                    self.commit.unflushed.push(Pending::Reply { submitted, command });
                }
                Pending::Published { message, topic, command } => {
                    let submitted = Submitted {
                        id: message.id().to_hex(),
                        relationship: String::new(),
                        kind: message.kind().as_str(),
                    };
                    self.output(Output::Publish { topic, bytes: message.bytes_arc() });
                    self.remember_public(message);
                    self.commit.unflushed.push(Pending::Reply { submitted, command });
                }
                other => self.commit.unflushed.push(other),
            }
        }
        self.send_due();
        self.maybe_flush(quiet);
    }

    /// Starts a flush if none runs and something waits for one (or, `quiet`, anything was
    /// written since the last).
    fn maybe_flush(&mut self, quiet: bool) {
        let c = &self.commit;
        if c.flushing.is_some() || c.writing.is_some() {
            return;
        }
        if c.unflushed.is_empty() && !(quiet && c.dirty_since.is_some()) {
            return;
        }
        // A group of one received message, nothing else waiting: cheaper flushed on the
        // driver's thread (two thread hand-offs saved, a third of a receipt's latency on a
        // virtual machine). Nothing of ours is in it.
        let here = matches!(c.unflushed.as_slice(), [Pending::Receipt { .. }]) && c.writes.is_empty();
        self.metrics.flushes.inc();
        self.metrics.group_size.observe(self.commit.unflushed.len() as f64);
        self.commit.flushing = Some(std::mem::take(&mut self.commit.unflushed));
        self.commit.dirty_since = None;
        self.output(Output::Flush { here });
    }

    pub(crate) fn on_flushed(&mut self, result: Result<(), StoreFailure>) {
        let batch = self.commit.flushing.take().unwrap_or_default();
        if let Err(e) = &result {
            warn!(error = %e, count = batch.len(), "flush failed; receipts withheld");
        }
        self.settle(batch, &result);
    }

    /// Answers the work of a group once its writes are durable, or failed.
    fn settle(&mut self, batch: Vec<Pending>, result: &Result<(), StoreFailure>) {
        for pending in batch {
            match (pending, result) {
                (Pending::Receipt { channel, bytes, .. }, Ok(())) => self.output(Output::Respond { channel, bytes }),
                // Nothing is promised for this message: its sender will try again, and our view
                // goes back to what the store holds.
                (Pending::Receipt { channel, rel, .. }, Err(_)) => {
                    self.output(Output::NoAnswer(channel));
                    if let Some(rel) = rel {
                        self.relationships.forget(&rel);
                        self.output(Output::Reload(rel));
                    }
                }
                (Pending::Reply { submitted, command }, Ok(())) => {
                    self.output(Output::Reply { command, result: Ok(submitted) })
                }
                // Never written: nothing was sent, and our view goes back to the store's.
                (Pending::Sent { staged, command }, _) => {
                    if let Some((rel, _)) = staged.place {
                        self.relationships.forget(&rel);
                        self.output(Output::Reload(rel));
                    }
                    let detail = result.as_ref().err().map_or_else(|| "not written".to_owned(), ToString::to_string);
                    self.output(Output::Reply { command, result: Err(Error::Store(StoreFailure(detail))) });
                }
                (Pending::Published { command, .. }, _) => {
                    let detail = result.as_ref().err().map_or_else(|| "not written".to_owned(), ToString::to_string);
                    self.output(Output::Reply { command, result: Err(Error::Store(StoreFailure(detail))) });
                }
                // Written and sent, but the flush failed: the caller is told it is not durable.
                (Pending::Reply { command, .. }, Err(e)) => {
                    self.output(Output::Reply { command, result: Err(Error::Store(e.clone())) })
                }
            }
        }
    }
}
