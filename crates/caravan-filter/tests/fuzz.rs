//! Property tests ("fuzzing") for the filter parser and evaluator: no
//! input, however malformed, long or deeply nested, panics or overflows the
//! stack; every failure is an `Err`.
//!
//! 256 cases per property by default; `CARAVAN_FUZZ_CASES=N` raises it
//! (`bench/fuzz.sh` does).

use caravan_filter::{Filter, FilterError, MAX_FILTER_DEPTH, MAX_FILTER_LEN};
use proptest::prelude::*;
use serde_json::{json, Value};

fn config() -> ProptestConfig {
    let cases = std::env::var("CARAVAN_FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(256);
    ProptestConfig {
        cases,
        // Failures are reported, not saved next to the sources.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn datum() -> Value {
    json!({
        "ID": "f7476465",
        "Status": "ready",
        "Drain": false,
        "NodeClass": "",
        "Meta": {"rack": "r1"},
        "Attributes": {"os.name": "debian"},
        "Tags": ["a", "b"],
        "CreateIndex": 6,
        "Nested": {"a": {"b": [1, {"c": null}]}}
    })
}

/// Parses and, when that succeeds, evaluates; either may fail, neither may
/// panic.
fn exercise(text: &str) {
    if let Ok(filter) = Filter::new(text) {
        let _ = filter.matches(&datum());
        let _ = filter.matches(&Value::Null);
        let _ = filter.matches(&json!([1, 2]));
    }
}

/// Words and symbols the grammar knows, so that random sequences of them
/// get past the tokenizer and into the parser.
fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("(".to_string()),
        Just(")".to_string()),
        Just("not".to_string()),
        Just("and".to_string()),
        Just("or".to_string()),
        Just("==".to_string()),
        Just("!=".to_string()),
        Just("in".to_string()),
        Just("is".to_string()),
        Just("empty".to_string()),
        Just("contains".to_string()),
        Just("matches".to_string()),
        Just("Status".to_string()),
        Just("Meta.rack".to_string()),
        Just("Attributes[\"os.name\"]".to_string()),
        Just("\"ready\"".to_string()),
        Just("`r.*`".to_string()),
        Just("\"(\"".to_string()),
        Just("Nonsense".to_string()),
        Just("[".to_string()),
        Just("\"".to_string()),
        "[a-zA-Z0-9._]{1,8}",
    ]
}

fn comparison() -> impl Strategy<Value = String> {
    let selector = prop_oneof![
        Just("Status"),
        Just("Meta.rack"),
        Just("Tags"),
        Just("CreateIndex"),
        Just("Nested.a.b.1.c"),
        Just("Attributes[\"os.name\"]"),
        Just("Unknown"),
    ];
    let value = "[a-z0-9.*^$()\\[\\]]{0,6}";
    (selector, 0..8usize, value).prop_map(|(selector, op, value)| match op {
        0 => format!("{selector} == {value:?}"),
        1 => format!("{selector} != {value:?}"),
        2 => format!("{selector} is empty"),
        3 => format!("{selector} is not empty"),
        4 => format!("{value:?} in {selector}"),
        5 => format!("{value:?} not in {selector}"),
        6 => format!("{selector} contains {value:?}"),
        _ => format!("{selector} matches {value:?}"),
    })
}

/// Well-formed expressions, nested up to twice the depth limit.
fn expression() -> impl Strategy<Value = String> {
    comparison().prop_recursive(2 * MAX_FILTER_DEPTH as u32, 512, 4, |inner| {
        prop_oneof![
            inner.clone().prop_map(|e| format!("not {e}")),
            inner.clone().prop_map(|e| format!("({e})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} and {b}")),
            (inner.clone(), inner).prop_map(|(a, b)| format!("{a} or {b}")),
        ]
    })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_strings_never_panic(text in any::<String>()) {
        exercise(&text);
    }

    #[test]
    fn arbitrary_printable_strings_never_panic(text in "[ -~]{0,200}") {
        exercise(&text);
    }

    #[test]
    fn token_soup_never_panics(tokens in prop::collection::vec(token(), 0..64)) {
        exercise(&tokens.join(" "));
    }

    #[test]
    fn generated_expressions_parse_or_name_a_limit(text in expression()) {
        match Filter::new(&text) {
            Ok(filter) => {
                let _ = filter.matches(&datum());
            }
            // A generated comparison may carry a bad regex; otherwise the
            // only way to fail is a limit.
            Err(FilterError::TooLong(_) | FilterError::TooDeep | FilterError::BadRegex(_)) => {}
            Err(other) => prop_assert!(false, "{text:?}: {other}"),
        }
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash(
        depth in 0..20_000usize,
        opener in prop_oneof![Just("("), Just("not "), Just("not ("), Just("((")],
    ) {
        let text = format!("{}Status == ready", opener.repeat(depth));
        let result = Filter::new(&text);
        if text.len() > MAX_FILTER_LEN {
            prop_assert_eq!(result.unwrap_err(), FilterError::TooLong(text.len()));
        } else if depth * opener.matches(['(', 'n']).count() > MAX_FILTER_DEPTH {
            prop_assert_eq!(result.unwrap_err(), FilterError::TooDeep);
        }
    }
}
