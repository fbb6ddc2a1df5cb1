//! A Go-template-like renderer for `-t`.

use serde_json::Value;

/// Why a template could not be rendered.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TemplateError(pub String);

/// Renders `template` over `data`.
pub fn render(template: &str, data: &Value) -> Result<String, TemplateError> {
    let _ = data;
    Err(TemplateError(format!(
        "template {template:?}: not supported yet"
    )))
}
