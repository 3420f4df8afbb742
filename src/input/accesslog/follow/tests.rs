//! The follower on real files in a temp dir: start at the end, partial lines, rename rotation
//! with a writer that keeps its old handle for a while, copytruncate, a file appearing later.

use super::*;
use std::fs::OpenOptions;
use std::io::Write;

fn poll_lines(f: &mut Follower) -> (Vec<Vec<u8>>, PollStats) {
    let mut got = Vec::new();
    let st = f.poll(&mut |l| got.push(l.to_vec()));
    (got, st)
}

fn appender(p: &Path) -> File {
    OpenOptions::new().create(true).append(true).open(p).unwrap()
}

fn lines(prefix: &str, r: std::ops::Range<u32>) -> Vec<Vec<u8>> {
    r.map(|i| format!("{prefix}{i}").into_bytes()).collect()
}

fn write_lines(f: &mut File, prefix: &str, r: std::ops::Range<u32>) {
    for l in lines(prefix, r) {
        f.write_all(&l).unwrap();
        f.write_all(b"\n").unwrap();
    }
}

#[test]
fn starts_at_the_end_and_never_reads_history() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("access.log");
    let mut w = appender(&p);
    write_lines(&mut w, "old", 0..1000);
    let mut f = Follower::new(&p);
    assert!(poll_lines(&mut f).0.is_empty());
    write_lines(&mut w, "new", 0..3);
    assert_eq!(poll_lines(&mut f).0, lines("new", 0..3));
    assert!(poll_lines(&mut f).0.is_empty());
}

#[test]
fn partial_last_line_waits_for_its_newline_and_bytes_pass_as_they_are() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("access.log");
    let mut w = appender(&p);
    let mut f = Follower::new(&p);
    w.write_all(b"abc\xff").unwrap();
    assert!(poll_lines(&mut f).0.is_empty());
    w.write_all(b"def\nxy").unwrap();
    assert_eq!(poll_lines(&mut f).0, vec![b"abc\xffdef".to_vec()]);
    w.write_all(b"z\n").unwrap();
    assert_eq!(poll_lines(&mut f).0, vec![b"xyz".to_vec()]);
}

#[test]
fn overlong_lines_are_dropped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("access.log");
    let mut w = appender(&p);
    let mut f = Follower::new(&p);
    w.write_all(&vec![b'a'; MAX_LINE + 10]).unwrap();
    let (got, st) = poll_lines(&mut f);
    assert!(got.is_empty());
    assert_eq!(st.overlong, 1);
    w.write_all(b"aaaa\nok\n").unwrap();
    assert_eq!(poll_lines(&mut f).0, vec![b"ok".to_vec()]);
}

#[test]
fn rename_rotation_finishes_the_old_file_then_follows_the_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("access.log");
    let mut w = appender(&p);
    let mut f = Follower::new(&p);
    write_lines(&mut w, "a", 0..5);
    let mut all = poll_lines(&mut f).0;
    // logrotate renames; the server keeps writing to its old handle until it reopens.
    std::fs::rename(&p, dir.path().join("access.log.1")).unwrap();
    write_lines(&mut w, "a", 5..10);
    all.extend(poll_lines(&mut f).0);
    let mut w2 = appender(&p);
    write_lines(&mut w, "a", 10..12); // a late write to the old file
    write_lines(&mut w2, "b", 0..5);
    let (got, st) = poll_lines(&mut f);
    assert!(st.rotated);
    all.extend(got);
    // Still draining for DRAIN_POLLS polls after the switch.
    for i in 0..DRAIN_POLLS {
        write_lines(&mut w, "a", 12 + i..13 + i);
        all.extend(poll_lines(&mut f).0);
    }
    write_lines(&mut w2, "b", 5..8);
    all.extend(poll_lines(&mut f).0);
    let (a, b): (Vec<_>, Vec<_>) = all.into_iter().partition(|l| l[0] == b'a');
    assert_eq!(a, lines("a", 0..12 + DRAIN_POLLS));
    assert_eq!(b, lines("b", 0..8));
}

#[test]
fn copytruncate_reads_from_the_start_again_without_rereading() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("access.log");
    let mut w = appender(&p);
    let mut f = Follower::new(&p);
    write_lines(&mut w, "a", 0..100);
    assert_eq!(poll_lines(&mut f).0.len(), 100);
    // Copy, truncate; the writer (O_APPEND) goes on at offset 0.
    std::fs::copy(&p, dir.path().join("access.log.1")).unwrap();
    OpenOptions::new().write(true).open(&p).unwrap().set_len(0).unwrap();
    write_lines(&mut w, "b", 0..3);
    let (got, st) = poll_lines(&mut f);
    assert!(st.truncated);
    assert_eq!(got, lines("b", 0..3));
    // Truncated again and refilled past the old offset before the next poll.
    OpenOptions::new().write(true).open(&p).unwrap().set_len(0).unwrap();
    write_lines(&mut w, "cc", 0..10);
    let (got, st) = poll_lines(&mut f);
    assert!(st.truncated, "a refill past the offset is still seen as a truncation");
    assert_eq!(got, lines("cc", 0..10));
}

#[test]
fn a_file_that_appears_later_is_read_from_its_start() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("later.log");
    let mut f = Follower::new(&p);
    assert!(!f.is_open());
    assert!(poll_lines(&mut f).0.is_empty());
    let mut w = appender(&p);
    write_lines(&mut w, "x", 0..4);
    assert_eq!(poll_lines(&mut f).0, lines("x", 0..4));
    assert!(f.is_open());
}
