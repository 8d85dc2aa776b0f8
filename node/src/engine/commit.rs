//! Group commit (spec/node.md §3): the loop handles every event that is ready, then writes
//! what they staged as one group (for the log store: one `write` to the operating system) and
//! makes it durable with one flush, off the loop (on it for a lone received message: see
//! `flush_here`). Nothing is promised before its flush ends:
//! receipts go out and callers are answered only then. Our own messages are the exception
//! that keeps latency low: they are written at once, even while a flush runs, so that they
//! can go out (a crash of the process can no longer lose them), and their callers are told
//! after the next flush.

use tracing::warn;

use super::{Engine, Error, Pending};
use crate::store::Store;

/// A group is written (and flushed, if no flush runs) once it holds this much work, even if
/// the loop is never idle.
pub(super) const MAX_GROUP: usize = 64;

impl Engine {
    /// Whether the loop, now idle, has a group to write or flush. Writes that promise nothing
    /// are written too (so that reads of the store see them at once), and flushed with the
    /// next group or by the outbox tick.
    pub(super) fn group_ready(&self) -> bool {
        let staged = !self.unwritten.is_empty() || !self.writes.is_empty();
        let write = staged && (self.flushing.is_none() || self.has_unsent());
        write || (self.flushing.is_none() && !self.unflushed.is_empty())
    }

    /// Whether the loop has gathered as much as a group holds.
    pub(super) fn group_full(&self) -> bool {
        self.unwritten.len() + self.unflushed.len() >= MAX_GROUP
    }

    fn has_unsent(&self) -> bool {
        self.unwritten.iter().any(|p| matches!(p, Pending::Sent(..)))
    }

    /// Writes the staged group and starts its flush. While a flush runs, only a group holding
    /// our own messages is written (everything staged before them, in order, goes with it);
    /// the rest waits for that flush to end and is then written and flushed in one go.
    pub(super) fn commit(&mut self) {
        if self.flushing.is_none() || self.has_unsent() {
            self.write_staged();
        }
        if self.flushing.is_none() && !self.unflushed.is_empty() {
            if matches!(self.unflushed.as_slice(), [Pending::Receipt(..)]) {
                self.flush_here();
            } else {
                self.start_flush();
            }
        }
    }

    /// A group of one received message, the loop otherwise idle: the flush runs here, on the
    /// loop, which saves the two thread hand-offs of a flush off the loop (tens of µs each on a
    /// virtual machine, a third of a receipt's latency). Nothing waits behind it that would not
    /// have waited for the flush anyway, and nothing of ours is in the group: a message of ours
    /// goes out only when the loop next polls the swarm, which would wait behind the flush.
    fn flush_here(&mut self) {
        self.begin_flush();
        self.prepare_store = true;
        let result = self.store.flush();
        self.on_flushed(result);
    }

    /// Writes and flushes what promises nothing (receipts we hold, delivered outbox entries,
    /// delivery attempts), if no flush runs; and, after flushes made on the loop, lets the
    /// store prepare for the next ones off it. The outbox tick calls it.
    pub(super) fn commit_quiet(&mut self) {
        if self.flushing.is_none() && (self.dirty || !self.writes.is_empty() || !self.unwritten.is_empty()) {
            self.write_staged();
            self.start_flush();
        } else if std::mem::take(&mut self.prepare_store) {
            let store = self.store.clone();
            tokio::task::spawn_blocking(move || prepare(store.as_ref()));
        }
    }

    /// Writes what this turn staged, in one group, to the store (for the log store: one
    /// `write` to the operating system). Our own messages go out at once; receipts and the
    /// callers' replies wait for the flush.
    pub(super) fn write_staged(&mut self) {
        if self.writes.is_empty() && self.unwritten.is_empty() {
            return;
        }
        let result = self.store.write_all(&std::mem::take(&mut self.writes));
        let batch = std::mem::take(&mut self.unwritten);
        if let Err(e) = result {
            warn!(error = %e, count = batch.len(), "write failed; receipts withheld, sends refused");
            return self.settle(batch, &Err(e));
        }
        self.dirty = true;
        for pending in batch {
            match pending {
                Pending::Sent(staged, reply) => {
                    let submitted = staged.submitted.clone();
                    self.sent(staged.entry, staged.place, staged.bytes);
                    self.unflushed.push(Pending::Reply(submitted, reply));
                }
                other => self.unflushed.push(other),
            }
        }
    }

    /// Flushes the store off the event loop; the work written so far waits for it.
    fn start_flush(&mut self) {
        self.begin_flush();
        self.prepare_store = false;
        let store = self.store.clone();
        let tx = self.flushed_tx.clone();
        tokio::task::spawn_blocking(move || {
            let _ = tx.blocking_send(store.flush());
            prepare(store.as_ref());
        });
    }

    /// What both kinds of flush do first: the work written so far becomes the group that waits
    /// for this flush, and the flush is counted.
    fn begin_flush(&mut self) {
        self.metrics.flushes.inc();
        self.metrics.group_size.observe(self.unflushed.len() as f64);
        self.flushing = Some(std::mem::take(&mut self.unflushed));
        self.dirty = false;
    }

    pub(super) fn on_flushed(&mut self, result: Result<(), crate::store::Error>) {
        let batch = self.flushing.take().unwrap_or_default();
        if let Err(e) = &result {
            warn!(error = %e, count = batch.len(), "flush failed; receipts withheld");
        }
        self.settle(batch, &result);
    }

    /// Answers the work of a group commit once its writes are durable, or failed.
    fn settle(&mut self, batch: Vec<Pending>, result: &Result<(), crate::store::Error>) {
        for pending in batch {
            match (pending, result) {
                (Pending::Receipt(channel, receipt, _), Ok(())) => self.respond(channel, receipt),
                // Nothing is promised for this message: its sender will try again, and our view
                // goes back to what the store holds.
                (Pending::Receipt(_, _, rel), Err(_)) => {
                    if let Some(rel) = rel {
                        let _ = self.relationships.reload(self.store.as_ref(), &rel);
                    }
                }
                (Pending::Reply(submitted, reply), Ok(())) => {
                    let _ = reply.send(Ok(submitted));
                }
                // Never written: nothing was sent, and our view goes back to the store's.
                (Pending::Sent(staged, reply), _) => {
                    if let Some((rel, _)) = staged.place {
                        let _ = self.relationships.reload(self.store.as_ref(), &rel);
                    }
                    let detail = result.as_ref().err().map_or_else(|| "not written".to_owned(), ToString::to_string);
                    let _ = reply.send(Err(Error::Store(crate::store::Error::Backend(detail))));
                }
                // Written and sent, but the flush failed: the caller is told it is not durable.
                (Pending::Reply(_, reply), Err(e)) => {
                    let _ = reply.send(Err(Error::Store(crate::store::Error::Backend(e.to_string()))));
                }
            }
        }
    }
}

/// [`Store::prepare`], off the loop, after a flush was reported.
fn prepare(store: &dyn Store) {
    if let Err(e) = store.prepare() {
        warn!(error = %e, "cannot make room in the store ahead of its writes");
    }
}
