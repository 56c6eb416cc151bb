//! `/v1/credentials`, `/v1/secrets`, `/v1/audit` and `/v1/workspace`: a workspace's
//! credentials and secrets (write-only: reads give metadata), its audit log and settings.

use reqwest::Method;
use serde_json::{json, Value};

use crate::models::{AuditPage, Credential, IpAllowList, Items, Secret, WorkspaceSettings};
use crate::{Client, Error};

impl Client {
    /// `POST /v1/credentials`. `body` is `{"name", "kind", ...}` with the kind's fields
    /// (DESIGN §5), e.g. `{"name": "prod", "kind": "aws-assume-role", "role_arn": "...",
    /// "region": "us-east-1"}`.
    pub async fn create_credential(&self, body: &Value) -> Result<Credential, Error> {
        let request = self
            .request(Method::POST, &["v1", "credentials"])?
            .json(body);
        self.call(request).await
    }

    /// `GET /v1/credentials`.
    pub async fn list_credentials(&self) -> Result<Vec<Credential>, Error> {
        let list: Items<Credential> = self
            .call(self.request(Method::GET, &["v1", "credentials"])?)
            .await?;
        Ok(list.items)
    }

    /// `GET /v1/credentials/{id}`.
    pub async fn get_credential(&self, id: &str) -> Result<Credential, Error> {
        self.call(self.request(Method::GET, &["v1", "credentials", id])?)
            .await
    }

    /// `PUT /v1/credentials/{id}`: replaces the material (same kind, same name).
    pub async fn rotate_credential(&self, id: &str, body: &Value) -> Result<Credential, Error> {
        let request = self
            .request(Method::PUT, &["v1", "credentials", id])?
            .json(body);
        self.call(request).await
    }

    /// `DELETE /v1/credentials/{id}`.
    pub async fn delete_credential(&self, id: &str) -> Result<(), Error> {
        self.send(self.request(Method::DELETE, &["v1", "credentials", id])?)
            .await?;
        Ok(())
    }

    /// `POST /v1/credentials/{id}/validate`: live, side-effect-free checks of the credential
    /// (and of `pool`'s cluster or project); the outcome is in the answer's `validation`.
    pub async fn validate_credential(
        &self,
        id: &str,
        pool: Option<&str>,
    ) -> Result<Credential, Error> {
        let request = self
            .request(Method::POST, &["v1", "credentials", id, "validate"])?
            .json(&json!({ "pool": pool }));
        self.call(request).await
    }

    /// `PUT /v1/secrets/{name}`; returns the secret's metadata and whether it was created
    /// (`false`: its value was replaced).
    pub async fn put_secret(&self, name: &str, value: &str) -> Result<(Secret, bool), Error> {
        let request = self
            .request(Method::PUT, &["v1", "secrets", name])?
            .json(&json!({ "value": value }));
        let response = self.send(request).await?;
        let created = response.status() == reqwest::StatusCode::CREATED;
        Ok((self.decode(response).await?, created))
    }

    /// `GET /v1/secrets`.
    pub async fn list_secrets(&self) -> Result<Vec<Secret>, Error> {
        let list: Items<Secret> = self
            .call(self.request(Method::GET, &["v1", "secrets"])?)
            .await?;
        Ok(list.items)
    }

    /// `GET /v1/secrets/{name}` (metadata only).
    pub async fn get_secret(&self, name: &str) -> Result<Secret, Error> {
        self.call(self.request(Method::GET, &["v1", "secrets", name])?)
            .await
    }

    /// `DELETE /v1/secrets/{name}`.
    pub async fn delete_secret(&self, name: &str) -> Result<(), Error> {
        self.send(self.request(Method::DELETE, &["v1", "secrets", name])?)
            .await?;
        Ok(())
    }

    /// `GET /v1/audit?after=&limit=`.
    pub async fn audit(&self, after: Option<i64>, limit: Option<u32>) -> Result<AuditPage, Error> {
        let mut query: Vec<(&str, String)> = Vec::new();
        if let Some(a) = after {
            query.push(("after", a.to_string()));
        }
        if let Some(l) = limit {
            query.push(("limit", l.to_string()));
        }
        let request = self.request(Method::GET, &["v1", "audit"])?.query(&query);
        self.call(request).await
    }

    /// `GET /v1/workspace`.
    pub async fn get_workspace(&self) -> Result<WorkspaceSettings, Error> {
        self.call(self.request(Method::GET, &["v1", "workspace"])?)
            .await
    }

    /// `PATCH /v1/workspace`: turns run-log storage on or off.
    pub async fn set_store_logs(&self, store_logs: bool) -> Result<WorkspaceSettings, Error> {
        let request = self
            .request(Method::PATCH, &["v1", "workspace"])?
            .json(&json!({ "store_logs": store_logs }));
        self.call(request).await
    }

    /// `GET /v1/workspace/ip-allowlist` (admin).
    pub async fn get_ip_allowlist(&self) -> Result<IpAllowList, Error> {
        self.call(self.request(Method::GET, &["v1", "workspace", "ip-allowlist"])?)
            .await
    }

    /// `PUT /v1/workspace/ip-allowlist` (admin): replaces the list; `force` sets it even if it
    /// leaves out the caller's own address.
    pub async fn set_ip_allowlist(
        &self,
        cidrs: &[String],
        force: bool,
    ) -> Result<IpAllowList, Error> {
        let request = self
            .request(Method::PUT, &["v1", "workspace", "ip-allowlist"])?
            .json(&json!({ "cidrs": cidrs, "force": force }));
        self.call(request).await
    }
}
