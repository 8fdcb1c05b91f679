use std::process::ExitCode;

use crate::args::{AuditArgs, AuditCommand};

pub async fn run(args: AuditArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        AuditCommand::Verify { storage } => {
            // Offline: the database and the master key (KEYWARD_MASTER_KEY or the key file in
            // the data directory) are all it takes; no server needs to run.
            let (store, master) = keyward_server::open_storage(
                &storage.data_dir,
                storage.database_url.as_deref(),
                storage.master_key.as_deref(),
            )
            .await?;
            let result =
                keyward_server::audit::verify_chain(store.as_ref(), &master.audit_key()).await?;
            match &result.broken {
                None => {
                    println!(
                        "ok: {} audit events verified (master key {})",
                        result.checked,
                        master.id_hex()
                    );
                    println!("{}", result.summary());
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
