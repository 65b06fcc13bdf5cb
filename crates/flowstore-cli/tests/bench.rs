//! `flowstore bench` at tiny sizes on both backends: every workload completes and
//! checks its own result (every task done exactly once, run and sample counts
//! right). No timing is asserted.

use flowstore_cli::bench::{self, BenchOptions, Report, Workload};

fn tiny(database_url: Option<String>) -> BenchOptions {
    BenchOptions {
        database_url,
        workloads: vec![
            Workload::Claim,
            Workload::Http,
            Workload::Dag,
            Workload::Query,
            Workload::Fleet,
            Workload::Start,
            Workload::Pickup,
        ],
        tasks: 200,
        workers: 2,
        rounds: 1,
        dag_runs: 20,
        runs: 500,
        query_calls: 5,
        force: false,
        progress: false,
        ..BenchOptions::default()
    }
}

fn check(report: &Report) {
    let rows = |w: &str| report.rows.iter().filter(|r| r.workload == w).count();
    // Each backend runs the minimal job table and a second floor: SQLite the floor
    // through rusqlite (the driver's share), PostgreSQL flowstore's rows written by
    // hand (their cost).
    let floors = 3;
    assert_eq!(
        rows("claim"),
        2 * (1 + floors) + 1,
        "floors and flowstore at B=1 and B=64, and flowstore with heartbeats at B=1"
    );
    assert_eq!(rows("http"), 2);
    assert_eq!(rows("dag"), 2, "completion one by one and by batch");
    assert_eq!(
        rows("start"),
        4,
        "one run per request and a batch per request, and their floor"
    );
    assert_eq!(rows("pickup"), 1, "enqueue to start");
    assert!(rows("query") >= 8, "every query measured");
    // Every dashboard page over HTTP, as an admin (ten, the admin page included) and
    // as a user (nine).
    let pages = report
        .rows
        .iter()
        .filter(|r| r.variant.starts_with("page over HTTP"))
        .count();
    assert_eq!(pages, 19, "{:?}", report.rows);
    // Events on another server and on the same one, and a claim's wake-up; on
    // PostgreSQL also what idle waiting claims cost the database.
    let fleet = if report.backend == "postgres" { 4 } else { 3 };
    assert_eq!(rows("fleet"), fleet, "{:?}", report.rows);
    for r in &report.rows {
        match r.workload.as_str() {
            "claim" | "http" => {
                assert_eq!(r.items, 200, "{}: every task done once", r.variant);
                assert!(r.rate.is_some() && r.p99_ms.is_some() && r.complete_p99_ms.is_some());
            }
            "dag" => assert_eq!(r.items, 20),
            "start" => assert!(r.items == 200 && r.rate.is_some() && r.p99_ms.is_some()),
            // Every run started was claimed once (the workload fails otherwise).
            "pickup" => assert!(r.items == 200 && r.p50_ms.is_some() && r.p99_ms.is_some()),
            "fleet" if r.rate_unit.is_some() => assert!(r.rate.is_some_and(|t| t >= 0.0)),
            "fleet" => assert!(r.items >= 20 && r.p50_ms.is_some(), "{}", r.variant),
            _ => assert!(r.items >= 1 && r.p99_ms.is_some(), "{}", r.variant),
        }
    }
    assert!(report
        .rows
        .iter()
        .any(|r| r.workload == "claim" && r.ratio_to_floor.is_some()));
    // B=1 completes each task on its own, B=64 the claimed batch at once (library,
    // floor and HTTP alike), and the report says which ran.
    for (workload, variant) in [
        ("claim", "flowstore B=1 W=2 cmpl=each"),
        ("claim", "flowstore B=1 W=2 cmpl=each +heartbeat"),
        ("start", "minimal job table, 1 per statement, W=2"),
        ("start", "minimal job table, 1000 per statement, W=2"),
        ("claim", "raw SQL floor B=64 W=2 cmpl=batch"),
        ("claim", "flowstore B=64 W=2 cmpl=batch"),
        ("http", "flowstore serve B=1 W=2 cmpl=each"),
        ("http", "flowstore serve B=64 W=2 cmpl=batch"),
        ("dag", "diamond runs to completion W=2 B=16 cmpl=each"),
        ("dag", "diamond runs to completion W=2 B=16 cmpl=batch"),
    ] {
        assert!(
            report
                .rows
                .iter()
                .any(|r| r.workload == workload && r.variant == variant),
            "{workload}: {variant}"
        );
    }
    let second_floor = if report.backend == "sqlite" {
        "floor via rusqlite"
    } else {
        "raw SQL, flowstore's rows"
    };
    for b in ["B=1 W=2 cmpl=each", "B=64 W=2 cmpl=batch"] {
        let row = report
            .rows
            .iter()
            .find(|r| r.variant == format!("{second_floor} {b}"))
            .unwrap_or_else(|| panic!("{second_floor} {b}"));
        assert_eq!(row.items, 200, "{}: every task done once", row.variant);
        assert!(row.ratio_to_floor.is_some());
    }
    if report.backend == "postgres" {
        // What flowstore wrote per task and per run, from the table counters: each
        // claim and each completion its task row, its attempt row and an event.
        for variant in [
            "flowstore B=1 W=2 cmpl=each",
            "flowstore B=64 W=2 cmpl=batch",
        ] {
            let row = report.rows.iter().find(|r| r.variant == variant).unwrap();
            let note = row.note.as_deref().unwrap_or_default();
            for part in [
                "rows written per task",
                "events 2.00 ins",
                "task_executions 1.00 ins 1.00 upd",
                "tasks 2.00 upd",
            ] {
                assert!(note.contains(part), "{variant}: {part} in {note}");
            }
        }
        for r in report.rows.iter().filter(|r| r.workload == "dag") {
            let note = r.note.as_deref().unwrap_or_default();
            assert!(
                note.contains("rows written per run") && note.contains("tasks 14.00 upd"),
                "{}: {note}",
                r.variant
            );
        }
        assert!(
            report
                .notes
                .iter()
                .any(|n| n.contains("flowstore against it: B=1 ") && n.contains(", B=64 ")),
            "flowstore set against its rows written by hand: {:?}",
            report.notes
        );
    }
    let table = bench::render_table(report);
    assert!(table.contains("cores"));
    serde_json::to_string(report).expect("the report serialises");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_workload_on_sqlite() {
    let report = bench::run(&tiny(None)).await.expect("bench runs");
    assert_eq!(report.backend, "sqlite");
    check(&report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_workload_on_postgres_in_a_database_of_its_own() {
    let admin = flowstore_testkit::pg_admin_url();
    let report = bench::run(&tiny(Some(admin))).await.expect("bench runs");
    assert_eq!(report.backend, "postgres");
    assert!(report.database.contains("flowstore_bench_"));
    check(&report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_file_with_data_is_refused_without_force() {
    let dir = std::env::temp_dir().join(format!("fs-bench-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("live.db");
    std::fs::write(&file, b"not empty").unwrap();
    let mut opts = tiny(Some(format!("sqlite://{}", file.display())));
    opts.workloads = vec![Workload::Claim];
    let err = bench::run(&opts).await.unwrap_err();
    assert_eq!(err.field(), Some("database_url"));
    assert_eq!(
        std::fs::read(&file).unwrap(),
        b"not empty",
        "left untouched"
    );
    std::fs::remove_dir_all(dir).unwrap();
}
