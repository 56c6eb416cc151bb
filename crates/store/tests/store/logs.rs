//! Run logs: numbering, order, paging, the byte cap and concurrent appends.

use chrono::{Duration, Utc};
use ferry_core::port::{LogLine, LogStream};
use ferry_core::{PoolType, RunId};
use ferry_store::Error;

use crate::harness::{pool, run_in, workspace, Db};

pub fn line(text: &str) -> LogLine {
    LogLine {
        ts: Utc::now(),
        stream: LogStream::Stdout,
        line: text.to_owned(),
    }
}

backend_test!(lines_are_numbered_in_order_and_paged);
async fn lines_are_numbered_in_order_and_paged(db: Db) {
    let s = &db.store;
    let ws = workspace(s, "acme").await;
    let p = pool(s, ws.id, "sbx", PoolType::Managed).await;
    let run = run_in(s, &p).await;
    let t0 = Utc::now();
    let first: Vec<LogLine> = (0..3)
        .map(|i| LogLine {
            ts: t0 + Duration::nanoseconds(i * 1_234_567),
            stream: [LogStream::Stdout, LogStream::Stderr, LogStream::Ferry][i as usize],
            line: format!("line {i}"),
        })
        .collect();
    assert!(!s.run_logs_append(run.id, &first, 1 << 20).await.unwrap());
    let second: Vec<LogLine> = (3..10).map(|i| line(&format!("line {i}"))).collect();
    assert!(!s.run_logs_append(run.id, &second, 1 << 20).await.unwrap());
    assert!(!s.run_logs_append(run.id, &[], 1 << 20).await.unwrap());

    let all = s.run_logs(ws.id, run.id, 0, 100).await.unwrap();
    assert!(!all.truncated);
    assert_eq!(
        all.lines.iter().map(|l| l.seq).collect::<Vec<_>>(),
        (1..=10).collect::<Vec<_>>()
    );
    let texts: Vec<_> = all.lines.iter().map(|l| l.line.line.clone()).collect();
    assert_eq!(
        texts,
        (0..10).map(|i| format!("line {i}")).collect::<Vec<_>>()
    );
    assert_eq!(all.lines[1].line.stream, LogStream::Stderr);
    assert_eq!(all.lines[2].line.stream, LogStream::Ferry);
    // Timestamps are kept to the microsecond.
    assert_eq!(
        all.lines[2].line.ts.timestamp_micros(),
        first[2].ts.timestamp_micros()
    );

    // Paging with after_seq.
    let mut seen = Vec::new();
    let mut after = 0;
    loop {
        let page = s.run_logs(ws.id, run.id, after, 3).await.unwrap();
        if page.lines.is_empty() {
            break;
        }
        assert!(page.lines.len() <= 3);
        after = page.lines.last().unwrap().seq;
        seen.extend(page.lines.into_iter().map(|l| l.seq));
    }
    assert_eq!(seen, (1..=10).collect::<Vec<_>>());
    // A limit of 0 is clamped to 1.
    assert_eq!(
        s.run_logs(ws.id, run.id, 4, 0).await.unwrap().lines[0].seq,
        5
    );
    assert!(s
        .run_logs(ws.id, run.id, 10, 100)
        .await
        .unwrap()
        .lines
        .is_empty());

    assert!(matches!(
        s.run_logs_append(RunId::new(), &second, 1 << 20).await,
        Err(Error::NotFound { kind: "run" })
    ));
}

backend_test!(the_byte_cap_truncates_and_drops_later_lines);
async fn the_byte_cap_truncates_and_drops_later_lines(db: Db) {
    let s = &db.store;
    let ws = workspace(s, "acme").await;
    let p = pool(s, ws.id, "sbx", PoolType::Managed).await;
    let run = run_in(s, &p).await;
    // Bytes, not characters: "é" is two.
    let cap = 10;
    assert!(!s
        .run_logs_append(run.id, &[line("abcd")], cap)
        .await
        .unwrap());
    let truncated = s
        .run_logs_append(run.id, &[line("éfg"), line("hij"), line("k")], cap)
        .await
        .unwrap();
    assert!(truncated, "abcd + éfg is 8 bytes; hij would make 11");
    // Later lines are dropped even when they would fit: the log stays a prefix.
    assert!(s.run_logs_append(run.id, &[line("x")], cap).await.unwrap());

    let page = s.run_logs(ws.id, run.id, 0, 100).await.unwrap();
    assert!(page.truncated);
    let texts: Vec<_> = page.lines.iter().map(|l| l.line.line.as_str()).collect();
    assert_eq!(texts, ["abcd", "éfg"]);
    assert!(s.run_get(ws.id, run.id).await.unwrap().log_truncated);

    // A line exactly at the cap fits.
    let other = run_in(s, &p).await;
    assert!(!s
        .run_logs_append(other.id, &[line("12345"), line("67890")], 10)
        .await
        .unwrap());
    assert!(s.run_logs_append(other.id, &[line("")], 10).await.is_ok());
    assert!(!s.run_get(ws.id, other.id).await.unwrap().log_truncated);
    // A cap of zero keeps nothing.
    let third = run_in(s, &p).await;
    assert!(s.run_logs_append(third.id, &[line("a")], 0).await.unwrap());
    assert!(s
        .run_logs(ws.id, third.id, 0, 10)
        .await
        .unwrap()
        .lines
        .is_empty());
}

backend_test!(concurrent_appends_number_every_line_once);
async fn concurrent_appends_number_every_line_once(db: Db) {
    let s = &db.store;
    let ws = workspace(s, "acme").await;
    let p = pool(s, ws.id, "sbx", PoolType::Managed).await;
    let run = run_in(s, &p).await;
    let tasks: Vec<_> = (0..10)
        .map(|t| {
            let s = s.clone();
            tokio::spawn(async move {
                for batch in 0..4 {
                    let lines: Vec<_> = (0..5)
                        .map(|i| line(&format!("t{t} b{batch} l{i}")))
                        .collect();
                    s.run_logs_append(run.id, &lines, 1 << 20).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let page = s.run_logs(ws.id, run.id, 0, 10_000).await.unwrap();
    assert_eq!(
        page.lines.iter().map(|l| l.seq).collect::<Vec<_>>(),
        (1..=200).collect::<Vec<_>>()
    );
    let mut texts: Vec<_> = page.lines.iter().map(|l| l.line.line.clone()).collect();
    texts.sort();
    texts.dedup();
    assert_eq!(texts.len(), 200);
    // Each batch is contiguous: an append is atomic.
    for chunk in page.lines.chunks(5) {
        let prefix = &chunk[0].line.line[..chunk[0].line.line.len() - 3];
        assert!(
            chunk.iter().all(|l| l.line.line.starts_with(prefix)),
            "{chunk:?}"
        );
    }
}
