//! `impl_engine_repo!`: wires the engine's transitions into a backend's transaction
//! type, so that each backend implements only the SQL primitives.

/// Implements [`crate::model::engine::EngineRepo`] for a backend's transaction type
/// by delegating to the functions of this module.
#[macro_export]
macro_rules! impl_engine_repo {
    ($tx:ty) => {
        #[async_trait::async_trait]
        impl $crate::model::engine::EngineRepo for $tx {
            async fn start_run(
                &mut self,
                start: $crate::model::engine::StartRun,
            ) -> $crate::StoreResult<$crate::model::engine::StartedRun> {
                $crate::engine::start_run(self, start).await
            }
            async fn claim(
                &mut self,
                request: &$crate::model::engine::ClaimRequest,
            ) -> $crate::StoreResult<Vec<$crate::model::engine::ClaimedTask>> {
                $crate::engine::claim(self, request).await
            }
            async fn heartbeat(
                &mut self,
                attempt: $crate::model::engine::AttemptRef,
                lease: std::time::Duration,
            ) -> $crate::StoreResult<$crate::model::engine::Heartbeat> {
                $crate::engine::heartbeat(self, attempt, lease).await
            }
            async fn complete(
                &mut self,
                attempt: $crate::model::engine::AttemptRef,
                output: serde_json::Value,
            ) -> $crate::StoreResult<$crate::model::engine::Transition> {
                $crate::engine::complete(self, attempt, output).await
            }
            async fn complete_many(
                &mut self,
                items: Vec<($crate::model::engine::AttemptRef, serde_json::Value)>,
            ) -> $crate::StoreResult<Vec<$crate::StoreResult<$crate::model::engine::Transition>>>
            {
                $crate::engine::complete_many(self, items).await
            }
            async fn fail(
                &mut self,
                attempt: $crate::model::engine::AttemptRef,
                error: serde_json::Value,
                retryable: bool,
            ) -> $crate::StoreResult<$crate::model::engine::Transition> {
                $crate::engine::fail(self, attempt, error, retryable).await
            }
            async fn reap_expired_leases(
                &mut self,
                limit: u32,
            ) -> $crate::StoreResult<Vec<$crate::ids::TaskId>> {
                $crate::engine::reap_expired_leases(self, limit).await
            }
            async fn enforce_timeouts(&mut self, limit: u32) -> $crate::StoreResult<u64> {
                $crate::engine::enforce_timeouts(self, limit).await
            }
            async fn cancel_run(
                &mut self,
                run: $crate::ids::RunId,
            ) -> $crate::StoreResult<$crate::model::run::WorkflowExecution> {
                $crate::engine::cancel_run(self, run).await
            }
            async fn run_tasks(
                &mut self,
                run: $crate::ids::RunId,
            ) -> $crate::StoreResult<Vec<$crate::model::engine::RunTask>> {
                $crate::model::engine::EngineStore::select_run_tasks(self, run).await
            }
            async fn workflow_statistics(
                &mut self,
                workflow_id: &str,
                status: Option<$crate::model::run::RunStatus>,
            ) -> $crate::StoreResult<$crate::model::run::ExecutionStatistics> {
                $crate::model::engine::EngineStore::select_workflow_statistics(
                    self,
                    workflow_id,
                    status,
                )
                .await
            }
            async fn queue_depth(
                &mut self,
            ) -> $crate::StoreResult<Vec<$crate::model::engine::QueueDepth>> {
                $crate::model::engine::EngineStore::select_queue_depth(self).await
            }
            async fn events_after(
                &mut self,
                after_seq: i64,
                filter: &$crate::model::engine::EventFilter,
                limit: u32,
            ) -> $crate::StoreResult<Vec<$crate::model::engine::Event>> {
                if limit == 0 || limit > $crate::page::MAX_PAGE_SIZE {
                    return Err($crate::StoreError::invalid(
                        "limit",
                        format!("{limit} is outside 1..={}", $crate::page::MAX_PAGE_SIZE),
                    ));
                }
                $crate::model::engine::EngineStore::select_events_after(
                    self, after_seq, filter, limit,
                )
                .await
            }
            async fn sequence_events(&mut self) -> $crate::StoreResult<u64> {
                $crate::model::engine::EngineStore::assign_event_seqs(self).await
            }
        }
    };
}
