//! `/v1/pools`: create, list, show, update and delete pools.

use reqwest::Method;

use crate::models::{Items, NewPool, Pool, PoolPatch};
use crate::{Client, Error};

impl Client {
    /// `POST /v1/pools`.
    pub async fn create_pool(&self, pool: &NewPool) -> Result<Pool, Error> {
        let request = self.request(Method::POST, &["v1", "pools"])?.json(pool);
        self.call(request).await
    }

    /// `GET /v1/pools`.
    pub async fn list_pools(&self) -> Result<Vec<Pool>, Error> {
        let list: Items<Pool> = self
            .call(self.request(Method::GET, &["v1", "pools"])?)
            .await?;
        Ok(list.items)
    }

    /// `GET /v1/pools/{name}`.
    pub async fn get_pool(&self, name: &str) -> Result<Pool, Error> {
        self.call(self.request(Method::GET, &["v1", "pools", name])?)
            .await
    }

    /// `PATCH /v1/pools/{name}`.
    pub async fn update_pool(&self, name: &str, patch: &PoolPatch) -> Result<Pool, Error> {
        let request = self
            .request(Method::PATCH, &["v1", "pools", name])?
            .json(patch);
        self.call(request).await
    }

    /// `DELETE /v1/pools/{name}`.
    pub async fn delete_pool(&self, name: &str) -> Result<(), Error> {
        self.send(self.request(Method::DELETE, &["v1", "pools", name])?)
            .await?;
        Ok(())
    }
}
