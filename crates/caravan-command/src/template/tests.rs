use serde_json::json;

use super::render;

fn ok(template: &str, data: serde_json::Value) -> String {
    render(template, &data).unwrap_or_else(|error| panic!("{template:?}: {error}"))
}

fn err(template: &str, data: serde_json::Value) -> String {
    match render(template, &data) {
        Ok(text) => panic!("{template:?} rendered {text:?}"),
        Err(error) => error.to_string(),
    }
}

#[test]
fn text_dot_and_fields() {
    let data = json!({"Name": "web", "Job": {"ID": "j1", "Count": 3}, "Tags": null});
    assert_eq!(ok("plain", json!({})), "plain");
    assert_eq!(ok("{{.Name}}", data.clone()), "web");
    assert_eq!(
        ok("id={{.Job.ID}} n={{.Job.Count}}", data.clone()),
        "id=j1 n=3"
    );
    assert_eq!(ok("{{.}}", json!("x")), "x");
    assert_eq!(ok("{{.Tags.dc}}", data.clone()), "<nil>");
    assert_eq!(ok("{{$.Name}}", data.clone()), "web");
    assert_eq!(ok("{{.}}", json!([1, "a", true])), "[1 a true]");
    assert_eq!(ok("{{.}}", json!({"b": 2, "a": 1})), "map[a:1 b:2]");
    assert!(err("{{.Missing}}", data.clone()).contains("can't evaluate field Missing"));
    assert!(err("{{.Name.X}}", data).contains("can't evaluate field X in string"));
}

#[test]
fn range_over_lists_and_maps() {
    let data = json!({"Items": [{"N": "a"}, {"N": "b"}], "M": {"z": 1, "a": 2}, "E": []});
    assert_eq!(ok("{{range .Items}}{{.N}},{{end}}", data.clone()), "a,b,");
    assert_eq!(
        ok(
            "{{range $i, $e := .Items}}{{$i}}={{$e.N}} {{end}}",
            data.clone()
        ),
        "0=a 1=b "
    );
    assert_eq!(
        ok("{{range $e := .Items}}{{$e.N}}{{end}}", data.clone()),
        "ab"
    );
    assert_eq!(
        ok("{{range $k, $v := .M}}{{$k}}:{{$v}};{{end}}", data.clone()),
        "a:2;z:1;"
    );
    assert_eq!(
        ok("{{range .E}}x{{else}}empty{{end}}", data.clone()),
        "empty"
    );
    assert!(err("{{range .Items}}", data.clone()).contains("without {{end}}"));
    assert!(err("{{range .Items.0}}{{end}}", data).contains("can't evaluate"));
}

#[test]
fn conditions_use_go_truthiness() {
    let data = json!({"T": true, "F": false, "Z": 0, "S": "", "L": [], "N": null, "X": "x"});
    for falsy in ["F", "Z", "S", "L", "N"] {
        assert_eq!(
            ok(
                &format!("{{{{if .{falsy}}}}}y{{{{else}}}}n{{{{end}}}}"),
                data.clone()
            ),
            "n"
        );
    }
    assert_eq!(ok("{{if .T}}y{{else}}n{{end}}", data.clone()), "y");
    assert_eq!(
        ok("{{if .F}}1{{else if .X}}2{{else}}3{{end}}", data.clone()),
        "2"
    );
    assert_eq!(ok("{{if not .F}}ok{{end}}", data.clone()), "ok");
    assert_eq!(ok("{{if and .T .X}}both{{end}}", data.clone()), "both");
    assert_eq!(
        ok("{{if or .F .Z}}any{{else}}none{{end}}", data.clone()),
        "none"
    );
    assert_eq!(ok("{{if eq .X \"x\" \"y\"}}eq{{end}}", data.clone()), "eq");
    assert_eq!(
        ok(
            "{{if lt 1 2}}lt{{end}}{{if ge .Z 0}}ge{{end}}",
            data.clone()
        ),
        "ltge"
    );
    assert_eq!(
        ok(
            "{{with .X}}[{{.}}]{{end}}{{with .S}}no{{else}}else{{end}}",
            data.clone()
        ),
        "[x]else"
    );
    assert!(err("{{if lt .X 1}}{{end}}", data).contains("incompatible types"));
}

#[test]
fn trimming_and_comments() {
    let data = json!({"A": "a", "B": "b"});
    assert_eq!(ok("{{.A}}  \n  {{- .B}}", data.clone()), "ab");
    assert_eq!(ok("{{.A -}}\n\t {{.B}}", data.clone()), "ab");
    assert_eq!(ok("x {{/* note */}} y", data.clone()), "x  y");
    assert_eq!(ok("x {{- /* note */ -}} y", data.clone()), "xy");
    // A comment may hold quotes and braces.
    assert_eq!(ok("x{{/* don't }} \" */}}y", data.clone()), "xy");
    // `{{-3}}` is the number -3, not a trim marker.
    assert_eq!(ok("{{-3}}", data), "-3");
}

#[test]
fn functions() {
    let data = json!({"A": "web", "N": 7, "L": [1, 2, 3], "M": {"k": "v"}, "F": 1.5});
    assert_eq!(
        ok("{{printf \"%s has %d\" .A .N}}", data.clone()),
        "web has 7"
    );
    assert_eq!(
        ok("{{printf \"%v|%q|%t\" .L .A true}}", data.clone()),
        "[1 2 3]|\"web\"|true"
    );
    assert_eq!(
        ok(
            "{{printf \"%-5s|%5s|%03d|%.2f\" .A .A .N .F}}",
            data.clone()
        ),
        "web  |  web|007|1.50"
    );
    assert_eq!(ok("{{printf \"%x %d%%\" 255 5}}", data.clone()), "ff 5%");
    assert_eq!(
        ok("{{printf \"%d %s\" .N}}", data.clone()),
        "7 %!s(MISSING)"
    );
    assert_eq!(ok("{{printf \"%d\" .A}}", data.clone()), "%!d(string=web)");
    assert_eq!(ok("{{printf \"x\" 1}}", data.clone()), "x%!(EXTRA int=1)");
    assert_eq!(
        ok("{{len .L}} {{len .A}} {{len .M}}", data.clone()),
        "3 3 1"
    );
    assert_eq!(ok("{{index .L 1}} {{index .M \"k\"}}", data.clone()), "2 v");
    assert_eq!(ok("{{json .M}}", data.clone()), "{\"k\":\"v\"}");
    assert_eq!(ok("{{.L | len}}", data.clone()), "3");
    assert_eq!(ok("{{.A | printf \"%s!\"}}", data.clone()), "web!");
    assert_eq!(ok("{{print .A 1 2 \"b\"}}", data.clone()), "web1 2b");
    assert_eq!(ok("{{(index .L 0)}}", data.clone()), "1");
    assert_eq!(ok("{{$x := .A}}{{$x}}-{{$x}}", data.clone()), "web-web");
    assert!(err("{{nope .A}}", data.clone()).contains("function \"nope\" not defined"));
    assert!(err("{{len .N}}", data.clone()).contains("len of type int"));
    assert!(err("{{index .L 9}}", data.clone()).contains("out of range"));
    assert!(err("{{.A .N}}", data).contains("non-function"));
}

#[test]
fn malformed_templates_are_errors() {
    let data = json!({"A": 1});
    for (template, expected) in [
        ("{{.A", "unclosed action"),
        ("{{end}}", "unexpected {{end}}"),
        ("{{else}}", "unexpected {{else}}"),
        ("{{if .A}}x", "without {{end}}"),
        ("{{if .A}}{{else}}", "without {{end}}"),
        ("{{}}", "missing value"),
        ("{{\"abc}}", "unterminated quoted string"),
        ("{{(.A}}", "unclosed left paren"),
        ("{{.A | }}", "missing value"),
        ("{{template \"x\"}}", "not supported"),
        ("{{$x = 1}}", "not supported"),
        ("{{$y}}", "undefined variable"),
        ("{{.A!}}", "unexpected"),
        ("{{/* open }}", "unclosed comment"),
        ("", "template needs to be specified"),
    ] {
        let message = err(template, data.clone());
        assert!(message.contains(expected), "{template:?}: {message}");
    }
}

#[test]
fn deep_nesting_is_refused_not_overflowed() {
    let deep = "{{if .A}}".repeat(10_000) + &"{{end}}".repeat(10_000);
    assert!(err(&deep, json!({"A": true})).contains("nested too deeply"));
    let parens = "{{".to_string() + &"(".repeat(10_000) + "1" + &")".repeat(10_000) + "}}";
    assert!(err(&parens, json!({})).contains("nested too deeply"));
}

#[test]
fn variables_end_with_their_block() {
    let data = json!({"L": [1]});
    assert!(
        err("{{range .L}}{{$x := .}}{{end}}{{$x}}", data.clone()).contains("undefined variable")
    );
    assert_eq!(ok("{{range $i, $e := .L}}{{$.L}}{{end}}", data), "[1]");
}

#[test]
fn nested_ranges_that_multiply_are_stopped() {
    let data = json!({"L": (0..100).collect::<Vec<_>>()});
    let template =
        "{{range .L}}{{range $.L}}{{range $.L}}{{range $.L}}x{{end}}{{end}}{{end}}{{end}}";
    let error = render(template, &data).unwrap_err().to_string();
    assert!(error.contains("too expensive"), "{error}");
}
