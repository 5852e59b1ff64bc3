//! Lines of text in error messages.

/// `line` without its trailing `\n` or `\r\n`.
pub(crate) fn trim_line_end(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// A short, quoted, escaped rendering of a line for error messages.
pub(crate) fn preview(line: &[u8]) -> String {
    const MAX: usize = 40;
    let line = trim_line_end(line);
    if line.is_empty() {
        return "an empty line".to_owned();
    }
    let shown = &line[..line.len().min(MAX)];
    let ellipsis = if line.len() > MAX { "..." } else { "" };
    format!("\"{}{ellipsis}\"", shown.escape_ascii())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_ends() {
        assert_eq!(trim_line_end(b"ACGT\n"), b"ACGT");
        assert_eq!(trim_line_end(b"ACGT\r\n"), b"ACGT");
        assert_eq!(trim_line_end(b"ACGT"), b"ACGT");
    }

    #[test]
    fn previews() {
        assert_eq!(preview(b"\n"), "an empty line");
        assert_eq!(preview(b"ACGT\n"), "\"ACGT\"");
        assert_eq!(preview(b"a\tb"), "\"a\\tb\"");
        assert_eq!(preview(&[b'A'; 50]), format!("\"{}...\"", "A".repeat(40)));
    }
}
