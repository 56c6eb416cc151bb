//! The push pools' job specs as the API checks them: a pool's template when the pool is
//! created or changed (fields its runs may still supply can be missing), and template plus a
//! run's job variables at submit (complete). Each answers 422 naming every field to fix,
//! before anything reaches a cloud.

use ferry_core::{FieldError, PoolType};
use serde_json::Value;

use crate::error::ApiError;

fn spec_errors(pool_type: PoolType, template: &Value, variables: &Value) -> Vec<FieldError> {
    match pool_type {
        PoolType::Managed => Vec::new(),
        PoolType::Ecs => ferry_push_aws::spec_for(template, variables)
            .err()
            .unwrap_or_default(),
        PoolType::CloudRun => Vec::new(),
    }
}

fn answer(pool_type: PoolType, what: &str, errors: &[FieldError]) -> Result<(), ApiError> {
    if errors.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = errors
        .iter()
        .map(|e| format!("{}: {}", e.field, e.message))
        .collect();
    Err(ApiError::invalid(format!(
        "the {pool_type} {what} is not valid: {}",
        list.join("; ")
    )))
}

/// Checks a push pool's base template; fields left for runs to set may be missing.
pub fn check_template(pool_type: PoolType, template: &Value) -> Result<(), ApiError> {
    let errors: Vec<FieldError> = spec_errors(pool_type, template, &Value::Null)
        .into_iter()
        .filter(|e| !e.is_missing())
        .collect();
    answer(pool_type, "job_template", &errors)
}

/// Checks what a run would be submitted with: the template with its variables over it.
pub fn check_run(pool_type: PoolType, template: &Value, variables: &Value) -> Result<(), ApiError> {
    answer(
        pool_type,
        "job (job_template with job_variables)",
        &spec_errors(pool_type, template, variables),
    )
}
