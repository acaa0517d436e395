//! Locality load balancing, Istio's half: where each endpoint of a cluster goes in Envoy's
//! priority set, as istiod writes it into the cluster's endpoints for one calling proxy.
//!
//! Istio groups a cluster's endpoints by locality (one Envoy `LocalityLbEndpoints` per
//! `region/zone/subzone`, sorted by that label, its weight the sum of its endpoints' weights) and
//! then, relative to the calling proxy's locality and labels, applies the DestinationRule's
//! `localityLbSetting` (or the mesh's):
//!
//! * `distribute`: the first rule whose `from` matches the proxy's locality sets each locality's
//!   weight to its share of the rule's `to` weight (`ceil(share × weight)`, split among the
//!   localities one `to` entry matches in proportion to their own weight); the localities no `to`
//!   entry matches lose every endpoint. Everything stays at priority 0.
//! * failover, only when outlier detection is configured ("otherwise Envoy will never drop down to
//!   a lower priority"): each locality's priority is 0 when region, zone and subzone all match the
//!   proxy's, 1 when region and zone do, 2 for the region alone, 3 for another region, and 4 for
//!   another region than the one a `failover` rule names for the proxy's region.
//! * `failoverPriority`: an ordered list of labels (`key` or `key=value`); an endpoint matching the
//!   proxy's value (or the given value) for the first n labels and not the next gets priority
//!   `len − n` (all of them: 0), a locality is split into one group per priority, each weighing the
//!   sum of its endpoints' weights. With `failover` rules too, each group's priority becomes
//!   `5 × that + the locality priority above`.
//!
//! Priorities are then renumbered 0, 1, 2, … in order, without gaps. Envoy balances over them
//! (the crate's [`crate::LoadBalancer`]): the overprovisioning factor 1.4 and the panic threshold.
//!
//! The functions take the groups Istio would start from ([`group_by_locality`]), so each step can
//! be checked against Istio's own expectations (`tests` below, ported from Istio's
//! `pilot/pkg/networking/core/loadbalancer/loadbalancer_test.go`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::endpoint::Endpoint;

/// `topology.kubernetes.io/region`: Istio adds it to a workload's labels from its locality.
pub const REGION_LABEL: &str = "topology.kubernetes.io/region";
/// `topology.kubernetes.io/zone`.
pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";
/// `topology.istio.io/subzone`.
pub const SUBZONE_LABEL: &str = "topology.istio.io/subzone";

/// Where an endpoint (or the calling proxy) runs: Envoy's `core.Locality`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Locality {
    /// Region (`us-east1`); "" when unknown.
    pub region: String,
    /// Zone within the region; "" when unknown.
    pub zone: String,
    /// Subzone within the zone; "" when unknown.
    pub subzone: String,
}

impl Locality {
    /// A locality from Istio's label form `region/zone/subzone` (fewer parts leave the rest
    /// empty; parts after the third are ignored, as Istio's `SplitLocalityLabel` does).
    ///
    /// ```
    /// use meshroute_lb::Locality;
    /// let l = Locality::parse("us-east1/us-east1-b");
    /// assert_eq!((l.region.as_str(), l.zone.as_str(), l.subzone.as_str()), ("us-east1", "us-east1-b", ""));
    /// assert_eq!(l.to_string(), "us-east1/us-east1-b");
    /// assert!(Locality::parse("").is_empty());
    /// ```
    pub fn parse(label: &str) -> Self {
        let mut parts = label.split('/');
        let mut next = || parts.next().unwrap_or_default().to_owned();
        Self {
            region: next(),
            zone: next(),
            subzone: next(),
        }
    }

    /// A locality from its three parts.
    pub fn new(
        region: impl Into<String>,
        zone: impl Into<String>,
        subzone: impl Into<String>,
    ) -> Self {
        Self {
            region: region.into(),
            zone: zone.into(),
            subzone: subzone.into(),
        }
    }

    /// No region: Istio's `IsLocalityEmpty` (the region alone decides).
    pub fn is_empty(&self) -> bool {
        self.region.is_empty()
    }

    /// Whether this locality matches a rule's locality (`region/zone/subzone`, `*` for any part,
    /// a part left out matching anything): Istio's `LocalityMatch`.
    pub fn matches(&self, rule: &str) -> bool {
        let rule = Locality::parse(rule);
        let part = |rule: &str, mine: &str| rule == "*" || rule == mine;
        let optional = |rule: &str, mine: &str| rule.is_empty() || part(rule, mine);
        part(&rule.region, &self.region)
            && optional(&rule.zone, &self.zone)
            && optional(&rule.subzone, &self.subzone)
    }

    /// How far `endpoint` is from a proxy in this locality: 0 same subzone, 1 same zone, 2 same
    /// region, 3 elsewhere (Istio's `LbPriority`).
    pub fn distance(&self, endpoint: &Locality) -> u32 {
        if self.region != endpoint.region {
            3
        } else if self.zone != endpoint.zone {
            2
        } else if self.subzone != endpoint.subzone {
            1
        } else {
            0
        }
    }

    /// The topology labels Istio derives from a locality (region, zone, subzone; empty parts
    /// left out), which `failoverPriority` can name.
    pub fn labels(&self) -> impl Iterator<Item = (&'static str, &str)> {
        [
            (REGION_LABEL, self.region.as_str()),
            (ZONE_LABEL, self.zone.as_str()),
            (SUBZONE_LABEL, self.subzone.as_str()),
        ]
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
    }
}

impl fmt::Display for Locality {
    /// Istio's label form, trailing empty parts left out (`LocalityToString`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.region)?;
        if self.zone.is_empty() {
            return Ok(());
        }
        write!(f, "/{}", self.zone)?;
        if !self.subzone.is_empty() {
            write!(f, "/{}", self.subzone)?;
        }
        Ok(())
    }
}

/// One `distribute` rule: traffic from `from` goes to the `to` localities by weight.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Distribute {
    /// The proxies' locality (`region/zone/subzone`, `*` allowed).
    pub from: String,
    /// Locality (`*` allowed) → weight (1–100, summing to 100).
    pub to: Vec<(String, u32)>,
}

/// One `failover` rule: from region `from`, fail over to region `to` before any other.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Failover {
    /// The proxy's region.
    pub from: String,
    /// The region to fail over to.
    pub to: String,
}

/// `LocalityLoadBalancerSetting`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalityLbSetting {
    /// `distribute`.
    pub distribute: Vec<Distribute>,
    /// `failover`.
    pub failover: Vec<Failover>,
    /// `failoverPriority`: label keys, or `key=value`.
    pub failover_priority: Vec<String>,
    /// `enabled`; `None` when unset.
    pub enabled: Option<bool>,
}

impl LocalityLbSetting {
    /// The setting in force for a cluster whose DestinationRule has `rule` (Istio's
    /// `GetLocalityLbSetting`, with the mesh default — `enabled: true`, nothing else — since
    /// meshroute's mesh config has no `localityLbSetting`): the rule's, unless it says
    /// `enabled: false` (then none); the mesh default when the rule has none.
    pub fn effective(rule: Option<&LocalityLbSetting>) -> Option<LocalityLbSetting> {
        match rule {
            Some(setting) if setting.enabled == Some(false) => None,
            Some(setting) => Some(setting.clone()),
            None => Some(LocalityLbSetting {
                enabled: Some(true),
                ..LocalityLbSetting::default()
            }),
        }
    }

    /// Whether Envoy balances across localities by their weights within a priority
    /// (`locality_weighted_lb_config`, as Istio sets it): with `distribute`, or with failover
    /// enabled and explicit `failover` or `failoverPriority` rules.
    pub fn locality_weighted(&self, failover_enabled: bool) -> bool {
        !self.distribute.is_empty()
            || (failover_enabled
                && (!self.failover.is_empty() || !self.failover_priority.is_empty()))
    }
}

/// The calling proxy as locality load balancing sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Placement {
    /// The proxy's locality.
    pub locality: Locality,
    /// The proxy's labels (what `failoverPriority` compares); see [`with_topology_labels`].
    pub labels: BTreeMap<String, String>,
}

/// One Envoy `LocalityLbEndpoints`: endpoints of one locality at one priority.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalityGroup {
    /// The locality.
    pub locality: Locality,
    /// Envoy priority (0 is used first).
    pub priority: u32,
    /// `load_balancing_weight` of the locality; `None` when unset.
    pub weight: Option<u32>,
    /// The endpoints (indices into the cluster's endpoint list).
    pub members: Vec<usize>,
}

/// `labels` with the topology labels of `locality` added where absent, as Istio adds them to
/// workloads and proxies (`topology.kubernetes.io/region`, `…/zone`, `topology.istio.io/subzone`).
pub fn with_topology_labels(
    labels: &BTreeMap<String, String>,
    locality: &Locality,
) -> BTreeMap<String, String> {
    let mut out = labels.clone();
    for (key, value) in locality.labels() {
        out.entry(key.to_owned())
            .or_insert_with(|| value.to_owned());
    }
    out
}

/// Istio's starting point: one group per distinct locality (sorted by its label), priority 0,
/// weighing the sum of its endpoints' weights.
pub fn group_by_locality(endpoints: &[Endpoint]) -> Vec<LocalityGroup> {
    let mut by_label: BTreeMap<String, LocalityGroup> = BTreeMap::new();
    for (i, e) in endpoints.iter().enumerate() {
        let group = by_label
            .entry(e.locality.to_string())
            .or_insert_with(|| LocalityGroup {
                locality: e.locality.clone(),
                priority: 0,
                weight: Some(0),
                members: Vec::new(),
            });
        group.members.push(i);
        group.weight = group.weight.map(|w| w.saturating_add(e.effective_weight()));
    }
    by_label.into_values().collect()
}

/// Istio's `ApplyLocalityLoadBalancer` for a proxy at `client`: `distribute`, or (with
/// `failover_enabled`, i.e. outlier detection) `failoverPriority` and `failover`. `endpoints`
/// gives each member's labels (with their topology labels, [`with_topology_labels`]) and weight.
pub fn apply(
    groups: Vec<LocalityGroup>,
    endpoints: &[Endpoint],
    client: &Placement,
    setting: &LocalityLbSetting,
    failover_enabled: bool,
) -> Vec<LocalityGroup> {
    let mut groups = groups;
    if !setting.distribute.is_empty() {
        apply_weights(&client.locality, &mut groups, &setting.distribute);
    } else if failover_enabled {
        if setting.failover_priority.is_empty() {
            apply_failover(&client.locality, &mut groups, &setting.failover);
        } else {
            groups = apply_failover_priority(
                groups,
                endpoints,
                &client.labels,
                &setting.failover_priority,
            );
            if !setting.failover.is_empty() {
                apply_failover(&client.locality, &mut groups, &setting.failover);
            }
        }
    }
    groups
}

/// `distribute`: the first rule whose `from` matches `client` sets the weights; localities no
/// `to` entry matches lose their endpoints.
fn apply_weights(client: &Locality, groups: &mut [LocalityGroup], distribute: &[Distribute]) {
    let Some(rule) = distribute.iter().find(|d| client.matches(&d.from)) else {
        return;
    };
    let mut unmatched: BTreeSet<usize> = (0..groups.len()).collect();
    for (to, weight) in &rule.to {
        let claimed: Vec<(usize, u64)> = unmatched
            .iter()
            .copied()
            .filter(|&i| groups[i].locality.matches(to))
            .map(|i| (i, u64::from(groups[i].weight.unwrap_or(1))))
            .collect();
        let total: u64 = claimed.iter().map(|&(_, w)| w).sum();
        for (i, original) in claimed {
            unmatched.remove(&i);
            if total == 0 {
                continue;
            }
            let share = (original * u64::from(*weight)) as f64 / total as f64;
            if share > 0.0 {
                groups[i].weight = Some(u32::try_from(share.ceil() as u64).unwrap_or(u32::MAX));
            }
        }
    }
    for i in unmatched {
        groups[i].members.clear();
    }
}

/// Locality failover: priority by distance to `client`, 4 for a region a `failover` rule of the
/// client's region does not name; combined with the groups' priorities as `5 × priority + that`.
fn apply_failover(client: &Locality, groups: &mut [LocalityGroup], failover: &[Failover]) {
    for group in groups.iter_mut() {
        let mut distance = client.distance(&group.locality);
        if distance == 3 {
            if let Some(rule) = failover.iter().find(|f| f.from == client.region) {
                if group.locality.region != rule.to {
                    distance = 4;
                }
            }
        }
        group.priority = group.priority.saturating_mul(5).saturating_add(distance);
    }
    renumber(groups);
}

/// `failoverPriority`: each locality split into one group per label-match priority.
fn apply_failover_priority(
    groups: Vec<LocalityGroup>,
    endpoints: &[Endpoint],
    client_labels: &BTreeMap<String, String>,
    failover_priority: &[String],
) -> Vec<LocalityGroup> {
    if client_labels.is_empty() || groups.is_empty() {
        return groups;
    }
    let lowest = u32::try_from(failover_priority.len()).unwrap_or(u32::MAX);
    // `key=value`: the proxy's value is replaced by `value` (exactly one `=`).
    let labels: Vec<(&str, Option<&str>)> = failover_priority
        .iter()
        .map(|entry| {
            let parts: Vec<&str> = entry.split('=').collect();
            match parts.as_slice() {
                [key, value] => (*key, Some(*value)),
                _ => (parts[0], None),
            }
        })
        .collect();
    let priority_of = |endpoint: &Endpoint| -> u32 {
        for (j, (key, fixed)) in labels.iter().enumerate() {
            let wanted =
                fixed.unwrap_or_else(|| client_labels.get(*key).map_or("", String::as_str));
            let has = endpoint.labels.get(*key).map_or("", String::as_str);
            if wanted != has {
                return lowest - u32::try_from(j).unwrap_or(0);
            }
        }
        0
    };
    let mut out = Vec::new();
    for group in groups {
        let mut by_priority: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
        for &member in &group.members {
            if let Some(endpoint) = endpoints.get(member) {
                by_priority
                    .entry(priority_of(endpoint))
                    .or_default()
                    .push(member);
            }
        }
        for (priority, members) in by_priority {
            let weight = members
                .iter()
                .map(|&m| endpoints[m].effective_weight())
                .fold(0u32, u32::saturating_add);
            out.push(LocalityGroup {
                locality: group.locality.clone(),
                priority,
                weight: Some(weight),
                members,
            });
        }
    }
    renumber(&mut out);
    out
}

/// Priorities 0, 1, 2, … in the order of the values they have, no gap.
fn renumber(groups: &mut [LocalityGroup]) {
    let distinct: BTreeSet<u32> = groups.iter().map(|g| g.priority).collect();
    let rank: BTreeMap<u32, u32> = distinct
        .into_iter()
        .enumerate()
        .map(|(i, p)| (p, u32::try_from(i).unwrap_or(u32::MAX)))
        .collect();
    for group in groups {
        group.priority = rank[&group.priority];
    }
}

#[cfg(test)]
mod tests {
    //! Istio's own expectations, from `pilot/pkg/networking/core/loadbalancer/loadbalancer_test.go`
    //! (`TestApplyLocalitySetting` and `TestGetLocalityLbSetting`): each test names its case.
    use super::*;

    fn client() -> Placement {
        Placement {
            locality: Locality::new("region1", "zone1", "subzone1"),
            labels: BTreeMap::new(),
        }
    }

    /// Istio's `buildFakeCluster`: seven localities without endpoints or weights.
    fn fake_cluster() -> Vec<LocalityGroup> {
        [
            ("region1", "zone1", "subzone1"),
            ("region1", "zone1", "subzone1"),
            ("region1", "zone1", "subzone2"),
            ("region1", "zone1", "subzone3"),
            ("region1", "zone2", ""),
            ("region2", "", ""),
            ("region3", "", ""),
        ]
        .into_iter()
        .map(|(r, z, s)| LocalityGroup {
            locality: Locality::new(r, z, s),
            ..LocalityGroup::default()
        })
        .collect()
    }

    fn region1_to_region2() -> LocalityLbSetting {
        LocalityLbSetting {
            failover: vec![Failover {
                from: "region1".into(),
                to: "region2".into(),
            }],
            ..LocalityLbSetting::default()
        }
    }

    fn priorities(groups: &[LocalityGroup]) -> Vec<u32> {
        groups.iter().map(|g| g.priority).collect()
    }

    /// TestApplyLocalitySetting/Distribute/"distribution between subzones".
    #[test]
    fn istio_distribute_between_subzones() {
        let setting = LocalityLbSetting {
            distribute: vec![Distribute {
                from: "region1/zone1/subzone1".into(),
                to: vec![
                    ("region1/zone1/subzone1".into(), 80),
                    ("region1/zone1/subzone2".into(), 15),
                    ("region1/zone1/subzone3".into(), 5),
                ],
            }],
            ..LocalityLbSetting::default()
        };
        let out = apply(fake_cluster(), &[], &client(), &setting, true);
        let weights: Vec<u32> = out.iter().map(|g| g.weight.unwrap_or(0)).collect();
        assert_eq!(weights, vec![40, 40, 15, 5, 0, 0, 0]);
        assert_eq!(priorities(&out), vec![0; 7]);
    }

    /// TestApplyLocalitySetting/"Failover: all priorities".
    #[test]
    fn istio_failover_all_priorities() {
        let out = apply(fake_cluster(), &[], &client(), &region1_to_region2(), true);
        // Same subzone 0, same zone 1, same region 2, the failover region 3, any other 4.
        assert_eq!(priorities(&out), vec![0, 0, 1, 1, 2, 3, 4]);
    }

    /// TestApplyLocalitySetting/"Failover: priorities with gaps" (`buildSmallCluster`).
    #[test]
    fn istio_failover_priorities_with_gaps() {
        let groups = vec![
            LocalityGroup {
                locality: Locality::new("region1", "zone1", "subzone2"),
                ..LocalityGroup::default()
            },
            LocalityGroup {
                locality: Locality::new("region2", "zone1", "subzone2"),
                ..LocalityGroup::default()
            },
            LocalityGroup {
                locality: Locality::new("region2", "zone1", "subzone2"),
                ..LocalityGroup::default()
            },
        ];
        let out = apply(groups, &[], &client(), &region1_to_region2(), true);
        assert_eq!(priorities(&out), vec![0, 1, 1]);
    }

    /// TestApplyLocalitySetting/"Failover: priorities with some nil localities".
    #[test]
    fn istio_failover_priorities_with_some_nil_localities() {
        let groups = vec![
            LocalityGroup {
                locality: Locality::new("region1", "zone1", "subzone2"),
                ..LocalityGroup::default()
            },
            LocalityGroup::default(),
            LocalityGroup {
                locality: Locality::new("region2", "zone1", "subzone2"),
                ..LocalityGroup::default()
            },
        ];
        let out = apply(groups, &[], &client(), &region1_to_region2(), true);
        assert_eq!(priorities(&out), vec![0, 2, 1]);
    }

    /// TestApplyLocalitySetting/"Failover: with locality lb disabled": a disabled setting is no
    /// setting (TestGetLocalityLbSetting "dr disabled"), and nothing changes.
    #[test]
    fn istio_failover_with_locality_lb_disabled() {
        let disabled = LocalityLbSetting {
            enabled: Some(false),
            ..region1_to_region2()
        };
        assert_eq!(LocalityLbSetting::effective(Some(&disabled)), None);
    }

    /// TestGetLocalityLbSetting: "dr only", "dr only override", "dr and mesh" (the rule wins,
    /// whole), "dr disabled"; without a rule the mesh default (enabled, nothing else) applies.
    #[test]
    fn istio_get_locality_lb_setting() {
        let dr = region1_to_region2();
        assert_eq!(LocalityLbSetting::effective(Some(&dr)), Some(dr.clone()));
        let enabled = LocalityLbSetting {
            enabled: Some(true),
            ..LocalityLbSetting::default()
        };
        assert_eq!(
            LocalityLbSetting::effective(Some(&enabled)),
            Some(enabled.clone())
        );
        assert_eq!(LocalityLbSetting::effective(None), Some(enabled));
    }

    /// Istio's `buildSmallClusterForFailOverPriority` / `buildWrappedLocalityLbEndpoints`: three
    /// localities of two endpoints, labelled network / cluster (and `key`).
    fn labelled_cluster() -> (Vec<LocalityGroup>, Vec<Endpoint>) {
        let ep = |address: &str, labels: &[(&str, &str)]| {
            labels
                .iter()
                .fold(Endpoint::new(address), |e, (k, v)| e.with_label(*k, *v))
        };
        const N: &str = "topology.istio.io/network";
        const C: &str = "topology.istio.io/cluster";
        let endpoints = vec![
            ep("1.1.1.1:10001", &[(N, "n1"), (C, "c1")]),
            ep("2.2.2.2:10001", &[("key", "value"), (N, "n2"), (C, "c2")]),
            ep("3.3.3.3:10001", &[("key", "value"), (N, "n1"), (C, "c3")]),
            ep("4.4.4.4:10001", &[("key", "value"), (N, "n2"), (C, "c4")]),
            ep("1.2.3.4:10001", &[("key", "value"), (N, "n1"), (C, "c1")]),
            ep("2.3.4.5:10001", &[("key", "value"), (N, "n2"), (C, "c2")]),
        ];
        let group = |r: &str, members: Vec<usize>| LocalityGroup {
            locality: Locality::new(
                r,
                r.replace("region", "zone"),
                r.replace("region", "subzone"),
            ),
            priority: 0,
            weight: None,
            members,
        };
        (
            vec![
                group("region1", vec![0, 1]),
                group("region2", vec![2, 3]),
                group("region3", vec![4, 5]),
            ],
            endpoints,
        )
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// (weight, priority) of each group, in order.
    fn weights_and_priorities(groups: &[LocalityGroup]) -> Vec<(u32, u32)> {
        groups
            .iter()
            .map(|g| (g.weight.unwrap_or(0), g.priority))
            .collect()
    }

    /// TestApplyLocalitySetting/FailoverPriority: every case, expectations as Istio states them.
    #[test]
    fn istio_failover_priority() {
        const N: &str = "topology.istio.io/network";
        const C: &str = "topology.istio.io/cluster";
        type Case<'a> = (
            &'a str,
            Vec<&'a str>,
            Vec<(&'a str, &'a str)>,
            Vec<(u32, u32)>,
        );
        let cases: [Case<'_>; 6] = [
            (
                "match none label",
                vec![N, C],
                vec![(N, "test"), (C, "test")],
                vec![(2, 0), (2, 0), (2, 0)],
            ),
            (
                "match network label",
                vec![N, C],
                vec![(N, "n1"), (C, "test")],
                vec![(1, 0), (1, 1), (1, 0), (1, 1), (1, 0), (1, 1)],
            ),
            (
                "not match the first n label",
                vec![N, C],
                vec![(N, "test"), (C, "c1")],
                vec![(2, 0), (2, 0), (2, 0)],
            ),
            (
                "match all labels",
                vec!["key", N, C],
                vec![("key", "value"), (N, "n2"), (C, "c2")],
                vec![(1, 0), (1, 3), (1, 1), (1, 2), (1, 0), (1, 2)],
            ),
            (
                "priority assignment as per the overridden value",
                vec!["topology.istio.io/network=n1"],
                vec![(N, "n2"), (C, "test")],
                vec![(1, 0), (1, 1), (1, 0), (1, 1), (1, 0), (1, 1)],
            ),
            (
                "no endpoints with overridden value",
                vec!["topology.istio.io/network=n3"],
                vec![(N, "n1"), (C, "test")],
                vec![(2, 0), (2, 0), (2, 0)],
            ),
        ];
        for (name, priority, proxy, expected) in cases {
            let (groups, endpoints) = labelled_cluster();
            let setting = LocalityLbSetting {
                failover_priority: priority.iter().map(|s| (*s).to_owned()).collect(),
                ..LocalityLbSetting::default()
            };
            let client = Placement {
                labels: labels(&proxy),
                ..client()
            };
            let out = apply(groups, &endpoints, &client, &setting, true);
            assert_eq!(weights_and_priorities(&out), expected, "{name}");
        }
    }

    /// TestApplyLocalitySetting/"FailoverPriority with Failover"/"match all labels".
    #[test]
    fn istio_failover_priority_with_failover() {
        const N: &str = "topology.istio.io/network";
        const C: &str = "topology.istio.io/cluster";
        let ep = |address: &str, labels: &[(&str, &str)]| {
            labels
                .iter()
                .fold(Endpoint::new(address), |e, (k, v)| e.with_label(*k, *v))
        };
        let endpoints = vec![
            ep("1.1.1.1:10001", &[(N, "n1"), (C, "c1")]),
            ep("2.2.2.2:10001", &[("key", "value"), (N, "n2"), (C, "c2")]),
            ep("3.3.3.3:10001", &[("key", "value"), (N, "n1"), (C, "c3")]),
            ep("4.4.4.4:10001", &[("key", "value"), (N, "n2"), (C, "c4")]),
            ep("5.5.5.5:10001", &[(N, "n2"), (C, "c2")]),
            ep("6.6.6.6:10001", &[("key", "value"), (N, "n1"), (C, "c6")]),
        ];
        let localities = [
            ("region1", "zone1", "subzone1"),
            ("region1", "zone2", "subzone2"),
            ("region2", "zone2", "subzone2"),
            ("region3", "zone3", "subzone3"),
            ("region2", "zone2", "subzone2"),
            ("region3", "zone3", "subzone3"),
        ];
        let groups = localities
            .iter()
            .enumerate()
            .map(|(i, (r, z, s))| LocalityGroup {
                locality: Locality::new(*r, *z, *s),
                priority: 0,
                weight: None,
                members: vec![i],
            })
            .collect();
        let setting = LocalityLbSetting {
            failover_priority: vec![N.into(), C.into()],
            ..region1_to_region2()
        };
        let client = Placement {
            labels: labels(&[(N, "n2"), (C, "c2")]),
            ..client()
        };
        let out = apply(groups, &endpoints, &client, &setting, true);
        assert_eq!(priorities(&out), vec![3, 0, 4, 2, 1, 5]);
        assert!(out.iter().all(|g| g.weight == Some(1)));
    }

    #[test]
    fn without_outlier_detection_failover_does_nothing_but_distribute_still_applies() {
        let out = apply(fake_cluster(), &[], &client(), &region1_to_region2(), false);
        assert_eq!(priorities(&out), vec![0; 7]);
        assert!(!region1_to_region2().locality_weighted(false));
        assert!(region1_to_region2().locality_weighted(true));
        assert!(!LocalityLbSetting::default().locality_weighted(true));
    }

    #[test]
    fn groups_follow_istio_sorted_by_locality_label_weighing_their_endpoints() {
        let endpoints = vec![
            Endpoint::new("a:1").with_locality(Locality::parse("r2/z1")),
            Endpoint::new("b:1")
                .with_locality(Locality::parse("r1/z1"))
                .with_weight(3),
            Endpoint::new("c:1").with_locality(Locality::parse("r2/z1")),
        ];
        let groups = group_by_locality(&endpoints);
        assert_eq!(
            groups
                .iter()
                .map(|g| (g.locality.to_string(), g.weight, g.members.clone()))
                .collect::<Vec<_>>(),
            vec![
                ("r1/z1".to_owned(), Some(3), vec![1]),
                ("r2/z1".to_owned(), Some(2), vec![0, 2]),
            ]
        );
    }

    #[test]
    fn locality_matching_and_labels() {
        let l = Locality::parse("us/us-a/rack1");
        assert!(
            l.matches("us/*") && l.matches("*") && l.matches("us") && l.matches("us/us-a/rack1")
        );
        assert!(!l.matches("eu/*") && !l.matches("us/us-b"));
        let with = with_topology_labels(&labels(&[(ZONE_LABEL, "mine")]), &l);
        assert_eq!(with.get(REGION_LABEL).map(String::as_str), Some("us"));
        assert_eq!(with.get(ZONE_LABEL).map(String::as_str), Some("mine"));
        assert_eq!(with.get(SUBZONE_LABEL).map(String::as_str), Some("rack1"));
        assert_eq!(Locality::parse("/zone-only").to_string(), "/zone-only");
    }
}
