//! (being written)
use crate::error::CommandResult;

pub fn members(args: &[String]) -> CommandResult {
    let _ = args;
    Err(crate::error::CommandError::failed("not yet"))
}

pub fn join(args: &[String]) -> CommandResult {
    let _ = args;
    Err(crate::error::CommandError::failed("not yet"))
}

pub fn force_leave(args: &[String]) -> CommandResult {
    let _ = args;
    Err(crate::error::CommandError::failed("not yet"))
}
