//! A Go-template-like renderer for `-t`: the subset of Go's `text/template`
//! people write on Nomad's command line, over the command's data as JSON.
//!
//! Supported: literal text; `{{.}}`, `{{.A.B}}`, `{{$}}`, `{{$x.A}}`;
//! `{{$x := pipeline}}`; pipelines with `|`; `{{if}}` / `{{else if}}` /
//! `{{else}}` / `{{end}}` with Go's truthiness; `{{range .X}}` (also
//! `{{range $e := .X}}` and `{{range $i, $e := .X}}`, map keys sorted as
//! Go sorts them); `{{with}}`; `{{- ` and ` -}}` trimming; `{{/* */}}`
//! comments; the functions `printf`, `print`, `println`, `len`, `index`,
//! `not`, `and`, `or`, `eq`, `ne`, `lt`, `le`, `gt`, `ge` and `json`.
//! Anything else is a [`TemplateError`], never a panic. Nesting depth is
//! capped, and so are the steps a render runs and what it prints (nested
//! `range`s over the data multiply): a template is the user's own input,
//! but a mistyped one must still end.

mod exec;
mod parse;
mod printf;

use serde_json::Value;

/// Why a template could not be parsed or rendered.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TemplateError(pub String);

impl TemplateError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

/// Renders `template` over `data`.
pub fn render(template: &str, data: &Value) -> Result<String, TemplateError> {
    if template.is_empty() {
        // Nomad's message for `-t ''`.
        return Err(TemplateError::new(
            "template needs to be specified in golang's text/template format.",
        ));
    }
    let nodes = parse::parse(template)?;
    exec::execute(&nodes, data)
}

#[cfg(test)]
mod tests;
