//! `ParseError`: what went wrong and where, rendered the way Nomad's HCL
//! diagnostics are (`input.hcl:3,5-8: Unsupported argument; An argument named
//! "foo" is not expected here.`), so `Failed to parse job: <error>` reads the
//! same as Nomad's answer.

use std::fmt;
use std::ops::Range;

/// A source position range, one-based lines and columns (columns count
/// characters, as HCL's do).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub end_line: usize,
    pub end_column: usize,
}

impl Location {
    /// The location of byte range `span` in `source`.
    pub(crate) fn of(file: &str, source: &str, span: Range<usize>) -> Location {
        let (line, column) = line_col(source, span.start);
        let (end_line, end_column) = line_col(source, span.end.max(span.start));
        Location {
            file: file.to_string(),
            line,
            column,
            end_line,
            end_column,
        }
    }
}

fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(source.len());
    let before = source.get(..offset).unwrap_or(source);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

impl fmt::Display for Location {
    // HCL's `Range.String()`: `file:line,col-endcol` on one line,
    // `file:line,col-endline,endcol` across lines.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{},{}", self.file, self.line, self.column)?;
        if self.end_line != self.line {
            write!(f, "-{},{}", self.end_line, self.end_column)
        } else if self.end_column != self.column {
            write!(f, "-{}", self.end_column)
        } else {
            Ok(())
        }
    }
}

/// What went wrong; its Display is HCL's `Summary; Detail`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ErrorKind {
    #[error("Invalid syntax; {message}")]
    Syntax { message: String },
    #[error("Unsupported argument; An argument named \"{name}\" is not expected here.")]
    UnsupportedArgument { name: String },
    #[error("Unsupported block type; Blocks of type \"{name}\" are not expected here.")]
    UnsupportedBlock { name: String },
    #[error("Missing required argument; The argument \"{name}\" is required, but no definition was found.")]
    MissingArgument { name: String },
    #[error("Attribute redefined; The argument \"{name}\" was already set.")]
    DuplicateArgument { name: String },
    #[error("Duplicate {name} block; Only one block of type \"{name}\" is allowed.")]
    DuplicateBlock { name: String },
    #[error("{}", labels_message(.block, *.expected, *.given))]
    Labels {
        block: String,
        expected: usize,
        given: usize,
    },
    #[error("Missing job block; A job block is required")]
    MissingJob,
    #[error("Duplicate variable; Duplicate {name} variable definition found.")]
    DuplicateVariable { name: String },
    #[error("Duplicate value in locals; Duplicate {name} definition found.")]
    DuplicateLocal { name: String },
    #[error("Unset variable \"{name}\"; A used variable must be set or have a default value; see https://developer.hashicorp.com/nomad/docs/reference/hcl2/variables  for details.")]
    UnsetVariable { name: String },
    #[error("Undefined -var variable; A \"{name}\" variable was passed in the command line but was not found in known variables. To declare variable \"{name}\", place this block in your job file")]
    UndefinedArgVariable { name: String },
    #[error("Undefined variable; A \"{name}\" variable was set but was not found in known variables. To declare variable \"{name}\", place this block in your job files")]
    UndefinedFileVariable { name: String },
    #[error("Variable declaration in a .var file; A .var file is used to assign values to variables that have already been declared in job files, not to declare new variables. To declare variable \"{name}\", place this block in one of your job files")]
    VariableInVarFile { name: String },
    #[error("Invalid value for variable; The value for {name} is not compatible with the variable's type constraint: {reason}.")]
    VariableType { name: String, reason: String },
    #[error("Invalid value for {source_kind} variable; {message}")]
    VariableValidation {
        source_kind: String,
        message: String,
    },
    #[error("Invalid type specification; {detail}")]
    TypeSpec { detail: String },
    #[error("Unsuitable value type; {detail}")]
    Unsuitable { detail: String },
    #[error("Invalid expression; {detail}")]
    Eval { detail: String },
    #[error("Invalid scaling policy name; scaling policy name must be \"cpu\" or \"mem\"")]
    ScalingName,
}

/// HCL's wording for a block with the wrong number of labels.
fn labels_message(block: &str, expected: usize, given: usize) -> String {
    if given < expected {
        format!("Missing name for {block}; All {block} blocks must have {expected} labels (name).")
    } else if expected == 0 {
        format!("Extraneous label for {block}; No labels are expected for {block} blocks.")
    } else {
        format!("Extraneous label for {block}; Only {expected} labels (name) are expected for {block} blocks.")
    }
}

/// A parse failure and, when it has one, its place in the source.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ParseError {
    pub kind: ErrorKind,
    pub location: Option<Location>,
}

impl ParseError {
    pub(crate) fn new(kind: ErrorKind) -> ParseError {
        ParseError {
            kind,
            location: None,
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.location {
            Some(location) => write!(f, "{location}: {}", self.kind),
            None => write!(f, "{}", self.kind),
        }
    }
}
