//! Finding the tools and reading their versions.

use std::fmt;

use biojob_core::{Classify, ExitClass};
use biojob_process::CommandSpec;
use camino::{Utf8Path, Utf8PathBuf};
use serde::Serialize;

use crate::Aligner;

/// A tool the workflow runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Tool {
    /// bwa 0.7 (aligner).
    Bwa,
    /// bwa-mem2 (aligner; the same alignments as bwa mem, see [`Aligner`]).
    #[serde(rename = "bwa-mem2")]
    BwaMem2,
    /// samtools (sort, index, faidx).
    Samtools,
    /// bcftools (mpileup, call, concat, index).
    Bcftools,
}

impl Tool {
    /// Every tool, in workflow order (the two aligners first).
    pub const ALL: [Tool; 4] = [Tool::Bwa, Tool::BwaMem2, Tool::Samtools, Tool::Bcftools];

    /// The program name looked up on `PATH`.
    pub fn name(self) -> &'static str {
        match self {
            Tool::Bwa => "bwa",
            Tool::BwaMem2 => "bwa-mem2",
            Tool::Samtools => "samtools",
            Tool::Bcftools => "bcftools",
        }
    }

    /// The environment variable that names the program instead of `PATH`: `BIOJOB_BWA`,
    /// `BIOJOB_BWA_MEM2`, `BIOJOB_SAMTOOLS`, `BIOJOB_BCFTOOLS`.
    pub fn override_variable(self) -> &'static str {
        match self {
            Tool::Bwa => "BIOJOB_BWA",
            Tool::BwaMem2 => "BIOJOB_BWA_MEM2",
            Tool::Samtools => "BIOJOB_SAMTOOLS",
            Tool::Bcftools => "BIOJOB_BCFTOOLS",
        }
    }

    /// The command that prints the version: `bwa` alone prints its usage with a
    /// `Version: 0.7.17-r1188` line on stderr (and exits 1); `bwa-mem2 version` prints the
    /// version alone on stdout (its launcher, in a multi-architecture build, first names the
    /// binary it runs on stderr); samtools and bcftools take `--version`.
    pub fn version_probe(self, program: &Utf8Path) -> CommandSpec {
        let command = CommandSpec::new(format!("{}-version", self.name()), program.as_str());
        match self {
            Tool::Bwa => command,
            Tool::BwaMem2 => command.arg("version"),
            Tool::Samtools | Tool::Bcftools => command.arg("--version"),
        }
    }

    /// The version from a probe's output: `0.7.17-r1188` for bwa, `2.3` for bwa-mem2,
    /// `1.16.1` for `samtools 1.16.1`, `1.16` for `bcftools 1.16`. `None` when the output has
    /// no version.
    ///
    /// bwa-mem2 v2.3 as released prints `2.2.1` (its `PACKAGE_VERSION` was not updated:
    /// bwa-mem2 issue #283); `scripts/install-tools.sh` and the image build it with the
    /// release's own number.
    pub fn parse_version(self, stdout: &str, stderr: &str) -> Option<String> {
        match self {
            Tool::Bwa => stderr
                .lines()
                .chain(stdout.lines())
                .find_map(|line| line.trim().strip_prefix("Version:"))
                .map(|version| version.trim().to_owned()),
            Tool::BwaMem2 => stdout
                .lines()
                .map(str::trim)
                .find(|line| line.starts_with(|c: char| c.is_ascii_digit()))
                .map(str::to_owned),
            Tool::Samtools | Tool::Bcftools => {
                let first = stdout.lines().next()?;
                let version = first.strip_prefix(self.name())?.trim();
                (!version.is_empty()).then(|| version.to_owned())
            }
        }
    }
}

impl fmt::Display for Tool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A tool and the program that runs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ToolPath {
    /// Which tool.
    pub tool: Tool,
    /// Absolute path (after [`Toolset::resolve`]) or a name.
    pub path: Utf8PathBuf,
}

impl ToolPath {
    /// A tool run by `path`.
    pub fn new(tool: Tool, path: impl Into<Utf8PathBuf>) -> Self {
        ToolPath {
            tool,
            path: path.into(),
        }
    }

    /// The program, as given to [`CommandSpec::new`].
    pub fn program(&self) -> &str {
        self.path.as_str()
    }
}

/// The three tools a run uses, resolved to absolute paths.
///
/// `bwa` holds the run's BWA-MEM aligner, `bwa` or `bwa-mem2` (its [`ToolPath::tool`] says
/// which; [`Toolset::aligner`]): the builders that take it ([`crate::BwaMem`],
/// [`crate::bwa_index`]) run either.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Toolset {
    /// The aligner: bwa or bwa-mem2.
    pub bwa: ToolPath,
    /// samtools.
    pub samtools: ToolPath,
    /// bcftools.
    pub bcftools: ToolPath,
}

/// Tool versions, as recorded in the run manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ToolVersions {
    /// The aligner's version (`0.7.17-r1188` for bwa, `2.3` for bwa-mem2).
    pub bwa: String,
    /// samtools' version.
    pub samtools: String,
    /// bcftools' version.
    pub bcftools: String,
}

impl ToolVersions {
    /// The version of `tool` (the aligner's, for either aligner: the toolset holds one).
    pub fn of(&self, tool: Tool) -> &str {
        match tool {
            Tool::Bwa | Tool::BwaMem2 => &self.bwa,
            Tool::Samtools => &self.samtools,
            Tool::Bcftools => &self.bcftools,
        }
    }
}

/// Programs named instead of the tools' own names, each a path or a name looked up on
/// `PATH`: the values of the variables [`Tool::override_variable`] names (`BIOJOB_BWA`,
/// `BIOJOB_BWA_MEM2`, ...), as the binary reads them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolOverrides {
    /// bwa (`BIOJOB_BWA`).
    pub bwa: Option<Utf8PathBuf>,
    /// bwa-mem2 (`BIOJOB_BWA_MEM2`).
    pub bwa_mem2: Option<Utf8PathBuf>,
    /// samtools (`BIOJOB_SAMTOOLS`).
    pub samtools: Option<Utf8PathBuf>,
    /// bcftools (`BIOJOB_BCFTOOLS`).
    pub bcftools: Option<Utf8PathBuf>,
}

impl ToolOverrides {
    /// The override of `tool`, if any.
    pub fn get(&self, tool: Tool) -> Option<&Utf8Path> {
        match tool {
            Tool::Bwa => self.bwa.as_deref(),
            Tool::BwaMem2 => self.bwa_mem2.as_deref(),
            Tool::Samtools => self.samtools.as_deref(),
            Tool::Bcftools => self.bcftools.as_deref(),
        }
    }
}

/// A tool that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ToolError {
    /// Not on `PATH`, or the override path is not an executable file.
    #[error("{tool} not found: {detail}")]
    NotFound {
        /// The tool.
        tool: Tool,
        /// What was tried.
        detail: String,
    },
    /// The version probe printed no version.
    #[error("{tool} at {path} printed no version; output began: {output:?}")]
    NoVersion {
        /// The tool.
        tool: Tool,
        /// The program run.
        path: Utf8PathBuf,
        /// The first 200 bytes of its output.
        output: String,
    },
}

impl Classify for ToolError {
    fn exit_class(&self) -> ExitClass {
        ExitClass::Usage
    }

    fn remedy(&self) -> Option<String> {
        let tool = match self {
            ToolError::NotFound { tool, .. } | ToolError::NoVersion { tool, .. } => *tool,
        };
        let install = match tool {
            Tool::BwaMem2 => "build it from source (scripts/install-tools.sh does)",
            Tool::Bwa | Tool::Samtools | Tool::Bcftools => {
                "install it (Debian: apt-get install -y bwa samtools bcftools tabix)"
            }
        };
        Some(format!(
            "{install} or point {} at the program",
            tool.override_variable()
        ))
    }
}

impl Toolset {
    /// Finds each tool, with bwa as the aligner: the override when given (a path, or a name
    /// looked up on `PATH`), else the tool's name on `PATH`. [`Toolset::resolve_for`] with
    /// [`Aligner::Bwa`].
    ///
    /// # Errors
    /// [`ToolError::NotFound`] naming the first tool that cannot be found.
    pub fn resolve(
        bwa: Option<&Utf8Path>,
        samtools: Option<&Utf8Path>,
        bcftools: Option<&Utf8Path>,
    ) -> Result<Toolset, ToolError> {
        Toolset::resolve_for(
            Aligner::Bwa,
            &ToolOverrides {
                bwa: bwa.map(Utf8Path::to_path_buf),
                bwa_mem2: None,
                samtools: samtools.map(Utf8Path::to_path_buf),
                bcftools: bcftools.map(Utf8Path::to_path_buf),
            },
        )
    }

    /// Finds `aligner`, samtools and bcftools: each tool's override when given (a path, or a
    /// name looked up on `PATH`), else the tool's name on `PATH`. The other aligner is
    /// neither looked up nor needed.
    ///
    /// # Errors
    /// [`ToolError::NotFound`] naming the first tool that cannot be found.
    pub fn resolve_for(aligner: Aligner, overrides: &ToolOverrides) -> Result<Toolset, ToolError> {
        let one = |tool: Tool| resolve_one(tool, overrides.get(tool));
        Ok(Toolset {
            bwa: one(aligner.tool())?,
            samtools: one(Tool::Samtools)?,
            bcftools: one(Tool::Bcftools)?,
        })
    }

    /// The aligner the toolset holds: bwa-mem2 when its `bwa` is bwa-mem2, else bwa.
    pub fn aligner(&self) -> Aligner {
        Aligner::from_tool(self.bwa.tool).unwrap_or_default()
    }

    /// The tools in workflow order.
    pub fn all(&self) -> [&ToolPath; 3] {
        [&self.bwa, &self.samtools, &self.bcftools]
    }
}

fn resolve_one(tool: Tool, given: Option<&Utf8Path>) -> Result<ToolPath, ToolError> {
    let wanted = given.map_or(tool.name(), Utf8Path::as_str);
    let found = which::which(wanted).map_err(|error| ToolError::NotFound {
        tool,
        detail: match given {
            Some(path) => format!("{path} (from {}): {error}", tool.override_variable()),
            None => format!("no `{}` on PATH", tool.name()),
        },
    })?;
    let path = Utf8PathBuf::from_path_buf(found).map_err(|path| ToolError::NotFound {
        tool,
        detail: format!("{} is not valid UTF-8", path.display()),
    })?;
    Ok(ToolPath::new(tool, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_versions() {
        let bwa_usage = "\nProgram: bwa (alignment via Burrows-Wheeler transformation)\nVersion: 0.7.17-r1188\n";
        assert_eq!(
            Tool::Bwa.parse_version("", bwa_usage).as_deref(),
            Some("0.7.17-r1188")
        );
        assert_eq!(
            Tool::Samtools
                .parse_version("samtools 1.16.1\nUsing htslib 1.16\n", "")
                .as_deref(),
            Some("1.16.1")
        );
        assert_eq!(
            Tool::Bcftools
                .parse_version("bcftools 1.16\nUsing htslib 1.16\n", "")
                .as_deref(),
            Some("1.16")
        );
        assert_eq!(Tool::Bcftools.parse_version("usage: x", ""), None);
        // A multi-architecture bwa-mem2 names the binary it launches on stderr.
        let launcher =
            "Looking to launch executable \"/usr/local/bin/bwa-mem2.avx2\", simd = .avx2\n";
        assert_eq!(
            Tool::BwaMem2.parse_version("2.3\n", launcher).as_deref(),
            Some("2.3")
        );
        assert_eq!(Tool::BwaMem2.parse_version("", "2.3\n"), None);
        assert_eq!(Tool::BwaMem2.parse_version("Usage: bwa-mem2", ""), None);
    }

    #[test]
    fn version_probes() {
        let argv = |tool: Tool| tool.version_probe(Utf8Path::new("/opt/x")).argv();
        assert_eq!(argv(Tool::Bwa), ["/opt/x"]);
        assert_eq!(argv(Tool::BwaMem2), ["/opt/x", "version"]);
        assert_eq!(argv(Tool::Samtools), ["/opt/x", "--version"]);
        assert_eq!(
            Tool::BwaMem2.version_probe(Utf8Path::new("/opt/x")).label(),
            "bwa-mem2-version"
        );
        assert_eq!(
            serde_json::to_string(&Tool::ALL).unwrap(),
            r#"["bwa","bwa-mem2","samtools","bcftools"]"#
        );
    }

    #[test]
    fn the_chosen_aligner_is_resolved_and_the_other_is_not_needed() {
        let sh = Some(Utf8PathBuf::from("/bin/sh"));
        let overrides = ToolOverrides {
            bwa: Some("/nonexistent/bwa".into()),
            bwa_mem2: sh.clone(),
            samtools: sh.clone(),
            bcftools: sh,
        };
        let toolset = Toolset::resolve_for(Aligner::BwaMem2, &overrides).unwrap();
        assert_eq!(toolset.bwa, ToolPath::new(Tool::BwaMem2, "/bin/sh"));
        assert_eq!(toolset.aligner(), Aligner::BwaMem2);
        assert_eq!(toolset.all()[0].tool, Tool::BwaMem2);
        let error = Toolset::resolve_for(Aligner::Bwa, &overrides).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("bwa not found: /nonexistent/bwa (from BIOJOB_BWA): "),
            "{error}"
        );
    }

    #[test]
    fn missing_bwa_mem2_names_its_variable_and_how_to_build_it() {
        let overrides = ToolOverrides {
            bwa_mem2: Some("/nonexistent/bwa-mem2".into()),
            ..ToolOverrides::default()
        };
        let error = Toolset::resolve_for(Aligner::BwaMem2, &overrides).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("bwa-mem2 not found: /nonexistent/bwa-mem2 (from BIOJOB_BWA_MEM2): "),
            "{error}"
        );
        assert_eq!(
            error.remedy().as_deref(),
            Some(
                "build it from source (scripts/install-tools.sh does) or point BIOJOB_BWA_MEM2 \
                 at the program"
            )
        );
        assert_eq!(error.exit_class(), ExitClass::Usage);
    }

    #[test]
    fn missing_override_is_reported() {
        let error =
            Toolset::resolve(Some(Utf8Path::new("/nonexistent/bwa")), None, None).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("bwa not found: /nonexistent/bwa (from BIOJOB_BWA): "),
            "{error}"
        );
        assert_eq!(error.exit_class(), ExitClass::Usage);
    }
}
