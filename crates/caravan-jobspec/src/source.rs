//! The text being parsed and the file name its errors are reported against.

use std::ops::Range;

use hcl::edit::Span;

use crate::error::{ErrorKind, Location, ParseError};

#[derive(Clone, Copy)]
pub(crate) struct Source<'a> {
    pub file: &'a str,
    pub text: &'a str,
}

impl<'a> Source<'a> {
    /// An error at `span` (when the parser recorded one).
    pub fn error(&self, kind: ErrorKind, span: Option<Range<usize>>) -> ParseError {
        ParseError {
            kind,
            location: span.map(|span| Location::of(self.file, self.text, span)),
        }
    }

    /// An error at the node `at`.
    pub fn error_at(&self, kind: ErrorKind, at: &dyn Span) -> ParseError {
        self.error(kind, at.span())
    }

    /// Parses this source as an HCL body; a syntax error names its line and
    /// column.
    pub fn parse_body(&self) -> Result<hcl::edit::structure::Body, ParseError> {
        hcl::edit::parser::parse_body(self.text).map_err(|error| {
            let offset = error.location().offset();
            // The range covers the offending character (none at a line end
            // or the end of input), as HCL's one-character subjects do.
            let end = match self.text.get(offset..).and_then(|rest| rest.chars().next()) {
                Some(c) if c != '\n' && c != '\r' => offset + c.len_utf8(),
                _ => offset,
            };
            self.error(
                ErrorKind::Syntax {
                    message: error.message().to_string(),
                },
                Some(offset..end),
            )
        })
    }
}
