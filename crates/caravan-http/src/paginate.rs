//! Nomad's list paginator: `?filter=` on the full objects, then `per_page`
//! and `next_token` over the survivors, in the list's order.

use caravan_filter::Filter;
use serde::Serialize;

use crate::error::ApiError;
use crate::query::QueryOptions;

/// One page and the token of the first item of the next page, if any.
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_token: Option<String>,
}

/// Compiles `?filter=`, with Nomad's error text.
pub fn compile_filter(query: &QueryOptions) -> Result<Option<Filter>, ApiError> {
    if query.filter.is_empty() {
        return Ok(None);
    }
    Filter::new(&query.filter).map(Some).map_err(|error| {
        ApiError::bad_request(format!(
            "failed to create result paginator: failed to read filter expression: {error}"
        ))
    })
}

/// Pages through `items` (already in token order). `shown` is the form the
/// API shows an item in, which is what `?filter=` sees; it is only built
/// when there is a filter.
pub fn paginate<'a, T: 'a, S: Serialize>(
    items: impl Iterator<Item = &'a T>,
    query: &QueryOptions,
    filter: Option<&Filter>,
    shown: impl Fn(&T) -> S,
    token_of: impl Fn(&T) -> &str,
) -> Result<Page<&'a T>, ApiError> {
    let per_page = usize::try_from(query.per_page).unwrap_or(0);
    let mut page = Page {
        items: Vec::new(),
        next_token: None,
    };
    for item in items {
        if !query.next_token.is_empty() && token_of(item) < query.next_token.as_str() {
            continue;
        }
        if let Some(filter) = filter {
            let datum = serde_json::to_value(shown(item))
                .map_err(|error| ApiError::internal(error.to_string()))?;
            let keep = filter.matches(&datum).map_err(|error| {
                ApiError::bad_request(format!("failed to read result page: {error}"))
            })?;
            if !keep {
                continue;
            }
        }
        if per_page > 0 && page.items.len() == per_page {
            page.next_token = Some(token_of(item).to_string());
            break;
        }
        page.items.push(item);
    }
    Ok(page)
}
