//! (being written)
use crate::error::CommandResult;

pub fn bootstrap(args: &[String]) -> CommandResult {
    let _ = args;
    Err(crate::error::CommandError::failed("not yet"))
}

pub fn policy_apply(args: &[String]) -> CommandResult {
    let _ = args;
    Err(crate::error::CommandError::failed("not yet"))
}

pub fn policy_list(args: &[String]) -> CommandResult {
    let _ = args;
    Err(crate::error::CommandError::failed("not yet"))
}

pub fn policy_info(args: &[String]) -> CommandResult {
    let _ = args;
    Err(crate::error::CommandError::failed("not yet"))
}

pub fn policy_delete(args: &[String]) -> CommandResult {
    let _ = args;
    Err(crate::error::CommandError::failed("not yet"))
}

pub fn token_create(args: &[String]) -> CommandResult {
    let _ = args;
    Err(crate::error::CommandError::failed("not yet"))
}

pub fn token_list(args: &[String]) -> CommandResult {
    let _ = args;
    Err(crate::error::CommandError::failed("not yet"))
}

pub fn token_info(args: &[String]) -> CommandResult {
    let _ = args;
    Err(crate::error::CommandError::failed("not yet"))
}

pub fn token_self(args: &[String]) -> CommandResult {
    let _ = args;
    Err(crate::error::CommandError::failed("not yet"))
}

pub fn token_update(args: &[String]) -> CommandResult {
    let _ = args;
    Err(crate::error::CommandError::failed("not yet"))
}

pub fn token_delete(args: &[String]) -> CommandResult {
    let _ = args;
    Err(crate::error::CommandError::failed("not yet"))
}
