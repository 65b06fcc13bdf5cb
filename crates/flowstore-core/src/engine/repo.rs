//! The engine's repository ([`EngineRepo`]) for every transaction that offers the
//! engine's primitives: the transitions of this module over [`EngineStore`] and
//! [`HotPath`], so that a backend writes only its SQL.

use crate::model::engine::{EngineRepo, EngineStore, HotPath};

#[async_trait::async_trait]
impl<T: super::EngineTx> EngineRepo for T {
    async fn start_run(
        &mut self,
        start: crate::model::engine::StartRun,
    ) -> crate::StoreResult<crate::model::engine::StartedRun> {
        super::start_run(self, start).await
    }
    async fn start_runs(
        &mut self,
        starts: Vec<crate::model::engine::StartRun>,
    ) -> crate::StoreResult<Vec<crate::model::engine::StartedRun>> {
        super::start_runs(self, starts).await
    }
    async fn claim(
        &mut self,
        request: &crate::model::engine::ClaimRequest,
    ) -> crate::StoreResult<Vec<crate::model::engine::ClaimedTask>> {
        super::claim(self, request).await
    }
    async fn heartbeat(
        &mut self,
        attempt: crate::model::engine::AttemptRef,
        lease: std::time::Duration,
    ) -> crate::StoreResult<crate::model::engine::Heartbeat> {
        super::heartbeat(self, attempt, lease).await
    }
    async fn complete(
        &mut self,
        attempt: crate::model::engine::AttemptRef,
        output: serde_json::Value,
    ) -> crate::StoreResult<crate::model::engine::Transition> {
        super::complete(self, attempt, output).await
    }
    async fn complete_many(
        &mut self,
        items: Vec<(crate::model::engine::AttemptRef, serde_json::Value)>,
    ) -> crate::StoreResult<Vec<crate::StoreResult<crate::model::engine::Transition>>> {
        super::complete_many(self, &items).await
    }
    async fn fail(
        &mut self,
        attempt: crate::model::engine::AttemptRef,
        error: serde_json::Value,
        retryable: bool,
    ) -> crate::StoreResult<crate::model::engine::Transition> {
        super::fail(self, attempt, error, retryable).await
    }
    async fn reap_expired_leases(
        &mut self,
        limit: u32,
    ) -> crate::StoreResult<Vec<crate::ids::TaskId>> {
        super::reap_expired_leases(self, limit).await
    }
    async fn enforce_timeouts(&mut self, limit: u32) -> crate::StoreResult<u64> {
        super::enforce_timeouts(self, limit).await
    }
    async fn cancel_run(
        &mut self,
        run: crate::ids::RunId,
    ) -> crate::StoreResult<crate::model::run::WorkflowExecution> {
        super::cancel_run(self, run).await
    }
    async fn retry_run(
        &mut self,
        run: crate::ids::RunId,
    ) -> crate::StoreResult<crate::model::run::WorkflowExecution> {
        super::retry_run(self, run).await
    }
    async fn run_tasks(
        &mut self,
        run: crate::ids::RunId,
    ) -> crate::StoreResult<Vec<crate::model::engine::RunTask>> {
        EngineStore::select_run_tasks(self, run).await
    }
    async fn workflow_statistics(
        &mut self,
        workflow_id: &str,
        status: Option<crate::model::run::RunStatus>,
    ) -> crate::StoreResult<crate::model::run::ExecutionStatistics> {
        EngineStore::select_workflow_statistics(self, workflow_id, status).await
    }
    async fn queue_depth(&mut self) -> crate::StoreResult<Vec<crate::model::engine::QueueDepth>> {
        EngineStore::select_queue_depth(self).await
    }
    async fn events_after(
        &mut self,
        after_seq: i64,
        filter: &crate::model::engine::EventFilter,
        limit: u32,
    ) -> crate::StoreResult<Vec<crate::model::engine::Event>> {
        if limit == 0 || limit > crate::page::MAX_PAGE_SIZE {
            return Err(crate::StoreError::invalid(
                "limit",
                format!("{limit} is outside 1..={}", crate::page::MAX_PAGE_SIZE),
            ));
        }
        EngineStore::select_events_after(self, after_seq, filter, limit).await
    }
    async fn newest_event_seq(&mut self) -> crate::StoreResult<i64> {
        EngineStore::select_newest_event_seq(self).await
    }
    async fn sequence_events(&mut self) -> crate::StoreResult<u64> {
        HotPath::assign_event_seqs(self).await
    }
}
