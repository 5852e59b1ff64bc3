//! The sample sheet of a cohort: its samples and each sample's lanes, a CSV file of the shape
//! nf-core pipelines read (`sample,lane,fastq_1,fastq_2`, optional `library` and
//! `platform_unit`). docs/cohorts.md describes it.

use std::collections::BTreeMap;
use std::io::Read as _;

use biojob_core::{ReadGroup, SampleId, platform_unit_from_read_name};
use biojob_formats::{FastqSource, first_read_name};
use biojob_storage::{ObjectUri, Stores};
use camino::Utf8PathBuf;

use crate::Error;

/// The columns a sample sheet must have.
pub const SAMPLESHEET_COLUMNS: [&str; 4] = ["sample", "lane", "fastq_1", "fastq_2"];
/// The columns it may have besides.
pub const SAMPLESHEET_OPTIONAL_COLUMNS: [&str; 2] = ["library", "platform_unit"];

/// The longest lane id, in bytes.
const MAX_LANE_BYTES: usize = 64;

/// One lane of a sample: one row of the sheet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SheetLane {
    /// The lane's id, unique within its sample (letters, digits, `.`, `_`, `-`).
    pub lane: String,
    /// Read 1.
    pub fastq_1: ObjectUri,
    /// Read 2.
    pub fastq_2: ObjectUri,
    /// The library (`@RG LB`), when given.
    pub library: Option<String>,
    /// The platform unit (`@RG PU`), when given.
    pub platform_unit: Option<String>,
    /// The row's line in the sheet (1-based; the header is line 1).
    pub line: u64,
}

impl SheetLane {
    /// `error`, a failure of this lane of `sample`, naming its row of the sheet at `sheet`: a
    /// task's failure gets the row after the task's label (`align A lane 2 (/data/sheet.csv
    /// line 3) failed: …`), any other error becomes the failure of `what` (`reading the read
    /// group of A lane 2 (…) failed: …`). The class and hint are the cause's.
    pub fn failed(&self, error: Error, what: &str, sample: &SampleId, sheet: &ObjectUri) -> Error {
        let row = format!("({sheet} line {})", self.line);
        match error {
            Error::Step { task, source } => Error::Step {
                task: format!("{task} {row}"),
                source,
            },
            error => error.in_task(format!("{what} {sample} lane {} {row}", self.lane)),
        }
    }
}

/// One sample of the sheet and its lanes, in sheet order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SheetSample {
    /// The sample.
    pub sample: SampleId,
    /// Its lanes (at least one).
    pub lanes: Vec<SheetLane>,
}

/// A parsed sample sheet: samples in the order they first appear, each with its lanes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleSheet {
    /// Where the sheet is.
    pub uri: ObjectUri,
    /// The samples.
    pub samples: Vec<SheetSample>,
}

impl SampleSheet {
    /// Reads the sheet at `uri` (a local path or an object, read whole) and parses it
    /// ([`SampleSheet::parse`]).
    ///
    /// # Errors
    /// [`Error::Input`] when the sheet does not exist or breaks a rule; a storage error when
    /// it cannot be read.
    pub fn read(stores: &Stores, uri: &ObjectUri) -> Result<SampleSheet, Error> {
        let store = stores.for_uri(uri)?;
        if store.head(uri)?.is_none() {
            return Err(Error::Input {
                message: format!("the sample sheet {uri} does not exist"),
                remedy: Some(
                    "give the sheet's path or s3:// URI (params.samplesheet or --samplesheet)"
                        .into(),
                ),
            });
        }
        let mut text = String::new();
        store
            .open(uri)?
            .read_to_string(&mut text)
            .map_err(|error| Error::Input {
                message: format!("the sample sheet {uri} cannot be read as UTF-8 text: {error}"),
                remedy: Some("save the sheet as UTF-8 CSV".into()),
            })?;
        SampleSheet::parse(&text, uri)
    }

    /// Parses the sheet's text; `uri` is where it is (relative FASTQ paths are relative to
    /// its directory) and names it in errors. Every rule broken is reported with its line and
    /// column: a missing column, an empty or invalid sample or lane, a (sample, lane) pair or a
    /// FASTQ given twice, a library or platform unit that cannot go into an `@RG` line.
    /// Columns other than those of [`SAMPLESHEET_COLUMNS`] and
    /// [`SAMPLESHEET_OPTIONAL_COLUMNS`] are ignored (nf-core sheets carry more).
    ///
    /// # Errors
    /// [`Error::Input`] (exit 11) naming the sheet, the line and the column.
    pub fn parse(text: &str, uri: &ObjectUri) -> Result<SampleSheet, Error> {
        let invalid = |line: u64, column: Option<&str>, message: String| {
            Error::Input {
            message: match column {
                Some(column) => format!("{uri} line {line}, column {column}: {message}"),
                None => format!("{uri} line {line}: {message}"),
            },
            remedy: Some(
                "fix the sample sheet: columns sample,lane,fastq_1,fastq_2[,library,platform_unit] (docs/cohorts.md)"
                    .into(),
            ),
        }
        };
        // csv's positions count neither comment nor blank lines: it reads the sheet without
        // them, and each line it reads maps back to the file's (1-based).
        let mut kept = String::with_capacity(text.len());
        let mut file_lines: Vec<u64> = Vec::new();
        for (index, line) in text.split_inclusive('\n').enumerate() {
            let content = line.trim_end_matches(['\n', '\r']);
            if !content.is_empty() && !content.starts_with('#') {
                kept.push_str(line);
                file_lines.push(index as u64 + 1);
            }
        }
        let line_of = |csv_line: u64| {
            usize::try_from(csv_line)
                .ok()
                .and_then(|line| file_lines.get(line.checked_sub(1)?))
                .copied()
                .unwrap_or(csv_line)
        };
        let line_at =
            |position: Option<&csv::Position>| line_of(position.map_or(1, csv::Position::line));
        let mut reader = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .comment(Some(b'#'))
            .from_reader(kept.as_bytes());
        let csv_error = |error: csv::Error| {
            let line = line_at(error.position());
            // csv's own text gives its positions, which are not the file's.
            let reason = match error.kind() {
                csv::ErrorKind::UnequalLengths {
                    expected_len, len, ..
                } => format!("the row has {len} fields, and the header {expected_len}"),
                _ => error.to_string(),
            };
            invalid(line, None, format!("not valid CSV: {reason}"))
        };
        let headers = reader.headers().map_err(csv_error)?.clone();
        let column = |name: &str| headers.iter().position(|header| header == name);
        let mut required = [0usize; 4];
        for (slot, name) in required.iter_mut().zip(SAMPLESHEET_COLUMNS) {
            *slot = column(name).ok_or_else(|| {
                invalid(
                    line_of(1),
                    None,
                    format!(
                        "the header has no column {name:?} (found: {})",
                        headers.iter().collect::<Vec<_>>().join(",")
                    ),
                )
            })?;
        }
        let [sample_at, lane_at, fastq_1_at, fastq_2_at] = required;
        let library_at = column("library");
        let platform_unit_at = column("platform_unit");
        for header in headers.iter() {
            if !SAMPLESHEET_COLUMNS.contains(&header)
                && !SAMPLESHEET_OPTIONAL_COLUMNS.contains(&header)
            {
                tracing::warn!(%uri, column = header, "ignoring a sample sheet column biojob does not use");
            }
        }

        let mut samples: Vec<SheetSample> = Vec::new();
        let mut lanes_seen: BTreeMap<(String, String), u64> = BTreeMap::new();
        let mut fastqs_seen: Vec<(ObjectUri, u64, &'static str)> = Vec::new();
        for record in reader.records() {
            let record = record.map_err(csv_error)?;
            let line = line_at(record.position());
            let field = |at: usize| record.get(at).unwrap_or("");
            let optional = |at: Option<usize>| {
                at.map(|at| field(at).to_owned())
                    .filter(|value| !value.is_empty())
            };
            let sample_text = field(sample_at);
            if sample_text.is_empty() {
                return Err(invalid(line, Some("sample"), "the sample is empty".into()));
            }
            let sample = SampleId::new(sample_text)
                .map_err(|error| invalid(line, Some("sample"), error.to_string()))?;
            let lane = field(lane_at).to_owned();
            check_lane(&lane).map_err(|message| invalid(line, Some("lane"), message))?;
            if let Some(first) = lanes_seen.insert((sample.to_string(), lane.clone()), line) {
                return Err(invalid(
                    line,
                    Some("lane"),
                    format!("sample {sample} lane {lane} is already on line {first}"),
                ));
            }
            let mut fastq = |name: &'static str, at: usize| -> Result<ObjectUri, Error> {
                let text = field(at);
                if text.is_empty() {
                    return Err(invalid(line, Some(name), "no FASTQ given".into()));
                }
                let fastq =
                    relative_to(uri, text).map_err(|message| invalid(line, Some(name), message))?;
                if let Some((_, first, first_column)) = fastqs_seen
                    .iter()
                    .find(|(seen, _, _)| crate::input::same_object(seen, &fastq))
                {
                    return Err(invalid(
                        line,
                        Some(name),
                        format!("{fastq} is already listed on line {first}, column {first_column}"),
                    ));
                }
                fastqs_seen.push((fastq.clone(), line, name));
                Ok(fastq)
            };
            let fastq_1 = fastq("fastq_1", fastq_1_at)?;
            let fastq_2 = fastq("fastq_2", fastq_2_at)?;
            let library = optional(library_at);
            let platform_unit = optional(platform_unit_at);
            let mut check = ReadGroup::for_sample(&sample);
            if let Some(value) = &library {
                check = check
                    .with_library(value.clone())
                    .map_err(|error| invalid(line, Some("library"), error.to_string()))?;
            }
            if let Some(value) = &platform_unit {
                check
                    .with_platform_unit(value.clone())
                    .map_err(|error| invalid(line, Some("platform_unit"), error.to_string()))?;
            }
            let lane = SheetLane {
                lane,
                fastq_1,
                fastq_2,
                library,
                platform_unit,
                line,
            };
            match samples.iter_mut().find(|s| s.sample == sample) {
                Some(existing) => existing.lanes.push(lane),
                None => samples.push(SheetSample {
                    sample,
                    lanes: vec![lane],
                }),
            }
        }
        if samples.is_empty() {
            return Err(invalid(1, None, "the sheet lists no sample".into()));
        }
        Ok(SampleSheet {
            uri: uri.clone(),
            samples,
        })
    }

    /// Checks that every FASTQ of the sheet exists, before any tool runs.
    ///
    /// # Errors
    /// [`Error::Input`] naming the first missing FASTQ's line and column; a storage error when
    /// a store cannot be asked.
    pub fn check_files(&self, stores: &Stores) -> Result<(), Error> {
        for sample in &self.samples {
            for lane in &sample.lanes {
                for (column, fastq) in [("fastq_1", &lane.fastq_1), ("fastq_2", &lane.fastq_2)] {
                    if stores.for_uri(fastq)?.head(fastq)?.is_none() {
                        return Err(Error::Input {
                            message: format!(
                                "{} line {}, column {column}: {fastq} does not exist",
                                self.uri, lane.line
                            ),
                            remedy: Some(
                                "fix the path in the sample sheet (relative paths are relative to the sheet's directory)"
                                    .into(),
                            ),
                        });
                    }
                }
            }
        }
        Ok(())
    }

    /// The sample `sample`.
    ///
    /// # Errors
    /// [`Error::Input`] when the sheet has no such sample.
    pub fn sample(&self, sample: &SampleId) -> Result<&SheetSample, Error> {
        self.samples
            .iter()
            .find(|s| &s.sample == sample)
            .ok_or_else(|| Error::Input {
                message: format!(
                    "the sample sheet {} has no sample {sample} (it has {})",
                    self.uri,
                    self.sample_ids()
                        .iter()
                        .map(SampleId::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                remedy: Some("give a sample of the sheet".into()),
            })
    }

    /// The samples, in sheet order.
    pub fn sample_ids(&self) -> Vec<SampleId> {
        self.samples.iter().map(|s| s.sample.clone()).collect()
    }
}

impl SheetSample {
    /// Lane `index` (0-based, in sheet order).
    ///
    /// # Errors
    /// [`Error::Usage`] when the sample has fewer lanes.
    pub fn lane(&self, index: usize) -> Result<&SheetLane, Error> {
        self.lanes.get(index).ok_or_else(|| Error::Usage {
            message: format!(
                "sample {} has {} lanes in the sample sheet: lane index {index} is not one",
                self.sample,
                self.lanes.len()
            ),
            remedy: Some(
                "give a lane index from 0, in the order of the sample's rows in the sheet".into(),
            ),
        })
    }
}

/// A lane id names read groups and files: 1 to 64 letters, digits, `.`, `_` or `-`.
fn check_lane(lane: &str) -> Result<(), String> {
    if lane.is_empty() {
        return Err("the lane is empty".into());
    }
    if lane.len() > MAX_LANE_BYTES {
        return Err(format!(
            "lane {lane:?} is longer than {MAX_LANE_BYTES} bytes"
        ));
    }
    match lane
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        Some(character) => Err(format!(
            "lane {lane:?} has {character:?}; use letters, digits, '.', '_' and '-'"
        )),
        None => Ok(()),
    }
}

/// `text` as a URI: `s3://…` and `file://…` as given, an absolute path as given, a relative
/// path relative to the directory of `sheet`.
fn relative_to(sheet: &ObjectUri, text: &str) -> Result<ObjectUri, String> {
    let parsed = ObjectUri::parse(text).map_err(|error| error.to_string())?;
    let relative = match &parsed {
        ObjectUri::Local(path) => path.is_relative() && !text.starts_with("file://"),
        ObjectUri::S3 { .. } => false,
    };
    if !relative {
        return Ok(parsed);
    }
    Ok(match sheet {
        ObjectUri::Local(path) => ObjectUri::Local(
            path.parent()
                .map_or_else(|| Utf8PathBuf::from(text), |dir| dir.join(text)),
        ),
        ObjectUri::S3 { bucket, key } => ObjectUri::S3 {
            bucket: bucket.clone(),
            key: match key.rfind('/') {
                Some(slash) => format!("{}{text}", &key[..=slash]),
                None => text.to_owned(),
            },
        },
    })
}

/// The read group of one lane: `ID` `<sample>.<lane>`, `SM` the sample, `LB` the sheet's
/// library (else the sample: duplicates are marked per library), `PL` `platform`, `PU` the
/// sheet's platform unit, else the one `first_read` gives (`<flowcell>.<lane>` for Illumina
/// names, [`platform_unit_from_read_name`]), else none.
///
/// # Errors
/// [`Error::Usage`] for a platform that cannot go into an `@RG` line.
pub fn lane_read_group(
    sample: &SampleId,
    lane: &SheetLane,
    platform: &str,
    first_read: Option<&str>,
) -> Result<ReadGroup, Error> {
    let usage = |error: biojob_core::ReadGroupError| Error::Usage {
        message: error.to_string(),
        remedy: Some("fix READ_GROUP_PLATFORM".into()),
    };
    let mut read_group = ReadGroup::for_sample(sample)
        .with_id(format!("{sample}.{}", lane.lane))
        .map_err(usage)?
        .with_library(lane.library.clone().unwrap_or_else(|| sample.to_string()))
        .map_err(usage)?
        .with_platform(platform.to_owned())
        .map_err(usage)?;
    let unit = lane
        .platform_unit
        .clone()
        .or_else(|| first_read.and_then(platform_unit_from_read_name));
    if let Some(unit) = unit {
        read_group = read_group.with_platform_unit(unit).map_err(usage)?;
    }
    Ok(read_group)
}

/// The read group of `lane` of `sample` as a cohort's jobs write it: [`lane_read_group`], with
/// the lane's first read name ([`fastq_first_read_name`]) when the sheet gives no platform
/// unit.
///
/// # Errors
/// As [`lane_read_group`] and [`fastq_first_read_name`].
pub fn read_group_of_lane(
    stores: &Stores,
    sheet: &ObjectUri,
    sample: &SampleId,
    lane: &SheetLane,
    platform: &str,
) -> Result<ReadGroup, Error> {
    let first = match lane.platform_unit {
        Some(_) => None,
        None => Some(
            fastq_first_read_name(stores, &lane.fastq_1)
                .map_err(|error| lane.failed(error, "reading the read group of", sample, sheet))?,
        ),
    };
    lane_read_group(sample, lane, platform, first.as_deref())
}

/// The read groups of every lane of `sample`, in sheet order ([`read_group_of_lane`]).
///
/// # Errors
/// As [`read_group_of_lane`].
pub fn sample_read_groups(
    stores: &Stores,
    sheet: &ObjectUri,
    sample: &SheetSample,
    platform: &str,
) -> Result<Vec<ReadGroup>, Error> {
    sample
        .lanes
        .iter()
        .map(|lane| read_group_of_lane(stores, sheet, &sample.sample, lane, platform))
        .collect()
}

/// The name of the first read of the FASTQ at `uri`, read from its first line only (an
/// object is streamed and the stream dropped after that line).
///
/// # Errors
/// [`Error::Fastq`] when the file cannot be read or does not start with a FASTQ record; a
/// storage error when the object cannot be opened.
pub fn fastq_first_read_name(stores: &Stores, uri: &ObjectUri) -> Result<String, Error> {
    let source = match uri.local_path() {
        Some(path) => FastqSource::file(path),
        None => FastqSource::reader(&uri.to_string(), stores.for_uri(uri)?.open(uri)?),
    };
    Ok(first_read_name(source)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sheet_uri() -> ObjectUri {
        ObjectUri::parse("/data/runs/sheet.csv").unwrap()
    }

    fn parse(text: &str) -> Result<SampleSheet, Error> {
        SampleSheet::parse(text, &sheet_uri())
    }

    fn error(text: &str) -> String {
        let error = parse(text).unwrap_err();
        assert_eq!(
            biojob_core::Classify::exit_class(&error),
            biojob_core::ExitClass::InputInvalid,
            "{error}"
        );
        error.to_string()
    }

    #[test]
    fn samples_keep_their_lanes_in_sheet_order_and_paths_resolve_against_the_sheet() {
        let sheet = parse(
            "sample,lane,fastq_1,fastq_2,library,platform_unit,status\n\
             A,1,a1_R1.fq.gz,a1_R2.fq.gz,libA,,0\n\
             B,1,/abs/b1_R1.fq.gz,/abs/b1_R2.fq.gz,,FC.1,0\n\
             A,2,s3://bucket/a2_R1.fq.gz,s3://bucket/a2_R2.fq.gz,,,0\n",
        )
        .unwrap();
        assert_eq!(
            sheet.sample_ids(),
            [SampleId::new("A").unwrap(), SampleId::new("B").unwrap()]
        );
        let a = &sheet.samples[0];
        assert_eq!(
            a.lanes
                .iter()
                .map(|l| (l.lane.as_str(), l.line))
                .collect::<Vec<_>>(),
            [("1", 2), ("2", 4)]
        );
        assert_eq!(a.lanes[0].fastq_1.to_string(), "/data/runs/a1_R1.fq.gz");
        assert_eq!(a.lanes[1].fastq_2.to_string(), "s3://bucket/a2_R2.fq.gz");
        assert_eq!(a.lanes[0].library.as_deref(), Some("libA"));
        assert_eq!(a.lanes[0].platform_unit, None);
        let b = &sheet.samples[1].lanes[0];
        assert_eq!(b.fastq_1.to_string(), "/abs/b1_R1.fq.gz");
        assert_eq!(b.platform_unit.as_deref(), Some("FC.1"));
        let s3 = SampleSheet::parse(
            "sample,lane,fastq_1,fastq_2\nA,1,x/a_R1.fq,x/a_R2.fq\n",
            &ObjectUri::parse("s3://in/sheets/cohort.csv").unwrap(),
        )
        .unwrap();
        assert_eq!(
            s3.samples[0].lanes[0].fastq_1.to_string(),
            "s3://in/sheets/x/a_R1.fq"
        );
    }

    #[test]
    fn every_rule_broken_names_its_line_and_column() {
        let header = "sample,lane,fastq_1,fastq_2\n";
        let at = |rows: &str| error(&format!("{header}{rows}"));
        assert_eq!(
            error("sample,fastq_1,fastq_2\nA,a,b\n"),
            "/data/runs/sheet.csv line 1: the header has no column \"lane\" (found: sample,fastq_1,fastq_2)"
        );
        assert_eq!(
            at(""),
            "/data/runs/sheet.csv line 1: the sheet lists no sample"
        );
        assert_eq!(
            at("A,1,a1,a2\n,1,b1,b2\n"),
            "/data/runs/sheet.csv line 3, column sample: the sample is empty"
        );
        assert_eq!(
            at("A B,1,a1,a2\n"),
            "/data/runs/sheet.csv line 2, column sample: sample id \"A B\" has ' ' at byte 1; use letters, digits, '.', '_' and '-', not starting with '.' or '-'"
        );
        assert_eq!(
            at("A,1,a1,a2\nA,1,b1,b2\n"),
            "/data/runs/sheet.csv line 3, column lane: sample A lane 1 is already on line 2"
        );
        assert_eq!(
            at("A,1,a1,a2\nB,1,b1,a1\n"),
            "/data/runs/sheet.csv line 3, column fastq_2: /data/runs/a1 is already listed on line 2, column fastq_1"
        );
        assert_eq!(
            at("A,1,a1,./a1\n"),
            "/data/runs/sheet.csv line 2, column fastq_2: /data/runs/./a1 is already listed on line 2, column fastq_1"
        );
        assert_eq!(
            at("A,,a1,a2\n"),
            "/data/runs/sheet.csv line 2, column lane: the lane is empty"
        );
        assert_eq!(
            at("A,L 1,a1,a2\n"),
            "/data/runs/sheet.csv line 2, column lane: lane \"L 1\" has ' '; use letters, digits, '.', '_' and '-'"
        );
        assert_eq!(
            at("A,1,a1,\n"),
            "/data/runs/sheet.csv line 2, column fastq_2: no FASTQ given"
        );
        // Comment and blank lines count: the line is the file's (csv counts neither).
        assert_eq!(
            at("A,1,a1,a2\n# a comment\n\n# another\nB,1,b1,b1\n"),
            "/data/runs/sheet.csv line 6, column fastq_2: /data/runs/b1 is already listed on line 6, column fastq_1"
        );
        assert_eq!(
            at("# first\nA,1,a1,a2\n#\nA,1,b1,b2\n"),
            "/data/runs/sheet.csv line 5, column lane: sample A lane 1 is already on line 3"
        );
        assert_eq!(
            at("A,1,a1,a2\n# note\nA,1,a1\n"),
            "/data/runs/sheet.csv line 4: not valid CSV: the row has 3 fields, and the header 4"
        );
        assert_eq!(
            at("A,1,a1\n"),
            "/data/runs/sheet.csv line 2: not valid CSV: the row has 3 fields, and the header 4"
        );
    }

    #[test]
    fn lane_read_groups_take_the_sheet_s_values_or_the_first_read_s_flowcell() {
        let sheet = parse(
            "sample,lane,fastq_1,fastq_2,library,platform_unit\n\
             S,1,a,b,,\n\
             S,2,c,d,lib2,FCX.7\n",
        )
        .unwrap();
        let sample = &sheet.samples[0];
        let derived = lane_read_group(
            &sample.sample,
            &sample.lanes[0],
            "ILLUMINA",
            Some("20FUKAAXX100202:1:1:1229:90686"),
        )
        .unwrap();
        assert_eq!(
            derived.to_header_line(),
            "@RG\tID:S.1\tSM:S\tLB:S\tPL:ILLUMINA\tPU:20FUKAAXX100202.1"
        );
        let given = lane_read_group(
            &sample.sample,
            &sample.lanes[1],
            "ILLUMINA",
            Some("20FUKAAXX100202:1:1:1229:90686"),
        )
        .unwrap();
        assert_eq!(
            given.to_header_line(),
            "@RG\tID:S.2\tSM:S\tLB:lib2\tPL:ILLUMINA\tPU:FCX.7"
        );
        let none = lane_read_group(
            &sample.sample,
            &sample.lanes[0],
            "ILLUMINA",
            Some("chr22.bin8.cram:1:2"),
        )
        .unwrap();
        assert_eq!(
            none.to_header_line(),
            "@RG\tID:S.1\tSM:S\tLB:S\tPL:ILLUMINA"
        );
        assert_eq!(
            sample.lane(2).unwrap_err().to_string(),
            "sample S has 2 lanes in the sample sheet: lane index 2 is not one"
        );
    }
}
