//! The metrics read at scrape time from the routes serving now: plugin
//! versions, instances and their memory, breaker phase. Keeping these up on
//! the message path would cost more than reading them when asked.

use std::sync::Arc;

use arc_swap::ArcSwap;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

use crate::route::Route;

/// The routes serving now; the host replaces the list after every reload.
#[derive(Debug, Default)]
pub(crate) struct LiveRoutes(ArcSwap<Vec<Arc<Route>>>);

impl LiveRoutes {
    pub(crate) fn set(&self, routes: Vec<Arc<Route>>) {
        self.0.store(Arc::new(routes));
    }

    pub(crate) fn load(&self) -> Arc<Vec<Arc<Route>>> {
        self.0.load_full()
    }
}

impl Collector for LiveRoutes {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let routes = self.0.load();
        let info = Family::<Vec<(&str, String)>, Gauge>::default();
        let instances = Family::<Vec<(&str, String)>, Gauge>::default();
        let memory = Family::<Vec<(&str, String)>, Gauge>::default();
        let breaker = Family::<Vec<(&str, String)>, Gauge>::default();
        for route in routes.iter() {
            let label = vec![("route", route.name.clone())];
            let plugin = route.pool.plugin();
            info.get_or_create(&vec![("plugin", plugin.spec.name.clone()), ("version", plugin.hash.clone())]).set(1);
            instances.get_or_create(&label).set(route.pool.instances() as i64);
            memory.get_or_create(&label).set(route.pool.memory_bytes() as i64);
            if let Some(b) = &route.breaker {
                breaker.get_or_create(&label).set(b.state_code());
            }
        }
        let families = [
            ("plugin_info", "1 for each plugin version serving", &info),
            ("plugin_instances", "Instances of the route's plugin, idle and busy", &instances),
            ("plugin_memory_bytes", "Linear memory of the route's pooled (idle) instances", &memory),
            ("breaker_state", "The route's circuit breaker: 0 closed, 1 half-open, 2 open", &breaker),
        ];
        for (name, help, family) in families {
            family.encode(encoder.encode_descriptor(name, help, None, family.metric_type())?)?;
        }
        Ok(())
    }
}
