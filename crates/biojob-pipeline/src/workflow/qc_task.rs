//! The QC task of [`run_workflow`](super::run_workflow), after gather: the QC step, then
//! `report.html` from the run's tasks so far, then publication beside the run's outputs.

use biojob_core::StepId;
use biojob_storage::{ObjectUri, Stores};
use camino::Utf8Path;

use super::Task;
use crate::steps::PendingOutputs;
use crate::{
    Error, PreparedReference, QcRequest, RunManifest, RunObserver, StepContext, TaskLabel,
    TaskRecord, WorkflowInput, publish_file, qc, render_report,
};

/// The BAM and final VCF the QC step reads, both local files in the run's work directory.
pub(super) struct QcInputs<'a> {
    pub(super) reference: &'a PreparedReference,
    pub(super) bam: &'a Utf8Path,
    pub(super) vcf: &'a Utf8Path,
}

/// Runs the QC step and writes `report.html`, publishes the reports, `qc.json` and
/// `report.html` to `output_dir`, and records the task in `manifest`.
///
/// The report shows every task recorded so far and the QC task up to the report itself.
///
/// # Errors
/// The QC step's error, wrapped as the failure of task `qc`.
#[allow(clippy::too_many_arguments)]
pub(super) fn run_qc_task(
    input: &WorkflowInput,
    inputs: &QcInputs<'_>,
    context: &StepContext,
    work_dir: &Utf8Path,
    output_dir: &ObjectUri,
    stores: &Stores,
    manifest: &mut RunManifest,
    observer: &dyn RunObserver,
) -> Result<(), Error> {
    let task = Task::start(TaskLabel::step(StepId::Qc), observer);
    let report = work_dir.join("report.html");
    let result = qc(
        &QcRequest {
            sample: &input.sample,
            reference: inputs.reference,
            bam: inputs.bam,
            vcf: inputs.vcf,
            work_dir,
        },
        context,
    )
    .and_then(|output| {
        let mut snapshot = manifest.clone();
        snapshot.tasks.push(TaskRecord::new(
            StepId::Qc,
            None,
            task.started,
            task.clock.elapsed(),
            &output.commands,
        ));
        let html = render_report(&snapshot, &output.summary);
        let mut pending = PendingOutputs::default();
        let report_partial = pending.partial_for(&report);
        std::fs::write(&report_partial, html).map_err(Error::io("writing", &report_partial))?;
        pending.publish()?;
        let mut outputs = Vec::new();
        for file in output.files().into_iter().chain([report.as_path()]) {
            outputs.push(publish_file(stores, file, output_dir)?);
        }
        Ok((output, outputs))
    });
    match result {
        Ok((output, outputs)) => {
            manifest
                .tasks
                .push(task.record(None, &output.commands, Ok(outputs)));
            Ok(())
        }
        Err(error) => {
            let error = error.in_task(StepId::Qc.as_str());
            manifest
                .tasks
                .push(task.record(None, &super::reports_of(&error), Err(&error)));
            Err(error)
        }
    }
}
