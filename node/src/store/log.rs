//! The default on-disk [`Store`]: one append-only file of checksummed frames, indexed in
//! memory (spec/node.md §4).
//!
//! Rapport's records suit a log: signed messages never change once stored, the outbox and the
//! peer list are small, and every group commit is a run of appends. So a group commit is one
//! `write` of one frame and one `fdatasync`, with no tree to rebalance and no background
//! writer competing for the disk; reads are one positioned read of the file.
//!
//! ```text
//! file   = magic "rapport-log" 0x00, version u32 (little-endian), frame*, 0x00*
//! frame  = length u32, crc32 u32 (IEEE, of the body), body   (length = body's, at least 1)
//! body   = record+                                            (one group commit, all or none)
//! record = 0x01 message    flags u8 (bit 0: indexed), [relationship 16], id 32, length u32, bytes
//!        | 0x02 outbox     id 32, attempts u32, next_attempt u64, queued_at u64, peer (length u16, utf-8)
//!        | 0x03 delivered  id 32                              (the outbox entry is removed)
//!        | 0x04 peer       peer (length u16, utf-8), count u16, count × address (length u16, utf-8)
//! ```
//!
//! All integers are little-endian. At open the file is read from the start and the index
//! rebuilt. A torn last frame, left by a crash in the middle of a write, is cut off (it was
//! never flushed, so nothing it held was promised). A damaged frame anywhere else, with whole
//! frames after it, is skipped: the scan goes on at the next whole frame, the damage is
//! reported ([`Log::damage`]: offset, length, and the relationships the damaged bytes still
//! name), and the bytes are left as they are, never overwritten. [`repair`] copies every whole
//! frame into a new file and keeps the damaged one beside it.
//!
//! The file is kept longer than its frames, its tail zeros written ahead of need (a chunk of an
//! eighth of the file, 1 to 16 MiB, once less than half a chunk is left). An append then
//! overwrites blocks the file already has, so its `fdatasync` writes the data alone: neither
//! the file's size nor its block map changes, which costs the disk a second write per flush.

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{self, Read as _, Write as _};
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rapport_protocol::{MessageId, RelationshipId};
use tracing::warn;

use super::{Damage, Error, OutboxEntry, Store, Write};

/// The file's first bytes.
pub(crate) const MAGIC: &[u8; 12] = b"rapport-log\0";
/// The format version this code writes and reads.
pub(crate) const VERSION: u32 = 1;
const HEADER_LEN: u64 = 16;
const FRAME_HEAD: usize = 8;
/// The smallest and largest run of zeros written ahead of the frames.
const CHUNK_MIN: u64 = 1 << 20;
const CHUNK_MAX: u64 = 16 << 20;
/// The file inside the store's directory.
pub(crate) const FILE: &str = "records";

const MESSAGE: u8 = 1;
const OUTBOX: u8 = 2;
const DELIVERED: u8 = 3;
const PEER: u8 = 4;

/// Where a message's bytes lie in the file.
#[derive(Debug, Clone, Copy)]
struct Span {
    offset: u64,
    len: u32,
}

#[derive(Debug, Default)]
struct Index {
    messages: HashMap<MessageId, Span>,
    relationships: BTreeMap<RelationshipId, Vec<MessageId>>,
    outbox: BTreeMap<MessageId, OutboxEntry>,
    peers: BTreeMap<String, Vec<String>>,
}

#[derive(Debug)]
struct Inner {
    file: Arc<File>,
    /// Where the next frame goes: the end of the last whole frame.
    end: u64,
    /// The file's length: zeros from `end` on.
    allocated: u64,
    index: Index,
}

impl Inner {
    /// Lengthens the file by `by` zeros (not yet flushed).
    fn grow(&mut self, by: u64) -> Result<(), Error> {
        zero(&self.file, self.allocated, by).map_err(backend)?;
        self.allocated += by;
        Ok(())
    }
}

/// How far ahead of the frames a file of `len` bytes is zeroed.
fn chunk(len: u64) -> u64 {
    (len / 8).clamp(CHUNK_MIN, CHUNK_MAX)
}

/// Writes `len` zeros at `from`.
fn zero(file: &File, from: u64, len: u64) -> io::Result<()> {
    let zeros = vec![0u8; 1 << 16];
    let mut at = from;
    while at < from + len {
        let n = (from + len - at).min(zeros.len() as u64);
        file.write_all_at(&zeros[..n as usize], at)?;
        at += n;
    }
    Ok(())
}

/// A [`Store`] in one append-only file.
#[derive(Debug)]
pub struct Log {
    path: PathBuf,
    inner: Mutex<Inner>,
    damage: Vec<Damage>,
}

fn backend(e: impl std::fmt::Display) -> Error {
    Error::Backend(e.to_string())
}

fn corrupt(detail: impl std::fmt::Display) -> Error {
    Error::Corrupt { tree: "log", detail: detail.to_string() }
}

/// A record of a frame being built, or read back.
enum Record {
    Message { relationship: Option<RelationshipId>, id: MessageId, bytes_at: usize, len: u32 },
    Outbox(OutboxEntry),
    Delivered(MessageId),
    Peer(String, Vec<String>),
}

fn put_str(out: &mut Vec<u8>, s: &str) -> Result<(), Error> {
    let len = u16::try_from(s.len()).map_err(|_| Error::Backend(format!("string of {} bytes is too long", s.len())))?;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

fn encode_message(out: &mut Vec<u8>, relationship: Option<RelationshipId>, id: &MessageId, bytes: &[u8]) -> usize {
    out.push(MESSAGE);
    out.push(u8::from(relationship.is_some()));
    if let Some(rel) = relationship {
        out.extend_from_slice(rel.as_bytes());
    }
    out.extend_from_slice(id.as_bytes());
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    let at = out.len();
    out.extend_from_slice(bytes);
    at
}

fn encode_outbox(out: &mut Vec<u8>, e: &OutboxEntry) -> Result<(), Error> {
    out.push(OUTBOX);
    out.extend_from_slice(e.id.as_bytes());
    out.extend_from_slice(&e.attempts.to_le_bytes());
    out.extend_from_slice(&e.next_attempt.to_le_bytes());
    out.extend_from_slice(&e.queued_at.to_le_bytes());
    put_str(out, &e.peer)
}

fn encode_delivered(out: &mut Vec<u8>, id: &MessageId) {
    out.push(DELIVERED);
    out.extend_from_slice(id.as_bytes());
}

fn encode_peer(out: &mut Vec<u8>, peer: &str, addresses: &[String]) -> Result<(), Error> {
    out.push(PEER);
    put_str(out, peer)?;
    let count = u16::try_from(addresses.len()).map_err(|_| Error::Backend("too many addresses".into()))?;
    out.extend_from_slice(&count.to_le_bytes());
    for a in addresses {
        put_str(out, a)?;
    }
    Ok(())
}

/// Reads a frame body's records.
struct Reader<'a> {
    body: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.body.len()).ok_or_else(|| corrupt("short record"))?;
        let out = &self.body[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], Error> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn string(&mut self) -> Result<String, Error> {
        let len = u16::from_le_bytes(self.array()?);
        let bytes = self.take(usize::from(len))?;
        String::from_utf8(bytes.to_vec()).map_err(|_| corrupt("string is not utf-8"))
    }

    fn record(&mut self) -> Result<Record, Error> {
        let [tag] = self.array()?;
        Ok(match tag {
            MESSAGE => {
                let [flags] = self.array()?;
                let relationship = if flags & 1 == 1 { Some(RelationshipId::from_bytes(self.array()?)) } else { None };
                let id = MessageId::from_bytes(self.array()?);
                let len = u32::from_le_bytes(self.array()?);
                let bytes_at = self.at;
                self.take(len as usize)?;
                Record::Message { relationship, id, bytes_at, len }
            }
            OUTBOX => {
                let id = MessageId::from_bytes(self.array()?);
                let attempts = u32::from_le_bytes(self.array()?);
                let next_attempt = u64::from_le_bytes(self.array()?);
                let queued_at = u64::from_le_bytes(self.array()?);
                let peer = self.string()?;
                Record::Outbox(OutboxEntry { id, peer, attempts, next_attempt, queued_at })
            }
            DELIVERED => Record::Delivered(MessageId::from_bytes(self.array()?)),
            PEER => {
                let peer = self.string()?;
                let count = u16::from_le_bytes(self.array()?);
                let addresses = (0..count).map(|_| self.string()).collect::<Result<_, _>>()?;
                Record::Peer(peer, addresses)
            }
            other => return Err(corrupt(format!("unknown record type {other}"))),
        })
    }
}

impl Index {
    /// Applies the records of a frame whose body starts at `body_offset` in the file.
    fn apply(&mut self, body: &[u8], body_offset: u64) -> Result<(), Error> {
        let mut r = Reader { body, at: 0 };
        while r.at < body.len() {
            match r.record()? {
                Record::Message { relationship, id, bytes_at, len } => {
                    if self.messages.contains_key(&id) {
                        continue;
                    }
                    self.messages.insert(id, Span { offset: body_offset + bytes_at as u64, len });
                    if let Some(rel) = relationship {
                        self.relationships.entry(rel).or_default().push(id);
                    }
                }
                Record::Outbox(entry) => {
                    self.outbox.insert(entry.id, entry);
                }
                Record::Delivered(id) => {
                    self.outbox.remove(&id);
                }
                Record::Peer(peer, addresses) => {
                    self.peers.insert(peer, addresses);
                }
            }
        }
        Ok(())
    }
}

/// How a scan of the file ended.
struct Scan {
    index: Index,
    /// The end of the last whole frame.
    end: u64,
    /// The end of the last byte that is not zero, if a torn frame left bytes past `end`.
    torn: Option<u64>,
    /// Stretches between whole frames that hold no whole frame.
    damage: Vec<Damage>,
    /// Where each whole frame lies: start and length, head included.
    frames: Vec<(usize, usize)>,
}

/// The first offset after `at` where a whole frame starts whose records read.
fn next_frame(data: &[u8], at: usize) -> Option<usize> {
    (at + 1..data.len()).find(|&p| frame_at(data, p).is_some_and(|body| Index::default().apply(body, 0).is_ok()))
}

/// The relationships a damaged stretch still names: its frame's records read leniently, as far
/// as they go. Damage in the head or early in the body hides the rest; the relationships whose
/// later messages then no longer chain are found when the node replays them.
fn named_in(region: &[u8]) -> Vec<RelationshipId> {
    let mut out = Vec::new();
    let Some(head) = region.get(..FRAME_HEAD) else { return out };
    let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
    let body = &region[FRAME_HEAD..region.len().min(FRAME_HEAD.saturating_add(len))];
    let mut r = Reader { body, at: 0 };
    while r.at < body.len() {
        // A message record's relationship comes first, so it is read even when the rest of the
        // record (its id, its length) is what was damaged.
        let start = r.at;
        if body[start] == MESSAGE && body.get(start + 1).is_some_and(|flags| flags & 1 == 1) {
            if let Some(rel) = body.get(start + 2..start + 18).and_then(RelationshipId::from_slice) {
                if !out.contains(&rel) {
                    out.push(rel);
                }
            }
        }
        if r.record().is_err() {
            break;
        }
    }
    out
}

fn scan(file: &mut File, len: u64) -> Result<Scan, Error> {
    let mut data = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    file.read_to_end(&mut data).map_err(backend)?;
    if data.len() < HEADER_LEN as usize || &data[..12] != MAGIC {
        return Err(corrupt("not a rapport log (bad magic)"));
    }
    let version = u32::from_le_bytes([data[12], data[13], data[14], data[15]]);
    if version != VERSION {
        return Err(corrupt(format!("log format version {version}; this node reads version {VERSION}")));
    }
    let mut index = Index::default();
    let mut at = HEADER_LEN as usize;
    let mut torn = None;
    let mut damage = Vec::new();
    let mut frames = Vec::new();
    while at < data.len() {
        match frame_at(&data, at) {
            Some(body) => {
                index.apply(body, (at + FRAME_HEAD) as u64)?;
                frames.push((at, FRAME_HEAD + body.len()));
                at += FRAME_HEAD + body.len();
            }
            // The zeros ahead of the frames.
            None if data[at..].iter().all(|&b| b == 0) => break,
            None if torn_tail(&data, at) => {
                let last = data.iter().rposition(|&b| b != 0).map_or(at, |i| i + 1);
                warn!(offset = at, dropped = last - at, "cutting off a torn last write (never acknowledged)");
                torn = Some(last as u64);
                break;
            }
            None => {
                // Whole frames follow (else it would be a torn tail): skip to the next one.
                let next = next_frame(&data, at).unwrap_or(data.len());
                let d = Damage { offset: at as u64, len: (next - at) as u64, relationships: named_in(&data[at..next]) };
                warn!(
                    offset = d.offset,
                    len = d.len,
                    relationships = ?d.relationships.iter().map(|r| r.to_hex()).collect::<Vec<_>>(),
                    "damaged frame skipped; `rapport repair` salvages the whole frames into a new log"
                );
                damage.push(d);
                at = next;
            }
        }
    }
    Ok(Scan { index, end: at as u64, torn, damage, frames })
}

/// The body of the whole frame at `at`, if one starts there: a length of at least 1 that fits
/// in the file, and a body that matches its checksum.
fn frame_at(data: &[u8], at: usize) -> Option<&[u8]> {
    let head = data.get(at..at.checked_add(FRAME_HEAD)?)?;
    let body_len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
    if body_len == 0 {
        return None;
    }
    let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
    let body = data.get(at + FRAME_HEAD..(at + FRAME_HEAD).checked_add(body_len)?)?;
    (crc32fast::hash(body) == crc).then_some(body)
}

/// Whether the bad frame at `at` can only be an interrupted last write: no whole frame starts
/// anywhere after it. A frame is written only after every frame before it, so a torn write
/// leaves nothing whole behind it (unless a later, also unflushed, write reached the disk
/// first, which this refuses too, as damage, rather than guess); damage to a frame that was
/// flushed leaves the frames after it whole.
fn torn_tail(data: &[u8], at: usize) -> bool {
    (at + 1..data.len()).all(|p| frame_at(data, p).is_none())
}

impl Log {
    /// Opens (or creates) the log in directory `dir`, rebuilding the index and cutting off a
    /// torn last write.
    pub fn open(dir: &Path) -> Result<Log, Error> {
        std::fs::create_dir_all(dir).map_err(backend)?;
        let path = dir.join(FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::Backend(format!("{}: {e}", path.display())))?;
        let mut len = file.metadata().map_err(backend)?.len();
        let mut damage = Vec::new();
        let (index, end) = if len == 0 {
            let mut header = Vec::with_capacity(HEADER_LEN as usize);
            header.extend_from_slice(MAGIC);
            header.extend_from_slice(&VERSION.to_le_bytes());
            file.write_all(&header).map_err(backend)?;
            file.sync_all().map_err(backend)?;
            sync_dir(dir)?;
            len = HEADER_LEN;
            (Index::default(), HEADER_LEN)
        } else {
            let Scan { index, end, torn, damage: found, .. } = scan(&mut file, len)?;
            if let Some(last) = torn {
                zero(&file, end, last - end).map_err(backend)?;
                file.sync_data().map_err(backend)?;
            }
            damage = found;
            (index, end)
        };
        let log = Log { path, inner: Mutex::new(Inner { file: Arc::new(file), end, allocated: len, index }), damage };
        log.prepare()?;
        Ok(log)
    }

    /// The damage the open found and skipped.
    pub fn damage(&self) -> &[Damage] {
        &self.damage
    }

    /// The log file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where the last whole frame ends: the file's zeros start there.
    pub fn frames_end(&self) -> Result<u64, Error> {
        Ok(self.lock()?.end)
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Inner>, Error> {
        self.inner.lock().map_err(|_| Error::Backend("store lock poisoned".into()))
    }

    /// Appends one frame holding the records that `build` writes, and applies them to the
    /// index; `build` sees the index as it was before.
    fn append(&self, build: impl FnOnce(&Index, &mut Vec<u8>) -> Result<(), Error>) -> Result<(), Error> {
        let mut inner = self.lock()?;
        let mut frame = vec![0u8; FRAME_HEAD];
        build(&inner.index, &mut frame)?;
        let body_len = frame.len() - FRAME_HEAD;
        if body_len == 0 {
            return Ok(());
        }
        let len = u32::try_from(body_len).map_err(|_| Error::Backend("group commit over 4 GiB".into()))?;
        let crc = crc32fast::hash(&frame[FRAME_HEAD..]);
        frame[..4].copy_from_slice(&len.to_le_bytes());
        frame[4..8].copy_from_slice(&crc.to_le_bytes());
        let at = inner.end;
        let need = at + frame.len() as u64;
        if need > inner.allocated {
            // More than the zeros ahead hold: more of them, now.
            let more = need - inner.allocated + chunk(need);
            inner.grow(more)?;
        }
        if let Err(e) = inner.file.write_all_at(&frame, at) {
            // Part of the frame may have reached the file: zero it, so that the next frame
            // starts at a frame boundary and no stale bytes follow it.
            let _ = zero(&inner.file, at, frame.len() as u64);
            return Err(backend(e));
        }
        inner.end = at + frame.len() as u64;
        // The index learns the frame by reading it back, as a restart would: what the node
        // sees now is exactly what it will rebuild from the file.
        inner.index.apply(&frame[FRAME_HEAD..], at + FRAME_HEAD as u64)
    }
}

fn sync_dir(dir: &Path) -> Result<(), Error> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(backend)
}

/// Encodes a message record unless `id` is stored or already in this frame.
fn stage_message(
    index: &Index,
    staged: &mut Vec<MessageId>,
    out: &mut Vec<u8>,
    relationship: Option<RelationshipId>,
    id: MessageId,
    bytes: &[u8],
) -> bool {
    if index.messages.contains_key(&id) || staged.contains(&id) {
        return false;
    }
    staged.push(id);
    encode_message(out, relationship, &id, bytes);
    true
}

/// What [`repair`] did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Repaired {
    /// The stretches dropped (none: the log was whole, and nothing changed).
    pub dropped: Vec<Damage>,
    /// Whole frames copied into the new log.
    pub frames: usize,
    /// Bytes of frames copied.
    pub bytes: u64,
    /// Where the damaged file was kept.
    pub kept: Option<PathBuf>,
}

/// Salvages the log in `dir`: every whole frame, in order, into a new file, synced, which then
/// replaces the old one; the old one is kept beside it as `records.damaged-<unix ms>`. A log
/// with no damage is left as it is. The caller holds the data directory's lock.
pub fn repair(dir: &Path) -> Result<Repaired, Error> {
    let path = dir.join(FILE);
    let mut file = File::open(&path).map_err(|e| Error::Backend(format!("{}: {e}", path.display())))?;
    let len = file.metadata().map_err(backend)?.len();
    let Scan { damage, frames, .. } = scan(&mut file, len)?;
    let total: usize = frames.iter().map(|(_, n)| n).sum();
    if damage.is_empty() {
        return Ok(Repaired { dropped: damage, frames: frames.len(), bytes: total as u64, kept: None });
    }
    let data = std::fs::read(&path).map_err(backend)?;
    let mut out = Vec::with_capacity(HEADER_LEN as usize + total);
    out.extend_from_slice(&data[..HEADER_LEN as usize]);
    for &(at, n) in &frames {
        out.extend_from_slice(&data[at..at + n]);
    }
    let fresh = dir.join(format!("{FILE}.repair"));
    let mut f = File::create(&fresh).map_err(backend)?;
    f.write_all(&out).map_err(backend)?;
    f.sync_all().map_err(backend)?;
    let ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
    let kept = dir.join(format!("{FILE}.damaged-{ms}"));
    std::fs::rename(&path, &kept).map_err(backend)?;
    std::fs::rename(&fresh, &path).map_err(backend)?;
    sync_dir(dir)?;
    Ok(Repaired { dropped: damage, frames: frames.len(), bytes: total as u64, kept: Some(kept) })
}

impl Store for Log {
    fn damage(&self) -> Vec<Damage> {
        self.damage.clone()
    }

    fn put_message(&self, relationship: Option<RelationshipId>, id: MessageId, bytes: &[u8]) -> Result<bool, Error> {
        let mut added = false;
        self.append(|index, out| {
            added = stage_message(index, &mut Vec::new(), out, relationship, id, bytes);
            Ok(())
        })?;
        Ok(added)
    }

    fn write_all(&self, writes: &[Write]) -> Result<(), Error> {
        self.append(|index, out| {
            let mut staged = Vec::new();
            for w in writes {
                match w {
                    Write::Message { relationship, id, bytes } => {
                        stage_message(index, &mut staged, out, *relationship, *id, bytes);
                    }
                    Write::Outbox(entry) => encode_outbox(out, entry)?,
                    Write::Delivered(id) => encode_delivered(out, id),
                }
            }
            Ok(())
        })
    }

    fn message(&self, id: &MessageId) -> Result<Option<Vec<u8>>, Error> {
        let (file, span) = {
            let inner = self.lock()?;
            let Some(span) = inner.index.messages.get(id).copied() else { return Ok(None) };
            (inner.file.clone(), span)
        };
        read_span(&file, span).map(Some)
    }

    fn relationship(&self, relationship: &RelationshipId) -> Result<Vec<Vec<u8>>, Error> {
        let (file, spans) = {
            let inner = self.lock()?;
            let ids = inner.index.relationships.get(relationship).map(Vec::as_slice).unwrap_or_default();
            let spans: Vec<Span> = ids.iter().filter_map(|id| inner.index.messages.get(id).copied()).collect();
            (inner.file.clone(), spans)
        };
        spans.into_iter().map(|s| read_span(&file, s)).collect()
    }

    fn relationships(&self) -> Result<Vec<RelationshipId>, Error> {
        Ok(self.lock()?.index.relationships.keys().copied().collect())
    }

    fn outbox_put(&self, entry: &OutboxEntry) -> Result<(), Error> {
        self.append(|_, out| encode_outbox(out, entry))
    }

    fn outbox_remove(&self, id: &MessageId) -> Result<bool, Error> {
        let mut had = false;
        self.append(|index, out| {
            had = index.outbox.contains_key(id);
            if had {
                encode_delivered(out, id);
            }
            Ok(())
        })?;
        Ok(had)
    }

    fn outbox(&self) -> Result<Vec<OutboxEntry>, Error> {
        Ok(self.lock()?.index.outbox.values().cloned().collect())
    }

    fn peer_put(&self, peer: &str, addresses: &[String]) -> Result<(), Error> {
        self.append(|_, out| encode_peer(out, peer, addresses))
    }

    fn peer(&self, peer: &str) -> Result<Option<Vec<String>>, Error> {
        Ok(self.lock()?.index.peers.get(peer).cloned())
    }

    fn peers(&self) -> Result<Vec<(String, Vec<String>)>, Error> {
        Ok(self.lock()?.index.peers.iter().map(|(p, a)| (p.clone(), a.clone())).collect())
    }

    /// One `fdatasync`, outside the lock: reads and the next group's writes go on meanwhile.
    fn flush(&self) -> Result<(), Error> {
        let file = self.lock()?.file.clone();
        file.sync_data().map_err(backend)
    }

    /// Zeros the next chunk ahead of the frames, once less than half a chunk is left, and
    /// makes it durable, so that the flushes after it change no metadata.
    fn prepare(&self) -> Result<(), Error> {
        let file = {
            let mut inner = self.lock()?;
            let ahead = chunk(inner.allocated);
            if inner.allocated - inner.end >= ahead / 2 {
                return Ok(());
            }
            // Under the lock, so that no append extends the file meanwhile.
            inner.grow(ahead)?;
            inner.file.clone()
        };
        file.sync_data().map_err(backend)
    }
}

fn read_span(file: &File, span: Span) -> Result<Vec<u8>, Error> {
    let mut out = vec![0u8; span.len as usize];
    file.read_exact_at(&mut out, span.offset).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => corrupt("a message runs past the end of the file"),
        _ => backend(e),
    })?;
    Ok(out)
}
