//! Printing a command's answer on stdout: pretty JSON (the default, like `az`), or with `-o table` an
//! aligned table of the columns the command chose.

use std::io::Write;

use serde_json::Value;

use super::error::CliError;

/// The `-o` choices.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Format {
    Json,
    Table,
}

/// A table column: its header and where its cell is in each row, as a dotted path (`sku.name`,
/// `passwords.0.value`; `""` for the row itself, as in a list of names).
pub struct Column {
    pub header: &'static str,
    pub path: &'static str,
}

/// Shorthand for a [`Column`].
pub const fn col(header: &'static str, path: &'static str) -> Column {
    Column { header, path }
}

/// What a command answered and how to show it as a table. A `null` value prints nothing (deletions).
pub struct Answer {
    pub value: Value,
    pub columns: &'static [Column],
}

pub fn print(answer: &Answer, format: Format) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    out.write_all(render(answer, format).as_bytes())?;
    out.flush()?;
    Ok(())
}

fn render(answer: &Answer, format: Format) -> String {
    match (&answer.value, format) {
        (Value::Null, _) => String::new(),
        (value, Format::Json) => format!("{value:#}\n"),
        (value, Format::Table) => table(value, answer.columns),
    }
}

/// One row per array item (or one row for an object; one per item of an object that is a cloud-style
/// list, `{"value": […]}` alone): headers, a dashed rule, then the cells, each column as wide as its widest
/// cell. An empty list is the headers and the rule alone.
fn table(value: &Value, columns: &[Column]) -> String {
    let listed = match value {
        Value::Object(map) if map.len() == 1 => map.get("value").filter(|v| v.is_array()).unwrap_or(value),
        other => other,
    };
    let rows: Vec<&Value> = match listed {
        Value::Array(items) => items.iter().collect(),
        one => vec![one],
    };
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|row| columns.iter().map(|c| cell(row, c.path)).collect())
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            cells
                .iter()
                .map(|row| row[i].chars().count())
                .fold(c.header.chars().count(), usize::max)
        })
        .collect();
    let mut out = String::new();
    push_line(&mut out, columns.iter().map(|c| c.header.to_string()), &widths);
    push_line(&mut out, widths.iter().map(|w| "-".repeat(*w)), &widths);
    for row in cells {
        push_line(&mut out, row.into_iter(), &widths);
    }
    out
}

fn push_line(out: &mut String, cells: impl Iterator<Item = String>, widths: &[usize]) {
    let padded: Vec<String> = cells.zip(widths).map(|(c, w)| format!("{c:<w$}")).collect();
    out.push_str(padded.join("  ").trim_end());
    out.push('\n');
}

/// The text of the value at `path` in `row`: strings as they are, lists joined with commas, nothing for
/// null or absent, other values as JSON.
fn cell(row: &Value, path: &str) -> String {
    let found = path
        .split('.')
        .filter(|k| !k.is_empty())
        .try_fold(row, |v, key| match v {
            Value::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get(i)),
            other => other.get(key),
        });
    match found {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_string))
            .collect::<Vec<_>>()
            .join(", "),
        Some(other) => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn table_of(value: Value, columns: &'static [Column]) -> String {
        render(&Answer { value, columns }, Format::Table)
    }

    #[test]
    fn tables_align_columns_and_follow_paths() {
        const COLUMNS: &[Column] = &[col("NAME", "name"), col("SKU", "sku.name"), col("TAGS", "tags")];
        let value = json!([
            { "name": "myregistry", "sku": { "name": "Basic" }, "tags": ["a", "b"] },
            { "name": "other", "sku": { "name": "Premium" }, "tags": null },
        ]);
        let text = table_of(value, COLUMNS);
        assert_eq!(
            text,
            "NAME        SKU      TAGS\n\
             ----------  -------  ----\n\
             myregistry  Basic    a, b\n\
             other       Premium\n"
        );
    }

    #[test]
    fn a_cloud_style_list_is_one_row_per_item() {
        const COLUMNS: &[Column] = &[
            col("NAME", "name"),
            col("LIMIT", "limit"),
            col("CURRENT VALUE", "currentValue"),
        ];
        let value = json!({ "value": [{ "name": "Size", "limit": null, "currentValue": 42 }] });
        assert_eq!(
            table_of(value, COLUMNS),
            "NAME  LIMIT  CURRENT VALUE\n----  -----  -------------\nSize         42\n"
        );
    }

    #[test]
    fn an_object_is_one_row_and_paths_index_arrays() {
        const COLUMNS: &[Column] = &[col("USERNAME", "username"), col("PASSWORD2", "passwords.1.value")];
        let value = json!({ "username": "reg", "passwords": [{ "value": "p1" }, { "value": "p2" }] });
        assert_eq!(
            table_of(value, COLUMNS),
            "USERNAME  PASSWORD2\n--------  ---------\nreg       p2\n"
        );
    }

    #[test]
    fn lists_of_names_use_the_row_itself_and_empty_lists_print_their_headers() {
        const COLUMNS: &[Column] = &[col("REPOSITORY", "")];
        let columns = COLUMNS;
        let value = json!(["a/b", "c"]);
        assert_eq!(table_of(value, columns), "REPOSITORY\n----------\na/b\nc\n");
        assert_eq!(table_of(json!([]), columns), "REPOSITORY\n----------\n");
        assert_eq!(
            render(
                &Answer {
                    value: Value::Null,
                    columns
                },
                Format::Json
            ),
            ""
        );
    }

    #[test]
    fn json_is_pretty_printed() {
        let value = json!({ "name": "reg", "sku": { "name": "Basic" } });
        assert_eq!(
            render(&Answer { value, columns: &[] }, Format::Json),
            "{\n  \"name\": \"reg\",\n  \"sku\": {\n    \"name\": \"Basic\"\n  }\n}\n"
        );
    }
}
