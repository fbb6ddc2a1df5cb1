//! (being written)
use crate::error::CommandResult;

pub fn status(args: &[String]) -> CommandResult {
    let _ = args;
    Err(crate::error::CommandError::failed("not yet"))
}

pub fn list(args: &[String]) -> CommandResult {
    let _ = args;
    Err(crate::error::CommandError::failed("not yet"))
}
