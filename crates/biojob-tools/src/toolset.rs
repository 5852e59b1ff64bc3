//! Finding the tools and reading their versions.

use std::fmt;

use biojob_core::{Classify, ExitClass};
use biojob_process::CommandSpec;
use camino::{Utf8Path, Utf8PathBuf};
use serde::Serialize;

/// A tool the workflow runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Tool {
    /// BWA (aligner).
    Bwa,
    /// samtools (sort, index, faidx).
    Samtools,
    /// bcftools (mpileup, call, concat, index).
    Bcftools,
}

impl Tool {
    /// Every tool, in workflow order.
    pub const ALL: [Tool; 3] = [Tool::Bwa, Tool::Samtools, Tool::Bcftools];

    /// The program name looked up on `PATH`.
    pub fn name(self) -> &'static str {
        match self {
            Tool::Bwa => "bwa",
            Tool::Samtools => "samtools",
            Tool::Bcftools => "bcftools",
        }
    }

    /// The command that prints the version: `bwa` alone prints its usage with a
    /// `Version: 0.7.17-r1188` line on stderr (and exits 1); the others take `--version`.
    pub fn version_probe(self, program: &Utf8Path) -> CommandSpec {
        let command = CommandSpec::new(format!("{}-version", self.name()), program.as_str());
        match self {
            Tool::Bwa => command,
            Tool::Samtools | Tool::Bcftools => command.arg("--version"),
        }
    }

    /// The version from a probe's output: `0.7.17-r1188` for bwa, `1.16.1` for
    /// `samtools 1.16.1`, `1.16` for `bcftools 1.16`. `None` when the output has no version.
    pub fn parse_version(self, stdout: &str, stderr: &str) -> Option<String> {
        match self {
            Tool::Bwa => stderr
                .lines()
                .chain(stdout.lines())
                .find_map(|line| line.trim().strip_prefix("Version:"))
                .map(|version| version.trim().to_owned()),
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

/// The three tools, resolved to absolute paths.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Toolset {
    /// bwa.
    pub bwa: ToolPath,
    /// samtools.
    pub samtools: ToolPath,
    /// bcftools.
    pub bcftools: ToolPath,
}

/// Tool versions, as recorded in the run manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ToolVersions {
    /// bwa's version (`0.7.17-r1188`).
    pub bwa: String,
    /// samtools' version.
    pub samtools: String,
    /// bcftools' version.
    pub bcftools: String,
}

impl ToolVersions {
    /// The version of `tool`.
    pub fn of(&self, tool: Tool) -> &str {
        match tool {
            Tool::Bwa => &self.bwa,
            Tool::Samtools => &self.samtools,
            Tool::Bcftools => &self.bcftools,
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
        Some(format!(
            "install it (Debian: apt-get install -y bwa samtools bcftools tabix) or point {} at the program",
            override_variable(tool)
        ))
    }
}

fn override_variable(tool: Tool) -> &'static str {
    match tool {
        Tool::Bwa => "BIOJOB_BWA",
        Tool::Samtools => "BIOJOB_SAMTOOLS",
        Tool::Bcftools => "BIOJOB_BCFTOOLS",
    }
}

impl Toolset {
    /// Finds each tool: the override when given (a path, or a name looked up on `PATH`),
    /// else the tool's name on `PATH`.
    ///
    /// # Errors
    /// [`ToolError::NotFound`] naming the first tool that cannot be found.
    pub fn resolve(
        bwa: Option<&Utf8Path>,
        samtools: Option<&Utf8Path>,
        bcftools: Option<&Utf8Path>,
    ) -> Result<Toolset, ToolError> {
        Ok(Toolset {
            bwa: resolve_one(Tool::Bwa, bwa)?,
            samtools: resolve_one(Tool::Samtools, samtools)?,
            bcftools: resolve_one(Tool::Bcftools, bcftools)?,
        })
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
            Some(path) => format!("{path} (from {}): {error}", override_variable(tool)),
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
