//! De-risking: the SDK's own clients against the fake.

use google_cloud_run_v2::client::{Executions, Jobs};
use google_cloud_run_v2::model::{Container, ExecutionTemplate, Job, TaskTemplate};

#[tokio::test]
async fn sdk_creates_and_runs_a_job_on_the_fake() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    let sa = ferry_cloudrun_fake::ServiceAccount::cached("ferry", "smoke-a", dir).unwrap();
    let fake = ferry_cloudrun_fake::FakeCloudRun::start(Default::default())
        .await
        .unwrap();
    fake.register_project("smoke-a", &sa.email, sa.public_key_pem())
        .unwrap();
    let creds = google_cloud_auth::credentials::service_account::Builder::new(sa.key_json())
        .build()
        .unwrap();
    let jobs = Jobs::builder()
        .with_endpoint(fake.endpoint())
        .with_credentials(creds.clone())
        .build()
        .await
        .unwrap();
    let job = Job::new().set_template(ExecutionTemplate::new().set_template(
        TaskTemplate::new().set_containers([Container::new().set_image("ghcr.io/x/y:1")]),
    ));
    let mut op = jobs
        .create_job()
        .set_parent("projects/smoke-a/locations/europe-west1")
        .set_job_id("smoke")
        .set_job(job)
        .send()
        .await
        .unwrap();
    println!("{op:?}");
    while !op.done {
        op = jobs
            .get_operation()
            .set_name(&op.name)
            .send()
            .await
            .unwrap();
    }
    let created = op.response().unwrap().to_msg::<Job>().unwrap();
    assert_eq!(
        created.name,
        "projects/smoke-a/locations/europe-west1/jobs/smoke"
    );
    let op = jobs.run_job().set_name(&created.name).send().await.unwrap();
    let exec = op
        .metadata
        .unwrap()
        .to_msg::<google_cloud_run_v2::model::Execution>()
        .unwrap();
    println!("{exec:?}");
    let executions = Executions::builder()
        .with_endpoint(fake.endpoint())
        .with_credentials(creds)
        .build()
        .await
        .unwrap();
    let got = executions
        .get_execution()
        .set_name(&exec.name)
        .send()
        .await
        .unwrap();
    println!("{got:?}");
    assert_eq!(got.name, exec.name);
}
