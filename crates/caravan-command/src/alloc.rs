//! (being written)
use crate::error::CommandResult;

pub fn status(args: &[String]) -> CommandResult {
    let _ = args;
    Err(crate::error::CommandError::failed("not yet"))
}

pub fn logs(args: &[String]) -> CommandResult {
    let _ = args;
    Err(crate::error::CommandError::failed("not yet"))
}

pub fn fs(args: &[String]) -> CommandResult {
    let _ = args;
    Err(crate::error::CommandError::failed("not yet"))
}

pub fn stop(args: &[String]) -> CommandResult {
    let _ = args;
    Err(crate::error::CommandError::failed("not yet"))
}

pub fn restart(args: &[String]) -> CommandResult {
    let _ = args;
    Err(crate::error::CommandError::failed("not yet"))
}

pub fn signal(args: &[String]) -> CommandResult {
    let _ = args;
    Err(crate::error::CommandError::failed("not yet"))
}
