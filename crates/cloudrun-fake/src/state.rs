//! The fake's memory: registered accounts and projects, jobs, executions, operations, queued
//! behaviours and faults, and the journal of requests.

use std::collections::{BTreeMap, HashMap, VecDeque};

use rsa::RsaPublicKey;
use serde_json::Value;

/// What an execution started by `jobs.run` does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecutionPlan {
    /// Runs, then succeeds when it is observed (`executions.get` or `executions.list`) for the
    /// `after_polls`-th time; `0` means it has already succeeded when `jobs.run` answers.
    Succeed { after_polls: u32 },
    /// Runs, then fails with `message` at the `after_polls`-th observation.
    Fail { after_polls: u32, message: String },
    /// Runs until cancelled or deleted.
    NeverFinish,
}

impl Default for ExecutionPlan {
    fn default() -> Self {
        Self::Succeed { after_polls: 1 }
    }
}

/// A fault to inject on the next matching call (after authentication and validation passed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this HTTP status (429 `RESOURCE_EXHAUSTED`, 503 `UNAVAILABLE`, ...) and do
    /// nothing.
    Status(u16),
    /// Do what the call asks, then never answer (until the fake stops or the hang time passes),
    /// so the client times out not knowing it succeeded.
    TimeoutAfterSuccess,
}

/// One request the fake received, whatever came of it.
#[derive(Debug, Clone)]
pub struct JournalEntry {
    /// The discovery method id without `run.`, e.g. `projects.locations.jobs.run`; `None` if the
    /// path matched no method.
    pub method_id: Option<String>,
    pub http_method: String,
    pub path: String,
    pub query: Vec<(String, String)>,
    /// The JSON body, if there was one and it parsed.
    pub body: Option<Value>,
    /// The service account whose token was verified (also when the call was then denied).
    pub account: Option<String>,
    /// The status answered; `None` when the fake hung up without answering.
    pub status: Option<u16>,
}

impl JournalEntry {
    /// Whether this was a call of `method`, matched on a dot boundary at the end of the id:
    /// `"jobs.run"` matches `projects.locations.jobs.run`.
    pub fn is(&self, method: &str) -> bool {
        self.method_id
            .as_deref()
            .is_some_and(|id| method_matches(id, method))
    }
}

pub(crate) fn method_matches(id: &str, pattern: &str) -> bool {
    id == pattern || id.ends_with(&format!(".{pattern}"))
}

pub(crate) struct Account {
    /// The service account's public key; `None` for a federated principal (it has no key:
    /// it acts with access tokens of the fake's STS).
    pub key: Option<RsaPublicKey>,
    /// `None`: every permission granted.
    pub permissions: Option<Vec<String>>,
}

pub(crate) struct Execution {
    pub value: Value,
    pub plan: ExecutionPlan,
    pub polls: u32,
    pub done: bool,
}

pub(crate) enum OperationKind {
    /// Finished when made: the response (or error) is fixed.
    Done { response: Value },
    /// Follows an execution: done when it is.
    Execution { name: String, last: Value },
}

pub(crate) struct Operation {
    pub name: String,
    pub kind: OperationKind,
    /// Whether an `operations.get` has seen it; a create's first answer says `done: false`.
    pub observed: bool,
}

#[derive(Default)]
pub(crate) struct State {
    pub accounts: HashMap<String, Account>,
    /// Project id → the one service account (or federated principal) allowed in it.
    pub projects: HashMap<String, String>,
    /// Workload identity pool providers by audience (their full resource name).
    pub providers: HashMap<String, crate::sts::Provider>,
    /// Access tokens the STS issued.
    pub federated: HashMap<String, crate::sts::Federated>,
    pub jobs: BTreeMap<String, Value>,
    pub executions: BTreeMap<String, Execution>,
    pub operations: BTreeMap<String, Operation>,
    pub default_plan: ExecutionPlan,
    pub queued_plans: VecDeque<ExecutionPlan>,
    /// (method pattern or any, fault), applied in order.
    pub faults: VecDeque<(Option<String>, Fault)>,
    pub journal: Vec<JournalEntry>,
}

impl State {
    pub fn next_plan(&mut self) -> ExecutionPlan {
        self.queued_plans
            .pop_front()
            .unwrap_or_else(|| self.default_plan.clone())
    }

    /// Takes the first queued fault that applies to `method_id`.
    pub fn take_fault(&mut self, method_id: &str) -> Option<Fault> {
        let i = self.faults.iter().position(|(pattern, _)| {
            pattern
                .as_deref()
                .is_none_or(|p| method_matches(method_id, p))
        })?;
        self.faults.remove(i).map(|(_, f)| f)
    }
}
