//! Many schedulers on one database: every run is claimed and executed exactly once.

use std::collections::HashSet;

use ferry_core::RunState;
use serde_json::json;

use crate::both_backends;
use crate::support::Env;

both_backends!(four_schedulers_run_a_thousand_runs_exactly_once, thousand);
async fn thousand(env: Env) {
    let mut ids = HashSet::new();
    for i in 0..1000 {
        let pool = if i % 2 == 0 { &env.managed } else { &env.ecs };
        ids.insert(env.submit(pool, json!({"polls": 0})).await.id);
    }
    // Four schedulers as four processes would be: each with its own connection pool.
    let mut handles = Vec::new();
    for i in 0..4 {
        let store = ferry_store::Store::connect(&env.url).await.unwrap();
        let config = ferry_engine::Config {
            lease_ttl: std::time::Duration::from_secs(10),
            renew_interval: std::time::Duration::from_secs(1),
            ..crate::support::fast_config(&format!("sched-{i}"))
        };
        handles.push(ferry_engine::Scheduler::new(store, env.executors(), config).start());
    }
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let counts = env.store.runs_count_by_state().await.unwrap();
        let completed = counts
            .iter()
            .find(|(s, _)| *s == RunState::Completed)
            .map_or(0, |(_, n)| *n);
        if completed == 1000 {
            break;
        }
        if tokio::time::Instant::now() > deadline {
            let stuck = env
                .store
                .runs_list(
                    env.ws,
                    &ferry_store::RunFilter {
                        state: Some(RunState::Crashed),
                        limit: 1,
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
            let events = match stuck.items.first() {
                Some(r) => format!("{:#?}", env.store.run_events(env.ws, r.id).await.unwrap()),
                None => String::new(),
            };
            panic!("only {completed} of 1000 completed: {counts:?}; a crashed one: {events}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    for h in handles {
        h.stop().await;
    }
    let mut executed: Vec<_> = env.runner.journal.entries();
    executed.extend(env.cloud.journal.entries());
    assert_eq!(executed.len(), 1000, "each run executed once");
    assert!(env.runner.journal.duplicates().is_empty());
    assert!(env.cloud.journal.duplicates().is_empty());
    let seen: HashSet<_> = executed.iter().map(|(id, _)| *id).collect();
    assert_eq!(seen, ids);
    // Each run was claimed exactly once: one scheduled -> pending event.
    for id in ids.iter().take(50) {
        let claims = env
            .path(*id)
            .await
            .into_iter()
            .filter(|(f, t)| *f == Some(RunState::Scheduled) && *t == RunState::Pending)
            .count();
        assert_eq!(claims, 1, "run {id}");
    }
}
