//! `/v1/artifacts`: upload and list flows.

use reqwest::Method;

use crate::models::Items;
use crate::{Client, Error};

/// An uploaded flow.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Artifact {
    /// `sha256:<hex>`: what a run names in `artifact`.
    pub digest: String,
    pub size: u64,
    /// `component`, `command` or `preview1`.
    pub kind: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

impl Client {
    /// `POST /v1/artifacts` with the `.wasm` bytes; `true` when it was new.
    pub async fn upload_artifact(&self, bytes: Vec<u8>) -> Result<(Artifact, bool), Error> {
        let request = self
            .request(Method::POST, &["v1", "artifacts"])?
            .header(reqwest::header::CONTENT_TYPE, "application/wasm")
            .body(bytes);
        let response = self.send(request).await?;
        let created = response.status() == reqwest::StatusCode::CREATED;
        Ok((self.decode(response).await?, created))
    }

    /// `GET /v1/artifacts`.
    pub async fn list_artifacts(&self) -> Result<Vec<Artifact>, Error> {
        let list: Items<Artifact> = self
            .call(self.request(Method::GET, &["v1", "artifacts"])?)
            .await?;
        Ok(list.items)
    }
}
