//! A snapshot as pages show it: every section as labelled values and tables of plain text.
//!
//! Sections are rendered generically from their JSON, so a field a newer agent adds shows up
//! without a template change. Everything becomes a `String` that the template escapes; nothing
//! from the snapshot is ever marked safe.

use lifeline_shared::v1::snapshot::{SectionName, Snapshot};
use serde_json::{Map, Value};

use super::when;

/// Rows shown per table; the rest is counted.
const TABLE_ROWS_MAX: usize = 300;

#[derive(Debug, Clone)]
pub struct SnapshotView {
    pub collected_at: String,
    pub agent_version: String,
    pub anonymized: bool,
    pub sections: Vec<SectionView>,
}

#[derive(Debug, Clone)]
pub struct SectionView {
    pub name: &'static str,
    pub errors: Vec<String>,
    pub elapsed_ms: u64,
    /// The section failed as a whole (no data).
    pub no_data: bool,
    pub fields: Vec<(String, String)>,
    pub tables: Vec<TableView>,
}

#[derive(Debug, Clone)]
pub struct TableView {
    pub title: String,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
    /// Rows left out beyond [`TABLE_ROWS_MAX`].
    pub more: usize,
}

impl SnapshotView {
    pub fn of(snapshot: &Snapshot) -> SnapshotView {
        let document = serde_json::to_value(snapshot).unwrap_or(Value::Null);
        let sections = SectionName::ALL
            .iter()
            .filter(|name| **name != SectionName::Findings)
            .filter_map(|name| {
                let section = document.get(name.as_str())?;
                Some(section_view(name.as_str(), section))
            })
            .collect();
        SnapshotView {
            collected_at: when(snapshot.collected_at),
            agent_version: snapshot.agent_version.clone(),
            anonymized: snapshot.anonymized,
            sections,
        }
    }
}

fn section_view(name: &'static str, section: &Value) -> SectionView {
    let errors = section
        .get("errors")
        .and_then(Value::as_array)
        .map(|errors| errors.iter().map(text).collect())
        .unwrap_or_default();
    let elapsed_ms = section
        .get("elapsed_ms")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let mut view = SectionView {
        name,
        errors,
        elapsed_ms,
        no_data: true,
        fields: Vec::new(),
        tables: Vec::new(),
    };
    if let Some(data) = section.get("data").filter(|d| !d.is_null()) {
        view.no_data = false;
        flatten("", data, &mut view.fields, &mut view.tables);
    }
    view
}

fn key_label(prefix: &str, key: &str) -> String {
    let key = key.replace('_', " ");
    if prefix.is_empty() {
        key
    } else {
        format!("{prefix} › {key}")
    }
}

fn flatten(
    prefix: &str,
    value: &Value,
    fields: &mut Vec<(String, String)>,
    tables: &mut Vec<TableView>,
) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                let label = key_label(prefix, key);
                match value {
                    Value::Null => {}
                    Value::Object(_) => flatten(&label, value, fields, tables),
                    Value::Array(items) if items.iter().any(Value::is_object) => {
                        tables.push(table(label, items));
                    }
                    other => fields.push((label, text(other))),
                }
            }
        }
        Value::Null => {}
        Value::Array(items) if items.iter().any(Value::is_object) => {
            tables.push(table(prefix.to_owned(), items));
        }
        other => fields.push((prefix.to_owned(), text(other))),
    }
}

fn table(title: String, items: &[Value]) -> TableView {
    let mut columns: Vec<String> = Vec::new();
    for item in items.iter().take(TABLE_ROWS_MAX) {
        if let Value::Object(map) = item {
            for key in map.keys() {
                if !columns.contains(key) {
                    columns.push(key.clone());
                }
            }
        }
    }
    let rows = items
        .iter()
        .take(TABLE_ROWS_MAX)
        .map(|item| match item {
            Value::Object(map) => columns
                .iter()
                .map(|c| map.get(c).map(text).unwrap_or_default())
                .collect(),
            other => vec![text(other)],
        })
        .collect();
    TableView {
        title,
        columns: columns.iter().map(|c| c.replace('_', " ")).collect(),
        rows,
        more: items.len().saturating_sub(TABLE_ROWS_MAX),
    }
}

/// A JSON value as one line of text.
fn text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::Bool(true) => "yes".to_owned(),
        Value::Bool(false) => "no".to_owned(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(text).collect::<Vec<_>>().join(", "),
        Value::Object(map) => object_text(map),
    }
}

fn object_text(map: &Map<String, Value>) -> String {
    map.iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| format!("{}: {}", k.replace('_', " "), text(v)))
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sections_become_fields_and_tables_of_text() {
        let section = json!({
            "data": {
                "hostname": "<b>pc</b>",
                "load": {"one": 0.5},
                "filesystems": [{"mount": "/", "used": 97}, {"mount": "/home", "extra": true}],
                "dns": ["1.1.1.1", "9.9.9.9"]
            },
            "errors": ["needs root"],
            "elapsed_ms": 12
        });
        let view = section_view("system", &section);
        assert!(!view.no_data);
        assert!(
            view.fields
                .contains(&("hostname".to_owned(), "<b>pc</b>".to_owned()))
        );
        assert!(
            view.fields
                .contains(&("load › one".to_owned(), "0.5".to_owned()))
        );
        assert!(
            view.fields
                .contains(&("dns".to_owned(), "1.1.1.1, 9.9.9.9".to_owned()))
        );
        let fs = &view.tables[0];
        assert_eq!(fs.columns, ["mount", "used", "extra"]);
        assert_eq!(fs.rows[1], ["/home", "", "yes"]);
        assert_eq!(view.errors, ["needs root"]);
        let failed = section_view("cpu", &json!({"errors": ["timed out"], "elapsed_ms": 3000}));
        assert!(failed.no_data);
    }
}
