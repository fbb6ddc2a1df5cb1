//! What the server answers over its RPC listener: the router and the node
//! RPCs (job, eval and alloc RPCs will join them).

pub mod forward;
mod node;
pub mod rpc;
