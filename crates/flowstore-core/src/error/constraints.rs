//! The constraints and unique indexes of the schema, by the name PostgreSQL reports
//! for them, with the field(s) a violation of each names: one table for every
//! repository and both backends.
//!
//! The names are those the PostgreSQL migrations (`crates/flowstore-postgres/
//! migrations/*.up.sql`) declare, or that PostgreSQL gives an unnamed constraint:
//! `<table>_pkey`, `<table>_<columns>_key` for a UNIQUE, `<table>_<columns>_fkey`
//! for a REFERENCES, `<table>_<column>_check` for a CHECK on one column and
//! `<table>_check`, `<table>_check1`, … for one on several. The test below parses the
//! migrations and fails when a constraint or unique index is missing here, so that a
//! new migration cannot lose the field its errors name. SQLite reports no constraint
//! name for a UNIQUE or NOT NULL violation and its CHECKs are unnamed: its errors
//! name their columns from the message (see `driver.rs`); a CHECK it reports by name
//! is looked up here.

/// Constraint or unique index → the field(s) its violation names: a key's columns,
/// comma-separated in the key's order; a CHECK's column, or for a CHECK on several
/// columns the first its expression names (the field SQLite's message gives too).
const CONSTRAINTS: &[(&str, &str)] = &[
    // api_keys
    ("api_keys_key_hash_key", "key_hash"),
    ("api_keys_pkey", "id"),
    ("api_keys_prefix_key", "prefix"),
    ("api_keys_role_check", "role"),
    ("api_keys_scopes_check", "scopes"),
    ("api_keys_user_id_fkey", "user_id"),
    // audit_head
    ("audit_head_hash_check", "hash"),
    ("audit_head_id_check", "id"),
    ("audit_head_key_id_check", "key_id"),
    ("audit_head_mac_check", "mac"),
    ("audit_head_pkey", "id"),
    ("audit_head_seq_check", "seq"),
    // audit_log
    ("audit_log_action_check", "action"),
    ("audit_log_actor_type_check", "actor_type"),
    ("audit_log_entity_type_check", "entity_type"),
    ("audit_log_hash_key", "hash"),
    ("audit_log_id_key", "id"),
    ("audit_log_pkey", "seq"),
    ("audit_log_seq_check", "seq"),
    // audit_queue
    ("audit_queue_action_check", "action"),
    ("audit_queue_actor_type_check", "actor_type"),
    ("audit_queue_entity_type_check", "entity_type"),
    ("audit_queue_entry_id_key", "entry_id"),
    ("audit_queue_pkey", "id"),
    // components
    ("components_dependencies_check", "dependencies"),
    ("components_health_status_check", "health_status"),
    ("components_name_check", "name"),
    ("components_name_key", "name"),
    ("components_pkey", "id"),
    ("components_status_check", "status"),
    // configurations
    ("configurations_check", "is_sensitive"),
    ("configurations_key_check", "key"),
    ("configurations_key_key", "key"),
    ("configurations_pkey", "id"),
    ("configurations_type_check", "type"),
    // credential_expiry_notices
    (
        "credential_expiry_notices_credential_id_fkey",
        "credential_id",
    ),
    (
        "credential_expiry_notices_pkey",
        "credential_id, expires_at",
    ),
    // credentials
    ("credentials_name_check", "name"),
    ("credentials_owner_id_fkey", "owner_id"),
    ("credentials_owner_id_name_key", "owner_id, name"),
    ("credentials_pkey", "id"),
    ("credentials_type_check", "type"),
    // events
    ("events_event_type_check", "event_type"),
    ("events_seq_check", "seq"),
    ("events_seq_key", "seq"),
    // handler_registry
    ("handler_registry_handler_type_check", "handler_type"),
    ("handler_registry_handler_type_key", "handler_type"),
    ("handler_registry_pkey", "id"),
    // logs
    ("logs_execution_id_fkey", "execution_id"),
    ("logs_level_check", "level"),
    ("logs_pkey", "id"),
    ("logs_task_id_fkey", "task_id"),
    // metric_rollups
    (
        "metric_rollups_pkey",
        "metric_name, metric_type, bucket_start, shard",
    ),
    ("metric_rollups_sample_count_check", "sample_count"),
    // notification_preferences
    ("notification_preferences_pkey", "user_id, type"),
    ("notification_preferences_type_check", "type"),
    ("notification_preferences_user_id_fkey", "user_id"),
    // notifications
    ("notifications_pkey", "id"),
    ("notifications_type_check", "type"),
    ("notifications_user_id_fkey", "user_id"),
    // projects
    ("projects_name_key", "name"),
    ("projects_owner_id_fkey", "owner_id"),
    ("projects_pkey", "id"),
    ("projects_settings_check", "settings"),
    // pull_requests
    ("pull_requests_branch_name_check", "branch_name"),
    ("pull_requests_pkey", "id"),
    ("pull_requests_pr_number_check", "pr_number"),
    ("pull_requests_project_id_fkey", "project_id"),
    ("pull_requests_repository_url_check", "repository_url"),
    (
        "pull_requests_repository_url_pr_number_key",
        "repository_url, pr_number",
    ),
    ("pull_requests_status_check", "status"),
    ("pull_requests_task_id_fkey", "task_id"),
    ("pull_requests_title_check", "title"),
    (
        "pull_requests_validation_results_check",
        "validation_results",
    ),
    // run_rollups
    (
        "run_rollups_pkey",
        "workflow_id, bucket_start, status, shard",
    ),
    // system_metrics
    ("system_metrics_metric_name_check", "metric_name"),
    ("system_metrics_pkey", "id"),
    // task_dependencies
    ("task_dependencies_check", "task_id"),
    ("task_dependencies_depends_on_id_fkey", "depends_on_id"),
    ("task_dependencies_pkey", "task_id, depends_on_id"),
    ("task_dependencies_task_id_fkey", "task_id"),
    // task_executions
    ("task_executions_attempt_check", "attempt"),
    ("task_executions_cpu_time_ms_check", "cpu_time_ms"),
    ("task_executions_duration_ms_check", "duration_ms"),
    ("task_executions_execution_status_check", "execution_status"),
    ("task_executions_memory_usage_mb_check", "memory_usage_mb"),
    ("task_executions_pkey", "id"),
    ("task_executions_run_id_fkey", "run_id"),
    ("task_executions_task_id_attempt_key", "task_id, attempt"),
    ("task_executions_task_id_fkey", "task_id"),
    // task_search
    ("task_search_pkey", "task_id"),
    // tasks
    ("tasks_actual_duration_check", "actual_duration"),
    ("tasks_attempt_check", "attempt"),
    ("tasks_check", "parent_task_id"),
    ("tasks_check1", "status"),
    ("tasks_context_check", "context"),
    ("tasks_created_by_fkey", "created_by"),
    ("tasks_environment_check", "environment"),
    (
        "tasks_estimated_duration_seconds_check",
        "estimated_duration_seconds",
    ),
    ("tasks_max_retries_check", "max_retries"),
    ("tasks_metadata_check", "metadata"),
    ("tasks_parent_task_id_fkey", "parent_task_id"),
    ("tasks_pkey", "id"),
    ("tasks_project_id_fkey", "project_id"),
    ("tasks_requirements_check", "requirements"),
    ("tasks_retry_count_check", "retry_count"),
    ("tasks_run_id_fkey", "run_id"),
    ("tasks_run_id_step_key_key", "run_id, step_key"),
    ("tasks_status_check", "status"),
    ("tasks_tags_check", "tags"),
    ("tasks_timeout_seconds_check", "timeout_seconds"),
    ("tasks_title_check", "title"),
    ("tasks_workflow_id_fkey", "workflow_id"),
    // team_members
    ("team_members_pkey", "team_id, user_id"),
    ("team_members_role_check", "role"),
    ("team_members_team_id_fkey", "team_id"),
    ("team_members_user_id_fkey", "user_id"),
    // teams
    ("teams_created_by_fkey", "created_by"),
    ("teams_name_key", "name"),
    ("teams_pkey", "id"),
    // trigger_receipts
    ("trigger_receipts_kind_check", "kind"),
    ("trigger_receipts_pkey", "id"),
    ("trigger_receipts_run_id_fkey", "run_id"),
    ("trigger_receipts_trigger_id_fkey", "trigger_id"),
    (
        "trigger_receipts_trigger_id_kind_key_hash_key",
        "trigger_id, kind, key_hash",
    ),
    // user_sessions
    ("user_sessions_pkey", "id"),
    ("user_sessions_token_hash_key", "token_hash"),
    ("user_sessions_user_id_fkey", "user_id"),
    // users
    ("idx_users_reset_token", "reset_token_hash"),
    ("idx_users_verification_token", "verification_token_hash"),
    ("users_email_check", "email"),
    ("users_email_key", "email"),
    ("users_failed_login_count_check", "failed_login_count"),
    ("users_pkey", "id"),
    ("users_role_check", "role"),
    ("users_status_check", "status"),
    // webhook_deliveries
    ("idx_webhook_deliveries_event", "webhook_id, event_seq"),
    ("webhook_deliveries_attempts_check", "attempts"),
    ("webhook_deliveries_pkey", "id"),
    ("webhook_deliveries_response_code_check", "response_code"),
    ("webhook_deliveries_status_check", "status"),
    ("webhook_deliveries_webhook_id_fkey", "webhook_id"),
    // webhook_dispatch
    ("webhook_dispatch_id_check", "id"),
    ("webhook_dispatch_last_seq_check", "last_seq"),
    ("webhook_dispatch_pkey", "id"),
    // webhook_triggers
    ("webhook_triggers_check", "require_signature"),
    ("webhook_triggers_fire_count_check", "fire_count"),
    ("webhook_triggers_name_check", "name"),
    ("webhook_triggers_owner_id_fkey", "owner_id"),
    ("webhook_triggers_pkey", "id"),
    ("webhook_triggers_token_hash_key", "token_hash"),
    ("webhook_triggers_workflow_id_fkey", "workflow_id"),
    ("webhook_triggers_workflow_id_name_key", "workflow_id, name"),
    // webhooks
    ("webhooks_events_check", "events"),
    ("webhooks_failure_count_check", "failure_count"),
    ("webhooks_headers_check", "headers"),
    ("webhooks_owner_id_fkey", "owner_id"),
    ("webhooks_owner_id_url_key", "owner_id, url"),
    ("webhooks_pkey", "id"),
    ("webhooks_url_check", "url"),
    ("webhooks_workflow_id_fkey", "workflow_id"),
    // workflow_executions
    (
        "workflow_executions_actual_duration_check",
        "actual_duration",
    ),
    ("workflow_executions_check", "end_time"),
    (
        "workflow_executions_estimated_duration_check",
        "estimated_duration",
    ),
    ("workflow_executions_execution_id_check", "execution_id"),
    ("workflow_executions_execution_id_key", "execution_id"),
    (
        "workflow_executions_failure_strategy_check",
        "failure_strategy",
    ),
    ("workflow_executions_pkey", "id"),
    ("workflow_executions_status_check", "status"),
    ("workflow_executions_strategy_check", "strategy"),
    ("workflow_executions_task_id_fkey", "task_id"),
    ("workflow_executions_workflow_ref_fkey", "workflow_ref"),
    (
        "workflow_executions_workflow_version_id_fkey",
        "workflow_version_id",
    ),
    // workflow_metrics
    ("workflow_metrics_execution_id_fkey", "execution_id"),
    ("workflow_metrics_metric_name_check", "metric_name"),
    ("workflow_metrics_metric_type_check", "metric_type"),
    ("workflow_metrics_pkey", "id"),
    // workflow_shares
    ("workflow_shares_check", "user_id"),
    ("workflow_shares_created_by_fkey", "created_by"),
    ("workflow_shares_permission_check", "permission"),
    ("workflow_shares_pkey", "id"),
    ("workflow_shares_team_id_fkey", "team_id"),
    ("workflow_shares_user_id_fkey", "user_id"),
    ("workflow_shares_workflow_id_fkey", "workflow_id"),
    (
        "workflow_shares_workflow_id_team_id_key",
        "workflow_id, team_id",
    ),
    (
        "workflow_shares_workflow_id_user_id_key",
        "workflow_id, user_id",
    ),
    // workflow_stats
    ("workflow_stats_pkey", "workflow_id, status, shard"),
    // workflow_versions
    ("workflow_versions_created_by_fkey", "created_by"),
    ("workflow_versions_definition_check", "definition"),
    ("workflow_versions_pkey", "id"),
    ("workflow_versions_version_check", "version"),
    ("workflow_versions_workflow_id_fkey", "workflow_id"),
    (
        "workflow_versions_workflow_id_version_key",
        "workflow_id, version",
    ),
    // workflows
    ("workflows_configuration_check", "configuration"),
    ("workflows_definition_check", "definition"),
    (
        "workflows_environment_variables_check",
        "environment_variables",
    ),
    ("workflows_execution_strategy_check", "execution_strategy"),
    ("workflows_failure_strategy_check", "failure_strategy"),
    ("workflows_metadata_check", "metadata"),
    ("workflows_owner_id_fkey", "owner_id"),
    ("workflows_parent_workflow_id_fkey", "parent_workflow_id"),
    ("workflows_pkey", "id"),
    ("workflows_priority_check", "priority"),
    ("workflows_project_id_fkey", "project_id"),
    ("workflows_status_check", "status"),
    ("workflows_tags_check", "tags"),
    ("workflows_team_id_fkey", "team_id"),
    ("workflows_timeout_seconds_check", "timeout_seconds"),
    ("workflows_version_check", "version"),
    ("workflows_visibility_check", "visibility"),
    // The migration runner's bookkeeping table (each backend's
    // `dialect::MIGRATIONS_TABLE`), not declared by a migration.
    ("schema_migrations_pkey", "version"),
];

/// Constraints the table lists that no migration declares.
#[cfg(test)]
const NOT_FROM_MIGRATIONS: &[&str] = &["schema_migrations_pkey"];

/// The field(s) a violation of the constraint or unique index `name` names, if the
/// schema declares it.
pub(crate) fn field(name: &str) -> Option<&'static str> {
    CONSTRAINTS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, field)| *field)
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::Path;

    use super::*;

    #[test]
    fn every_constraint_of_the_migrations_names_its_field() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../flowstore-postgres/migrations");
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|f| f.unwrap().path())
            .filter(|p| p.to_string_lossy().ends_with(".up.sql"))
            .collect();
        files.sort();
        assert!(!files.is_empty(), "no migrations in {}", dir.display());
        let mut schema = Schema::default();
        for f in &files {
            let sql = std::fs::read_to_string(f).unwrap();
            for statement in statements(&sql) {
                schema.apply(&statement, f);
            }
        }

        let mut names = BTreeSet::new();
        for (name, _) in CONSTRAINTS {
            assert!(names.insert(*name), "{name} is listed twice");
        }
        let listed: BTreeMap<&str, &str> = CONSTRAINTS
            .iter()
            .copied()
            .filter(|(n, _)| !NOT_FROM_MIGRATIONS.contains(n))
            .collect();
        let mut problems = Vec::new();
        for (name, c) in &schema.constraints {
            match listed.get(name.as_str()) {
                None => problems.push(format!(
                    "missing (table {}): (\"{name}\", \"{}\"),",
                    c.table, c.field
                )),
                Some(field) if *field != c.field => problems.push(format!(
                    "{name} names {field:?}, the migrations say {:?}",
                    c.field
                )),
                Some(_) => {}
            }
        }
        for name in listed.keys() {
            if !schema.constraints.contains_key(*name) {
                problems.push(format!("{name} is listed but no migration declares it"));
            }
        }
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }

    /// A constraint or unique index the migrations leave.
    #[derive(Debug)]
    struct Constraint {
        table: String,
        field: String,
    }

    /// What the migrations have declared so far.
    #[derive(Default)]
    struct Schema {
        /// Each table's columns, in order.
        columns: BTreeMap<String, Vec<String>>,
        constraints: BTreeMap<String, Constraint>,
    }

    /// A CHECK waiting for its table's columns to be known before it is named.
    struct Check {
        name: Option<String>,
        expression: Vec<Token>,
    }

    impl Schema {
        fn apply(&mut self, s: &[Token], file: &Path) {
            let words: Vec<&str> = s.iter().take(8).map(|t| t.word()).collect();
            let at = |i: usize| words.get(i).copied().unwrap_or("");
            let place = Place(format!(
                "{}: {}",
                file.display(),
                s.iter().map(Token::text).collect::<Vec<_>>().join(" ")
            ));
            match (at(0), at(1)) {
                ("create", "table") => {
                    let mut i = 2;
                    if s[i].is("if") {
                        i += 3;
                    }
                    let table = s[i].word().to_string();
                    if s.get(i + 1).is_some_and(|t| t.is("as")) {
                        // A table made from a query has no constraints.
                        self.columns.insert(table, Vec::new());
                        return;
                    }
                    let Some(body) = s.get(i + 1).and_then(Token::group) else {
                        place.fail("a table without a column list")
                    };
                    self.columns.insert(table.clone(), Vec::new());
                    let mut checks = Vec::new();
                    for element in split(body, ',') {
                        self.element(&table, element, &mut checks, &place);
                    }
                    self.name_checks(&table, checks);
                }
                ("create", "temp" | "temporary") => {}
                ("create", "unlogged") => place.fail("an unlogged table"),
                ("create", "unique") => {
                    let mut i = 3;
                    while s[i].is("concurrently")
                        || s[i].is("if")
                        || s[i].is("not")
                        || s[i].is("exists")
                    {
                        i += 1;
                    }
                    let name = s[i].word().to_string();
                    if !s[i + 1].is("on") {
                        place.fail("an unnamed unique index");
                    }
                    let mut j = i + 2;
                    if s[j].is("only") {
                        j += 1;
                    }
                    let table = s[j].word().to_string();
                    let Some(columns) = s[j + 1..].iter().find_map(Token::group) else {
                        place.fail("a unique index without columns")
                    };
                    let field = column_list(columns, &place);
                    self.add(&name, &table, field, &place);
                }
                ("alter", "table") => {
                    let mut i = 2;
                    while s[i].is("only") || s[i].is("if") || s[i].is("exists") {
                        i += 1;
                    }
                    let table = s[i].word().to_string();
                    if !self.columns.contains_key(&table) {
                        place.fail("a table no migration created");
                    }
                    let mut checks = Vec::new();
                    for action in split(&s[i + 1..], ',') {
                        match (word(action, 0), word(action, 1)) {
                            ("add", "constraint" | "primary" | "unique" | "check" | "foreign") => {
                                self.table_constraint(&table, &action[1..], &mut checks, &place)
                            }
                            ("add", "exclude") => place.fail("an exclusion constraint"),
                            ("add", "column") => {
                                let mut column = &action[2..];
                                if word(column, 0) == "if" {
                                    column = &column[3..];
                                }
                                self.element(&table, column, &mut checks, &place)
                            }
                            ("add", _) => self.element(&table, &action[1..], &mut checks, &place),
                            ("drop", what @ ("constraint" | "column")) => {
                                let name = action
                                    .iter()
                                    .skip(2)
                                    .find(|t| !t.is("if") && !t.is("exists"));
                                let Some(name) = name.map(Token::word) else {
                                    continue;
                                };
                                if what == "constraint" {
                                    self.constraints.remove(name);
                                    continue;
                                }
                                // PostgreSQL drops the constraints on the column.
                                self.constraints.retain(|_, c| {
                                    c.table != table || !c.field.split(", ").any(|f| f == name)
                                });
                                if let Some(columns) = self.columns.get_mut(&table) {
                                    columns.retain(|c| c != name);
                                }
                            }
                            // Neither changes a constraint.
                            ("alter", "column") | ("replica", "identity") => {}
                            _ => {
                                place.fail("an ALTER TABLE action that may change the constraints")
                            }
                        }
                    }
                    self.name_checks(&table, checks);
                }
                ("drop", "index") => {
                    for t in &s[2..] {
                        self.constraints.remove(t.word());
                    }
                }
                ("drop", "table") => {
                    let dropped: Vec<&str> = s[2..].iter().map(Token::word).collect();
                    self.constraints
                        .retain(|_, c| !dropped.contains(&c.table.as_str()));
                    for t in dropped {
                        self.columns.remove(t);
                    }
                }
                ("alter", "index") | ("create", "rule") => {
                    place.fail("a statement that may rename or replace an index")
                }
                _ => {}
            }
        }

        /// An element of a table's column list, or a column an ALTER TABLE adds.
        fn element(&mut self, table: &str, e: &[Token], checks: &mut Vec<Check>, place: &Place) {
            match word(e, 0) {
                "constraint" | "primary" | "unique" | "check" | "foreign" => {
                    return self.table_constraint(table, e, checks, place)
                }
                "exclude" => place.fail("an exclusion constraint"),
                "like" => place.fail("a table copied from another"),
                _ => {}
            }
            let column = e[0].word().to_string();
            self.columns.get_mut(table).unwrap().push(column.clone());
            let mut name = None;
            let mut i = 1;
            while i < e.len() {
                if e[i].is("constraint") {
                    name = Some(e[i + 1].word().to_string());
                    i += 2;
                    continue;
                }
                if e[i].is("primary") && e.get(i + 1).is_some_and(|t| t.is("key")) {
                    let n = name.take().unwrap_or_else(|| format!("{table}_pkey"));
                    self.add(&n, table, column.clone(), place);
                } else if e[i].is("unique") {
                    let n = name
                        .take()
                        .unwrap_or_else(|| self.choose(&format!("{table}_{column}_key")));
                    self.add(&n, table, column.clone(), place);
                } else if e[i].is("references") {
                    let n = name
                        .take()
                        .unwrap_or_else(|| self.choose(&format!("{table}_{column}_fkey")));
                    self.add(&n, table, column.clone(), place);
                } else if e[i].is("check") {
                    let Some(expression) = e.get(i + 1).and_then(Token::group) else {
                        place.fail("a CHECK without its expression")
                    };
                    checks.push(Check {
                        name: name.take(),
                        expression: expression.to_vec(),
                    });
                    i += 1;
                }
                i += 1;
            }
        }

        /// A table constraint: `[CONSTRAINT name] PRIMARY KEY (…)`, `UNIQUE (…)`,
        /// `FOREIGN KEY (…) REFERENCES …` or `CHECK (…)`.
        fn table_constraint(
            &mut self,
            table: &str,
            e: &[Token],
            checks: &mut Vec<Check>,
            place: &Place,
        ) {
            let (name, e) = if e[0].is("constraint") {
                (Some(e[1].word().to_string()), &e[2..])
            } else {
                (None, e)
            };
            let group = || {
                e.iter()
                    .find_map(Token::group)
                    .unwrap_or_else(|| place.fail("a constraint without its columns"))
            };
            match word(e, 0) {
                "primary" => {
                    let field = column_list(group(), place);
                    let n = name.unwrap_or_else(|| format!("{table}_pkey"));
                    self.add(&n, table, field, place);
                }
                "unique" => {
                    let field = column_list(group(), place);
                    let n = name.unwrap_or_else(|| {
                        self.choose(&format!("{table}_{}_key", field.replace(", ", "_")))
                    });
                    self.add(&n, table, field, place);
                }
                "foreign" => {
                    let field = column_list(group(), place);
                    let n = name.unwrap_or_else(|| {
                        self.choose(&format!("{table}_{}_fkey", field.replace(", ", "_")))
                    });
                    self.add(&n, table, field, place);
                }
                "check" => checks.push(Check {
                    name,
                    expression: group().to_vec(),
                }),
                _ => place.fail("a constraint of a kind this test does not know"),
            }
        }

        /// Names a table's CHECKs as PostgreSQL does, in the order they were written:
        /// `<table>_<column>_check` when the expression names one column of the
        /// table, `<table>_check` (then `…_check1`, …) otherwise.
        fn name_checks(&mut self, table: &str, checks: Vec<Check>) {
            let place = Place(format!("table {table}"));
            for check in checks {
                let mut named = Vec::new();
                columns_named(&check.expression, &self.columns[table], &mut named);
                let name = check.name.unwrap_or_else(|| match named.as_slice() {
                    [one] => self.choose(&format!("{table}_{one}_check")),
                    _ => self.choose(&format!("{table}_check")),
                });
                let field = named.first().cloned().unwrap_or_else(|| "value".into());
                self.add(&name, table, field, &place);
            }
        }

        /// `base`, or `base1`, `base2`, … if a constraint already has that name.
        fn choose(&self, base: &str) -> String {
            let mut name = base.to_string();
            let mut n = 0;
            while self.constraints.contains_key(&name) {
                n += 1;
                name = format!("{base}{n}");
            }
            name
        }

        fn add(&mut self, name: &str, table: &str, field: String, place: &Place) {
            if name.len() > 63 {
                place.fail(&format!(
                    "PostgreSQL shortens the name {name} to 63 bytes: name the constraint"
                ));
            }
            if self.constraints.contains_key(name) {
                place.fail(&format!("{name} is declared twice"));
            }
            self.constraints.insert(
                name.to_string(),
                Constraint {
                    table: table.to_string(),
                    field,
                },
            );
        }
    }

    /// The columns of `columns` that `expression` names, in the order it first names
    /// them.
    fn columns_named(expression: &[Token], columns: &[String], named: &mut Vec<String>) {
        for t in expression {
            match t {
                Token::Word(w) if columns.contains(w) && !named.contains(w) => {
                    named.push(w.clone())
                }
                Token::Group(g) => columns_named(g, columns, named),
                _ => {}
            }
        }
    }

    /// Where a statement the test does not understand stands.
    struct Place(String);

    impl Place {
        fn fail(&self, why: &str) -> ! {
            panic!("{why}; teach this test the statement ({})", self.0)
        }
    }

    /// `(a, b)` as `a, b`; a key on an expression is not a list of columns.
    fn column_list(group: &[Token], place: &Place) -> String {
        split(group, ',')
            .map(|c| match c {
                [Token::Word(w)] => w.clone(),
                _ => {
                    place.fail("a key on an expression: list its field by hand and teach this test")
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// A token of a statement: a word (lower-cased, as PostgreSQL folds unquoted
    /// names), a quoted name, a string, a parenthesised group or any other character.
    #[derive(Clone, Debug)]
    enum Token {
        Word(String),
        Text(String),
        Group(Vec<Token>),
        Other(char),
    }

    impl Token {
        fn word(&self) -> &str {
            match self {
                Token::Word(w) => w,
                _ => "",
            }
        }

        fn is(&self, w: &str) -> bool {
            self.word() == w
        }

        fn group(&self) -> Option<&[Token]> {
            match self {
                Token::Group(g) => Some(g),
                _ => None,
            }
        }

        fn text(&self) -> String {
            match self {
                Token::Word(w) => w.clone(),
                Token::Text(t) => format!("'{t}'"),
                Token::Group(g) => format!(
                    "({})",
                    g.iter().map(Token::text).collect::<Vec<_>>().join(" ")
                ),
                Token::Other(c) => c.to_string(),
            }
        }
    }

    fn word(tokens: &[Token], i: usize) -> &str {
        tokens.get(i).map(Token::word).unwrap_or("")
    }

    /// `tokens` split at `sep` (outside groups, which are single tokens).
    fn split(tokens: &[Token], sep: char) -> impl Iterator<Item = &[Token]> {
        tokens
            .split(move |t| matches!(t, Token::Other(c) if *c == sep))
            .filter(|part| !part.is_empty())
    }

    /// The statements of a migration, as tokens: comments dropped, strings (quoted
    /// or dollar-quoted, such as a function's body) kept whole.
    fn statements(sql: &str) -> Vec<Vec<Token>> {
        let chars: Vec<char> = sql.chars().collect();
        let mut i = 0;
        let mut statements = Vec::new();
        // The open groups, innermost last; the statement is the outermost.
        let mut stack: Vec<Vec<Token>> = vec![Vec::new()];
        while i < chars.len() {
            let c = chars[i];
            let rest: String = chars[i..chars.len().min(i + 2)].iter().collect();
            if c.is_whitespace() {
                i += 1;
            } else if rest == "--" {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            } else if rest == "/*" {
                while i + 1 < chars.len() && !(chars[i] == '*' && chars[i + 1] == '/') {
                    i += 1;
                }
                i += 2;
            } else if c == '\'' || c == '"' {
                let mut text = String::new();
                i += 1;
                while i < chars.len() {
                    if chars[i] == c {
                        if chars.get(i + 1) == Some(&c) {
                            text.push(c);
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    text.push(chars[i]);
                    i += 1;
                }
                i += 1;
                stack.last_mut().unwrap().push(if c == '"' {
                    Token::Word(text)
                } else {
                    Token::Text(text)
                });
            } else if c == '$' && !chars.get(i + 1).is_some_and(|d| d.is_ascii_digit()) {
                let end = chars[i + 1..].iter().position(|&d| d == '$').unwrap() + i + 1;
                let tag: String = chars[i..=end].iter().collect();
                let body_start = end + 1;
                let body: String = chars[body_start..].iter().collect();
                let len = body
                    .find(&tag)
                    .expect("an unterminated dollar-quoted string");
                stack
                    .last_mut()
                    .unwrap()
                    .push(Token::Text(body[..len].to_string()));
                i = body_start + body[..len].chars().count() + tag.chars().count();
            } else if c.is_alphanumeric() || c == '_' || c == '$' {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '$')
                {
                    i += 1;
                }
                let w: String = chars[start..i].iter().collect();
                stack
                    .last_mut()
                    .unwrap()
                    .push(Token::Word(w.to_lowercase()));
            } else if c == '(' {
                stack.push(Vec::new());
                i += 1;
            } else if c == ')' {
                let group = stack.pop().unwrap();
                stack
                    .last_mut()
                    .expect("an unbalanced parenthesis")
                    .push(Token::Group(group));
                i += 1;
            } else if c == ';' && stack.len() == 1 {
                let s = std::mem::take(&mut stack[0]);
                if !s.is_empty() {
                    statements.push(s);
                }
                i += 1;
            } else {
                stack.last_mut().unwrap().push(Token::Other(c));
                i += 1;
            }
        }
        assert_eq!(stack.len(), 1, "an unbalanced parenthesis");
        if !stack[0].is_empty() {
            statements.push(stack.pop().unwrap());
        }
        statements
    }
}
