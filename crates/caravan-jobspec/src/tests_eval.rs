//! Evaluation: variables, locals, functions, runtime interpolations, errors.

use std::collections::HashMap;

use serde_json::{json, Value};

use crate::{parse, ErrorKind, ParseError, ParseOptions};

const WITH_VARS: &str = r#"
variable "image" {
  type    = string
  default = "redis:7"
}

variable "count" {
  type    = number
  default = 1
}

variable "dcs" {
  type    = list(string)
  default = ["dc1"]
}

job "cache" {
  datacenters = var.dcs
  group "g" {
    count = var.count
    task "redis" {
      driver = "docker"
      config {
        image = "${var.image}-suffix"
      }
    }
  }
}
"#;

fn with(vars: &[(&str, &str)], var_file: Option<&str>) -> ParseOptions {
    ParseOptions {
        vars: vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<HashMap<_, _>>(),
        var_file: var_file.map(str::to_string),
        ..ParseOptions::default()
    }
}

fn run(hcl: &str, options: &ParseOptions) -> Result<Value, ParseError> {
    parse(hcl, options)
}

fn ok(hcl: &str) -> Value {
    run(hcl, &ParseOptions::default()).unwrap_or_else(|e| panic!("parse failed: {e}"))
}

fn first_task(job: &Value) -> &Value {
    &job["TaskGroups"][0]["Tasks"][0]
}

#[test]
fn variables_from_defaults() {
    let job = ok(WITH_VARS);
    assert_eq!(job["Datacenters"], json!(["dc1"]));
    assert_eq!(job["TaskGroups"][0]["Count"], 1);
    assert_eq!(first_task(&job)["Config"]["image"], "redis:7-suffix");
}

#[test]
fn variables_from_options_override_defaults() {
    let job = run(
        WITH_VARS,
        &with(
            &[
                ("image", "redis:8"),
                ("count", "3"),
                ("dcs", r#"["a", "b"]"#),
            ],
            None,
        ),
    )
    .unwrap();
    assert_eq!(first_task(&job)["Config"]["image"], "redis:8-suffix");
    // A number variable given as text becomes a number.
    assert_eq!(job["TaskGroups"][0]["Count"], 3);
    // A list variable's -var value is parsed as HCL.
    assert_eq!(job["Datacenters"], json!(["a", "b"]));
}

#[test]
fn variables_from_var_file_then_options() {
    let file = "image = \"memcached\"\ncount = 2\n";
    let job = run(WITH_VARS, &with(&[], Some(file))).unwrap();
    assert_eq!(first_task(&job)["Config"]["image"], "memcached-suffix");
    assert_eq!(job["TaskGroups"][0]["Count"], 2);
    // -var wins over the var file.
    let job = run(WITH_VARS, &with(&[("count", "5")], Some(file))).unwrap();
    assert_eq!(job["TaskGroups"][0]["Count"], 5);
}

#[test]
fn environment_values_rank_lowest_and_unknown_ones_are_ignored() {
    let mut options = with(&[], None);
    options.env_vars = [("image", "from-env"), ("count", "4"), ("unrelated", "x")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let job = run(WITH_VARS, &options).unwrap();
    assert_eq!(first_task(&job)["Config"]["image"], "from-env-suffix");
    assert_eq!(job["TaskGroups"][0]["Count"], 4);
    options.var_file = Some("count = 7\n".into());
    assert_eq!(
        run(WITH_VARS, &options).unwrap()["TaskGroups"][0]["Count"],
        7
    );
}

#[test]
fn heredocs_strip_indentation() {
    let job =
        ok("job \"j\" {\n  meta {\n    text = <<-EOT\n      a\n        b\n      EOT\n  }\n}\n");
    assert_eq!(job["Meta"]["text"], "a\n  b\n");
}

#[test]
fn missing_variable_is_an_error_naming_it() {
    let hcl = "variable \"region\" {}\n\njob \"j\" {\n  region = var.region\n}\n";
    let e = run(hcl, &ParseOptions::default()).unwrap_err();
    assert_eq!(
        e.kind,
        ErrorKind::UnsetVariable {
            name: "region".into()
        }
    );
    assert!(
        e.to_string()
            .starts_with("input.hcl:1,1-9: Unset variable \"region\""),
        "{e}"
    );
    // Given, it parses.
    let job = run(hcl, &with(&[("region", "eu")], None)).unwrap();
    assert_eq!(job["Region"], "eu");
}

#[test]
fn undeclared_variables_are_refused() {
    let e = run(WITH_VARS, &with(&[("nope", "1")], None)).unwrap_err();
    assert_eq!(
        e.kind,
        ErrorKind::UndefinedArgVariable {
            name: "nope".into()
        }
    );
    assert!(
        e.to_string()
            .starts_with("Undefined -var variable; A \"nope\" variable"),
        "{e}"
    );
    let e = run(WITH_VARS, &with(&[], Some("\nnope = 1\n"))).unwrap_err();
    assert_eq!(
        e.kind,
        ErrorKind::UndefinedFileVariable {
            name: "nope".into()
        }
    );
    assert!(e.to_string().starts_with("variables.hcl:2,1-5: "), "{e}");
    let e = run(WITH_VARS, &with(&[], Some("variable \"x\" {}\n"))).unwrap_err();
    assert_eq!(e.kind, ErrorKind::VariableInVarFile { name: "x".into() });
}

#[test]
fn variable_values_are_checked_against_their_type() {
    let e = run(WITH_VARS, &with(&[("count", "many")], None)).unwrap_err();
    assert!(
        matches!(e.kind, ErrorKind::VariableType { ref name, .. } if name == "count"),
        "{e}"
    );
}

#[test]
fn variable_validation_rules_apply() {
    let hcl = r#"
variable "n" {
  type = number
  validation {
    condition     = var.n > 0
    error_message = "n must be positive."
  }
}
job "j" {
  priority = var.n
}
"#;
    assert_eq!(run(hcl, &with(&[("n", "5")], None)).unwrap()["Priority"], 5);
    let e = run(hcl, &with(&[("n", "-1")], None)).unwrap_err();
    assert_eq!(
        e.kind,
        ErrorKind::VariableValidation {
            source_kind: "cmd".into(),
            message: "n must be positive.".into()
        }
    );
}

#[test]
fn locals_functions_and_for_expressions() {
    let job = ok(r#"
variables {
  name = "Web"
}
locals {
  full  = "${local.base}-${lower(var.name)}"
  base  = upper("app")
  ports = [for p in ["a", "b"] : "port-${p}"]
}
job "j" {
  meta {
    full   = local.full
    joined = join(",", local.ports)
    fmt    = format("%s:%d", "x", 3)
    cond   = length(local.ports) > 1 ? "many" : "one"
  }
}
"#);
    assert_eq!(
        job["Meta"],
        json!({"full": "APP-web", "joined": "port-a,port-b", "fmt": "x:3", "cond": "many"})
    );
}

#[test]
fn runtime_interpolations_stay_literal() {
    let job = ok(r#"
variable "suffix" {
  default = "s"
}
job "j" {
  group "g" {
    task "t" {
      driver = "raw_exec"
      config {
        command = "${NOMAD_ALLOC_DIR}/bin/run"
        args    = ["${NOMAD_PORT_http}", "${node.unique.id}-${var.suffix}", "${env["HOME"]}", "$${literal}"]
      }
      env {
        KERNEL = "${attr.kernel.name}"
        META   = "${meta.rack}"
        BARE   = attr.cpu.arch
      }
      template {
        destination = "local/out"
        data        = <<EOT
port={{ env "NOMAD_PORT_http" }} dir=${NOMAD_TASK_DIR}
%{ for x in ["a"] }${x}%{ endfor }
EOT
      }
    }
  }
}
"#);
    let t = first_task(&job);
    assert_eq!(t["Config"]["command"], "${NOMAD_ALLOC_DIR}/bin/run");
    assert_eq!(
        t["Config"]["args"],
        json!([
            "${NOMAD_PORT_http}",
            "${node.unique.id}-s",
            "${env[\"HOME\"]}",
            "${literal}"
        ])
    );
    assert_eq!(
        t["Env"],
        json!({"KERNEL": "${attr.kernel.name}", "META": "${meta.rack}", "BARE": "${attr.cpu.arch}"})
    );
    assert_eq!(
        t["Templates"][0]["EmbeddedTmpl"],
        "port={{ env \"NOMAD_PORT_http\" }} dir=${NOMAD_TASK_DIR}\na\n"
    );
}

#[test]
fn syntax_error_names_line_and_column() {
    let e = run(
        "job \"j\" {\n  group \"g\" {\n    count = = 1\n  }\n}\n",
        &ParseOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(e.kind, ErrorKind::Syntax { .. }), "{e}");
    let location = e.location.clone().expect("a syntax error has a position");
    assert_eq!((location.line, location.column), (3, 13));
    assert!(
        e.to_string()
            .starts_with("input.hcl:3,13-14: Invalid syntax; "),
        "{e}"
    );
    let named = ParseOptions {
        file_name: "web.nomad.hcl".into(),
        ..ParseOptions::default()
    };
    let e = run("job \"j\" {\n", &named).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("web.nomad.hcl:1,10: Invalid syntax; "),
        "{e}"
    );
}

#[test]
fn evaluation_errors_name_the_expression() {
    let e = run(
        "job \"j\" {\n  region = var.nope\n}\n",
        &ParseOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(e.kind, ErrorKind::Eval { .. }), "{e}");
    assert!(e.to_string().starts_with("input.hcl:2,12-20: "), "{e}");
    let e = run(
        "job \"j\" {\n  region = nosuchfn(1)\n}\n",
        &ParseOptions::default(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("nosuchfn"), "{e}");
}

/// jobspec2's own cases: whatever a client-side interpolation looks like, it
/// comes back exactly as written.
#[test]
fn odd_runtime_interpolations_are_kept_verbatim() {
    for text in [
        "plain",
        "foo-${BAR}",
        "foo-${attr.network.dev-us-east1-relay-vpc.external-ip.0}",
        r#"${env["BLAH"]}"#,
        r#"${mixed-indexing.0[3]["FOO"].5}"#,
        r#"with spaces ${   root.  field[  "FOO"].5  }"#,
    ] {
        let hcl = format!("job \"example\" {{\n  region = \"{text}\"\n}}\n");
        let job = run(&hcl, &ParseOptions::default()).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(job["Region"], text, "{hcl}");
    }
    assert_eq!(
        ok("job \"example\" {\n  region = meta.mytest\n}\n")["Region"],
        "${meta.mytest}"
    );
    // Inside a larger expression only the reference itself becomes text.
    let job = ok(r#"
variable "x" {
  default = "a"
}
job "example" {
  region    = "${var.x == "a" ? attr.y : "z"}"
  namespace = "${upper(var.x)}-${node.class}"
}
"#);
    assert_eq!(job["Region"], "${attr.y}");
    assert_eq!(job["Namespace"], "A-${node.class}");
}
