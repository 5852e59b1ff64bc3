//! Objects written as their bytes are produced (`ObjectStore::create`): parts spooled to
//! scratch and sent while the next is written, the object appearing only when completed.

use super::*;

/// `bytes` written through a new writer of `key` in `pieces` (pausing after each piece when
/// `pause`), flushed and completed; the spool is empty at the end.
fn write_in_pieces(
    store: &S3Store,
    key: &str,
    pieces: &[&[u8]],
    pause: bool,
) -> biojob_storage::TransferReport {
    let dir = scratch();
    let mut writer = store.create(&uri(key), &dir.root).unwrap();
    for piece in pieces {
        writer.write(piece).unwrap();
        if pause {
            writer.pause().unwrap();
        }
    }
    writer.flush().unwrap();
    assert_eq!(
        direct().head(&uri(key)).unwrap(),
        None,
        "visible before complete"
    );
    let report = writer.complete().unwrap();
    assert_eq!(
        listing(&dir.root),
        Vec::<String>::new(),
        "the spool is empty"
    );
    report
}

/// The CRC32C composite checksum S3 holds for parts of these lengths of `bytes`.
fn composite_of(bytes: &[u8], lengths: &[usize]) -> String {
    let mut digests = Vec::new();
    let mut offset = 0;
    for length in lengths {
        digests.extend(crc32c(&bytes[offset..offset + length]));
        offset += length;
    }
    assert_eq!(offset, bytes.len());
    format!("crc32c:{}-{}", b64(&crc32c(&digests)), lengths.len())
}

#[test]
fn an_object_written_in_pieces_round_trips_in_parts_of_the_part_size() {
    let (store, proxy) = proxied();
    let size = 2 * PART as usize + 1_000;
    let bytes = data(size as u64, 71);
    // Pieces that do not line up with the parts.
    let pieces: Vec<&[u8]> = bytes.chunks(3 * MIB as usize + 7).collect();
    let report = write_in_pieces(&store, "writer/whole", &pieces, false);
    assert_eq!(report.bytes, size as u64);
    assert_eq!(report.sha256, sha256(&bytes));
    let parts = [PART as usize, PART as usize, 1_000];
    assert_eq!(report.checksum, Some(composite_of(&bytes, &parts)));
    assert_eq!(requests_matching(&proxy, "POST", "uploads"), 1);
    assert_eq!(requests_matching(&proxy, "PUT", "partNumber="), 3);
    assert_eq!(requests_matching(&proxy, "DELETE", "uploadId="), 0);
    // A download verifies it against the composite checksum.
    let dir = scratch();
    let back = dir.root.join("back");
    let got = direct().get(&uri("writer/whole"), &back).unwrap();
    assert_eq!(std::fs::read(&back).unwrap(), bytes);
    assert_eq!(got.checksum, report.checksum);
}

#[test]
fn a_paused_writer_sends_what_it_holds_once_it_is_a_part_s3_accepts() {
    let mut settings = options(&s3_server().endpoint);
    settings.part_size = 8 * MIB;
    let store = store(settings);
    // 6 MiB, paused: sent as a part of its own (at least 5 MiB); 1 MiB, paused: kept; 9 MiB:
    // 7 more fill a part of 8 MiB, 2 stay (kept at the pause); 0.5 MiB: the last part.
    let lengths = [6 * MIB, MIB, 9 * MIB, MIB / 2].map(|l| l as usize);
    let bytes = data(lengths.iter().sum::<usize>() as u64, 72);
    let mut pieces = Vec::new();
    let mut offset = 0;
    for length in lengths {
        pieces.push(&bytes[offset..offset + length]);
        offset += length;
    }
    let report = write_in_pieces(&store, "writer/paused", &pieces, true);
    let parts = [6 * MIB, 8 * MIB, 5 * MIB / 2].map(|l| l as usize);
    assert_eq!(report.checksum, Some(composite_of(&bytes, &parts)));
    // Parts of several sizes: a download and a streamed read find each part's bytes (the
    // object says its parts vary) and verify the composite checksum.
    let dir = scratch();
    let back = dir.root.join("back");
    direct().get(&uri("writer/paused"), &back).unwrap();
    assert_eq!(std::fs::read(&back).unwrap(), bytes);
    let mut streamed = Vec::new();
    let mut reader = direct().open(&uri("writer/paused")).unwrap();
    std::io::Read::read_to_end(&mut reader, &mut streamed).unwrap();
    assert_eq!(streamed, bytes);
}

#[test]
fn an_empty_object_and_a_small_one_are_one_part() {
    let store = direct();
    let empty = write_in_pieces(&store, "writer/empty", &[], false);
    assert_eq!(empty.bytes, 0);
    assert_eq!(empty.sha256, sha256(b""));
    assert_eq!(
        direct().head(&uri("writer/empty")).unwrap().unwrap().size,
        0
    );
    let small = data(1_000, 73);
    let report = write_in_pieces(&store, "writer/small", &[&small], true);
    assert_eq!(report.checksum, Some(composite_of(&small, &[1_000])));
    assert_eq!(
        direct().head(&uri("writer/small")).unwrap().unwrap().size,
        1_000
    );
}

#[test]
fn a_writer_dropped_before_complete_is_aborted_and_leaves_nothing() {
    let (store, proxy) = proxied();
    let dir = scratch();
    let mut writer = store.create(&uri("writer/dropped"), &dir.root).unwrap();
    writer.write(&data(PART + 10, 74)).unwrap();
    writer.flush().unwrap();
    drop(writer);
    assert_eq!(requests_matching(&proxy, "DELETE", "uploadId="), 1);
    assert_eq!(direct().head(&uri("writer/dropped")).unwrap(), None);
    assert_eq!(listing(&dir.root), Vec::<String>::new());
}

#[test]
fn a_part_failing_past_the_retry_budget_fails_the_writer_and_aborts_the_upload() {
    let (store, proxy) = proxied();
    let dir = scratch();
    proxy.add(Rule::new("PUT", "partNumber=2&", Fault::SlowDown).times(100));
    let mut writer = store.create(&uri("writer/failing"), &dir.root).unwrap();
    let bytes = data(3 * PART, 75);
    // Part 2 is sent with the third part's first byte; its failure shows when the writer
    // waits for it, at the latest at the flush.
    let error = writer
        .write(&bytes)
        .and_then(|()| writer.flush())
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "uploading s3://biojob-test/writer/failing: part 2 (bytes 5242880+5242880): SlowDown (HTTP \
         503): Please reduce your request rate. (gave up after 4 attempts)"
    );
    assert_eq!(error.exit_class(), ExitClass::OutputStaging);
    // Failed, the writer takes nothing more.
    let again = writer.write(b"more").unwrap_err();
    assert_eq!(
        again.to_string(),
        "writing s3://biojob-test/writer/failing: the object was flushed, completed or failed \
         earlier"
    );
    drop(writer);
    assert_eq!(requests_matching(&proxy, "DELETE", "uploadId="), 1);
    assert_eq!(direct().head(&uri("writer/failing")).unwrap(), None);
    assert_eq!(listing(&dir.root), Vec::<String>::new());
}
