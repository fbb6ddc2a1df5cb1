//! `/v1/operator/`: the Raft configuration, autopilot and scheduler
//! configuration.

use caravan_api_types::operator::{
    AutopilotConfiguration, SchedulerConfiguration, SchedulerConfigurationResponse,
    SchedulerSetConfigurationResponse,
};
use caravan_server::ServerError;
use caravan_state::{Command, Table};
use http::StatusCode;

use crate::blocking::blocking_query;
use crate::error::ApiError;
use crate::reply::Reply;
use crate::route::{
    endpoint, Consistency, Request, Route, DELETE, GET, MANAGEMENT, OPERATOR_READ, OPERATOR_WRITE,
    PUT, PUT_POST,
};

pub fn routes() -> Vec<Route> {
    vec![
        Route {
            path: "/v1/operator/raft/configuration",
            endpoints: vec![endpoint(
                GET,
                MANAGEMENT,
                Consistency::LeaderUnlessStale,
                raft_configuration,
            )],
            wrong_method: StatusCode::METHOD_NOT_ALLOWED,
        },
        Route {
            path: "/v1/operator/autopilot/configuration",
            endpoints: vec![
                endpoint(
                    GET,
                    OPERATOR_READ,
                    Consistency::LeaderUnlessStale,
                    get_autopilot,
                ),
                endpoint(PUT, OPERATOR_WRITE, Consistency::Leader, put_autopilot),
            ],
            // Nomad answers a wrong verb here with 404.
            wrong_method: StatusCode::NOT_FOUND,
        },
        Route {
            path: "/v1/operator/raft/peer",
            endpoints: vec![endpoint(
                DELETE,
                MANAGEMENT,
                Consistency::Leader,
                remove_peer,
            )],
            wrong_method: StatusCode::NOT_FOUND,
        },
        Route {
            path: "/v1/operator/raft/transfer-leadership",
            endpoints: vec![endpoint(
                PUT_POST,
                MANAGEMENT,
                Consistency::Leader,
                transfer_leadership,
            )],
            wrong_method: StatusCode::METHOD_NOT_ALLOWED,
        },
        Route {
            path: "/v1/operator/autopilot/health",
            endpoints: vec![endpoint(
                GET,
                OPERATOR_READ,
                Consistency::Leader,
                autopilot_health,
            )],
            wrong_method: StatusCode::NOT_FOUND,
        },
        Route {
            path: "/v1/operator/scheduler/configuration",
            endpoints: vec![
                endpoint(
                    GET,
                    OPERATOR_READ,
                    Consistency::LeaderUnlessStale,
                    get_scheduler,
                ),
                endpoint(PUT_POST, OPERATOR_WRITE, Consistency::Leader, put_scheduler),
            ],
            wrong_method: StatusCode::METHOD_NOT_ALLOWED,
        },
    ]
}

async fn raft_configuration(request: Request) -> Result<Reply, ApiError> {
    Reply::json(&crate::status::raft_configuration(&request)?)
}

/// `DELETE /v1/operator/raft/peer?address=IP:PORT` or `?id=ID`: exactly
/// one of the two. Removing the leader makes it step down.
async fn remove_peer(request: Request) -> Result<Reply, ApiError> {
    let address = request.query_value("address").filter(|a| !a.is_empty());
    let id = request.query_value("id").filter(|i| !i.is_empty());
    let server = request.server()?;
    let (_, members) = server.raft_configuration();
    let member = match (address, id) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request("Must specify only one of ?id or ?address"))
        }
        (None, None) => {
            return Err(ApiError::bad_request(
                "Must specify either ?id with the server's ID or ?address with IP:port of peer to remove",
            ))
        }
        (Some(address), None) => members
            .iter()
            .find(|m| m.node.rpc_addr == address)
            .ok_or_else(|| {
                ApiError::not_found(format!(
                    "address \"{address}\" was not found in the Raft configuration"
                ))
            })?,
        (None, Some(id)) => members.iter().find(|m| m.node.id == id).ok_or_else(|| {
            ApiError::not_found(format!("id \"{id}\" was not found in the Raft configuration"))
        })?,
    };
    server
        .remove_server(caravan_server::raft_types::raft_id_of(&member.node.id))
        .await
        .map_err(server_error)?;
    Ok(Reply::empty())
}

/// `PUT /v1/operator/raft/transfer-leadership?id=ID` or `?address=IP:PORT`:
/// hands leadership to that voter (Nomad's checks and texts).
async fn transfer_leadership(request: Request) -> Result<Reply, ApiError> {
    let ids = request.query_values("id");
    let addresses = request.query_values("address");
    match (ids.len(), addresses.len()) {
        (0, 0) => return Err(ApiError::bad_request("must specify id or address")),
        (1.., 1..) => return Err(ApiError::bad_request("must specify either id or address")),
        (2.., _) => return Err(ApiError::bad_request("must specify only one id")),
        (_, 2..) => return Err(ApiError::bad_request("must specify only one address")),
        _ => {}
    }
    let server = request.server()?;
    let (_, members) = server.raft_configuration();
    let member = if let Some(id) = ids.first() {
        if id.is_empty() {
            return Err(ApiError::bad_request("id must be non-empty"));
        }
        if uuid::Uuid::parse_str(id).is_err() {
            return Err(ApiError::bad_request(format!("id {id:?} is not a UUID")));
        }
        members.iter().find(|m| &m.node.id == id)
    } else {
        let address = &addresses[0];
        if address.is_empty() {
            return Err(ApiError::bad_request("address must be non-empty"));
        }
        if address.parse::<std::net::SocketAddr>().is_err() {
            return Err(ApiError::bad_request(format!(
                "address {address:?} is not IP:port"
            )));
        }
        members.iter().find(|m| &m.node.rpc_addr == address)
    }
    .ok_or_else(|| ApiError::not_found("server not found in the Raft configuration"))?;
    if !member.voter {
        return Err(ApiError::bad_request(
            "cannot transfer leadership to a non-voter",
        ));
    }
    if !member.leader {
        server
            .transfer_leadership(caravan_server::raft_types::raft_id_of(&member.node.id))
            .await
            .map_err(server_error)?;
    }
    Ok(Reply::empty())
}

/// Every server's health; 429 when any is unhealthy.
async fn autopilot_health(request: Request) -> Result<Reply, ApiError> {
    let server = request.server()?;
    let config = server
        .store()
        .snapshot()
        .autopilot_config()
        .cloned()
        .ok_or_else(|| ApiError::internal("autopilot config not initialized yet"))?;
    let health = server.autopilot().health(&**server, &config);
    let status = if health.healthy {
        StatusCode::OK
    } else {
        StatusCode::TOO_MANY_REQUESTS
    };
    Ok(Reply::json(&health)?.with_status(status))
}

async fn get_autopilot(request: Request) -> Result<Reply, ApiError> {
    let (index, config) = blocking_query(&request, &[Table::AutopilotConfig.into()], |state| {
        let config = state
            .autopilot_config()
            .cloned()
            .ok_or_else(|| ApiError::internal("autopilot config not initialized yet"))?;
        Ok((state.table_index(Table::AutopilotConfig), config))
    })
    .await?;
    Ok(Reply::json(&config)?.query_index(index))
}

async fn put_autopilot(request: Request) -> Result<Reply, ApiError> {
    let cas = cas_parameter(&request)?;
    let config: AutopilotConfiguration = request.json_body("Error parsing autopilot config")?;
    let config = AutopilotConfiguration {
        create_index: 0,
        modify_index: 0,
        ..config
    };
    let write = request
        .server()?
        .apply(Command::AutopilotConfigSet { config, cas })
        .await
        .map_err(server_error)?;
    Ok(Reply::json(&write.result.applied())?.write_index(write.index))
}

async fn get_scheduler(request: Request) -> Result<Reply, ApiError> {
    let (index, config) = blocking_query(&request, &[Table::SchedulerConfig.into()], |state| {
        let config = state
            .scheduler_config()
            .cloned()
            .ok_or_else(|| ApiError::internal("scheduler config not initialized yet"))?;
        Ok((state.table_index(Table::SchedulerConfig), config))
    })
    .await?;
    let server = request.server()?;
    let last_contact = server.last_contact().unwrap_or_default();
    let body = SchedulerConfigurationResponse {
        scheduler_config: config,
        index,
        last_contact: u64::try_from(last_contact.as_nanos()).unwrap_or(u64::MAX),
        known_leader: server.leader().is_some(),
        next_token: String::new(),
    };
    Ok(Reply::json(&body)?.query_index(index))
}

async fn put_scheduler(request: Request) -> Result<Reply, ApiError> {
    let cas = cas_parameter(&request)?;
    let config: SchedulerConfiguration = request.json_body("Error parsing scheduler config")?;
    let config = SchedulerConfiguration {
        create_index: 0,
        modify_index: 0,
        ..config
    }
    .validated()
    .map_err(ApiError::bad_request)?;
    let write = request
        .server()?
        .apply(Command::SchedulerConfigSet { config, cas })
        .await
        .map_err(server_error)?;
    let body = SchedulerSetConfigurationResponse {
        updated: write.result.applied(),
        index: write.index,
    };
    Ok(Reply::json(&body)?.write_index(write.index))
}

/// `?cas=<index>`: a check-and-set write.
fn cas_parameter(request: &Request) -> Result<Option<u64>, ApiError> {
    request
        .query_value("cas")
        .map(|value| {
            value
                .parse::<u64>()
                .map_err(|error| ApiError::bad_request(format!("Error parsing cas value: {error}")))
        })
        .transpose()
}

/// A failed Raft write as Nomad reports it: 500 with the error text.
pub fn server_error(error: ServerError) -> ApiError {
    ApiError::internal(error.to_string())
}
