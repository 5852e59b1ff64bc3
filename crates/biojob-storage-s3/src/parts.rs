//! An object cut into parts (byte ranges), and the parts of a transfer run concurrently.

use std::future::Future;
use std::sync::Arc;

use biojob_storage::{Direction, StorageError};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::retry::join_error;

/// One part of a transfer: its 0-based index and byte range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Part {
    pub(crate) index: usize,
    pub(crate) offset: u64,
    pub(crate) length: u64,
}

impl Part {
    /// The 1-based part number of a multipart upload.
    pub(crate) fn number(self) -> i32 {
        i32::try_from(self.index + 1).unwrap_or(i32::MAX)
    }

    /// `part N (bytes OFFSET+LENGTH)`, as errors name it.
    pub(crate) fn describe(self) -> String {
        format!(
            "part {} (bytes {}+{})",
            self.index + 1,
            self.offset,
            self.length
        )
    }
}

/// Consecutive `(offset, length)` ranges of at most `part` bytes covering `size` bytes.
pub(crate) fn fixed_ranges(size: u64, part: u64) -> Vec<(u64, u64)> {
    let part = part.max(1);
    (0..size.div_ceil(part))
        .map(|i| {
            let offset = i * part;
            (offset, part.min(size - offset))
        })
        .collect()
}

/// Runs `run(part)` for every range of `ranges` as a task, at most `concurrency` at once;
/// returns the results in range order, or the first error (the remaining tasks are dropped,
/// which aborts them).
pub(crate) async fn run_parts<T, F, Fut>(
    concurrency: usize,
    ranges: &[(u64, u64)],
    uri: &str,
    direction: Direction,
    mut run: F,
) -> Result<Vec<T>, StorageError>
where
    T: Send + 'static,
    F: FnMut(Part) -> Fut,
    Fut: Future<Output = Result<T, StorageError>> + Send + 'static,
{
    let semaphore = Arc::new(Semaphore::new(concurrency));
    let mut tasks = JoinSet::new();
    let mut results: Vec<Option<T>> = (0..ranges.len()).map(|_| None).collect();
    let record = |results: &mut Vec<Option<T>>, joined| match joined {
        Ok(Ok((index, value))) => {
            results[index] = Some(value);
            Ok(())
        }
        Ok(Err(error)) => Err(error),
        Err(error) => Err(join_error(error, uri, direction)),
    };
    for (index, &(offset, length)) in ranges.iter().enumerate() {
        let permit = Arc::clone(&semaphore)
            .acquire_owned()
            .await
            .map_err(|error| StorageError::Remote {
                op: "transferring",
                uri: uri.to_owned(),
                direction,
                message: error.to_string(),
            })?;
        while let Some(joined) = tasks.try_join_next() {
            record(&mut results, joined)?;
        }
        let future = run(Part {
            index,
            offset,
            length,
        });
        tasks.spawn(async move {
            let _permit = permit;
            Ok::<_, StorageError>((index, future.await?))
        });
    }
    while let Some(joined) = tasks.join_next().await {
        record(&mut results, joined)?;
    }
    Ok(results.into_iter().flatten().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_cover_the_object_once() {
        assert_eq!(fixed_ranges(0, 5), Vec::<(u64, u64)>::new());
        assert_eq!(fixed_ranges(1, 5), vec![(0, 1)]);
        assert_eq!(fixed_ranges(5, 5), vec![(0, 5)]);
        assert_eq!(fixed_ranges(6, 5), vec![(0, 5), (5, 1)]);
        assert_eq!(fixed_ranges(14, 5), vec![(0, 5), (5, 5), (10, 4)]);
    }

    #[test]
    fn parts_are_numbered_from_one() {
        let part = Part {
            index: 1,
            offset: 5_242_880,
            length: 5_242_880,
        };
        assert_eq!(part.number(), 2);
        assert_eq!(part.describe(), "part 2 (bytes 5242880+5242880)");
    }
}
