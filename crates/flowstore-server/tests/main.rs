//! The integration tests of the HTTP API: one binary, a module per area. Most run
//! each test body on SQLite and on PostgreSQL (`both_backends!`), through the server
//! in process (`flowstore_testkit::TestApp`).

mod access;
mod access_objects;
mod account;
mod analytics;
mod api;
mod audit;
mod audit_resources;
mod browser;
mod dashboard;
mod integration;
mod live;
mod notification_prefs;
mod notify;
mod openapi;
mod paging;
mod resources;
mod routes_tasks;
mod routes_workflows;
mod servers;
mod sessions;
mod signin;
mod slow_metrics;
mod system_routes;
mod tasks_prs;
mod triggers;
mod wake;
mod webhook_destinations;
mod webhooks;
mod worker_batch;
mod worker_scope;
