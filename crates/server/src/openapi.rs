//! The OpenAPI document, generated from the handlers' annotations.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::api::{
    api_keys, artifacts, audit, credentials, health, internal, oidc, pools, reports, runs, secrets,
    workspace,
};

#[derive(OpenApi)]
#[openapi(
    info(title = "Ferry", description = "Ferry's execution-provisioner API."),
    paths(
        health::healthz, health::readyz, health::metrics,
        oidc::discovery, oidc::jwks,
        pools::create, pools::list, pools::show, pools::update, pools::delete,
        artifacts::upload, artifacts::list, artifacts::show,
        runs::create, runs::list, runs::show, runs::cancel, runs::events, runs::logs,
        reports::post_logs, reports::post_result,
        api_keys::create, api_keys::list, api_keys::revoke,
        credentials::create, credentials::list, credentials::show, credentials::rotate, credentials::delete,
        credentials::validate,
        secrets::put, secrets::list, secrets::show, secrets::delete,
        audit::list, workspace::show, workspace::update, workspace::ip_allowlist_show,
        workspace::ip_allowlist_set,
        internal::workspace_create, internal::workspaces_list, internal::api_key_create,
    ),
    components(schemas(crate::error::ErrorBody, crate::error::ErrorDetail)),
    modifiers(&BearerAuth, &LinkFieldNames)
)]
struct ApiDoc;

/// utoipa 5.5 writes a response link's fields in Rust's spelling (`operation_id`,
/// `operation_ref`, `request_body`), which no OpenAPI tool reads: this moves each into the
/// link's extensions, which are written under the names they are given, as OpenAPI spells them.
struct LinkFieldNames;

impl Modify for LinkFieldNames {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::RefOr;
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                for response in operation.responses.responses.values_mut() {
                    let RefOr::T(response) = response else {
                        continue;
                    };
                    for link in response.links.values_mut() {
                        let RefOr::T(link) = link else { continue };
                        let extensions = link.extensions.get_or_insert_with(Default::default);
                        for (name, value) in [
                            ("operationId", std::mem::take(&mut link.operation_id)),
                            ("operationRef", std::mem::take(&mut link.operation_ref)),
                        ] {
                            if !value.is_empty() {
                                extensions.insert(name.to_owned(), value.into());
                            }
                        }
                        if let Some(body) = link.request_body.take() {
                            extensions.insert("requestBody".to_owned(), body);
                        }
                    }
                }
            }
        }
    }
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let bearer =
            || SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build());
        components.add_security_scheme("api_key", bearer());
        components.add_security_scheme("internal_token", bearer());
        components.add_security_scheme("run_token", bearer());
    }
}

pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

#[cfg(test)]
mod tests {
    #[test]
    fn document_lists_every_public_route() {
        let doc = super::document();
        for path in [
            "/v1/pools",
            "/v1/pools/{name}",
            "/v1/runs",
            "/v1/runs/{id}",
            "/v1/runs/{id}/cancel",
            "/v1/runs/{id}/events",
            "/v1/runs/{id}/logs",
            "/v1/api-keys",
            "/v1/credentials",
            "/v1/credentials/{id}",
            "/v1/credentials/{id}/validate",
            "/v1/runs/{id}/result",
            "/v1/secrets",
            "/v1/secrets/{name}",
            "/v1/audit",
            "/v1/workspace",
            "/internal/v1/workspaces",
            "/.well-known/openid-configuration",
            "/.well-known/jwks.json",
        ] {
            assert!(
                doc.paths.paths.contains_key(path),
                "{path} missing from openapi.json"
            );
        }
    }
}
