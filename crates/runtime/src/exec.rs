//! Runs the command with the prepared environment, forwards the signals a supervisor sends, and
//! returns its exit status the way a shell reports it (SPEC §5 step 5).

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;

use tokio::signal::unix::{SignalKind, signal};

use crate::RuntimeError;

pub async fn run_child(
    command: &[String],
    env: BTreeMap<String, String>,
) -> Result<i32, RuntimeError> {
    let Some((program, args)) = command.split_first() else {
        return Err(RuntimeError::NoCommand);
    };
    // Listen before the child exists: a supervisor may signal as soon as the child shows signs of
    // life, and a signal with no listener yet would kill us with the default action, leaving the
    // child running and the token files behind.
    let listen = |kind: SignalKind| signal(kind).map_err(RuntimeError::Signals);
    let mut term = listen(SignalKind::terminate())?;
    let mut int = listen(SignalKind::interrupt())?;
    let mut hup = listen(SignalKind::hangup())?;
    let mut quit = listen(SignalKind::quit())?;
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .env_clear()
        .envs(env)
        .spawn()
        .map_err(|e| RuntimeError::Spawn {
            program: program.clone(),
            detail: e.to_string(),
        })?;
    let pid = child.id();
    loop {
        let forward = tokio::select! {
            status = child.wait() => {
                let status = status.map_err(|e| RuntimeError::Spawn { program: program.clone(), detail: e.to_string() })?;
                return Ok(status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0)));
            }
            _ = term.recv() => libc::SIGTERM,
            _ = int.recv() => libc::SIGINT,
            _ = hup.recv() => libc::SIGHUP,
            _ = quit.recv() => libc::SIGQUIT,
        };
        if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
            // SAFETY: kill(2) with our own child's pid and a valid signal number has no memory
            // effects; the child is not yet reaped (we are still waiting on it), so the pid is its.
            unsafe {
                libc::kill(pid, forward);
            }
        }
    }
}
