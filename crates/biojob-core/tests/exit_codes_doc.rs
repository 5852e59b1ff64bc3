//! `docs/exit-codes.md` against [`ExitClass`]: the table lists every class, in code order, with
//! its code, its name and whether a retry may succeed, so the two cannot drift apart.

use std::path::Path;

use biojob_core::ExitClass;

/// `(code, class name, retry?)` of each row of the table whose header is
/// `| code | class | when | retry? |`: the code as written, the class without its backticks,
/// and whether the retry cell starts with "yes" (`Some(true)`) or "no" (`Some(false)`).
fn table_rows(markdown: &str) -> Vec<(String, String, Option<bool>)> {
    let lines = markdown
        .lines()
        .skip_while(|line| line.trim() != "| code | class | when | retry? |")
        .skip(2);
    let mut rows = Vec::new();
    for line in lines {
        let Some(inner) = line
            .trim()
            .strip_prefix('|')
            .and_then(|l| l.strip_suffix('|'))
        else {
            break;
        };
        let cells: Vec<&str> = inner.split('|').map(str::trim).collect();
        assert_eq!(cells.len(), 4, "a row of four cells: {line}");
        let retry = cells[3].split([',', ' ']).next().unwrap_or_default();
        rows.push((
            cells[0].to_owned(),
            cells[1].trim_matches('`').to_owned(),
            match retry {
                "yes" => Some(true),
                "no" => Some(false),
                _ => None,
            },
        ));
    }
    rows
}

#[test]
fn the_exit_code_table_is_the_exit_classes() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/exit-codes.md");
    let markdown = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    let documented = table_rows(&markdown);
    let expected: Vec<(String, String, Option<bool>)> = ExitClass::ALL
        .into_iter()
        .map(|class| {
            (
                class.code().to_string(),
                class.name().to_owned(),
                Some(class.retryable()),
            )
        })
        .collect();
    assert_eq!(documented, expected, "{}", path.display());
}

#[test]
fn a_changed_row_is_seen() {
    let table = "| code | class | when | retry? |\n|---:|---|---|---|\n\
                 | 0 | `ok` | done | no |\n| 12 | `scratch` | full | yes, on a larger disk |\n\
                 | 20 | `tool_failed` | exit 1 | maybe |\n\nafter";
    assert_eq!(
        table_rows(table),
        [
            ("0".to_owned(), "ok".to_owned(), Some(false)),
            ("12".to_owned(), "scratch".to_owned(), Some(true)),
            ("20".to_owned(), "tool_failed".to_owned(), None),
        ]
    );
}
