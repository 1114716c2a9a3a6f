use super::*;

fn pod(request: f64, usage: Option<f64>) -> PodSample {
    PodSample {
        ignored: false,
        unready: false,
        request: Some(request),
        usage,
    }
}

fn pods(list: &[PodSample]) -> BTreeMap<String, PodSample> {
    list.iter()
        .enumerate()
        .map(|(i, p)| (format!("p{i}"), p.clone()))
        .collect()
}

#[test]
fn the_count_follows_the_ratio_beyond_the_tolerance() {
    // One pod at 100m of a 100m request, target 50 %: two pods.
    let one = pods(&[pod(0.1, Some(0.1))]);
    let p = propose(1, &one, Target::Utilization(50), "cpu").unwrap();
    assert_eq!((p.replicas, p.utilization), (2, Some(100)));
    // Burning a core each at 100m requests: 1000 %, twenty times the
    // target.
    let two = pods(&[pod(0.1, Some(1.0)), pod(0.1, Some(1.0))]);
    assert_eq!(
        propose(2, &two, Target::Utilization(50), "cpu")
            .unwrap()
            .replicas,
        40
    );
    // 54 % of a 50 % target is within the tolerance.
    let near = pods(&[pod(0.1, Some(0.054))]);
    assert_eq!(
        propose(3, &near, Target::Utilization(50), "cpu")
            .unwrap()
            .replicas,
        3
    );
    // Idle: none (the bounds hold it at minReplicas afterwards).
    let idle = pods(&[pod(0.1, Some(0.001)), pod(0.1, Some(0.0))]);
    assert_eq!(
        propose(2, &idle, Target::Utilization(50), "cpu")
            .unwrap()
            .replicas,
        0
    );
    // An average value per pod.
    let mem = pods(&[pod(1.0, Some(300.0)), pod(1.0, Some(300.0))]);
    let p = propose(2, &mem, Target::AverageValue(100.0), "memory").unwrap();
    assert_eq!((p.replicas, p.average), (6, 300.0));
}

#[test]
fn pods_without_samples_move_the_count_least() {
    // Scaling up: a pod without metrics counts as idle, an unready one too.
    let mut list = pods(&[pod(0.1, Some(0.2)), pod(0.1, None)]);
    let p = propose(2, &list, Target::Utilization(50), "cpu").unwrap();
    // 200 % on one, 0 on the other: 100 % over two, four pods.
    assert_eq!(p.replicas, 4);
    list.get_mut("p1").unwrap().usage = Some(0.5);
    list.get_mut("p1").unwrap().unready = true;
    assert_eq!(
        propose(2, &list, Target::Utilization(50), "cpu")
            .unwrap()
            .replicas,
        4
    );
    // Scaling down: a missing pod counts at its full request, which here
    // turns the ratio over 1: no change.
    let down = pods(&[pod(0.1, Some(0.01)), pod(0.1, None)]);
    assert_eq!(
        propose(2, &down, Target::Utilization(50), "cpu")
            .unwrap()
            .replicas,
        2
    );
    // Ignored pods do not count; no metric at all is an error; a
    // container without a request is one too.
    let mut gone = pods(&[pod(0.1, Some(0.1))]);
    gone.get_mut("p0").unwrap().ignored = true;
    assert!(propose(1, &gone, Target::Utilization(50), "cpu").is_err());
    let mut unrequested = pods(&[pod(0.1, Some(0.1))]);
    unrequested.get_mut("p0").unwrap().request = None;
    let err = propose(1, &unrequested, Target::Utilization(50), "cpu").unwrap_err();
    assert_eq!(err.0, "missing request for cpu in pod p0");
}

#[test]
fn behavior_stabilizes_down_and_limits_the_rate() {
    let (up, down) = Rules::both(None);
    let mut recs = Vec::new();
    // Up from 1 to 40 proposed: by 4 pods or 100 % per 15 s, whichever is
    // more: 5; with max 4, 4.
    let (n, why, _) = with_behavior(1, 40, 1, 10, &up, &down, &mut recs, &[], 1000);
    assert_eq!((n, why), (5, Limited::ScaleUpLimit));
    let (n, why, _) = with_behavior(1, 40, 1, 4, &up, &down, &mut recs, &[], 1000);
    assert_eq!((n, why), (4, Limited::TooMany));
    // A scale-up 5 s ago used up part of the period.
    let events = [AtTime {
        replicas: 3,
        at: 995,
    }];
    let (n, _, _) = with_behavior(4, 40, 1, 100, &up, &down, &mut recs, &events, 1000);
    assert_eq!(n, 5, "from 1 at the period's start: 1 + 4 pods, 2 × 1");

    // Down: held at the highest recommendation of the last 5 minutes.
    let mut recs = vec![AtTime {
        replicas: 4,
        at: 800,
    }];
    let (n, _, held) = with_behavior(4, 1, 1, 10, &up, &down, &mut recs, &[], 1000);
    assert_eq!(n, 4);
    assert!(held);
    let (n, why, _) = with_behavior(4, 1, 1, 10, &up, &down, &mut recs, &[], 1101);
    assert_eq!((n, why), (1, Limited::No), "the window passed");

    // A window of its own, and a policy of one pod a minute.
    let down = Rules {
        stabilization_window_seconds: 0,
        select_policy: "Max".into(),
        policies: vec![("Pods".into(), 1, 60)],
    };
    let (n, why, _) = with_behavior(4, 1, 1, 10, &up, &down, &mut Vec::new(), &[], 5000);
    assert_eq!((n, why), (3, Limited::ScaleDownLimit));
    let disabled = Rules {
        select_policy: "Disabled".into(),
        ..down
    };
    let (n, _, _) = with_behavior(4, 1, 1, 10, &up, &disabled, &mut Vec::new(), &[], 5000);
    assert_eq!(n, 4);
}
