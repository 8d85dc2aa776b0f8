//! The node's real stores under a crash model (spec/node.md §4).
//!
//! [`Disk`] wraps a real [`Log`] (an append-only file on disk) or a real [`Memory`] store and
//! journals every group commit it passes on, with the file offset where its frame ended. The
//! simulation decides when a flush is durable ([`Disk::begin_flush`], [`Disk::end_flush`]);
//! a crash then keeps what the model allows and nothing else:
//!
//! - a process crash keeps everything written to the operating system (the log file as is;
//!   a memory store keeps only what was flushed, having no file);
//! - a power loss keeps the flushed prefix of the file, and for the log store may also keep a
//!   torn tail: part of the first unflushed frame, seeded garbage after the flushed end, or
//!   whole unflushed frames the operating system happened to write back.
//!
//! The store is reopened with the real [`Log::open`], and what it recovered is compared with
//! an independent model of the records it must hold (the spec's rules: a repeated message id
//! is ignored, a later outbox record replaces an earlier one, a delivered record removes it).

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rand::Rng as _;
use rand_chacha::ChaCha8Rng;
use rapport_node::store::{Error, Log, Memory, OutboxEntry, Store, Write};
use rapport_protocol::{MessageId, RelationshipId};

/// Which real backend a simulated node uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// [`Log`]: an append-only file of checksummed frames.
    Log,
    /// [`Memory`]: maps; durable, in the model, once flushed.
    Memory,
}

/// How a crash treated the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tail {
    /// Everything written to the operating system was kept.
    Kept,
    /// Cut at the flushed end.
    Cut,
    /// Cut inside the first unflushed frame.
    Torn,
    /// Cut at the flushed end, then seeded garbage appended.
    Garbage,
    /// Some whole unflushed frames reached the disk, then a torn piece of the next.
    Prefix,
}

/// One group commit as the store saw it.
#[derive(Debug, Clone)]
enum Record {
    Write(Write),
    Peer(String, Vec<String>),
}

#[derive(Debug)]
struct Frame {
    records: Vec<Record>,
    /// The log file's length after this frame (0 for the memory store).
    end: u64,
}

#[derive(Debug, Default)]
struct Journal {
    frames: Vec<Frame>,
    /// Frames known durable.
    durable: usize,
}

enum Live {
    Log(Log),
    Memory(Memory),
}

impl Live {
    fn store(&self) -> &dyn Store {
        match self {
            Live::Log(l) => l,
            Live::Memory(m) => m,
        }
    }
}

/// A real store with a journal of its group commits and a crash model.
pub(crate) struct Disk {
    dir: PathBuf,
    live: Live,
    journal: Mutex<Journal>,
    /// Where the records of an empty store begin (the log's header).
    header: u64,
}

impl std::fmt::Debug for Disk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Disk").field("dir", &self.dir).finish_non_exhaustive()
    }
}

fn backend(e: impl std::fmt::Display) -> Error {
    Error::Backend(e.to_string())
}

fn file_len(path: &Path) -> Result<u64, Error> {
    std::fs::metadata(path).map(|m| m.len()).map_err(backend)
}

/// What a store must hold: the spec's rules applied to a list of records.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Model {
    messages: BTreeMap<MessageId, Arc<[u8]>>,
    relationships: BTreeMap<RelationshipId, Vec<MessageId>>,
    outbox: BTreeMap<MessageId, OutboxEntry>,
    peers: BTreeMap<String, Vec<String>>,
}

impl Model {
    fn apply(&mut self, r: &Record) {
        match r {
            Record::Write(Write::Message { relationship, id, bytes }) => {
                if self.messages.contains_key(id) {
                    return;
                }
                self.messages.insert(*id, bytes.clone());
                if let Some(rel) = relationship {
                    self.relationships.entry(*rel).or_default().push(*id);
                }
            }
            Record::Write(Write::Outbox(e)) => {
                self.outbox.insert(e.id, e.clone());
            }
            Record::Write(Write::Delivered(id)) => {
                self.outbox.remove(id);
            }
            Record::Peer(p, a) => {
                self.peers.insert(p.clone(), a.clone());
            }
        }
    }

    /// The first way `store` differs from this model, if any.
    fn differs(&self, store: &dyn Store, lost: &[MessageId]) -> Result<Option<String>, Error> {
        let rels = store.relationships()?;
        let want: Vec<RelationshipId> = self.relationships.keys().copied().collect();
        if rels != want {
            return Ok(Some(format!("relationships: {} stored, {} expected", rels.len(), want.len())));
        }
        for (rel, ids) in &self.relationships {
            let got: Vec<MessageId> = store.relationship(rel)?.iter().map(|b| MessageId::of(b)).collect();
            if &got != ids {
                return Ok(Some(format!("relationship {rel}: {} messages stored, {} expected", got.len(), ids.len())));
            }
        }
        for (id, bytes) in &self.messages {
            if store.message(id)?.as_deref() != Some(&bytes[..]) {
                return Ok(Some(format!("message {id} missing or changed")));
            }
        }
        for id in lost {
            if !self.messages.contains_key(id) && store.message(id)?.is_some() {
                return Ok(Some(format!("message {id} was never made durable, yet came back")));
            }
        }
        let outbox: BTreeMap<MessageId, OutboxEntry> = store.outbox()?.into_iter().map(|e| (e.id, e)).collect();
        if outbox != self.outbox {
            return Ok(Some(format!("outbox: {} entries stored, {} expected", outbox.len(), self.outbox.len())));
        }
        let peers: BTreeMap<String, Vec<String>> = store.peers()?.into_iter().collect();
        if peers != self.peers {
            return Ok(Some("peers differ".into()));
        }
        Ok(None)
    }
}

/// What a crash did to the store.
#[derive(Debug)]
pub(crate) struct Crashed {
    /// How its tail was treated.
    pub tail: Tail,
    /// Records written but not kept: the messages among them, and their relationships.
    pub lost: Vec<(MessageId, Option<RelationshipId>)>,
    /// The first way the reopened store differs from what it must hold.
    pub mismatch: Option<String>,
}

impl Disk {
    /// An empty store of `backend` in directory `dir`.
    pub(crate) fn create(backend: Backend, dir: &Path) -> Result<Disk, Error> {
        let live = match backend {
            Backend::Log => Live::Log(Log::open(dir)?),
            Backend::Memory => Live::Memory(Memory::new()),
        };
        let mut disk = Disk { dir: dir.to_owned(), live, journal: Mutex::default(), header: 0 };
        disk.header = disk.len()?;
        Ok(disk)
    }

    pub(crate) fn backend(&self) -> Backend {
        match self.live {
            Live::Log(_) => Backend::Log,
            Live::Memory(_) => Backend::Memory,
        }
    }

    fn journal(&self) -> Result<std::sync::MutexGuard<'_, Journal>, Error> {
        self.journal.lock().map_err(|_| Error::Backend("journal lock poisoned".into()))
    }

    fn len(&self) -> Result<u64, Error> {
        match &self.live {
            Live::Log(l) => l.frames_end(),
            Live::Memory(_) => Ok(0),
        }
    }

    /// Passes one group commit to the real store and journals it if it became a frame.
    fn commit(&self, records: Vec<Record>, f: impl FnOnce(&dyn Store) -> Result<(), Error>) -> Result<(), Error> {
        let before = self.len()?;
        f(self.live.store())?;
        let end = self.len()?;
        if end > before || matches!(self.live, Live::Memory(_)) {
            self.journal()?.frames.push(Frame { records, end });
        }
        Ok(())
    }

    /// A flush starts: it covers the frames written so far. Returns their number.
    pub(crate) fn begin_flush(&self) -> Result<usize, Error> {
        Ok(self.journal()?.frames.len())
    }

    /// The flush begun when `covered` frames were written has ended: the real `flush` runs
    /// and those frames are durable.
    pub(crate) fn end_flush(&self, covered: usize) -> Result<(), Error> {
        self.live.store().flush()?;
        let mut j = self.journal()?;
        j.durable = j.durable.max(covered);
        Ok(())
    }

    /// Whether some frames are written and not yet durable.
    pub(crate) fn unflushed(&self) -> Result<bool, Error> {
        let j = self.journal()?;
        Ok(j.frames.len() > j.durable)
    }

    /// Whether message `id` is stored.
    pub(crate) fn message_of(&self, id: &MessageId) -> Result<bool, Error> {
        Ok(self.live.store().message(id)?.is_some())
    }

    /// The node crashed (`power`: and the machine lost power). Applies the crash model to
    /// the file, reopens the real store and compares it with the records it must hold.
    pub(crate) fn crash(&mut self, power: bool, rng: &mut ChaCha8Rng) -> Result<Crashed, Error> {
        let mut journal = std::mem::take(&mut *self.journal()?);
        let total = journal.frames.len();
        let durable = journal.durable;
        let flushed_end = if durable == 0 { self.header } else { journal.frames[durable - 1].end };
        let (tail, kept) = match (&self.live, power) {
            (Live::Memory(_), _) => (Tail::Cut, durable),
            (Live::Log(_), false) => (Tail::Kept, total),
            (Live::Log(_), true) => {
                let unflushed = total - durable;
                match rng.gen_range(0..4u8) {
                    _ if unflushed == 0 => (Tail::Cut, durable),
                    0 => (Tail::Cut, durable),
                    1 => (Tail::Torn, durable),
                    2 => (Tail::Garbage, durable),
                    _ => (Tail::Prefix, durable + rng.gen_range(1..=unflushed)),
                }
            }
        };
        if let Live::Log(log) = &self.live {
            let path = log.path().to_owned();
            let kept_end = if kept == 0 { self.header } else { journal.frames[kept - 1].end };
            let full = file_len(&path)?;
            let next_end = journal.frames.get(kept).map(|f| f.end);
            // Close the old handle before the file is changed under it.
            self.live = Live::Memory(Memory::new());
            let file = OpenOptions::new().write(true).open(&path).map_err(backend)?;
            match tail {
                Tail::Kept => {}
                Tail::Cut => file.set_len(flushed_end).map_err(backend)?,
                Tail::Torn | Tail::Prefix => {
                    // Part of the next frame, if there is one: never all of it.
                    let cut = match next_end {
                        Some(end) if end > kept_end + 1 => rng.gen_range(kept_end + 1..end),
                        _ => kept_end,
                    };
                    file.set_len(cut.min(full)).map_err(backend)?;
                }
                Tail::Garbage => {
                    file.set_len(flushed_end).map_err(backend)?;
                    let garbage = garbage(rng);
                    let mut f = OpenOptions::new().append(true).open(&path).map_err(backend)?;
                    f.write_all(&garbage).map_err(backend)?;
                }
            }
            drop(file);
            self.live = Live::Log(Log::open(&self.dir)?);
        } else {
            let fresh = Memory::new();
            for frame in &journal.frames[..kept] {
                replay(&fresh, &frame.records)?;
            }
            self.live = Live::Memory(fresh);
        }
        let mut model = Model::default();
        for frame in &journal.frames[..kept] {
            for r in &frame.records {
                model.apply(r);
            }
        }
        let lost: Vec<(MessageId, Option<RelationshipId>)> = journal.frames[kept..]
            .iter()
            .flat_map(|f| f.records.iter())
            .filter_map(|r| match r {
                Record::Write(Write::Message { id, relationship, .. }) => Some((*id, *relationship)),
                _ => None,
            })
            .collect();
        let lost_ids: Vec<MessageId> = lost.iter().map(|(id, _)| *id).collect();
        let mismatch = model.differs(self.live.store(), &lost_ids)?;
        journal.frames.truncate(kept);
        // Whole frames a power loss kept reached the disk; a log that cut a torn tail synced
        // the file. A process crash keeps unflushed frames in the operating system only.
        journal.durable = match tail {
            Tail::Kept => durable.min(kept),
            _ => kept,
        };
        *self.journal()? = journal;
        Ok(Crashed { tail, lost, mismatch })
    }
}

/// Seeded bytes a torn write can leave after the last whole frame: zeros, or a frame header
/// whose length runs past the end of the file.
fn garbage(rng: &mut ChaCha8Rng) -> Vec<u8> {
    let len = rng.gen_range(1..64usize);
    if rng.gen_bool(0.5) {
        return vec![0; len];
    }
    let mut out: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
    if len >= 4 {
        let claimed = u32::try_from(len).unwrap_or(u32::MAX).saturating_add(rng.gen_range(0..1000));
        out[..4].copy_from_slice(&claimed.to_le_bytes());
    }
    out
}

fn replay(store: &dyn Store, records: &[Record]) -> Result<(), Error> {
    let writes: Vec<Write> = records
        .iter()
        .filter_map(|r| match r {
            Record::Write(w) => Some(w.clone()),
            Record::Peer(..) => None,
        })
        .collect();
    store.write_all(&writes)?;
    for r in records {
        if let Record::Peer(p, a) = r {
            store.peer_put(p, a)?;
        }
    }
    Ok(())
}

impl Store for Disk {
    fn put_message(&self, relationship: Option<RelationshipId>, id: MessageId, bytes: &[u8]) -> Result<bool, Error> {
        let mut added = false;
        let record = Record::Write(Write::Message { relationship, id, bytes: bytes.into() });
        self.commit(vec![record], |s| {
            added = s.put_message(relationship, id, bytes)?;
            Ok(())
        })?;
        Ok(added)
    }

    fn message(&self, id: &MessageId) -> Result<Option<Vec<u8>>, Error> {
        self.live.store().message(id)
    }

    fn relationship(&self, relationship: &RelationshipId) -> Result<Vec<Vec<u8>>, Error> {
        self.live.store().relationship(relationship)
    }

    fn relationships(&self) -> Result<Vec<RelationshipId>, Error> {
        self.live.store().relationships()
    }

    fn outbox_put(&self, entry: &OutboxEntry) -> Result<(), Error> {
        self.commit(vec![Record::Write(Write::Outbox(entry.clone()))], |s| s.outbox_put(entry))
    }

    fn outbox_remove(&self, id: &MessageId) -> Result<bool, Error> {
        let mut had = false;
        self.commit(vec![Record::Write(Write::Delivered(*id))], |s| {
            had = s.outbox_remove(id)?;
            Ok(())
        })?;
        Ok(had)
    }

    fn outbox(&self) -> Result<Vec<OutboxEntry>, Error> {
        self.live.store().outbox()
    }

    fn peer_put(&self, peer: &str, addresses: &[String]) -> Result<(), Error> {
        self.commit(vec![Record::Peer(peer.to_owned(), addresses.to_vec())], |s| s.peer_put(peer, addresses))
    }

    fn peer(&self, peer: &str) -> Result<Option<Vec<String>>, Error> {
        self.live.store().peer(peer)
    }

    fn peers(&self) -> Result<Vec<(String, Vec<String>)>, Error> {
        self.live.store().peers()
    }

    /// Durability is the simulation's to decide ([`Disk::begin_flush`]); a direct flush is a
    /// real one and covers everything written.
    fn flush(&self) -> Result<(), Error> {
        let covered = self.begin_flush()?;
        self.end_flush(covered)
    }

    fn write_all(&self, writes: &[Write]) -> Result<(), Error> {
        self.commit(writes.iter().cloned().map(Record::Write).collect(), |s| s.write_all(writes))
    }
}
