//! PCAP upload after a resolve (§6.2): one multipart request up to 2 MiB, raw 2 MiB chunks with
//! `X-Chunk-Index`/`X-Chunk-Total`/`X-Upload-Id` above, resuming from the last acknowledged chunk
//! (recorded in the spool item) after a failure or a restart. Called by the sender only.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use log::info;

use super::attempt::Attempt;
use crate::report::api::client::{self as api, ApiClient, Reply, PCAP_CHUNK};
use crate::report::api::spool::{Item, Spool};

/// How long an upload waits for its file to appear after the resolve.
pub(super) const PCAP_WAIT_S: u64 = 300;

fn age_s(item: &Item) -> u64 {
    let queued = item.body.get("queued_at").and_then(|v| v.as_u64()).unwrap_or(0);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    now.saturating_sub(queued)
}

/// Upload the item's file from its resume point; returns the last reply (or the failure).
pub(super) fn upload(client: &ApiClient, spool: &Spool, item: &Item, uuid: &str) -> Attempt {
    let Some(path) = item.body.get("path").and_then(|p| p.as_str()).map(Path::new) else {
        return Attempt::Local("PCAP item without a path");
    };
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        // The capture side finishes the file (fsync, merge, rename) after the resolve event;
        // give it time before calling the file gone.
        Err(_) if age_s(item) < PCAP_WAIT_S => {
            return Attempt::NotReady(format!("{} is not written yet", path.display()))
        }
        Err(_) => return Attempt::Local("the PCAP file is gone"),
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let total = api::pcap_chunks(len);
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "capture.pcap".into());
    let mut item = item.clone();
    let mut last: Option<Reply> = None;
    while item.done_chunks < total {
        let index = item.done_chunks;
        let mut buf = Vec::with_capacity(PCAP_CHUNK.min(len as usize));
        let read = file
            .seek(SeekFrom::Start(u64::from(index) * PCAP_CHUNK as u64))
            .and_then(|_| (&mut file).take(PCAP_CHUNK as u64).read_to_end(&mut buf));
        if read.is_err() {
            return Attempt::Local("the PCAP file cannot be read");
        }
        let req = client.pcap_request(uuid, &item.key, &name, &buf, index, total);
        match api::send(&req, client.timeout_s) {
            Ok(r) if (200..300).contains(&r.status) => {
                item.done_chunks += 1;
                if item.done_chunks < total {
                    // Resume point survives a crash: the next run starts at the next chunk.
                    let _ = spool.update(&item);
                }
                last = Some(r);
            }
            other => return Attempt::Reply(other),
        }
    }
    info!("PCAP {} uploaded ({len} bytes, {total} request(s))", path.display());
    Attempt::Reply(Ok(last.unwrap_or(Reply { status: 200, body: vec![], retry_after: None })))
}
