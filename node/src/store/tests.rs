//! One suite, run against every store, so that the in-memory store used by tests behaves as
//! the disk stores do; then what only the log store does: reopening, cutting off a torn last
//! write, skipping and reporting damage, and repairing it.

use rapport_protocol::{MessageId, RelationshipId};

use super::*;

fn id(n: u8) -> MessageId {
    MessageId::from_bytes([n; 32])
}

fn rel(n: u8) -> RelationshipId {
    RelationshipId::from_bytes([n; 16])
}

fn entry(n: u8, attempts: u32) -> OutboxEntry {
    OutboxEntry { id: id(n), peer: format!("peer-{n}"), attempts, next_attempt: 10 * u64::from(n), queued_at: 7 }
}

fn suite(store: &dyn Store) {
    // Messages: idempotent by id, indexed per relationship in arrival order.
    assert!(store.put_message(Some(rel(1)), id(3), b"third").unwrap());
    assert!(store.put_message(Some(rel(2)), id(1), b"other").unwrap());
    assert!(store.put_message(Some(rel(1)), id(2), b"fourth").unwrap());
    assert!(store.put_message(None, id(9), b"public").unwrap());
    assert!(!store.put_message(Some(rel(1)), id(3), b"changed").unwrap(), "a second put is refused");
    assert_eq!(store.message(&id(3)).unwrap().as_deref(), Some(b"third".as_slice()));
    assert_eq!(store.message(&id(9)).unwrap().as_deref(), Some(b"public".as_slice()));
    assert_eq!(store.message(&id(4)).unwrap(), None);
    assert_eq!(store.relationship(&rel(1)).unwrap(), vec![b"third".to_vec(), b"fourth".to_vec()]);
    assert_eq!(store.relationship(&rel(3)).unwrap(), Vec::<Vec<u8>>::new());
    assert_eq!(store.relationships().unwrap(), vec![rel(1), rel(2)]);

    // Outbox: put replaces, remove reports whether there was an entry.
    store.outbox_put(&entry(1, 0)).unwrap();
    store.outbox_put(&entry(2, 0)).unwrap();
    store.outbox_put(&entry(1, 3)).unwrap();
    let mut outbox = store.outbox().unwrap();
    outbox.sort_by_key(|e| e.id);
    assert_eq!(outbox, vec![entry(1, 3), entry(2, 0)]);
    assert!(store.outbox_remove(&id(1)).unwrap());
    assert!(!store.outbox_remove(&id(1)).unwrap());
    assert_eq!(store.outbox().unwrap(), vec![entry(2, 0)]);

    // Peers.
    store.peer_put("a", &["/ip4/127.0.0.1/tcp/1".into()]).unwrap();
    store.peer_put("a", &["/ip4/127.0.0.1/tcp/2".into()]).unwrap();
    assert_eq!(store.peers().unwrap(), vec![("a".to_string(), vec!["/ip4/127.0.0.1/tcp/2".to_string()])]);
    assert_eq!(store.peer("a").unwrap(), Some(vec!["/ip4/127.0.0.1/tcp/2".to_string()]));
    assert_eq!(store.peer("b").unwrap(), None);
    // A group commit: in order, a repeat within the batch or of a stored message ignored.
    let w = |n: u8| Write::Message { relationship: Some(rel(5)), id: id(n), bytes: vec![n].into() };
    store.write_all(&[w(20), w(21), w(20), w(3), Write::Outbox(entry(20, 0))]).unwrap();
    assert_eq!(store.relationship(&rel(5)).unwrap(), vec![vec![20], vec![21]]);
    assert_eq!(store.message(&id(3)).unwrap().as_deref(), Some(b"third".as_slice()), "not overwritten");
    assert!(store.outbox().unwrap().contains(&entry(20, 0)));
    store.write_all(&[Write::Outbox(entry(21, 0)), Write::Delivered(id(20))]).unwrap();
    assert!(!store.outbox().unwrap().contains(&entry(20, 0)), "delivered in a group commit");
    assert!(store.outbox().unwrap().contains(&entry(21, 0)));
    store.flush().unwrap();
}

#[test]
fn memory_store() {
    suite(&Memory::new());
}

#[test]
fn log_store() {
    let dir = tempfile::tempdir().unwrap();
    suite(&Log::open(dir.path()).unwrap());
}

/// Writes one of everything, closes, reopens, and checks that all of it came back.
fn reopened(dir: &std::path::Path) -> Log {
    {
        let store = Log::open(dir).unwrap();
        store.put_message(Some(rel(1)), id(1), b"one").unwrap();
        store
            .write_all(&[
                Write::Message { relationship: Some(rel(1)), id: id(2), bytes: b"two".as_slice().into() },
                Write::Outbox(entry(2, 1)),
                Write::Outbox(entry(3, 0)),
                Write::Delivered(id(3)),
            ])
            .unwrap();
        store.peer_put("p", &["/ip4/127.0.0.1/tcp/9".into()]).unwrap();
        store.flush().unwrap();
    }
    Log::open(dir).unwrap()
}

#[test]
fn log_store_keeps_everything_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = reopened(dir.path());
    assert_eq!(store.relationship(&rel(1)).unwrap(), vec![b"one".to_vec(), b"two".to_vec()]);
    assert_eq!(store.outbox().unwrap(), vec![entry(2, 1)]);
    assert_eq!(store.peers().unwrap(), vec![("p".to_string(), vec!["/ip4/127.0.0.1/tcp/9".to_string()])]);
    assert_eq!(store.peer("p").unwrap(), Some(vec!["/ip4/127.0.0.1/tcp/9".to_string()]));
    assert!(!store.put_message(Some(rel(1)), id(1), b"again").unwrap(), "still known after reopen");
    store.put_message(Some(rel(1)), id(0), b"three").unwrap();
    assert_eq!(store.relationship(&rel(1)).unwrap().last().map(Vec::as_slice), Some(b"three".as_slice()));
}

/// Where a log's frames end: its file runs on in zeros (the last frame of the logs these tests
/// write ends in a byte that is not zero).
fn frames_end(bytes: &[u8]) -> usize {
    bytes.iter().rposition(|&b| b != 0).unwrap() + 1
}

#[test]
fn log_store_cuts_off_a_torn_last_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = reopened(dir.path()).path().to_path_buf();
    let file = std::fs::read(&path).unwrap();
    let whole = file[..frames_end(&file)].to_vec();
    assert!(file.len() > 1024 * 1024, "a megabyte of zeros ahead of the frames");
    // A last group commit cut short at every length: the frame's head alone, part of its body,
    // all but its last byte; in a file with zeros ahead and in one without (as an older node
    // left it).
    let frame = {
        let scratch = tempfile::tempdir().unwrap();
        let store = Log::open(scratch.path()).unwrap();
        let before = frames_end(&std::fs::read(store.path()).unwrap());
        store.put_message(Some(rel(1)), id(7), &[7; 100]).unwrap();
        let after = std::fs::read(store.path()).unwrap();
        after[before..frames_end(&after)].to_vec()
    };
    for ahead in [0, 4096] {
        for cut in [1, 4, 8, 9, 60, frame.len() - 1] {
            let mut torn = whole.clone();
            torn.extend_from_slice(&frame[..cut]);
            torn.resize(torn.len() + ahead, 0);
            std::fs::write(&path, &torn).unwrap();
            let store = Log::open(dir.path()).unwrap();
            assert_eq!(store.relationship(&rel(1)).unwrap().len(), 2, "cut at {cut}");
            let after = std::fs::read(&path).unwrap();
            assert_eq!(after[..whole.len()], whole[..], "cut at {cut}");
            assert!(after[whole.len()..].iter().all(|&b| b == 0), "the torn bytes are zeroed (cut at {cut})");
            // And the log goes on from there.
            assert!(store.put_message(Some(rel(1)), id(7), &[7; 100]).unwrap());
            drop(store);
            assert_eq!(Log::open(dir.path()).unwrap().relationship(&rel(1)).unwrap().len(), 3);
        }
    }
}

#[test]
fn log_store_extends_its_file_ahead_of_its_frames() {
    let dir = tempfile::tempdir().unwrap();
    let store = Log::open(dir.path()).unwrap();
    let start = std::fs::metadata(store.path()).unwrap().len();
    // Three megabytes of messages: the file grows in runs of zeros, never shorter than its
    // frames, and everything reads back after a reopen.
    let big = vec![9u8; 60_000];
    for n in 0..50u8 {
        store.put_message(Some(rel(2)), id(n), &big).unwrap();
        store.flush().unwrap();
        store.prepare().unwrap();
        let bytes = std::fs::read(store.path()).unwrap();
        assert!(bytes.len() > frames_end(&bytes), "zeros ahead after message {n}");
    }
    assert!(std::fs::metadata(store.path()).unwrap().len() > start);
    drop(store);
    let store = Log::open(dir.path()).unwrap();
    let messages = store.relationship(&rel(2)).unwrap();
    assert_eq!(messages.len(), 50);
    assert!(messages.iter().all(|m| *m == big));
}

#[test]
fn log_store_skips_damage_and_reports_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = reopened(dir.path()).path().to_path_buf();
    let whole = std::fs::read(&path).unwrap();
    // A flipped bit in the first frame, with whole frames after it: the frame is skipped and
    // reported, everything after it served, and the file left as it was.
    let mut damaged = whole.clone();
    damaged[16 + 8 + 40] ^= 1;
    std::fs::write(&path, &damaged).unwrap();
    let store = Log::open(dir.path()).unwrap();
    assert_eq!(store.damage().len(), 1);
    assert_eq!(store.damage()[0].offset, 16);
    assert_eq!(store.outbox().unwrap(), vec![entry(2, 1)], "the frames after it are read");
    drop(store);
    assert_eq!(std::fs::read(&path).unwrap(), damaged, "nothing cut or overwritten");
    // A length damaged to run past the end of the file: the frames after it are still whole,
    // so this is damage too, not a torn last write.
    let mut long = whole.clone();
    long[16 + 3] = 0x7f;
    std::fs::write(&path, &long).unwrap();
    assert_eq!(Log::open(dir.path()).unwrap().damage().len(), 1);
    assert_eq!(std::fs::read(&path).unwrap(), long, "nothing cut");
    // Another format version, or another file altogether.
    let mut version = whole.clone();
    version[12] = 2;
    std::fs::write(&path, &version).unwrap();
    assert!(Log::open(dir.path()).unwrap_err().to_string().contains("version 2"));
    std::fs::write(&path, b"not a log at all").unwrap();
    assert!(Log::open(dir.path()).unwrap_err().to_string().contains("bad magic"));
}

#[test]
fn disk_store() {
    let dir = tempfile::tempdir().unwrap();
    suite(&Disk::open(&dir.path().join("db")).unwrap());
}

#[test]
fn disk_store_keeps_everything_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    {
        let store = Disk::open(&path).unwrap();
        store.put_message(Some(rel(1)), id(1), b"one").unwrap();
        store.put_message(Some(rel(1)), id(2), b"two").unwrap();
        store.outbox_put(&entry(2, 1)).unwrap();
        store.flush().unwrap();
    }
    let store = Disk::open(&path).unwrap();
    assert_eq!(store.relationship(&rel(1)).unwrap(), vec![b"one".to_vec(), b"two".to_vec()]);
    assert_eq!(store.outbox().unwrap(), vec![entry(2, 1)]);
    // The arrival counter continues after a reopen, so new messages sort after old ones.
    store.put_message(Some(rel(1)), id(0), b"three").unwrap();
    assert_eq!(store.relationship(&rel(1)).unwrap().last().map(Vec::as_slice), Some(b"three".as_slice()));
}

/// The frames of a log file: (start, length with head), up to the zeros.
fn frames_of(data: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut at = 16;
    while at + 8 <= data.len() {
        let len = u32::from_le_bytes(data[at..at + 4].try_into().unwrap()) as usize;
        if len == 0 {
            break;
        }
        out.push((at, 8 + len));
        at += 8 + len;
    }
    out
}

/// Issue #22, point 7: one corrupt frame used to make the whole store unreadable. A byte
/// flipped at a random offset of a log of 40 relationships (200 seeds): the log opens, every
/// message outside the damaged frame is served byte for byte, the damage is reported at that
/// frame (which names its relationship when the flip spares the record's head), and
/// `repair` yields a log that opens clean with exactly those messages, keeping the damaged
/// file beside it.
#[test]
fn log_store_survives_a_flipped_byte_anywhere_and_repair_salvages_the_rest() {
    use rand::{Rng as _, SeedableRng as _};
    let built = tempfile::tempdir().unwrap();
    let mut messages = Vec::new();
    {
        let store = Log::open(built.path()).unwrap();
        for r in 0..40u8 {
            for m in 0..2u8 {
                let n = r * 2 + m;
                let bytes = vec![n; 50 + usize::from(n)];
                store.put_message(Some(rel(r)), id(n), &bytes).unwrap();
                messages.push((rel(r), id(n), bytes));
            }
        }
        store.flush().unwrap();
    }
    let original = std::fs::read(built.path().join("records")).unwrap();
    let frames = frames_of(&original);
    assert_eq!(frames.len(), 80, "one frame per message");
    let end = frames.last().map(|(a, n)| a + n).unwrap();
    for seed in 0..200u64 {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let at = rng.gen_range(16..end);
        let bit = 1u8 << rng.gen_range(0..8);
        let hit = frames.iter().position(|(a, n)| (*a..a + n).contains(&at)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        // The frames and a little of the zeros ahead of them (the rest only costs time).
        let mut data = original[..end + 4096].to_vec();
        data[at] ^= bit;
        std::fs::write(dir.path().join("records"), &data).unwrap();
        let store = Log::open(dir.path()).unwrap_or_else(|e| panic!("seed {seed}, offset {at}: {e}"));
        for (i, (r, m, bytes)) in messages.iter().enumerate() {
            if i != hit {
                assert_eq!(store.message(m).unwrap().as_ref(), Some(bytes), "seed {seed}: message {i} lost");
                assert!(store.relationship(r).unwrap().contains(bytes), "seed {seed}: {i} not indexed");
            }
        }
        if hit + 1 < frames.len() {
            let damage = store.damage();
            assert_eq!(damage.len(), 1, "seed {seed}");
            assert_eq!(damage[0].offset, frames[hit].0 as u64, "seed {seed}");
            let record_head = frames[hit].0 + 8 + 2 + 16;
            if at >= record_head {
                assert_eq!(damage[0].relationships, vec![messages[hit].0], "seed {seed}");
            }
        } else {
            assert!(store.damage().is_empty(), "a damaged last frame is a torn write, cut");
        }
        drop(store);
        let repaired = repair(dir.path()).unwrap();
        let kept = std::fs::read_dir(dir.path()).unwrap().filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.starts_with("records.damaged-").then_some(name)
        });
        assert_eq!(kept.count(), usize::from(repaired.kept.is_some()), "seed {seed}");
        let store = Log::open(dir.path()).unwrap();
        assert!(store.damage().is_empty(), "seed {seed}: repaired");
        for (i, (_, m, bytes)) in messages.iter().enumerate() {
            let want = (i != hit).then_some(bytes);
            assert_eq!(store.message(m).unwrap().as_ref(), want, "seed {seed}: message {i} after repair");
        }
        let again = repair(dir.path()).unwrap();
        assert!(again.kept.is_none() && again.dropped.is_empty(), "a whole log is left as it is");
    }
}
