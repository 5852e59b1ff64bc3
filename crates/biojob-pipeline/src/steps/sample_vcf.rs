//! The `sample-vcf` step: one sample's VCF from its cohort's jointly called VCF.

use biojob_core::{SampleId, StepId};
use biojob_formats::VcfRules;
use biojob_scratch::SpaceNeed;
use biojob_tools::{BcftoolsViewSample, Tool};

use crate::plan::partial;
use crate::steps::{RunningPlan, then_index_vcf, verify_vcf_output};
use crate::{
    CohortMember, Error, Executed, PlanContext, StagedInputs, StepContext, StepDefinition,
    StepPlan, VCF, final_vcf_name, gather_space_need,
};

/// The sample-vcf step of one sample of a cohort: the cohort's VCF (input [`VCF`], its `.tbi`
/// beside it) cut to the sample's column and to the records where the sample's genotype holds
/// a non-reference allele ([`BcftoolsViewSample`]), into `<sample>.vcf.gz`, the name a
/// single-sample run gives its VCF.
#[derive(Debug, Clone)]
pub struct SampleVcfStep {
    /// The sample.
    pub sample: SampleId,
}

impl StepDefinition for SampleVcfStep {
    fn step(&self) -> StepId {
        StepId::SampleVcf
    }

    fn cohort_member(&self) -> Option<CohortMember> {
        Some(CohortMember::sample(&self.sample))
    }

    fn space_need(&self, staged: u64, inputs: &[(String, u64)]) -> SpaceNeed {
        gather_space_need(staged, inputs.iter().map(|(_, size)| size).sum())
    }

    /// `bcftools view -s SAMPLE -c 1 -Oz -o VCF.partial COHORT_VCF`, then `bcftools index -t`.
    fn plan(&self, context: &PlanContext<'_>) -> StepPlan {
        let bcftools = &context.toolset.bcftools;
        let vcf = context.work_file(&final_vcf_name(&self.sample));
        let view = BcftoolsViewSample {
            sample: self.sample.to_string(),
            vcf: context.input(VCF),
            output: partial(&vcf),
        }
        .command(bcftools);
        let plan =
            StepPlan::new(StepId::SampleVcf, context.resources).command(Tool::Bcftools, view);
        then_index_vcf(plan, bcftools, vcf)
    }

    /// Runs the plan; the VCF is checked ([`biojob_formats::scan_vcf`]: BGZF EOF block, header,
    /// `##contig` lines equal to the reference's, one sample column named after the sample,
    /// records sorted) before it is indexed and renamed.
    ///
    /// # Errors
    /// [`Error::Process`] when a tool fails (a sample the VCF does not have makes `bcftools
    /// view` fail); [`Error::Verification`] when the VCF fails its checks.
    fn execute(
        &self,
        plan: StepPlan,
        inputs: &StagedInputs,
        context: &StepContext,
    ) -> Result<Executed, Error> {
        let reference = inputs.reference()?;
        let mut running = RunningPlan::new(plan, 2)?;
        let result = (|| {
            running.run_next(context)?;
            let vcf_partial = running.partial(0).to_owned();
            let scan = verify_vcf_output(
                &vcf_partial,
                &VcfRules {
                    contigs: &reference.contigs,
                    samples: &[self.sample.as_str()],
                    only_regions: None,
                },
            )?;
            running.run_next(context)?;
            running.finish(crate::RecordCounts {
                vcf_records: Some(scan.counts.records),
                ..crate::RecordCounts::default()
            })
        })();
        result.map_err(|error| context.explain_failure(error))
    }
}
