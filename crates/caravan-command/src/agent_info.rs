//! (being written)
use crate::error::CommandResult;

pub fn run(args: &[String]) -> CommandResult {
    let _ = args;
    Err(crate::error::CommandError::failed("not yet"))
}
