//! The portable description of every table: what a backup reads and a restore writes.
//!
//! One entry per table, in an order where every row's foreign keys point at rows of
//! tables already loaded (the few self- and cyclic references are the `deferred`
//! columns, set after every table is in). Each column carries a portable type that
//! both backends encode the same way. A test compares this list with the real schema
//! of both backends, so a migration that adds a table or column cannot silently be
//! left out of backups.
//!
//! A column that is a foreign key says so: `column:type>table[.column]/action`, the
//! column it points at (`id` unless named) and what deleting that row does to this
//! one (`cascade`: deletes it, `null`: blanks the column). Partial backups and
//! restores work from these; a test compares them with the foreign keys of both
//! backends' schemas.

/// The catalog, one table per header line (`name key=a,b deferred=c|- [derived]`)
/// followed by indented `column:type[>table[.column]/action]` lines.
pub(super) const SPEC: &str = "
users key=id deferred=-
    id:uuid email:text display_name:text password_hash:text role:text status:text
    failed_login_count:int locked_until:timestamp email_verified_at:timestamp
    verification_token_hash:text reset_token_hash:text reset_token_expires_at:timestamp
    last_login_at:timestamp created_at:timestamp updated_at:timestamp
teams key=id deferred=-
    id:uuid name:text description:text created_by:uuid>users/null created_at:timestamp
    updated_at:timestamp
team_members key=team_id,user_id deferred=-
    team_id:uuid>teams/cascade user_id:uuid>users/cascade role:text created_at:timestamp
user_sessions key=id deferred=-
    id:uuid user_id:uuid>users/cascade token_hash:text ip_address:text user_agent:text
    expires_at:timestamp revoked_at:timestamp last_seen_at:timestamp
    created_at:timestamp
api_keys key=id deferred=-
    id:uuid user_id:uuid>users/cascade name:text prefix:text key_hash:text role:text
    scopes:json expires_at:timestamp last_used_at:timestamp revoked_at:timestamp
    created_at:timestamp updated_at:timestamp
notifications key=id deferred=-
    id:uuid user_id:uuid>users/cascade type:text title:text message:text data:json
    read:bool read_at:timestamp created_at:timestamp
notification_preferences key=user_id,type deferred=-
    user_id:uuid>users/cascade type:text enabled:bool updated_at:timestamp
projects key=id deferred=-
    id:uuid name:text description:text repository_url:text repository_name:text
    default_branch:text settings:json owner_id:uuid>users/null created_at:timestamp
    updated_at:timestamp
workflows key=id deferred=parent_workflow_id
    id:uuid name:text description:text type:text status:text priority:int
    definition:json configuration:json environment_variables:json tags:json
    metadata:json visibility:text execution_strategy:text failure_strategy:text
    timeout_seconds:int version:int owner_id:uuid>users/null team_id:uuid>teams/null
    project_id:uuid>projects/null parent_workflow_id:uuid>workflows/null
    archived_at:timestamp created_at:timestamp updated_at:timestamp
workflow_versions key=id deferred=-
    id:uuid workflow_id:uuid>workflows/cascade version:int definition:json
    configuration:json change_note:text created_by:uuid>users/null created_at:timestamp
workflow_shares key=id deferred=-
    id:uuid workflow_id:uuid>workflows/cascade user_id:uuid>users/cascade
    team_id:uuid>teams/cascade permission:text created_by:uuid>users/null
    created_at:timestamp
workflow_executions key=id deferred=task_id
    id:uuid execution_id:text workflow_id:text workflow_name:text workflow_version:text
    task_id:uuid>tasks/null user_id:text status:text strategy:text priority:int
    estimated_duration:int actual_duration:int start_time:timestamp end_time:timestamp
    result_data:json error_data:json metadata:json created_at:timestamp
    updated_at:timestamp workflow_ref:uuid>workflows/null
    workflow_version_id:uuid>workflow_versions/null failure_strategy:text input:json
    deadline_at:timestamp cancel_requested_at:timestamp
tasks key=id deferred=parent_task_id
    id:uuid project_id:uuid>projects/cascade workflow_id:uuid>workflows/cascade
    run_id:uuid>workflow_executions/cascade parent_task_id:uuid>tasks/null step_key:text
    title:text description:text type:text status:text priority:int requirements:json
    context:json tags:json metadata:json assigned_agent:text handler_type:text
    command:text parameters:json environment:json working_directory:text
    execution_order:int timeout_seconds:int max_retries:int retry_count:int attempt:int
    lease_owner:text lease_expires_at:timestamp run_after:timestamp result:json
    output:text error_message:text exit_code:int estimated_duration_seconds:int
    actual_duration:int started_at:timestamp completed_at:timestamp
    created_by:uuid>users/null created_at:timestamp updated_at:timestamp
task_dependencies key=task_id,depends_on_id deferred=-
    task_id:uuid>tasks/cascade depends_on_id:uuid>tasks/cascade
task_executions key=id deferred=-
    id:uuid task_id:uuid>tasks/cascade run_id:uuid>workflow_executions/cascade
    attempt:int agent_type:text worker_id:text execution_status:text input_context:json
    output_results:json error_details:json started_at:timestamp completed_at:timestamp
    lease_expires_at:timestamp heartbeat_at:timestamp duration_ms:int
    memory_usage_mb:int cpu_time_ms:int created_at:timestamp updated_at:timestamp
    outcome:json
workflow_metrics key=id deferred=-
    id:uuid execution_id:text>workflow_executions.execution_id/cascade metric_name:text
    metric_value:decimal metric_unit:text metric_type:text metadata:json
    recorded_at:timestamp
metric_rollups key=metric_name,metric_type,bucket_start,shard deferred=- derived
    bucket_start:timestamp metric_name:text metric_type:text sample_count:int
    value_sum:float value_min:float value_max:float shard:int
system_metrics key=id deferred=-
    id:uuid metric_name:text metric_value:float metric_unit:text component:text
    labels:json recorded_at:timestamp
handler_registry key=id deferred=-
    id:uuid handler_type:text handler_name:text handler_class:text handler_path:text
    version:text description:text capabilities:json configuration:json is_active:bool
    registered_at:timestamp updated_at:timestamp
components key=id deferred=-
    id:uuid name:text type:text status:text version:text configuration:json
    endpoints:json health_check_url:text health_status:text last_health_check:timestamp
    performance_metrics:json dependencies:json created_at:timestamp updated_at:timestamp
pull_requests key=id deferred=-
    id:uuid project_id:uuid>projects/cascade task_id:uuid>tasks/null pr_number:int
    repository_url:text branch_name:text base_branch:text title:text description:text
    status:text validation_results:json merged_at:timestamp closed_at:timestamp
    created_at:timestamp updated_at:timestamp
logs key=id deferred=-
    id:uuid level:text component_name:text execution_id:uuid>workflow_executions/cascade
    task_id:uuid>tasks/cascade message:text context:json timestamp:timestamp
configurations key=id deferred=-
    id:uuid key:text value:text value_encrypted:bytes encryption_key_id:text type:text
    description:text is_sensitive:bool created_at:timestamp updated_at:timestamp
credentials key=id deferred=-
    id:uuid owner_id:uuid>users/cascade name:text type:text description:text
    encrypted_data:bytes encryption_key_id:text expires_at:timestamp
    last_used_at:timestamp rotated_at:timestamp created_at:timestamp
    updated_at:timestamp
credential_expiry_notices key=credential_id,expires_at deferred=-
    credential_id:uuid>credentials/cascade expires_at:timestamp created_at:timestamp
webhooks key=id deferred=-
    id:uuid owner_id:uuid>users/cascade workflow_id:uuid>workflows/cascade name:text
    url:text secret_encrypted:bytes encryption_key_id:text events:json headers:json
    active:bool failure_count:int last_triggered_at:timestamp created_at:timestamp
    updated_at:timestamp
webhook_deliveries key=id deferred=-
    id:uuid webhook_id:uuid>webhooks/cascade event_seq:int event_type:text payload:json
    status:text attempts:int next_attempt_at:timestamp last_attempt_at:timestamp
    response_code:int response_body:text error:text created_at:timestamp
    updated_at:timestamp
webhook_dispatch key=id deferred=-
    id:int last_seq:int updated_at:timestamp
webhook_triggers key=id deferred=-
    id:uuid workflow_id:uuid>workflows/cascade owner_id:uuid>users/cascade name:text
    token_prefix:text token_hash:text require_signature:bool secret_encrypted:bytes
    encryption_key_id:text active:bool fire_count:int last_fired_at:timestamp
    created_at:timestamp updated_at:timestamp
trigger_receipts key=id deferred=-
    id:uuid trigger_id:uuid>webhook_triggers/cascade kind:text key_hash:text
    run_id:uuid>workflow_executions/cascade expires_at:timestamp created_at:timestamp
audit_log key=seq deferred=-
    seq:int id:uuid actor_type:text actor_id:text action:text entity_type:text
    entity_id:text before:json after:json ip_address:text request_id:text
    created_at:timestamp prev_hash:text hash:text
audit_queue key=id deferred=-
    id:int entry_id:uuid actor_type:text actor_id:text action:text entity_type:text
    entity_id:text before:json after:json ip_address:text request_id:text
    created_at:timestamp
audit_head key=id deferred=-
    id:int seq:int hash:text key_id:text mac:text signed_at:timestamp
events key=id deferred=-
    id:int seq:int event_type:text run_id:uuid task_id:uuid workflow_id:text
    payload:json created_at:timestamp
run_rollups key=workflow_id,bucket_start,status,shard deferred=- derived
    workflow_id:text bucket_start:timestamp status:text shard:int runs:int
    duration_count:int duration_sum:int duration_min:int duration_max:int
workflow_stats key=workflow_id,status,shard deferred=- derived
    workflow_id:text status:text executions:int duration_count:int duration_sum:int
    shard:int
";
