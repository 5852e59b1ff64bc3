//! Scatter plans: how calling is split into shards.

use std::collections::HashSet;

use serde::Serialize;

use crate::Contig;

/// One unit of scattered work: a whole contig, called on its own.
///
/// `index` is the shard's position in reference (`.fai`) order among the shards of its plan, so
/// gathering shards by index gives reference order whatever order they finished in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Shard {
    /// Position in the plan, 0-based, in reference order.
    pub index: usize,
    /// The contig the shard covers, whole (bases 1 to `length`, 1-based closed).
    pub contig: Contig,
}

impl Shard {
    /// The region string for tools (`-r`): the contig name, which covers the whole contig.
    pub fn region(&self) -> &str {
        &self.contig.name
    }
}

/// An ordered list of shards.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScatterPlan {
    shards: Vec<Shard>,
}

impl ScatterPlan {
    /// One shard per contig, in the order given; shard `i` is the `i`-th contig, so when
    /// `contigs` is the whole `.fai`, a contig's shard index is its line in the `.fai` and stays
    /// the same whichever contigs a run selects (see [`ScatterPlan::restricted_to`]).
    pub fn by_contig(contigs: impl IntoIterator<Item = Contig>) -> Self {
        let shards = contigs
            .into_iter()
            .enumerate()
            .map(|(index, contig)| Shard { index, contig })
            .collect();
        ScatterPlan { shards }
    }

    /// The shards of the contigs named in `names` (in any order), still in reference order and
    /// keeping their indices.
    ///
    /// Linear in the shards plus the names (hash sets), so a list naming every scaffold of a
    /// draft assembly costs no more than planning them all.
    ///
    /// # Errors
    /// The names that match no shard, in the order given.
    pub fn restricted_to(&self, names: &[String]) -> Result<ScatterPlan, Vec<String>> {
        let available: HashSet<&str> = self.shards.iter().map(|s| s.region()).collect();
        let missing: Vec<String> = names
            .iter()
            .filter(|name| !available.contains(name.as_str()))
            .cloned()
            .collect();
        if !missing.is_empty() {
            return Err(missing);
        }
        let wanted: HashSet<&str> = names.iter().map(String::as_str).collect();
        let shards = self
            .shards
            .iter()
            .filter(|shard| wanted.contains(shard.region()))
            .cloned()
            .collect();
        Ok(ScatterPlan { shards })
    }

    /// The shards in reference order.
    pub fn shards(&self) -> &[Shard] {
        &self.shards
    }

    /// Shard indices ordered longest contig first (ties in reference order): running shards in
    /// this order on a fixed pool of workers shortens the longest-running worker's queue.
    pub fn longest_first(&self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.shards.len()).collect();
        order.sort_by_key(|&i| (std::cmp::Reverse(self.shards[i].contig.length), i));
        order
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_contig_keeps_reference_order() {
        let plan = ScatterPlan::by_contig([
            Contig::new("chr20", 300_000),
            Contig::new("chr22", 12_356),
            Contig::new("chrM", 16_571),
        ]);
        let names: Vec<&str> = plan.shards().iter().map(Shard::region).collect();
        assert_eq!(names, ["chr20", "chr22", "chrM"]);
        assert_eq!(plan.longest_first(), [0, 2, 1]);
        let some = plan
            .restricted_to(&["chrM".to_owned(), "chr20".to_owned()])
            .unwrap();
        let picked: Vec<(usize, &str)> = some
            .shards()
            .iter()
            .map(|s| (s.index, s.region()))
            .collect();
        assert_eq!(picked, [(0, "chr20"), (2, "chrM")]);
        assert_eq!(some.longest_first(), [0, 1]);
        assert_eq!(
            plan.restricted_to(&["20".to_owned(), "chr22".to_owned(), "X".to_owned()]),
            Err(vec!["20".to_owned(), "X".to_owned()])
        );
        // A name given twice selects its shard once.
        let twice = plan
            .restricted_to(&["chr22".to_owned(), "chr22".to_owned()])
            .unwrap();
        assert_eq!(twice.shards().len(), 1);
        assert_eq!(twice.shards()[0].index, 1);
    }
}
