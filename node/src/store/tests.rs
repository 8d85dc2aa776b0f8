//! One suite, run against every store, so that the in-memory store used by tests behaves as
//! the disk stores do; then what only the log store does: reopening, cutting off a torn last
//! write, and refusing damage it cannot explain.

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
fn log_store_refuses_damage_it_cannot_explain() {
    let dir = tempfile::tempdir().unwrap();
    let path = reopened(dir.path()).path().to_path_buf();
    let whole = std::fs::read(&path).unwrap();
    // A flipped bit in the first frame, with whole frames after it: acknowledged records would
    // be lost, so the store does not open, and the file is left as it was.
    let mut damaged = whole.clone();
    damaged[16 + 8 + 40] ^= 1;
    std::fs::write(&path, &damaged).unwrap();
    let err = Log::open(dir.path()).unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("damaged frame at offset 16"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), damaged, "nothing cut");
    // A length damaged to run past the end of the file: the frames after it are still whole,
    // so this is damage too, not a torn last write.
    let mut long = whole.clone();
    long[16 + 3] = 0x7f;
    std::fs::write(&path, &long).unwrap();
    assert!(matches!(Log::open(dir.path()).unwrap_err(), Error::Corrupt { .. }));
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
