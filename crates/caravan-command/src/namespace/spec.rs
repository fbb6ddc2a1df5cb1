//! A namespace specification file, read as Nomad's `namespace apply`
//! reads one: with `-json`, the API's `Namespace` JSON (field names matched
//! without regard to case, as Go's decoder matches them); otherwise the
//! HCL specification (`name`, `description`, `quota`, `capabilities {}`,
//! `node_pool_config {}`, `vault {}`, `consul {}`, `meta {}`).
//!
//! Without `-json` a file whose first character is `{` is HCL's JSON form
//! (as Nomad's HCL parser takes it); anything else is native HCL. Both
//! become the same value, read by [`from_hcl_value`].

use caravan_api_types::namespace::{Namespace, NamespaceCapabilities};
use serde_json::{Map, Value};

/// The API's JSON (`-json`); the error is Nomad's words after its prefix.
pub fn from_api_json(text: &str) -> Result<Namespace, String> {
    let value: Value = serde_json::from_str(text).map_err(|error| error.to_string())?;
    let Value::Object(object) = value else {
        return Err("the namespace specification is not a JSON object".to_string());
    };
    let mut object = fold_keys(object, TOP_LEVEL);
    // Go's `api.Namespace` has no hash: one in the file is not sent.
    object.remove("Hash");
    if let Some(capabilities) = object.remove("Capabilities") {
        let folded = match capabilities {
            Value::Object(fields) => Value::Object(fold_keys(fields, CAPABILITIES)),
            other => other,
        };
        object.insert("Capabilities".to_string(), folded);
    }
    for key in CLUSTER_CONFIGS {
        if let Some(config) = object.remove(key) {
            object.insert(key.to_string(), api_cluster_config(config)?);
        }
    }
    serde_json::from_value(Value::Object(object)).map_err(|error| error.to_string())
}

/// The HCL specification's text. An empty file is an empty namespace (the
/// server then refuses its name), as in Nomad.
pub fn from_hcl_text(text: &str) -> Result<Namespace, String> {
    let trimmed = text.trim_start();
    if trimmed.is_empty() {
        return Ok(Namespace::default());
    }
    // HCL's JSON form is JSON; native HCL is read by the HCL parser into
    // the same shape (blocks as objects).
    let value: Value = if trimmed.starts_with('{') {
        serde_json::from_str(text).map_err(|error| error.to_string())?
    } else {
        hcl::from_str(text).map_err(|error| error.to_string())?
    };
    from_hcl_value(value)
}

/// The HCL specification as a JSON value: blocks are objects (or lists of
/// objects, the first one used, as Nomad uses the first), `meta` blocks
/// merged. Unknown keys are ignored, as Nomad's decoder ignores them;
/// `required_extra_claims` and `optional_extra_claims` too, as Caravan's
/// namespaces do not carry them.
pub fn from_hcl_value(value: Value) -> Result<Namespace, String> {
    let Value::Object(object) = value else {
        return Err("error parsing: root should be an object".to_string());
    };
    let mut namespace = Namespace::default();
    for (key, value) in object {
        match key.as_str() {
            "capabilities" => {
                if let Some(block) = first_block(&value) {
                    namespace.capabilities = Some(hcl_capabilities(block)?);
                }
            }
            "node_pool_config" => {
                namespace.node_pool_configuration = first_block(&value)
                    .map(|block| hcl_cluster_config(&key, block))
                    .transpose()?;
            }
            "vault" => {
                namespace.vault_configuration = first_block(&value)
                    .map(|block| hcl_cluster_config(&key, block))
                    .transpose()?;
            }
            "consul" => {
                namespace.consul_configuration = first_block(&value)
                    .map(|block| hcl_cluster_config(&key, block))
                    .transpose()?;
            }
            "meta" => {
                let meta = namespace.meta.get_or_insert_with(Default::default);
                for block in blocks(&value) {
                    for (name, item) in block {
                        meta.insert(name.clone(), weak_string(&format!("meta.{name}"), item)?);
                    }
                }
            }
            // Decoded by field name without regard to case, and weakly
            // (a number or a boolean as text), as Nomad's mapstructure does.
            _ if key.eq_ignore_ascii_case("name") => namespace.name = weak_string(&key, &value)?,
            _ if key.eq_ignore_ascii_case("description") => {
                namespace.description = weak_string(&key, &value)?
            }
            _ if key.eq_ignore_ascii_case("quota") => namespace.quota = weak_string(&key, &value)?,
            _ => {}
        }
    }
    Ok(namespace)
}

/// The API `Namespace`'s fields a JSON file may spell in any case.
const TOP_LEVEL: &[&str] = &[
    "Name",
    "Description",
    "Quota",
    "Capabilities",
    "NodePoolConfiguration",
    "VaultConfiguration",
    "ConsulConfiguration",
    "Meta",
    "CreateIndex",
    "ModifyIndex",
    "Hash",
];

const CAPABILITIES: &[&str] = &[
    "EnabledTaskDrivers",
    "DisabledTaskDrivers",
    "EnabledNetworkModes",
    "DisabledNetworkModes",
];

const CLUSTER_CONFIGS: [&str; 3] = [
    "NodePoolConfiguration",
    "VaultConfiguration",
    "ConsulConfiguration",
];

const CLUSTER_CONFIG_FIELDS: &[&str] = &["Default", "Allowed", "Denied"];

/// `object` with every key that names one of `fields` in another case
/// renamed to the field's own spelling.
fn fold_keys(object: Map<String, Value>, fields: &[&str]) -> Map<String, Value> {
    object
        .into_iter()
        .map(|(key, value)| {
            let canonical = fields
                .iter()
                .find(|field| field.eq_ignore_ascii_case(&key))
                .map_or(key, |field| field.to_string());
            (canonical, value)
        })
        .collect()
}

/// A node pool, Vault or Consul configuration from the API's JSON, as Go's
/// typed struct would send it: `Default`, `Allowed`, `Denied`, all present.
fn api_cluster_config(config: Value) -> Result<Value, String> {
    match config {
        Value::Null => Ok(Value::Null),
        Value::Object(fields) => {
            let fields = fold_keys(fields, CLUSTER_CONFIG_FIELDS);
            let default = match fields.get("Default") {
                None | Some(Value::Null) => String::new(),
                Some(Value::String(text)) => text.clone(),
                Some(_) => return Err("Default: expected a string".to_string()),
            };
            let list = |key: &str| match fields.get(key) {
                None | Some(Value::Null) => Ok(Value::Null),
                Some(value) => string_list(key, value).map(|items| serde_json::json!(items)),
            };
            Ok(serde_json::json!({
                "Default": default,
                "Allowed": list("Allowed")?,
                "Denied": list("Denied")?,
            }))
        }
        _ => Err("a node pool, Vault or Consul configuration must be an object".to_string()),
    }
}

/// The HCL form's `node_pool_config`, `vault` or `consul` block.
fn hcl_cluster_config(block: &str, fields: &Map<String, Value>) -> Result<Value, String> {
    let mut default = String::new();
    let (mut allowed, mut denied) = (Value::Null, Value::Null);
    for (key, value) in fields {
        let path = format!("{block}.{key}");
        match key.to_ascii_lowercase().as_str() {
            "default" => default = weak_string(&path, value)?,
            "allowed" => allowed = serde_json::json!(string_list(&path, value)?),
            "denied" => denied = serde_json::json!(string_list(&path, value)?),
            _ => {}
        }
    }
    Ok(serde_json::json!({"Default": default, "Allowed": allowed, "Denied": denied}))
}

/// The HCL form's `capabilities` block.
fn hcl_capabilities(fields: &Map<String, Value>) -> Result<NamespaceCapabilities, String> {
    let mut capabilities = NamespaceCapabilities::default();
    for (key, value) in fields {
        let slot = match key.to_ascii_lowercase().as_str() {
            "enabled_task_drivers" => &mut capabilities.enabled_task_drivers,
            "disabled_task_drivers" => &mut capabilities.disabled_task_drivers,
            "enabled_network_modes" => &mut capabilities.enabled_network_modes,
            "disabled_network_modes" => &mut capabilities.disabled_network_modes,
            _ => continue,
        };
        *slot = Some(string_list(&format!("capabilities.{key}"), value)?);
    }
    Ok(capabilities)
}

/// A block's objects: one object, or each object of a list of them.
fn blocks(value: &Value) -> Vec<&Map<String, Value>> {
    match value {
        Value::Object(object) => vec![object],
        Value::Array(items) => items.iter().filter_map(Value::as_object).collect(),
        _ => Vec::new(),
    }
}

fn first_block(value: &Value) -> Option<&Map<String, Value>> {
    blocks(value).into_iter().next()
}

/// Text, or a number or boolean as text (booleans as `1` and `0`, as
/// mapstructure's weak decoding writes them).
fn weak_string(key: &str, value: &Value) -> Result<String, String> {
    match value {
        Value::String(text) => Ok(text.clone()),
        Value::Number(number) => Ok(number.to_string()),
        Value::Bool(flag) => Ok(if *flag { "1" } else { "0" }.to_string()),
        Value::Null => Ok(String::new()),
        _ => Err(format!("{key}: expected a string")),
    }
}

fn string_list(key: &str, value: &Value) -> Result<Vec<String>, String> {
    let expected = || format!("{key}: expected a list of strings");
    value
        .as_array()
        .ok_or_else(expected)?
        .iter()
        .map(|item| item.as_str().map(str::to_string).ok_or_else(expected))
        .collect()
}
