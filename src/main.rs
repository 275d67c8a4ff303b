//! The `cistern` binary: parse the command line, then run the subcommand.

use cistern::config::{self, Command};

fn main() -> anyhow::Result<()> {
    let cli = match config::parse_from(std::env::args().collect()) {
        Ok(cli) => cli,
        Err(config::ConfigError::Clap(e)) => e.exit(),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    match cli.command {
        Command::Serve(args) => serve(args),
        Command::Pool(args) => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let code = runtime.block_on(cistern::cli::pool::run(args))?;
            std::process::exit(code);
        }
        Command::Backup(args) => backup_command(cistern::cli::backup::backup(args)),
        Command::Snapshots(args) => backup_command(cistern::cli::backup::snapshots(args)),
        Command::Restore(args) => backup_command(cistern::cli::backup::restore(args)),
        Command::Diff(args) => backup_command(cistern::cli::backup::diff(args)),
        Command::Forget(args) => backup_command(cistern::cli::backup::forget(args)),
        Command::Mirror(args) => backup_command(cistern::cli::backup::mirror(args)),
        Command::Healthcheck(args) => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            std::process::exit(runtime.block_on(cistern::cli::healthcheck::run(args)));
        }
    }
}

/// Runs a backup command on two threads (reading files and talking to the
/// store overlap) and exits with its code.
fn backup_command(command: impl std::future::Future<Output = i32>) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    std::process::exit(runtime.block_on(command));
}

fn serve(args: config::ServeArgs) -> anyhow::Result<()> {
    cistern::telemetry::return_large_allocations();
    cistern::telemetry::init_logs(args.log_format, &args.log_level);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let (server, generated) = cistern::startup::Server::build(args).await?;
        if let Some(root) = generated {
            // Printed once, straight to the terminal and never to the log.
            eprintln!(
                "\nNo root credentials were configured, so these were generated.\n\
                 They are shown only this once; keep them safe:\n\n  \
                 CISTERN_ROOT_USER={}\n  CISTERN_ROOT_PASSWORD={}\n",
                root.user, root.password
            );
        }
        tracing::info!(s3 = %server.s3_addr(), web = %server.web_addr(), "cistern is listening");
        server.run(cistern::startup::shutdown_signal()).await
    })
}
