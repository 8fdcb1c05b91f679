use std::process::ExitCode;

use crate::args::{AuditArgs, AuditCommand};

pub async fn run(args: AuditArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        AuditCommand::Verify { storage } => {
            let (store, _) = keyward_server::open_storage(
                &storage.data_dir,
                storage.database_url.as_deref(),
                storage.master_key.as_deref(),
            )
            .await?;
            let result = keyward_server::audit::verify_chain(store.as_ref()).await?;
            match result.broken {
                None => {
                    println!("ok: {} audit events verified", result.checked);
                    Ok(ExitCode::SUCCESS)
                }
                Some(broken) => {
                    println!("FAILED after {} good events: {broken}", result.checked);
                    println!("first broken event: {}", broken.seq());
                    Ok(ExitCode::FAILURE)
                }
            }
        }
    }
}
