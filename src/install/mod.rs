//! Putting the agent on a host: [`setup`] (`--setup` wizard), [`service`] (systemd units,
//! `--install-service`), [`account`] (the service user), [`update`] (`--update`, daily check).

pub mod account;
pub mod service;
pub mod setup;
pub mod update;
