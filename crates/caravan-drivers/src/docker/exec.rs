//! `nomad alloc exec` into a container: the engine's own exec, attached,
//! on a terminal when asked.

use bollard::container::LogOutput;
use bollard::exec::{StartExecOptions, StartExecResults};
use bollard::models::ExecConfig;
use bollard::query_parameters::ResizeExecOptions;
use futures::StreamExt;

use super::{engine_text, not_found, state_of, unreachable, Docker};
use crate::session::Resize;
use crate::{DriverError, ExecOutput, ExecRequest, ExecSession, TaskHandle};

/// How often the engine is asked whether an exec has exited.
const EXIT_POLL: std::time::Duration = std::time::Duration::from_millis(50);

impl Docker {
    pub(super) async fn exec_task(
        &self,
        handle: &TaskHandle,
        request: ExecRequest,
    ) -> Result<ExecSession, DriverError> {
        let state = state_of(handle)?;
        let engine = self.engine().await.map_err(unreachable)?;
        let config = ExecConfig {
            attach_stdin: Some(true),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            tty: Some(request.tty),
            cmd: Some(request.command.clone()),
            // The engine's order: height, then width.
            console_size: request
                .size
                .filter(|_| request.tty)
                .map(|size| vec![usize::from(size.height), usize::from(size.width)]),
            ..Default::default()
        };
        let created = match engine.create_exec(&state.container_id, config).await {
            Ok(created) => created,
            Err(error) if not_found(&error) => return Err(DriverError::NotFound),
            // 409: the container is not running.
            Err(error) if super::status_of(&error).is_some_and(|(code, _)| code == 409) => {
                return Err(DriverError::NotFound)
            }
            Err(error) => {
                return Err(DriverError::Start(format!(
                    "failed to exec into task: {}",
                    engine_text(&error)
                )))
            }
        };
        let options = StartExecOptions {
            detach: false,
            tty: request.tty,
            output_capacity: None,
        };
        let (output, input) = match engine.start_exec(&created.id, Some(options)).await {
            Ok(StartExecResults::Attached { output, input }) => (output, input),
            Ok(StartExecResults::Detached) => {
                return Err(DriverError::Start(
                    "failed to exec into task: the engine did not attach".into(),
                ))
            }
            Err(error) => {
                return Err(DriverError::Start(format!(
                    "failed to exec into task: {}",
                    engine_text(&error)
                )))
            }
        };
        let output = output
            .filter_map(|item| async move {
                match item {
                    Ok(LogOutput::StdOut { message }) | Ok(LogOutput::Console { message }) => {
                        Some(Ok(ExecOutput::Stdout(message.to_vec())))
                    }
                    Ok(LogOutput::StdErr { message }) => {
                        Some(Ok(ExecOutput::Stderr(message.to_vec())))
                    }
                    Ok(LogOutput::StdIn { .. }) => None,
                    Err(error) => Some(Err(DriverError::Io(std::io::Error::other(engine_text(
                        &error,
                    ))))),
                }
            })
            .boxed();
        let exec_id = created.id.clone();
        let exit_engine = engine.clone();
        // The engine records the exit a moment after the output ends:
        // asked until it says the command is no longer running.
        let exit = Box::pin(async move {
            loop {
                let inspect = exit_engine
                    .inspect_exec(&exec_id)
                    .await
                    .map_err(|error| DriverError::Io(std::io::Error::other(engine_text(&error))))?;
                if inspect.running != Some(true) {
                    if let Some(code) = inspect.exit_code {
                        return Ok(i32::try_from(code).unwrap_or(i32::MAX));
                    }
                }
                tokio::time::sleep(EXIT_POLL).await;
            }
        });
        let resize: Option<Resize> = request.tty.then(|| {
            let exec_id = created.id.clone();
            Box::new(move |width: u16, height: u16| {
                let engine = engine.clone();
                let exec_id = exec_id.clone();
                Box::pin(async move {
                    let options = ResizeExecOptions {
                        h: i32::from(height),
                        w: i32::from(width),
                    };
                    let _ = engine.resize_exec(&exec_id, options).await;
                }) as futures::future::BoxFuture<'static, ()>
            }) as Resize
        });
        Ok(ExecSession {
            input,
            output,
            exit,
            resize,
        })
    }
}
