//! The host's admin listener, as Prometheus and Kubernetes see it: a real HTTP
//! client, and a Prometheus text-format parser for `/metrics`.

use std::collections::BTreeMap;
use std::time::Duration;

/// One scrape of `/metrics`, parsed.
pub struct Scrape(pub prometheus_parse::Scrape);

impl Scrape {
    /// The value of `name` with exactly these labels, if the scrape has it.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.0.samples.iter().find(|s| s.metric == name && same_labels(&s.labels, labels)).map(|s| match s.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Gauge(v) | prometheus_parse::Value::Untyped(v) => v,
            prometheus_parse::Value::Histogram(_) | prometheus_parse::Value::Summary(_) => f64::NAN,
        })
    }

    /// `get`, or 0 when the series is absent.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels).unwrap_or(0.0)
    }

    /// Every metric name in the scrape (histograms by their base name).
    pub fn names(&self) -> std::collections::BTreeSet<String> {
        self.0.samples.iter().map(|s| s.metric.clone()).collect()
    }
}

fn same_labels(have: &prometheus_parse::Labels, want: &[(&str, &str)]) -> bool {
    let have: BTreeMap<&str, &str> = have.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    have.len() == want.len() && want.iter().all(|(k, v)| have.get(k) == Some(v))
}

/// GET `<base><path>`: the status code and the body.
pub async fn get(base: &str, path: &str) -> (u16, String) {
    let response = crate::within(Duration::from_secs(10), "an admin request", reqwest::get(format!("{base}{path}")))
        .await
        .unwrap_or_else(|err| panic!("GET {base}{path}: {err}"));
    let status = response.status().as_u16();
    let body = crate::within(Duration::from_secs(10), "an admin response body", response.text()).await.expect("body");
    (status, body)
}

/// Scrape `/metrics` and parse it as Prometheus does.
pub async fn scrape(base: &str) -> Scrape {
    let (status, body) = get(base, "/metrics").await;
    assert_eq!(status, 200, "{body}");
    let lines = body.lines().map(|line| Ok(line.to_owned()));
    Scrape(prometheus_parse::Scrape::parse(lines).unwrap_or_else(|err| panic!("/metrics does not parse: {err}\n{body}")))
}
