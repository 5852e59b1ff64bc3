//! The `report` step: the cohort's `report.html` from its samples' `qc.json`.

use std::sync::OnceLock;

use biojob_core::{SampleId, StepId};
use biojob_scratch::SpaceNeed;

use crate::steps::RunningPlan;
use crate::{
    Error, Executed, JobInput, PlanContext, PreparedReference, QcRun, QcSummary, RunManifest,
    StagedInputs, StepContext, StepDefinition, StepPlan, TaskRecord, render_cohort_report,
};

/// The role of the `position`-th sample's `qc.json` in a report job's inputs: `qc.0003`.
pub fn sample_qc_role(position: usize) -> String {
    format!("qc.{position:04}")
}

/// The report step of a cohort: each sample's `qc.json` (inputs [`sample_qc_role`], in sheet
/// order) into one `report.html` ([`render_cohort_report`]) with the run's tasks.
#[derive(Debug, Clone)]
pub struct ReportStep {
    /// The samples, in sheet order.
    pub samples: Vec<SampleId>,
    /// The run so far (its tasks go on the timeline): a local run's manifest, or a Batch
    /// execution's step manifests ([`QcRun::Cohort`], read once the reference's `.fai` is
    /// staged).
    pub run: QcRun,
    /// The run read, or given.
    read: OnceLock<RunManifest>,
}

impl ReportStep {
    /// The report of `samples` for `run`.
    pub fn new(samples: Vec<SampleId>, run: QcRun) -> Self {
        let read = OnceLock::new();
        if let QcRun::Given(manifest) = &run {
            let _ = read.set((**manifest).clone());
        }
        ReportStep { samples, run, read }
    }
}

impl StepDefinition for ReportStep {
    fn step(&self) -> StepId {
        StepId::Report
    }

    fn space_need(&self, staged: u64, _inputs: &[(String, u64)]) -> SpaceNeed {
        SpaceNeed::new("report")
            .with("staged inputs", staged)
            .with("report", 4 << 20)
    }

    /// No tool: biojob reads the samples' `qc.json` and writes `report.html`.
    fn plan(&self, context: &PlanContext<'_>) -> StepPlan {
        StepPlan::new(StepId::Report, context.resources)
            .note(format!(
                "biojob reads the qc.json of {} samples and writes the cohort's report.html",
                self.samples.len()
            ))
            .output(context.work_file("report.html"))
    }

    fn cacheable(&self) -> bool {
        false
    }

    fn with_reference(
        &self,
        reference: &PreparedReference,
        context: &StepContext,
    ) -> Result<Vec<JobInput>, Error> {
        if let Some(run) = self.run.read(None, reference, context)? {
            let _ = self.read.set(run);
        }
        Ok(Vec::new())
    }

    /// Reads each sample's `qc.json` (checking it is that sample's) and writes the report
    /// under its partial name, renamed once written.
    ///
    /// # Errors
    /// [`Error::Input`] when a `qc.json` is missing, unreadable or another sample's;
    /// [`Error::Io`] when the report cannot be written.
    fn execute(
        &self,
        plan: StepPlan,
        inputs: &StagedInputs,
        _context: &StepContext,
    ) -> Result<Executed, Error> {
        let (started, clock) = (std::time::SystemTime::now(), std::time::Instant::now());
        let running = RunningPlan::new(plan, 1)?;
        let mut summaries = Vec::with_capacity(self.samples.len());
        for (position, sample) in self.samples.iter().enumerate() {
            let path = inputs.path(&sample_qc_role(position))?;
            let invalid = |detail: String| Error::Input {
                message: format!("{path}: {detail}"),
                remedy: Some("run the sample's qc step again".into()),
            };
            let text = std::fs::read(path).map_err(|error| invalid(error.to_string()))?;
            let summary: QcSummary =
                serde_json::from_slice(&text).map_err(|error| invalid(error.to_string()))?;
            if summary.sample != sample.as_str() {
                return Err(invalid(format!(
                    "qc.json of sample {}, expected {sample}",
                    summary.sample
                )));
            }
            summaries.push(summary);
        }
        let mut run = self.read.get().cloned().unwrap_or_default();
        run.tasks.push(TaskRecord::new(
            StepId::Report,
            None,
            started,
            clock.elapsed(),
            &[],
        ));
        let partial = running.partial(0).to_owned();
        std::fs::write(&partial, render_cohort_report(&run, &summaries))
            .map_err(Error::io("writing", &partial))?;
        running.finish(crate::RecordCounts::default())
    }
}
