//! The internal listener's calls (made with the internal service token): workspaces and their
//! first API keys.

use reqwest::Method;
use serde_json::json;

use crate::models::{ApiKeyCreated, Items, Workspace};
use crate::{Client, Error};

impl Client {
    /// `POST /internal/v1/workspaces`.
    pub async fn create_workspace(&self, name: &str) -> Result<Workspace, Error> {
        let request = self
            .request(Method::POST, &["internal", "v1", "workspaces"])?
            .json(&json!({ "name": name }));
        self.call(request).await
    }

    /// `GET /internal/v1/workspaces`.
    pub async fn list_workspaces(&self) -> Result<Vec<Workspace>, Error> {
        let request = self.request(Method::GET, &["internal", "v1", "workspaces"])?;
        let list: Items<Workspace> = self.call(request).await?;
        Ok(list.items)
    }

    /// `POST /internal/v1/workspaces/{id}/api-keys`: mints a key of `role` (`admin`,
    /// `developer`, `runner`, `viewer`); its secret is in the answer and nowhere else.
    pub async fn create_api_key(
        &self,
        workspace_id: &str,
        role: &str,
    ) -> Result<ApiKeyCreated, Error> {
        let request = self
            .request(
                Method::POST,
                &["internal", "v1", "workspaces", workspace_id, "api-keys"],
            )?
            .json(&json!({ "role": role }));
        self.call(request).await
    }
}
