//! `/v1/runs`: submit, list, show and cancel runs, and read their events and logs.

use reqwest::{Method, StatusCode};

use crate::models::{Items, Logs, NewRun, Page, Run, RunEvent, RunsQuery};
use crate::{Client, Error};

impl Client {
    /// `POST /v1/runs`. The flag is `true` when the run was created, `false` when its
    /// idempotency key had been used already and the answer is the existing run.
    pub async fn create_run(&self, run: &NewRun) -> Result<(Run, bool), Error> {
        let response = self
            .send(self.request(Method::POST, &["v1", "runs"])?.json(run))
            .await?;
        let created = response.status() == StatusCode::CREATED;
        Ok((self.decode(response).await?, created))
    }

    /// `GET /v1/runs`: one page; pass its `next_cursor` back as `cursor` for the next.
    pub async fn list_runs(&self, query: &RunsQuery) -> Result<Page<Run>, Error> {
        let request = self.request(Method::GET, &["v1", "runs"])?.query(query);
        self.call(request).await
    }

    /// `GET /v1/runs/{id}`.
    pub async fn get_run(&self, id: &str) -> Result<Run, Error> {
        self.call(self.request(Method::GET, &["v1", "runs", id])?)
            .await
    }

    /// `POST /v1/runs/{id}/cancel`: asks for the run to stop; answers with the run as it is now
    /// (`cancelling`, or already terminal).
    pub async fn cancel_run(&self, id: &str) -> Result<Run, Error> {
        self.call(self.request(Method::POST, &["v1", "runs", id, "cancel"])?)
            .await
    }

    /// `GET /v1/runs/{id}/events`: the run's state transitions, oldest first.
    pub async fn run_events(&self, id: &str) -> Result<Vec<RunEvent>, Error> {
        let list: Items<RunEvent> = self
            .call(self.request(Method::GET, &["v1", "runs", id, "events"])?)
            .await?;
        Ok(list.items)
    }

    /// `GET /v1/runs/{id}/logs`: the lines after `after` (a `seq`), at most `limit` of them.
    pub async fn run_logs(
        &self,
        id: &str,
        after: Option<i64>,
        limit: Option<u32>,
    ) -> Result<Logs, Error> {
        let mut query: Vec<(&str, String)> = Vec::new();
        if let Some(after) = after {
            query.push(("after", after.to_string()));
        }
        if let Some(limit) = limit {
            query.push(("limit", limit.to_string()));
        }
        let request = self
            .request(Method::GET, &["v1", "runs", id, "logs"])?
            .query(&query);
        self.call(request).await
    }
}
