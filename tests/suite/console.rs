//! The operator's console on the local router: its page and assets come from the binary, its
//! quarantine endpoints list by reason and replay through the same code as `eventide
//! quarantine replay` (and only for the console's own same-origin requests), and its figures
//! (end-of-day progress, a series' days) say where each day stands. The page itself is tested
//! in a real browser by `scripts/check-console`.

use chrono::Duration;
use eventide::pipeline::ports::{Clock, Quarantine, QuarantineEntry};
use serde_json::{Value, json};

use crate::kit::{TestApp, spawn_app};

async fn get(t: &TestApp, path: &str) -> (u16, Value) {
    let response = t
        .client
        .get(format!("{}{path}", t.base))
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// POSTs a replay request as the console sends it, with `adjust` adding headers first.
async fn replay(
    t: &TestApp,
    body: Value,
    adjust: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
) -> (u16, Value) {
    replay_as(t, "application/json", body, adjust).await
}

/// [`replay`] with another content type.
async fn replay_as(
    t: &TestApp,
    content_type: &str,
    body: Value,
    adjust: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
) -> (u16, Value) {
    let request = t
        .client
        .post(format!("{}/api/quarantine/replay", t.base))
        .header("content-type", content_type)
        .header("x-eventide-console", "replay")
        .body(body.to_string());
    let response = adjust(request).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

const OUTAGE: &str = "delivered 10 times without being completed (max 10)";

/// Two messages lost in an outage (good bytes) and one that is bad whatever happens.
async fn quarantine_three(t: &TestApp) {
    let entry = |id: &str, reason: &str, body: &str| QuarantineEntry {
        id: id.into(),
        at: t.clock.now(),
        function: "process".into(),
        source: format!("observations:{id}"),
        reason: reason.into(),
        body: body.as_bytes().to_vec(),
    };
    t.embedded()
        .quarantine
        .put(&[
            entry(
                "outage-1",
                OUTAGE,
                r#"{"series":"replayed","ts":"2026-11-19T10:00:00Z","value":7}"#,
            ),
            entry(
                "outage-2",
                OUTAGE,
                r#"{"series":"replayed","ts":"2026-11-19T11:00:00Z","value":9}"#,
            ),
            entry("broken", "the message is not valid JSON", r#"{"series":"#),
        ])
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quarantine_is_listed_by_reason_and_a_group_replays_to_its_summary() {
    let t = spawn_app(|_| {}).await;
    quarantine_three(&t).await;

    let (status, listing) = get(&t, "/api/quarantine").await;
    assert_eq!(status, 200, "{listing}");
    assert_eq!(
        listing["groups"],
        json!([
            {"reason": OUTAGE, "count": 2},
            {"reason": "the message is not valid JSON", "count": 1},
        ])
    );
    assert_eq!(listing["truncated"], false);
    let broken = listing["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == "broken")
        .unwrap();
    assert_eq!(broken["body"], r#"{"series":"#);
    assert_eq!(broken["function"], "process");
    assert_eq!(broken["source"], "observations:broken");
    let (_, cut) = get(&t, "/api/quarantine?limit=1").await;
    assert_eq!(cut["entries"].as_array().unwrap().len(), 1);
    assert_eq!(cut["truncated"], true);

    // The outage is over: replay its group, by reason.
    let (status, report) = replay(&t, json!({"reason": OUTAGE}), |r| r).await;
    assert_eq!(status, 200, "{report}");
    let mut replayed: Vec<&str> = report["replayed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| id.as_str().unwrap())
        .collect();
    replayed.sort_unstable();
    assert_eq!(replayed, ["outage-1", "outage-2"]);
    assert_eq!(report["skipped"], json!([]));
    t.drain().await;
    t.clock.advance(Duration::minutes(6));
    assert_eq!(t.end_of_day().await, 1);
    let rows = t.summaries().await;
    assert_eq!(
        (rows[0]["series"].clone(), rows[0]["sum"].clone()),
        (json!("replayed"), json!(16.0))
    );

    // By id, as the CLI does; an unknown id is reported, not an error.
    let (status, report) = replay(&t, json!({"ids": ["broken", "nope"]}), |r| r).await;
    assert_eq!(status, 200);
    assert_eq!(report["replayed"], json!(["broken"]));
    assert_eq!(
        report["skipped"],
        json!([{"id": "nope", "reason": "no such entry"}])
    );
    t.drain().await;
    let (_, listing) = get(&t, "/api/quarantine").await;
    assert_eq!(
        listing["entries"].as_array().unwrap().len(),
        1,
        "still bad: back in quarantine"
    );
    t.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_is_served_only_to_the_console_itself() {
    let t = spawn_app(|_| {}).await;
    quarantine_three(&t).await;
    let selection = json!({"ids": ["outage-1"]});

    let (status, body) = replay_as(&t, "text/plain", selection.clone(), |r| r).await;
    assert_eq!(status, 415, "{body}");
    // What a cross-site form can send.
    let (status, _) = replay_as(
        &t,
        "application/x-www-form-urlencoded",
        selection.clone(),
        |r| r,
    )
    .await;
    assert_eq!(status, 415);
    let response = t
        .client
        .post(format!("{}/api/quarantine/replay", t.base))
        .header("content-type", "application/json")
        .body(selection.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 403, "no console header");
    let (status, _) = replay(&t, selection.clone(), |r| {
        r.header("origin", "http://attacker.example")
    })
    .await;
    assert_eq!(status, 403, "another origin");
    let (status, _) = replay(&t, selection.clone(), |r| {
        r.header("host", "attacker.example:7071")
    })
    .await;
    assert_eq!(status, 403, "a name rebound to loopback");
    let (status, body) = replay(&t, json!({}), |r| r).await;
    assert_eq!(status, 400, "an empty selection is not everything: {body}");
    let (status, _) = replay(&t, json!({"ids": ["outage-1"], "reason": OUTAGE}), |r| r).await;
    assert_eq!(status, 400, "ids or a reason, not both");
    assert_eq!(t.app.status().await.unwrap().quarantine, Some(3));

    // The console's own request, with the origin a browser sends.
    let origin = t.base.clone();
    let (status, body) = replay(&t, selection, |r| r.header("origin", origin)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["replayed"], json!(["outage-1"]));
    // No CORS grant is ever made.
    let response = t
        .client
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/api/quarantine/replay", t.base),
        )
        .header("origin", "http://attacker.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(
        response
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    t.server.shutdown().await;
}

async fn ingest(t: &TestApp, lines: &[(&str, &str, f64)]) {
    let body: String = lines
        .iter()
        .map(|(series, ts, value)| {
            format!("{{\"series\":\"{series}\",\"ts\":\"{ts}\",\"value\":{value}}}\n")
        })
        .collect();
    let (status, reply) = t.post("application/x-ndjson", body).await;
    assert_eq!(status, 200, "{reply}");
    t.drain().await;
}

fn progress_of(progress: &Value, day: &str) -> Value {
    let found = progress["days"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["day"] == day)
        .unwrap_or_else(|| panic!("{day} in {progress}"));
    let mut counts = found.clone();
    counts.as_object_mut().unwrap().remove("day");
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_and_a_series_days_say_where_each_day_stands() {
    // The test clock is 2026-11-20T12:00Z: the current day is the 20th, the previous the 19th.
    let t = spawn_app(|_| {}).await;
    ingest(
        &t,
        &[
            ("a", "2026-11-19T10:00:00Z", 1.0),
            ("a", "2026-11-19T11:00:00Z", 3.0),
            ("b", "2026-11-19T10:00:00Z", 2.0),
            ("a", "2026-11-20T10:00:00Z", 5.0),
        ],
    )
    .await;
    let (status, progress) = get(&t, "/api/progress").await;
    assert_eq!(status, 200, "{progress}");
    assert_eq!(progress["days"][0]["day"], "2026-11-19");
    assert_eq!(progress["days"][1]["day"], "2026-11-20");
    assert_eq!(
        progress_of(&progress, "2026-11-19"),
        json!({"series": 2, "pending": 2, "written": 0, "refused": 0, "stale": 0, "overdue": 0})
    );

    // Past the settle time the previous day is overdue until the end of day writes it.
    t.clock.advance(Duration::minutes(6));
    let (_, progress) = get(&t, "/api/progress").await;
    assert_eq!(progress_of(&progress, "2026-11-19")["overdue"], 2);
    assert_eq!(t.end_of_day().await, 2);
    // A correction for `a` makes its row stale until the next summary.
    ingest(&t, &[("a", "2026-11-19T11:00:00Z", 30.0)]).await;
    let (_, progress) = get(&t, "/api/progress").await;
    assert_eq!(
        progress_of(&progress, "2026-11-19"),
        json!({"series": 2, "pending": 0, "written": 1, "refused": 0, "stale": 1, "overdue": 0})
    );
    assert_eq!(
        progress_of(&progress, "2026-11-20"),
        json!({"series": 1, "pending": 1, "written": 0, "refused": 0, "stale": 0, "overdue": 0})
    );
    t.clock.advance(Duration::minutes(6));
    assert_eq!(t.end_of_day().await, 1);

    let (status, days) = get(
        &t,
        "/api/summaries/days?series=a&from=2026-11-17&to=2026-11-20",
    )
    .await;
    assert_eq!(status, 200, "{days}");
    let days = days.as_array().unwrap();
    assert_eq!(days.len(), 2, "only days with a row or a state: {days:?}");
    assert_eq!(days[0]["day"], "2026-11-19");
    assert_eq!(days[0]["summary"]["max"], 30.0);
    assert_eq!(days[0]["state"]["epoch"], 2, "summarized again");
    assert_eq!(days[0]["state"]["pending"], false);
    assert_eq!(days[1]["day"], "2026-11-20");
    assert_eq!(
        days[1]["summary"],
        Value::Null,
        "today's summary is pending"
    );
    assert_eq!(days[1]["state"]["pending"], true);

    for bad in [
        "/api/summaries/days?from=2026-11-17&to=2026-11-20",
        "/api/summaries/days?series=a&from=2026-11-20&to=2026-11-17",
        "/api/summaries/days?series=a&from=2020-01-01&to=2026-11-20",
        "/api/summaries/days?series=a&from=17.11.2026&to=2026-11-20",
    ] {
        let (status, body) = get(&t, bad).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body["error"].is_string(), "{body}");
    }
    t.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_and_its_assets_come_from_the_binary() {
    let t = spawn_app(|_| {}).await;
    for (path, content_type, needle) in [
        ("/", "text/html", "<script src=\"/console.js\""),
        ("/console.js", "text/javascript", "/api/quarantine/replay"),
        ("/console.css", "text/css", "--vermillion"),
    ] {
        let response = t
            .client
            .get(format!("{}{path}", t.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200, "{path}");
        let headers = response.headers().clone();
        assert!(
            headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with(content_type),
            "{path}"
        );
        assert!(
            headers["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("frame-ancestors 'none'")
        );
        assert_eq!(headers["x-frame-options"], "DENY");
        assert!(response.text().await.unwrap().contains(needle), "{path}");
    }
    let (status, body) = get(&t, "/api/nothing-here").await;
    assert_eq!(status, 404, "{body}");
    t.server.shutdown().await;
}
