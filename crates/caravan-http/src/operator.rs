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
    endpoint, Consistency, Request, Route, GET, MANAGEMENT, OPERATOR_READ, OPERATOR_WRITE, PUT,
    PUT_POST,
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

async fn get_autopilot(request: Request) -> Result<Reply, ApiError> {
    let (index, config) = blocking_query(&request, &[Table::AutopilotConfig], |state| {
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
    let (index, config) = blocking_query(&request, &[Table::SchedulerConfig], |state| {
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
