//! A command to run: label, program, typed argv, and where its standard streams go.

use std::ffi::{OsStr, OsString};
use std::io::{PipeReader, PipeWriter};
use std::os::fd::{OwnedFd, RawFd};

use camino::{Utf8Path, Utf8PathBuf};

/// What a child's standard input is.
#[derive(Debug, Default)]
pub enum StdinSource {
    /// `/dev/null` (the default).
    #[default]
    Null,
    /// A file, opened for reading when the command starts.
    File(Utf8PathBuf),
    /// The read end of an anonymous pipe; the caller writes the other end (on its own thread).
    Pipe(PipeReader),
}

/// Where a command's standard output goes when it is the last stage of a pipeline.
#[derive(Debug, Default)]
pub(crate) enum StdoutTarget {
    /// `/dev/null` (the default).
    #[default]
    Null,
    /// A file, created (or truncated) when the command starts.
    File(Utf8PathBuf),
    /// The write end of an anonymous pipe; the caller reads the other end (on its own thread).
    Pipe(PipeWriter),
}

/// Whether the child of a [`CommandSpec`] is denied the inherited variable `name`: AWS's
/// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`,
/// `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`, …).
pub fn is_withheld_variable(name: &OsStr) -> bool {
    name.as_encoded_bytes().starts_with(b"AWS_")
}

/// A command to run, built with typed arguments (never a shell string).
///
/// The label names the command in logs, error messages and the stderr log file
/// (`<log_dir>/<label>.stderr`), e.g. `bwa-mem`, `samtools-sort`, `bcftools-call.chr20`. It must
/// not be empty, contain `/` or a NUL byte, or be `.` or `..`.
///
/// The program is a path, or a name looked up on `PATH` when the command starts.
///
/// The child inherits the environment but the variables named `AWS_*`
/// ([`is_withheld_variable`]): credentials and session tokens, which no tool needs (biojob
/// stages every file itself) and which a tool that printed its environment would write into a
/// published log. A variable set with [`CommandSpec::env`] is passed as given.
///
/// ```
/// use biojob_process::CommandSpec;
///
/// let command = CommandSpec::new("samtools-sort", "samtools")
///     .arg("sort")
///     .args(["-@", "4", "-o", "out.bam", "-"])
///     .env("TMPDIR", "/scratch/tmp");
/// assert_eq!(command.label(), "samtools-sort");
/// assert_eq!(
///     command.argv(),
///     ["samtools", "sort", "-@", "4", "-o", "out.bam", "-"]
/// );
/// ```
#[derive(Debug)]
pub struct CommandSpec {
    pub(crate) label: String,
    pub(crate) program: Utf8PathBuf,
    pub(crate) args: Vec<OsString>,
    pub(crate) current_dir: Option<Utf8PathBuf>,
    pub(crate) env: Vec<(OsString, OsString)>,
    pub(crate) stdin: StdinSource,
    pub(crate) stdout: StdoutTarget,
    pub(crate) inherited_fds: Vec<(RawFd, OwnedFd)>,
}

impl CommandSpec {
    /// A command labelled `label` that runs `program` with no arguments, stdin and stdout null.
    pub fn new(label: impl Into<String>, program: impl Into<Utf8PathBuf>) -> Self {
        Self {
            label: label.into(),
            program: program.into(),
            args: Vec::new(),
            current_dir: None,
            env: Vec::new(),
            stdin: StdinSource::Null,
            stdout: StdoutTarget::Null,
            inherited_fds: Vec::new(),
        }
    }

    /// Replaces the label (e.g. to make it unique when the same tool runs for several
    /// shards at once: labels name the stderr log files).
    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
    }

    /// Appends one argument.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// Appends several arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|arg| arg.as_ref().to_owned()));
        self
    }

    /// Sets the child's standard input (only allowed on the first stage of a pipeline).
    pub fn stdin(mut self, source: StdinSource) -> Self {
        self.stdin = source;
        self
    }

    /// Sends standard output to `path`, created or truncated when the command starts (only
    /// allowed on the last stage of a pipeline). Without it, standard output is `/dev/null`.
    ///
    /// The caller picks the name; write to a temporary name and rename after checking the output.
    pub fn stdout_file(mut self, path: impl Into<Utf8PathBuf>) -> Self {
        self.stdout = StdoutTarget::File(path.into());
        self
    }

    /// Sends standard output into the write end of an anonymous pipe (only allowed on the last
    /// stage of a pipeline), e.g. to count or check the bytes on their way to a file.
    ///
    /// The caller reads the other end on its own thread until end-of-file, which comes once the
    /// child has exited (the parent's copy is closed when the child starts). A reader that stops
    /// early makes the child's next write fail (`EPIPE`).
    pub fn stdout_pipe(mut self, writer: PipeWriter) -> Self {
        self.stdout = StdoutTarget::Pipe(writer);
        self
    }

    /// Makes `fd` visible to the child as descriptor `child_fd` (at least 3), e.g. the read end
    /// of an anonymous pipe that the child opens as `/dev/fd/3`.
    ///
    /// The parent's copy is closed once the child has started.
    pub fn inherit_fd(mut self, child_fd: RawFd, fd: OwnedFd) -> Self {
        self.inherited_fds.push((child_fd, fd));
        self
    }

    /// Adds (or overrides) an environment variable; the rest of the environment is inherited
    /// (but [`is_withheld_variable`]'s).
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.env
            .push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    /// Runs the child in `dir` instead of the current directory.
    pub fn current_dir(mut self, dir: impl Into<Utf8PathBuf>) -> Self {
        self.current_dir = Some(dir.into());
        self
    }

    /// The label given to [`new`](Self::new).
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The program given to [`new`](Self::new), as given (not resolved on `PATH`).
    pub fn program(&self) -> &Utf8Path {
        &self.program
    }

    /// The program followed by its arguments, non-UTF-8 bytes replaced, for manifests and logs.
    pub fn argv(&self) -> Vec<String> {
        std::iter::once(self.program.to_string())
            .chain(
                self.args
                    .iter()
                    .map(|arg| arg.to_string_lossy().into_owned()),
            )
            .collect()
    }

    /// Why `label` cannot name a command, if it cannot.
    pub(crate) fn label_problem(label: &str) -> Option<&'static str> {
        if label.is_empty() {
            Some("the label is empty")
        } else if label == "." || label == ".." {
            Some("the label is `.` or `..`")
        } else if label.contains('/') {
            Some("the label contains `/`")
        } else if label.contains('\0') {
            Some("the label contains a NUL byte")
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_collects_everything() {
        let command = CommandSpec::new("bwa-mem", "/opt/bin/bwa")
            .arg("mem")
            .args(["-t", "8"])
            .arg(Utf8Path::new("ref.fa"))
            .env("A", "1")
            .current_dir("/scratch")
            .stdout_file("/scratch/out.sam");
        assert_eq!(command.label(), "bwa-mem");
        assert_eq!(command.program(), "/opt/bin/bwa");
        assert_eq!(command.argv(), ["/opt/bin/bwa", "mem", "-t", "8", "ref.fa"]);
        assert_eq!(command.env, [(OsString::from("A"), OsString::from("1"))]);
        assert_eq!(
            command.current_dir.as_deref(),
            Some(Utf8Path::new("/scratch"))
        );
        assert!(matches!(
            &command.stdout,
            StdoutTarget::File(path) if path == "/scratch/out.sam"
        ));
        assert!(matches!(command.stdin, StdinSource::Null));
    }

    #[test]
    fn argv_is_lossy_for_non_utf8() {
        use std::os::unix::ffi::OsStrExt;
        let command = CommandSpec::new("x", "echo").arg(OsStr::from_bytes(b"a\xffb"));
        assert_eq!(command.argv(), ["echo", "a\u{fffd}b"]);
    }

    #[test]
    fn label_problems() {
        assert_eq!(CommandSpec::label_problem("bcftools-call.chr20"), None);
        assert_eq!(CommandSpec::label_problem(""), Some("the label is empty"));
        assert_eq!(
            CommandSpec::label_problem(".."),
            Some("the label is `.` or `..`")
        );
        assert_eq!(
            CommandSpec::label_problem("a/b"),
            Some("the label contains `/`")
        );
        assert_eq!(
            CommandSpec::label_problem("a\0b"),
            Some("the label contains a NUL byte")
        );
    }
}
