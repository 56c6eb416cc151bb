//! Deleting pools: refused while runs are unfinished; finished runs outlive their pool.

use ferry_core::{PoolType, RunState};
use ferry_store::{Error, RunFilter};

use crate::harness::{name, new_run, pool, run_at, run_in, workspace, Db};

backend_test!(a_pool_with_unfinished_runs_cannot_be_deleted);
async fn a_pool_with_unfinished_runs_cannot_be_deleted(db: Db) {
    let s = &db.store;
    let ws = workspace(s, "acme").await;
    let p = pool(s, ws.id, "sbx", PoolType::Managed).await;
    for state in [
        RunState::Scheduled,
        RunState::Pending,
        RunState::Running,
        RunState::Cancelling,
    ] {
        let run = run_at(s, &p, state).await;
        match s.pool_delete(ws.id, &p.name).await {
            Err(Error::InUse(msg)) => assert_eq!(
                msg,
                "pool \"sbx\" has 1 runs that have not finished; cancel them or wait"
            ),
            other => panic!("{state}: expected InUse, got {other:?}"),
        }
        assert_eq!(
            s.pool_get(ws.id, &p.name).await.unwrap(),
            p,
            "the refused delete kept it"
        );
        // Finish it, the way its owner (or a cancel request) would.
        let done = match state {
            RunState::Scheduled => s.run_request_cancel(ws.id, run.id).await.unwrap(),
            _ => {
                let t = crate::harness::step(&run, RunState::Crashed, "test");
                s.run_transition(&t).await.unwrap()
            }
        };
        assert!(done.state.is_terminal());
    }
}

backend_test!(finished_runs_outlive_their_deleted_pool);
async fn finished_runs_outlive_their_deleted_pool(db: Db) {
    let s = &db.store;
    let ws = workspace(s, "acme").await;
    let p = pool(s, ws.id, "sbx", PoolType::Managed).await;
    let done = run_at(s, &p, RunState::Completed).await;
    let cancelled = run_at(s, &p, RunState::Cancelled).await;
    s.run_logs_append(done.id, &[crate::logs::line("hello")], 1024)
        .await
        .unwrap();
    let events = s.run_events(ws.id, done.id).await.unwrap();

    s.pool_delete(ws.id, &p.name).await.unwrap();
    assert!(matches!(
        s.pool_get(ws.id, &p.name).await,
        Err(Error::NotFound { kind: "pool" })
    ));
    let kept = s.run_get(ws.id, done.id).await.unwrap();
    assert_eq!(kept, done);
    assert_eq!(
        (kept.pool_name.as_str(), kept.pool_type),
        ("sbx", PoolType::Managed)
    );
    assert_eq!(s.run_events(ws.id, done.id).await.unwrap(), events);
    assert_eq!(
        s.run_logs(ws.id, done.id, 0, 10).await.unwrap().lines.len(),
        1
    );
    let by_name = RunFilter {
        pool: Some(name("sbx")),
        ..Default::default()
    };
    assert_eq!(s.runs_list(ws.id, &by_name).await.unwrap().items.len(), 2);
    assert_eq!(s.run_get(ws.id, cancelled.id).await.unwrap(), cancelled);

    // No run can be submitted into the deleted pool.
    assert!(matches!(
        s.run_create(&new_run(&p)).await,
        Err(Error::NotFound { kind: "pool" })
    ));
    // Its name can be used again; runs of the old and the new pool share the name.
    let again = pool(s, ws.id, "sbx", PoolType::Ecs).await;
    assert_ne!(again.id, p.id);
    let fresh = run_in(s, &again).await;
    assert_eq!(fresh.pool_type, PoolType::Ecs);
    let by_name = RunFilter {
        pool: Some(name("sbx")),
        ..Default::default()
    };
    assert_eq!(s.runs_list(ws.id, &by_name).await.unwrap().items.len(), 3);
}

backend_test!(deletes_and_submissions_race_without_orphans);
async fn deletes_and_submissions_race_without_orphans(db: Db) {
    // Whatever the interleaving, a pool is either deleted with no unfinished run, or kept.
    let s = &db.store;
    let ws = workspace(s, "acme").await;
    for round in 0..10 {
        let p = pool(s, ws.id, &format!("p{round}"), PoolType::Managed).await;
        let submit = {
            let (s, new) = (s.clone(), new_run(&p));
            tokio::spawn(async move { s.run_create(&new).await })
        };
        let delete = {
            let (s, n) = (s.clone(), p.name.clone());
            tokio::spawn(async move { s.pool_delete(ws.id, &n).await })
        };
        let (submitted, deleted) = (submit.await.unwrap(), delete.await.unwrap());
        match (submitted, deleted) {
            (Ok((run, true)), Err(Error::InUse(_))) => {
                assert_eq!(s.pool_get(ws.id, &p.name).await.unwrap().id, p.id);
                s.run_request_cancel(ws.id, run.id).await.unwrap();
            }
            (Err(Error::NotFound { kind: "pool" }), Ok(())) => {}
            other => panic!("round {round}: impossible outcome {other:?}"),
        }
    }
    let unfinished = s.runs_count_by_state().await.unwrap();
    assert!(
        unfinished.iter().all(|(st, n)| st.is_terminal() || *n == 0),
        "{unfinished:?}"
    );
}
