//! The targets `bench --compare` judges a run by (issue 20): at
//! saturation, Jisr's throughput against each peer and its CPU per call
//! against nginx's; below saturation (`--rate`), Jisr's added median
//! against nginx's plus one `fdatasync` of the run's probe; and, always,
//! zero errors and the gateway's peak memory. Each line says met or not
//! with the figures behind it, from this run only: figures of another
//! machine or run are not comparable.

use super::report::{Report, Summary};

/// At saturation: Jisr's throughput at least this share of nginx's.
const OVER_NGINX: f64 = 1.5;
/// … of HAProxy's.
const OVER_HAPROXY: f64 = 0.75;
/// … of calling the providers directly.
const OVER_DIRECT: f64 = 0.6;
/// At saturation: Jisr's CPU per call at most this share of nginx's.
const CPU_OF_NGINX: f64 = 0.6;
/// The gateway's peak resident memory, MB.
const PEAK_MB: f64 = 64.0;

fn mark(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "NOT met"
    }
}

impl Report {
    /// The targets, each met or not, with the numbers behind it.
    pub(crate) fn verdicts(&self) -> Vec<String> {
        let mut lines = match self.load.rate {
            None => self.at_saturation(),
            Some(_) => self.below_saturation(),
        };
        let errors: u64 = self.targets.iter().map(Summary::error_count).sum();
        lines.push(format!(
            "target zero errors: {} ({errors} errors)",
            mark(errors == 0)
        ));
        if let Some(proxy) = self.get("jisr").and_then(|j| j.proxy) {
            let mb = proxy.peak_rss_kb as f64 / 1024.0;
            lines.push(format!(
                "target gateway peak RSS ≤ {PEAK_MB} MB: {} ({mb:.1} MB)",
                mark(mb <= PEAK_MB)
            ));
        }
        lines
    }

    fn at_saturation(&self) -> Vec<String> {
        let ratios = self.ratios();
        let mut lines = Vec::new();
        let peers = [
            ("nginx", ratios.jisr_over_nginx, OVER_NGINX),
            ("HAProxy", ratios.jisr_over_haproxy, OVER_HAPROXY),
            ("direct", ratios.jisr_over_direct, OVER_DIRECT),
        ];
        for (peer, ratio, least) in peers {
            if let Some(r) = ratio {
                lines.push(format!(
                    "target Jisr ≥ {least}× {peer} throughput: {} ({r:.2}×)",
                    mark(r >= least)
                ));
            }
        }
        let cpu = |name| self.get(name).and_then(Summary::cpu_us_per_call);
        if let (Some(jisr), Some(nginx)) = (cpu("jisr"), cpu("nginx")) {
            let share = jisr / nginx;
            lines.push(format!(
                "target Jisr CPU per call ≤ {CPU_OF_NGINX}× nginx's: {} ({jisr:.1} µs against {nginx:.1}, {share:.2}×)",
                mark(share <= CPU_OF_NGINX)
            ));
        }
        lines
    }

    fn below_saturation(&self) -> Vec<String> {
        let ratios = self.ratios();
        let (Some(jisr), Some(nginx)) = (ratios.jisr_added_p50_us, ratios.nginx_added_p50_us)
        else {
            return Vec::new();
        };
        // The probe before the rounds: the disk as the run found it.
        let Some(fsync) = self.load.fsync[0] else {
            return vec![format!(
                "target added p50 over direct ≤ nginx's + one fdatasync p50: not judged (no fdatasync probe in this run); Jisr {jisr:+} µs, nginx {nginx:+} µs"
            )];
        };
        let bound = nginx + fsync.p50_us as i64;
        vec![format!(
            "target added p50 over direct ≤ nginx's + one fdatasync p50: {} (Jisr {jisr:+} µs; nginx {nginx:+} µs + fdatasync {} µs = {bound:+} µs)",
            mark(jisr <= bound),
            fsync.p50_us
        )]
    }
}

#[cfg(test)]
mod tests {
    use super::super::disk::Fsync;
    use super::super::procs::ProcStats;
    use super::super::report::tests::{haproxy, report};
    use std::time::Duration;

    #[test]
    fn at_saturation_each_peer_and_the_resources_are_judged() {
        let verdicts = report().verdicts();
        assert_eq!(
            verdicts,
            [
                "target Jisr ≥ 1.5× nginx throughput: met (1.50×)",
                "target Jisr ≥ 0.6× direct throughput: met (0.75×)",
                "target zero errors: NOT met (2 errors)",
                "target gateway peak RSS ≤ 64 MB: met (20.0 MB)",
            ]
        );
    }

    #[test]
    fn cpu_per_call_is_judged_against_nginxs_and_haproxy_joins_the_peers() {
        let mut r = report();
        let nginx = r.targets.iter_mut().find(|t| t.name == "nginx").unwrap();
        // 2,000 calls in 1.5 s of CPU: 750 µs per call; Jisr's 500 is 0.67×.
        nginx.proxy = Some(ProcStats {
            cpu: Duration::from_millis(1_500),
            peak_rss_kb: 40 * 1024,
            processes: 3,
        });
        r.targets.push(haproxy());
        let verdicts = r.verdicts();
        assert!(
            verdicts.contains(&"target Jisr ≥ 0.75× HAProxy throughput: NOT met (0.60×)".into()),
            "{verdicts:?}"
        );
        assert!(
            verdicts.contains(
                &"target Jisr CPU per call ≤ 0.6× nginx's: NOT met (500.0 µs against 750.0, 0.67×)"
                    .into()
            ),
            "{verdicts:?}"
        );
    }

    #[test]
    fn below_saturation_the_added_median_is_judged_against_nginxs_plus_one_fdatasync() {
        let mut r = report();
        r.load.rate = Some(4_000.0);
        // Jisr adds ≈ 500 µs, nginx ≈ 2,000: met with any probe; throughput
        // is the schedule's, so it is not judged.
        r.load.fsync = [
            Some(Fsync {
                p50_us: 200,
                p99_us: 400,
            }),
            None,
        ];
        let verdicts = r.verdicts();
        assert_eq!(verdicts.len(), 3, "{verdicts:?}");
        assert!(
            verdicts[0].starts_with(
                "target added p50 over direct ≤ nginx's + one fdatasync p50: met (Jisr +"
            ),
            "{verdicts:?}"
        );
        assert!(verdicts[0].contains("+ fdatasync 200 µs"), "{verdicts:?}");
        assert!(
            !verdicts.iter().any(|v| v.contains("throughput")),
            "{verdicts:?}"
        );

        // Swap the roles: Jisr slower than nginx plus the probe.
        let (jisr, nginx) = (
            r.targets.iter().position(|t| t.name == "jisr").unwrap(),
            r.targets.iter().position(|t| t.name == "nginx").unwrap(),
        );
        r.targets[jisr].latency.p50 = 5_000;
        r.targets[nginx].latency.p50 = 1_100;
        let verdicts = r.verdicts();
        assert!(verdicts[0].contains(": NOT met (Jisr +4"), "{verdicts:?}");

        r.load.fsync = [None, None];
        let verdicts = r.verdicts();
        assert!(
            verdicts[0].contains("not judged (no fdatasync probe"),
            "{verdicts:?}"
        );
    }
}
