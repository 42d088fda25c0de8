//! deploy/prometheus against the real host: every alert rule is complete and
//! its expression parses as PromQL, and every series a rule selects — with the
//! label values it matches and the labels its annotations name — is one a host
//! exports once it has seen a little traffic. A metric or label renamed in the
//! host breaks this test, not the alerts in production.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use async_nats::jetstream;
use promql_parser::label::{MatchOp, Matcher};
use promql_parser::parser::value::ValueType;
use promql_parser::parser::{self, Expr, LabelModifier, VectorMatchCardinality, VectorSelector};
use switchyard_tests::admin::{Scrape, scrape};
use switchyard_tests::configs::faulty_jobs;
use switchyard_tests::js::{drained, publish_many};
use switchyard_tests::{Host, NatsServer, eventually, within, workspace};
use yaml_rust2::{Yaml, YamlLoader};

const WAIT: Duration = Duration::from_secs(60);

/// Series Prometheus writes itself, for every target it scrapes.
const FROM_PROMETHEUS: &[&str] = &["up"];
/// Labels Prometheus attaches to every series it scrapes: the target's.
const TARGET_LABELS: &[&str] = &["job", "instance"];
const SEVERITIES: &[&str] = &["critical", "warning", "info"];
const RULE_KEYS: &[&str] = &["alert", "expr", "for", "keep_firing_for", "labels", "annotations"];

/// One alerting rule of alerts.yml.
struct Rule {
    alert: String,
    expr: Expr,
    /// `labels` and `annotations`: name → template.
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
}

impl Rule {
    /// Every template of the rule: its label values and annotations.
    fn templates(&self) -> impl Iterator<Item = (&String, &String)> {
        self.labels.iter().chain(&self.annotations)
    }
}

fn yaml(path: &str) -> Yaml {
    let path = workspace().join(path);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
    let mut docs = YamlLoader::load_from_str(&text).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
    assert_eq!(docs.len(), 1, "{}: one YAML document", path.display());
    docs.remove(0)
}

/// A mapping of strings (`labels`, `annotations`); absent is empty.
fn strings(value: &Yaml, alert: &str, key: &str) -> BTreeMap<String, String> {
    match value {
        Yaml::BadValue => BTreeMap::new(),
        Yaml::Hash(hash) => hash
            .iter()
            .map(|(k, v)| {
                let k = k.as_str().unwrap_or_else(|| panic!("rule {alert}: a key of `{key}` is not a string: {k:?}"));
                let v = v.as_str().unwrap_or_else(|| panic!("rule {alert}: `{key}.{k}` is not a string: {v:?}"));
                (k.to_owned(), v.to_owned())
            })
            .collect(),
        other => panic!("rule {alert}: `{key}` is not a mapping: {other:?}"),
    }
}

/// Every rule of deploy/prometheus/alerts.yml, its expression parsed.
fn rules() -> Vec<Rule> {
    let doc = yaml("deploy/prometheus/alerts.yml");
    let groups = doc["groups"].as_vec().expect("alerts.yml: a `groups` list");
    let mut rules = Vec::new();
    for group in groups {
        let name = group["name"].as_str().expect("alerts.yml: every group has a `name`");
        let list = group["rules"].as_vec().unwrap_or_else(|| panic!("group {name}: no `rules` list"));
        for (i, rule) in list.iter().enumerate() {
            let alert = rule["alert"]
                .as_str()
                .unwrap_or_else(|| panic!("group {name}, rule {}: no `alert` (alerts.yml holds alerting rules only)", i + 1));
            for key in rule.as_hash().expect("a rule is a mapping").keys() {
                let key = key.as_str().unwrap_or_default();
                assert!(RULE_KEYS.contains(&key), "rule {alert}: unknown key `{key}`, expected one of {RULE_KEYS:?}");
            }
            let text = rule["expr"].as_str().unwrap_or_else(|| panic!("rule {alert}: no `expr` string"));
            let expr = parser::parse(text).unwrap_or_else(|err| panic!("rule {alert}: `expr` does not parse: {err}\n{text}"));
            for key in ["for", "keep_firing_for"] {
                if let Some(duration) = rule[key].as_str() {
                    promql_parser::util::parse_duration(duration)
                        .unwrap_or_else(|err| panic!("rule {alert}: `{key}: {duration}` is not a duration: {err}"));
                }
            }
            let labels = strings(&rule["labels"], alert, "labels");
            let annotations = strings(&rule["annotations"], alert, "annotations");
            rules.push(Rule { alert: alert.to_owned(), expr, labels, annotations });
        }
    }
    rules
}

/// Every vector selector in `expr` (those under a range too).
fn selectors<'a>(expr: &'a Expr, out: &mut Vec<&'a VectorSelector>) {
    match expr {
        Expr::VectorSelector(vs) => out.push(vs),
        Expr::MatrixSelector(ms) => out.push(&ms.vs),
        Expr::Aggregate(a) => {
            selectors(&a.expr, out);
            if let Some(param) = &a.param {
                selectors(param, out);
            }
        }
        Expr::Unary(u) => selectors(&u.expr, out),
        Expr::Binary(b) => {
            selectors(&b.lhs, out);
            selectors(&b.rhs, out);
        }
        Expr::Paren(p) => selectors(&p.expr, out),
        Expr::Subquery(s) => selectors(&s.expr, out),
        Expr::Call(call) => call.args.args.iter().for_each(|arg| selectors(arg, out)),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) => {}
        Expr::Extension(_) => panic!("the parser makes no extension nodes"),
    }
}

/// The metric name a selector selects: `foo{…}` or `{__name__="foo"}`.
fn metric_name(vs: &VectorSelector) -> Option<String> {
    vs.name.clone().or_else(|| matchers(vs).find(|m| m.name == "__name__" && matches!(m.op, MatchOp::Equal)).map(|m| m.value.clone()))
}

fn matchers(vs: &VectorSelector) -> impl Iterator<Item = &Matcher> {
    vs.matchers.matchers.iter().chain(vs.matchers.or_matchers.iter().flatten())
}

/// Every metric name the rule's expression selects, as Prometheus stores it
/// (histograms as `_bucket`, `_count`, `_sum`).
fn referenced(rule: &Rule) -> BTreeSet<String> {
    let mut found = Vec::new();
    selectors(&rule.expr, &mut found);
    found
        .into_iter()
        .map(|vs| metric_name(vs).unwrap_or_else(|| panic!("rule {}: a selector without a fixed metric name: {vs}", rule.alert)))
        .collect()
}

/// `$labels.NAME` in a template.
fn template_labels(template: &str) -> BTreeSet<&str> {
    template
        .split("$labels.")
        .skip(1)
        .map(|rest| &rest[..rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len())])
        .collect()
}

/// The names of the series in `scrape` as Prometheus stores them, with each
/// label's values (a histogram's buckets under `NAME_bucket`, with `le`).
type Exported = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

fn exported(scrape: &Scrape) -> Exported {
    let mut out = Exported::new();
    for sample in &scrape.0.samples {
        let (name, le) = match sample.value {
            prometheus_parse::Value::Histogram(_) => (format!("{}_bucket", sample.metric), true),
            _ => (sample.metric.clone(), false),
        };
        let labels = out.entry(name).or_default();
        for (k, v) in sample.labels.iter() {
            labels.entry(k.clone()).or_default().insert(v.clone());
        }
        if le {
            labels.entry("le".into()).or_default();
        }
    }
    out
}

/// The labels the series of `expr` carry when the rule fires (what `$labels`
/// holds); `None` for a scalar. Follows Prometheus: aggregations keep their
/// `by` labels, binary operators the left side's (or the matching labels),
/// functions their argument's, `histogram_quantile` drops `le`.
fn labels_of(expr: &Expr, exported: &Exported) -> Option<BTreeSet<String>> {
    let set = |labels: &[String]| labels.iter().cloned().collect::<BTreeSet<String>>();
    match expr {
        Expr::VectorSelector(vs) => Some(selector_labels(vs, exported)),
        Expr::MatrixSelector(ms) => Some(selector_labels(&ms.vs, exported)),
        Expr::Aggregate(a) => {
            let inner = labels_of(&a.expr, exported)?;
            let keeps_series = ["topk", "bottomk", "limitk", "limit_ratio"].contains(&a.op.to_string().as_str());
            Some(match &a.modifier {
                _ if keeps_series => inner,
                Some(LabelModifier::Include(by)) => set(&by.labels),
                Some(LabelModifier::Exclude(without)) => &inner - &set(&without.labels),
                None => BTreeSet::new(),
            })
        }
        Expr::Unary(u) => labels_of(&u.expr, exported),
        Expr::Paren(p) => labels_of(&p.expr, exported),
        Expr::Subquery(s) => labels_of(&s.expr, exported),
        Expr::Binary(b) => {
            let (lhs, rhs) = (labels_of(&b.lhs, exported), labels_of(&b.rhs, exported));
            let (Some(lhs), Some(rhs)) = (lhs.clone(), rhs.clone()) else { return lhs.or(rhs) };
            let Some(modifier) = &b.modifier else { return Some(lhs) };
            Some(match (&modifier.card, &modifier.matching) {
                _ if b.op.to_string() == "or" => &lhs & &rhs,
                _ if b.op.is_set_operator() => lhs,
                (VectorMatchCardinality::ManyToOne(include), _) => &lhs | &set(&include.labels),
                (VectorMatchCardinality::OneToMany(include), _) => &rhs | &set(&include.labels),
                (_, Some(LabelModifier::Include(on))) => &lhs & &set(&on.labels),
                (_, Some(LabelModifier::Exclude(ignoring))) => &lhs - &set(&ignoring.labels),
                (_, None) => lhs,
            })
        }
        Expr::Call(call) => {
            let args: Vec<Option<BTreeSet<String>>> = call.args.args.iter().map(|arg| labels_of(arg, exported)).collect();
            match call.func.name {
                "histogram_quantile" => args.get(1).cloned().flatten().map(|l| &l - &set(&["le".to_owned()])),
                "label_replace" | "label_join" => {
                    let Some(Expr::StringLiteral(dst)) = call.args.args.get(1).map(|a| a.as_ref()) else { return None };
                    args.first().cloned().flatten().map(|l| &l | &set(std::slice::from_ref(&dst.val)))
                }
                "absent" | "absent_over_time" | "vector" => Some(BTreeSet::new()),
                _ if call.func.return_type != ValueType::Vector => None,
                _ => args.into_iter().flatten().next(),
            }
        }
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) => None,
        Expr::Extension(_) => panic!("the parser makes no extension nodes"),
    }
}

fn selector_labels(vs: &VectorSelector, exported: &Exported) -> BTreeSet<String> {
    let name = metric_name(vs).unwrap_or_default();
    let own: BTreeSet<String> = exported.get(&name).map(|labels| labels.keys().cloned().collect()).unwrap_or_default();
    &own | &TARGET_LABELS.iter().map(|l| l.to_string()).collect()
}

/// Whether a label matcher selects anything among `values`: an alternation of
/// plain words (`ack|reply`) must find each word; another regex, one value.
fn matches_values(m: &Matcher, values: &BTreeSet<String>) -> Result<(), String> {
    match &m.op {
        MatchOp::Equal if !values.contains(&m.value) => Err(format!("no series has {}=\"{}\"", m.name, m.value)),
        MatchOp::Re(_) if m.value.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '|') => {
            let missing: Vec<&str> = m.value.split('|').filter(|word| !values.contains(*word)).collect();
            match missing.is_empty() {
                true => Ok(()),
                false => Err(format!("no series has {} equal to {missing:?}", m.name)),
            }
        }
        MatchOp::Re(_) if !values.iter().any(|v| m.is_match(v)) => Err(format!("no series matches {}=~\"{}\"", m.name, m.value)),
        _ => Ok(()),
    }
}

#[test]
fn every_rule_is_complete_parses_and_is_loaded_by_the_scrape_config() {
    let rules = rules();
    assert!(rules.len() >= 6, "alerts.yml has {} rules", rules.len());
    let mut names = BTreeSet::new();
    for rule in &rules {
        let alert = &rule.alert;
        assert!(names.insert(alert), "rule {alert} is defined twice");
        assert!(!referenced(rule).is_empty(), "rule {alert}: selects no metric");
        assert!(matches!(rule.expr.value_type(), ValueType::Vector), "rule {alert}: `expr` must be an instant vector");
        let severity = rule.labels.get("severity").unwrap_or_else(|| panic!("rule {alert}: no `labels.severity`"));
        assert!(SEVERITIES.contains(&severity.as_str()), "rule {alert}: severity `{severity}` is not one of {SEVERITIES:?}");
        let summary = rule.annotations.get("summary").unwrap_or_else(|| panic!("rule {alert}: no `annotations.summary`"));
        assert!(!template_labels(summary).is_empty(), "rule {alert}: the summary names no label (route, plugin, instance): {summary}");
        assert!(rule.annotations.get("description").is_some_and(|d| !d.is_empty()), "rule {alert}: no `annotations.description`");
    }

    // prometheus.yml loads alerts.yml, and scrapes the jobs the rules name
    // often enough for their ranges (`rate` needs several samples per range).
    let config = yaml("deploy/prometheus/prometheus.yml");
    let rule_files: Vec<&str> = config["rule_files"].as_vec().expect("rule_files").iter().filter_map(Yaml::as_str).collect();
    assert!(rule_files.contains(&"alerts.yml"), "prometheus.yml's rule_files: {rule_files:?}");
    let interval = config["global"]["scrape_interval"].as_str().expect("global.scrape_interval");
    let interval = promql_parser::util::parse_duration(interval).expect("scrape_interval is a duration");
    let jobs: BTreeSet<&str> =
        config["scrape_configs"].as_vec().expect("scrape_configs").iter().filter_map(|job| job["job_name"].as_str()).collect();
    for rule in &rules {
        let mut found = Vec::new();
        selectors(&rule.expr, &mut found);
        for m in found.iter().flat_map(|vs| matchers(vs)).filter(|m| m.name == "job") {
            assert!(
                jobs.iter().any(|job| m.is_match(job)),
                "rule {}: job `{}` is not scraped by prometheus.yml ({jobs:?})",
                rule.alert,
                m.value
            );
        }
        check_ranges(&rule.expr, &rule.alert, interval * 4);
    }
}

/// Every range of `expr` spans at least `min` (four scrapes).
fn check_ranges(expr: &Expr, alert: &str, min: Duration) {
    let mut found = Vec::new();
    collect_ranges(expr, &mut found);
    for range in found {
        assert!(range >= min, "rule {alert}: a range of {range:?} holds fewer than four scrapes ({min:?})");
    }
}

fn collect_ranges(expr: &Expr, out: &mut Vec<Duration>) {
    match expr {
        Expr::MatrixSelector(ms) => out.push(ms.range),
        Expr::Subquery(s) => {
            out.push(s.range);
            collect_ranges(&s.expr, out);
        }
        Expr::Aggregate(a) => collect_ranges(&a.expr, out),
        Expr::Unary(u) => collect_ranges(&u.expr, out),
        Expr::Paren(p) => collect_ranges(&p.expr, out),
        Expr::Binary(b) => {
            collect_ranges(&b.lhs, out);
            collect_ranges(&b.rhs, out);
        }
        Expr::Call(call) => call.args.args.iter().for_each(|arg| collect_ranges(arg, out)),
        _ => {}
    }
}

/// The `jobs` JetStream route (two deliveries, then a dead letter), and a core
/// route behind a breaker that one failure opens.
fn config(url: &str) -> String {
    faulty_jobs(url, "", "max_deliver = 2\nretry = { delays = [\"50ms\"] }")
        + r#"
[[routes]]
name = "fragile"
plugin = "faulty"
subjects = ["fragile.>"]
retry = { attempts = 1 }
breaker = { consecutive_failures = 1, open_for = "10m" }
"#
}

#[tokio::test]
async fn every_series_the_rules_select_is_exported() {
    let rules = rules();
    let nats = NatsServer::start();
    let host = Host::start(&config(nats.url())).await;
    let client = nats.client().await;
    let js = jetstream::new(client.clone());

    // One ack, one reject (dead-lettered), one trap on both deliveries
    // (dead-lettered), and a failed request that opens `fragile`'s breaker:
    // every family the rules read has a series then.
    publish_many(&js, "jobs.ok", 1, |_| br#"{"action":"ack"}"#.to_vec()).await;
    publish_many(&js, "jobs.bad", 1, |_| br#"{"action":"reject"}"#.to_vec()).await;
    publish_many(&js, "jobs.trap", 1, |_| br#"{"action":"trap"}"#.to_vec()).await;
    let reply = within(WAIT, "a reply from `fragile`", client.request("fragile.x", r#"{"action":"retry"}"#.into())).await;
    reply.expect("an error reply, not a timeout");
    drained(&js, "JOBS", "jobs").await;
    let s = eventually(WAIT, "the traffic to show in /metrics", || async {
        let s = scrape(host.admin_url()).await;
        let jobs = [("route", "jobs")];
        let done = s.value("switchyard_messages_total", &[("route", "jobs"), ("outcome", "ack")]) == 1.0
            && s.value("switchyard_dead_letters_total", &jobs) == 2.0
            && s.value("switchyard_plugin_traps_total", &[("plugin", "faulty"), ("kind", "trap")]) == 2.0
            && s.value("switchyard_breaker_state", &[("route", "fragile")]) == 2.0
            && s.get("switchyard_consumer_pending", &jobs).is_some();
        done.then_some(s)
    })
    .await;
    assert_eq!(s.value("switchyard_ready", &[]), 1.0, "the rules' `switchyard_ready == 0` is about a host that is not");
    assert_eq!(s.value("switchyard_nats_connected", &[]), 1.0);
    let exported = exported(&s);

    let mut problems = Vec::new();
    for rule in &rules {
        let alert = &rule.alert;
        for name in referenced(rule) {
            if !exported.contains_key(&name) && !FROM_PROMETHEUS.contains(&name.as_str()) {
                problems.push(format!("rule {alert}: `{name}` is not exported"));
            }
        }
        let mut found = Vec::new();
        selectors(&rule.expr, &mut found);
        for vs in found {
            let name = metric_name(vs).unwrap_or_default();
            let Some(labels) = exported.get(&name) else { continue };
            for m in matchers(vs).filter(|m| m.name != "__name__" && !TARGET_LABELS.contains(&m.name.as_str())) {
                match labels.get(&m.name) {
                    None => problems.push(format!("rule {alert}: `{name}` has no label `{}` (it has {:?})", m.name, labels.keys())),
                    Some(values) => {
                        if let Err(why) = matches_values(m, values) {
                            problems.push(format!("rule {alert}: `{name}{{{}}}`: {why} (values: {values:?})", m.name));
                        }
                    }
                }
            }
        }
        let carried = labels_of(&rule.expr, &exported).unwrap_or_default();
        for (key, template) in rule.templates() {
            for label in template_labels(template) {
                if !carried.contains(label) {
                    problems.push(format!("rule {alert}: `{key}` names `$labels.{label}`, which its alerts do not carry ({carried:?})"));
                }
            }
        }
    }
    assert!(problems.is_empty(), "deploy/prometheus/alerts.yml:\n{}\nexported: {:?}", problems.join("\n"), exported.keys());

    let stop = host.stop().await;
    assert!(stop.0.success(), "{}", stop.1);
}
