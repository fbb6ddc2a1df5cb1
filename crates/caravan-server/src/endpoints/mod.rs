//! What the server answers over its RPC listener: the router, the node
//! RPCs and the node allocation RPCs (job and eval RPCs will join them).

pub mod forward;
mod node;
pub mod node_allocs;
pub mod rpc;
