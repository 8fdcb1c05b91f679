//! One module per subcommand, each owning its arguments.

pub mod admin;
pub mod approval;
pub mod audit;
pub mod audit_export;
pub mod automations;
pub mod cloudsim;
pub mod doctor;
pub mod env;
pub mod gateway;
pub mod keys;
pub mod llm;
pub mod master_key;
pub mod people;
pub mod rbac;
pub mod run;
pub mod secrets;
pub mod serve;
pub mod session;
pub mod settings;
pub mod token_input;
pub mod tokens;
pub mod wi;
