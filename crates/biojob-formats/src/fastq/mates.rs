//! Comparing mate names between the two files of a pair, in batches sent over channels.
//!
//! Each file's reader thread packs the names of [`BATCH_RECORDS`] records into one
//! [`NameBatch`] (two reused vectors, no per-record allocation) and sends it to the comparator,
//! which walks both streams in step and hands spent batches back for reuse.
//!
//! Channels are unbounded while streaming into pipes: a bounded channel would make the R1 writer
//! wait for the comparator, the comparator wait for R2, and the R2 writer wait for a consumer that
//! is itself waiting for R1, a deadlock. Memory then grows only with how far the consumer lets one
//! file run ahead of the other (bwa alternates, so a few batches). Without sinks nothing else can
//! block a reader, so the channels are bounded to keep memory flat.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};

/// Records per batch of names.
pub(crate) const BATCH_RECORDS: usize = 8192;

/// Batches in flight per file when the channel is bounded.
const BOUNDED_BATCHES: usize = 4;

/// The mate names of up to [`BATCH_RECORDS`] consecutive records.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct NameBatch {
    names: Vec<u8>,
    ends: Vec<usize>,
}

impl NameBatch {
    fn len(&self) -> usize {
        self.ends.len()
    }

    fn name(&self, index: usize) -> &[u8] {
        let start = if index == 0 { 0 } else { self.ends[index - 1] };
        &self.names[start..self.ends[index]]
    }

    fn push(&mut self, name: &[u8]) {
        self.names.extend_from_slice(name);
        self.ends.push(self.names.len());
    }

    fn clear(&mut self) {
        self.names.clear();
        self.ends.clear();
    }
}

#[derive(Debug)]
enum BatchSender {
    Bounded(SyncSender<NameBatch>),
    Unbounded(Sender<NameBatch>),
}

/// The reader thread's end: collects names and sends full batches.
#[derive(Debug)]
pub(crate) struct MateSender {
    tx: BatchSender,
    recycled: Receiver<NameBatch>,
    current: NameBatch,
}

impl MateSender {
    /// Adds one record's mate name; returns `false` when the comparator has stopped (it found a
    /// mismatch), so the reader should stop too.
    pub(crate) fn push(&mut self, name: &[u8]) -> bool {
        self.current.push(name);
        if self.current.len() < BATCH_RECORDS {
            return true;
        }
        let mut next = self.recycled.try_recv().unwrap_or_default();
        next.clear();
        let full = std::mem::replace(&mut self.current, next);
        self.send(full)
    }

    /// Sends the last, partial batch.
    pub(crate) fn finish(mut self) {
        if self.current.len() > 0 {
            let last = std::mem::take(&mut self.current);
            // A comparator that has stopped needs no more names.
            let _ = self.send(last);
        }
    }

    fn send(&self, batch: NameBatch) -> bool {
        match &self.tx {
            BatchSender::Bounded(tx) => tx.send(batch).is_ok(),
            BatchSender::Unbounded(tx) => tx.send(batch).is_ok(),
        }
    }
}

/// The comparator's end for one file: yields names in order.
#[derive(Debug)]
pub(crate) struct MateReceiver {
    rx: Receiver<NameBatch>,
    recycle: Sender<NameBatch>,
    current: NameBatch,
    position: usize,
}

impl MateReceiver {
    /// Makes sure a name is available; `false` when the file's reader has finished.
    fn fill(&mut self) -> bool {
        if self.position < self.current.len() {
            return true;
        }
        let Ok(batch) = self.rx.recv() else {
            return false;
        };
        let spent = std::mem::replace(&mut self.current, batch);
        // The reader may have finished; then the batch is simply dropped.
        let _ = self.recycle.send(spent);
        self.position = 0;
        self.position < self.current.len()
    }

    fn at_batch_start(&self) -> bool {
        self.position == 0
    }
}

/// A pair of ends for one file. `bounded` caps the batches in flight (see the module docs for
/// when that is safe).
pub(crate) fn mate_channel(bounded: bool) -> (MateSender, MateReceiver) {
    let (tx, rx) = if bounded {
        let (tx, rx) = mpsc::sync_channel(BOUNDED_BATCHES);
        (BatchSender::Bounded(tx), rx)
    } else {
        let (tx, rx) = mpsc::channel();
        (BatchSender::Unbounded(tx), rx)
    };
    let (recycle, recycled) = mpsc::channel();
    (
        MateSender {
            tx,
            recycled,
            current: NameBatch::default(),
        },
        MateReceiver {
            rx,
            recycle,
            current: NameBatch::default(),
            position: 0,
        },
    )
}

/// What the comparator found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum MateOutcome {
    /// Every name agrees and both streams ended at the same record.
    Agree,
    /// The names of record `record` (1-based) differ.
    Differ {
        record: u64,
        name_1: Vec<u8>,
        name_2: Vec<u8>,
    },
    /// One stream ended after `shorter_records` names while the other has more. Whether that is
    /// a count mismatch or the consequence of an error depends on how the shorter reader ended.
    Longer {
        longer_is_second: bool,
        shorter_records: u64,
    },
}

/// Compares the two name streams until both end or they disagree. On disagreement sets `cancel`
/// (so that the readers stop) and returns at once, dropping both receivers.
pub(crate) fn compare_mates(
    mut first: MateReceiver,
    mut second: MateReceiver,
    cancel: &AtomicBool,
) -> MateOutcome {
    let mut compared: u64 = 0;
    let outcome = loop {
        let has_first = first.fill();
        let has_second = second.fill();
        match (has_first, has_second) {
            (false, false) => break MateOutcome::Agree,
            (true, false) | (false, true) => {
                break MateOutcome::Longer {
                    longer_is_second: has_second,
                    shorter_records: compared,
                };
            }
            (true, true) => {}
        }
        // Fast path: batches are cut at the same record numbers in both files, so whole
        // batches of identical names compare with two memcmps.
        if first.at_batch_start() && second.at_batch_start() && first.current == second.current {
            let n = first.current.len();
            first.position = n;
            second.position = n;
            compared += n as u64;
            continue;
        }
        let name_1 = first.current.name(first.position);
        let name_2 = second.current.name(second.position);
        if name_1 != name_2 {
            break MateOutcome::Differ {
                record: compared + 1,
                name_1: name_1.to_vec(),
                name_2: name_2.to_vec(),
            };
        }
        first.position += 1;
        second.position += 1;
        compared += 1;
    };
    if outcome != MateOutcome::Agree {
        cancel.store(true, Ordering::Relaxed);
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send_all(mut tx: MateSender, names: &[&str]) {
        for name in names {
            assert!(tx.push(name.as_bytes()));
        }
        tx.finish();
    }

    fn run(names_1: &[&str], names_2: &[&str]) -> (MateOutcome, bool) {
        let (tx1, rx1) = mate_channel(false);
        let (tx2, rx2) = mate_channel(false);
        send_all(tx1, names_1);
        send_all(tx2, names_2);
        let cancel = AtomicBool::new(false);
        let outcome = compare_mates(rx1, rx2, &cancel);
        (outcome, cancel.load(Ordering::Relaxed))
    }

    #[test]
    fn equal_streams_agree() {
        assert_eq!(run(&["a", "b"], &["a", "b"]), (MateOutcome::Agree, false));
        assert_eq!(run(&[], &[]), (MateOutcome::Agree, false));
    }

    #[test]
    fn difference_is_located() {
        let (outcome, cancelled) = run(&["a", "b", "c"], &["a", "b", "x"]);
        assert_eq!(
            outcome,
            MateOutcome::Differ {
                record: 3,
                name_1: b"c".to_vec(),
                name_2: b"x".to_vec()
            }
        );
        assert!(cancelled);
    }

    #[test]
    fn names_split_differently_are_not_equal() {
        // "ab"+"c" and "a"+"bc" share the concatenated bytes but not the boundaries.
        let (outcome, _) = run(&["ab", "c"], &["a", "bc"]);
        assert!(matches!(outcome, MateOutcome::Differ { record: 1, .. }));
    }

    #[test]
    fn longer_stream_is_reported() {
        assert_eq!(
            run(&["a", "b"], &["a", "b", "c"]).0,
            MateOutcome::Longer {
                longer_is_second: true,
                shorter_records: 2
            }
        );
        assert_eq!(
            run(&["a"], &[]).0,
            MateOutcome::Longer {
                longer_is_second: false,
                shorter_records: 0
            }
        );
    }

    #[test]
    fn many_batches_with_a_late_difference() {
        let total = BATCH_RECORDS * 3 + 17;
        let names_1: Vec<String> = (0..total).map(|i| format!("read{i}")).collect();
        let mut names_2 = names_1.clone();
        names_2[BATCH_RECORDS * 2 + 5] = "other".to_owned();
        let refs_1: Vec<&str> = names_1.iter().map(String::as_str).collect();
        let refs_2: Vec<&str> = names_2.iter().map(String::as_str).collect();
        assert_eq!(run(&refs_1, &refs_1).0, MateOutcome::Agree);
        assert!(matches!(
            run(&refs_1, &refs_2).0,
            MateOutcome::Differ { record, .. } if record == (BATCH_RECORDS * 2 + 6) as u64
        ));
    }
}
