//! Capture-file reader/writer tests: pcap µs/ns in both byte orders, pcapng, truncation.

use super::*;

fn pcap_bytes(magic: u32, be: bool, linktype: u32, recs: &[(u32, u32, &[u8])]) -> Vec<u8> {
    let w32 = |v: u32| if be { v.to_be_bytes() } else { v.to_le_bytes() };
    let w16 = |v: u16| if be { v.to_be_bytes() } else { v.to_le_bytes() };
    let mut b = w32(magic).to_vec();
    b.extend_from_slice(&w16(2));
    b.extend_from_slice(&w16(4));
    b.extend_from_slice(&[0; 8]);
    b.extend_from_slice(&w32(65535));
    b.extend_from_slice(&w32(linktype));
    for (s, frac, data) in recs {
        for v in [*s, *frac, data.len() as u32, data.len() as u32] {
            b.extend_from_slice(&w32(v));
        }
        b.extend_from_slice(data);
    }
    b
}

#[test]
fn pcap_micro_and_nano_in_both_byte_orders() {
    for (magic, nanos) in [(0xa1b2_c3d4u32, false), (0xa1b2_3c4d, true)] {
        for be in [false, true] {
            let b = pcap_bytes(magic, be, 1, &[(10, 5, b"abc"), (11, 0, b"de")]);
            let mut r = CaptureReader::new(&b[..]).unwrap();
            assert_eq!(r.linktype(), Some(1));
            let f = r.next_frame().unwrap().unwrap();
            let frac_ns = if nanos { 5 } else { 5000 };
            assert_eq!((f.ts_ns, f.data, f.orig_len), (10_000_000_000 + frac_ns, &b"abc"[..], 3), "{magic:x} be={be}");
            assert_eq!(r.next_frame().unwrap().unwrap().data, b"de");
            assert!(r.next_frame().unwrap().is_none());
        }
    }
}

fn block(t: u32, body: &[u8]) -> Vec<u8> {
    let len = 12 + body.len().div_ceil(4) * 4;
    let mut b = t.to_le_bytes().to_vec();
    b.extend_from_slice(&(len as u32).to_le_bytes());
    b.extend_from_slice(body);
    b.resize(len - 4, 0);
    b.extend_from_slice(&(len as u32).to_le_bytes());
    b
}

fn pcapng(tsresol: Option<u8>, packets: &[&[u8]]) -> Vec<u8> {
    let mut shb = 0x1a2b_3c4du32.to_le_bytes().to_vec();
    shb.extend_from_slice(&[1, 0, 0, 0]);
    shb.extend_from_slice(&u64::MAX.to_le_bytes());
    let mut b = block(0x0a0d_0d0a, &shb);
    let mut idb = vec![1, 0, 0, 0, 0, 0, 0, 0];
    if let Some(r) = tsresol {
        idb.extend_from_slice(&[9, 0, 1, 0, r, 0, 0, 0]);
    }
    idb.extend_from_slice(&[0, 0, 0, 0]);
    b.extend(block(1, &idb));
    b.extend(block(5, &[0u8; 8])); // an interface statistics block: skipped
    for p in packets {
        let mut epb = 0u32.to_le_bytes().to_vec();
        let ts: u64 = 1_500_000_123;
        epb.extend_from_slice(&((ts >> 32) as u32).to_le_bytes());
        epb.extend_from_slice(&(ts as u32).to_le_bytes());
        epb.extend_from_slice(&(p.len() as u32).to_le_bytes());
        epb.extend_from_slice(&(p.len() as u32 + 10).to_le_bytes());
        epb.extend_from_slice(p);
        b.extend(block(6, &epb));
    }
    b
}

#[test]
fn pcapng_packets_with_default_and_nanosecond_resolution() {
    let b = pcapng(None, &[b"hello", b"x"]);
    let mut r = CaptureReader::new(&b[..]).unwrap();
    let f = r.next_frame().unwrap().unwrap();
    assert_eq!((f.data, f.orig_len, f.linktype, f.ts_ns), (&b"hello"[..], 15, 1, 1_500_000_123_000));
    assert_eq!(r.next_frame().unwrap().unwrap().data, b"x");
    assert!(r.next_frame().unwrap().is_none());
    let b = pcapng(Some(9), &[b"n"]);
    assert_eq!(CaptureReader::new(&b[..]).unwrap().next_frame().unwrap().unwrap().ts_ns, 1_500_000_123);
}

#[test]
fn truncation_and_garbage_are_clear_errors() {
    let full = pcap_bytes(0xa1b2_c3d4, false, 1, &[(1, 0, &[7u8; 40])]);
    let cut = &full[..full.len() - 5];
    let mut r = CaptureReader::new(cut).unwrap();
    let e = r.next_frame().unwrap_err();
    assert!(matches!(e, FileError::Truncated { .. }), "{e}");
    assert!(e.to_string().contains("truncated at byte"));
    assert!(matches!(CaptureReader::new(&b"GET / HTTP/1.1\r\n\r\n"[..]), Err(FileError::NotCapture)));
    assert!(matches!(CaptureReader::new(&b""[..]), Err(FileError::NotCapture)));
    assert!(matches!(CaptureReader::new(&full[..10]), Err(FileError::Truncated { .. })));
    let ng = pcapng(None, &[b"abc"]);
    let mut r = CaptureReader::new(&ng[..ng.len() - 3]).unwrap();
    assert!(r.next_frame().is_err());
}

#[test]
fn writer_output_reads_back() {
    let mut w = PcapWriter::new(Vec::new(), 1, 4).unwrap();
    w.write(3_000_001_000, 100, b"abcdefgh").unwrap();
    let bytes = w.into_inner();
    let mut r = CaptureReader::new(&bytes[..]).unwrap();
    let f = r.next_frame().unwrap().unwrap();
    assert_eq!((f.ts_ns, f.orig_len, f.data), (3_000_001_000, 100, &b"abcd"[..]));
}
