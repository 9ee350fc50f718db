//! What the engines say about a deployed product: the lines `docker service …` (Swarm) and
//! `docker ps` (Compose) print, read into one row per service, and whether the deployment has
//! converged, is still moving, or has failed.

use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// One service of a deployed product, as its engine reports it.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ServiceState {
    pub service: String,
    /// The host that runs it (`compose` target; Swarm places tasks itself).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The image the service is to run (`REGISTRY/repo@sha256:…`).
    pub image: String,
    /// Tasks or containers running that image.
    pub running: u32,
    pub desired: u32,
    /// Swarm's update state (`updating`, `completed`, `rollback_completed`, …), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub update: Option<String>,
    /// The engine's last error for the service (a task's, an update's, a container's status).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Where a deployment stands.
#[derive(Debug, PartialEq)]
pub enum Verdict {
    Converged,
    Pending,
    /// Will not converge without a change (Swarm rolled back or paused an update).
    Failed(String),
}

/// The shell script whose output [`parse_swarm`] reads, three `docker` calls whatever the
/// number of services: `R name replicas` per service, `S name {service json}` per service,
/// `T {task json}` per task (recent history included).
pub fn swarm_script(stack: &str) -> String {
    let q = crate::transport::shell_quote(stack);
    format!(
        "f=label=com.docker.stack.namespace={q}; \
         names=$(docker service ls --filter \"$f\" --format '{{{{.Name}}}}') || exit; \
         [ -n \"$names\" ] || exit 0; \
         docker service ls --filter \"$f\" --format 'R {{{{.Name}}}} {{{{.Replicas}}}}' && \
         docker service inspect --format 'S {{{{.Spec.Name}}}} {{{{json .}}}}' $names && \
         docker service ps --no-trunc --format 'T {{{{json .}}}}' $names"
    )
}

/// Read [`swarm_script`]'s output (the stack's prefix is removed from the service names).
pub fn parse_swarm(text: &str, stack: &str) -> Vec<ServiceState> {
    let mut rows: BTreeMap<String, ServiceState> = BTreeMap::new();
    let mut tasks: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for line in text.lines() {
        let Some((kind, rest)) = line.split_once(' ') else {
            continue;
        };
        if kind == "T" {
            let t: Value = serde_json::from_str(rest).unwrap_or(Value::Null);
            // A task is `SERVICE.SLOT` (replicated) or `SERVICE.NODE` (global).
            let name = t.get("Name").and_then(Value::as_str).unwrap_or("");
            let service = name.rsplit_once('.').map(|x| x.0).unwrap_or(name);
            tasks.entry(service.to_string()).or_default().push(t);
            continue;
        }
        let Some((name, rest)) = rest.split_once(' ') else {
            continue;
        };
        let row = rows
            .entry(name.to_string())
            .or_insert_with(|| ServiceState {
                service: name
                    .strip_prefix(&format!("{stack}_"))
                    .unwrap_or(name)
                    .to_string(),
                ..Default::default()
            });
        match kind {
            "R" => row.desired = desired_of(rest),
            "S" => {
                let v: Value = serde_json::from_str(rest).unwrap_or(Value::Null);
                row.image = v
                    .pointer("/Spec/TaskTemplate/ContainerSpec/Image")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                let st = v.get("UpdateStatus");
                row.update = st
                    .and_then(|s| s.get("State"))
                    .and_then(Value::as_str)
                    .map(str::to_string);
                row.error = st
                    .and_then(|s| s.get("Message"))
                    .and_then(Value::as_str)
                    .filter(|_| row.update.as_deref().is_some_and(|u| u != "completed"))
                    .map(str::to_string);
            }
            _ => {}
        }
    }
    for (name, row) in rows.iter_mut() {
        let ts = tasks.remove(name).unwrap_or_default();
        let field = |t: &Value, k: &str| t.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        row.running = ts
            .iter()
            .filter(|t| {
                field(t, "DesiredState") == "Running"
                    && field(t, "CurrentState").starts_with("Running")
                    && same_image(&field(t, "Image"), &row.image)
            })
            .count() as u32;
        let task_error = ts.iter().find_map(|t| {
            let e = field(t, "Error");
            (!e.is_empty()).then(|| format!("task {}: {e}", field(t, "Name")))
        });
        let rolled_back = row
            .update
            .as_deref()
            .is_some_and(|u| u.starts_with("rollback"));
        if row.running < row.desired || rolled_back {
            row.error = match (row.error.take(), task_error) {
                (Some(u), Some(t)) => Some(format!("{u}; {t}")),
                (u, t) => u.or(t),
            };
        }
    }
    rows.into_values().collect()
}

/// `2/3`, `1/1 (max 1 per node)`: the desired count.
fn desired_of(replicas: &str) -> u32 {
    replicas
        .split('/')
        .nth(1)
        .map(|d| {
            d.chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
        })
        .and_then(|d| d.parse().ok())
        .unwrap_or(0)
}

/// Two references name the same image when their digests match (a tag beside it aside).
fn same_image(a: &str, b: &str) -> bool {
    match (a.rsplit_once('@'), b.rsplit_once('@')) {
        (Some((_, x)), Some((_, y))) => x == y,
        _ => a == b,
    }
}

/// The shell script whose output [`parse_compose`] reads: one tab-separated line per container
/// of the project (service, state, image as created, name, exit code, restarts), from
/// `docker inspect` (`docker ps` shortens a digest reference to its repository).
pub fn compose_script(project: &str) -> String {
    format!(
        "if command -v docker >/dev/null 2>&1; then e=docker; else e=podman; fi; \
         ids=$($e ps -aq --filter label=com.docker.compose.project={}); \
         [ -z \"$ids\" ] || $e inspect --format '{{{{index .Config.Labels \"com.docker.compose.service\"}}}}\t{{{{.State.Status}}}}\t{{{{.Config.Image}}}}\t{{{{.Name}}}}\t{{{{.State.ExitCode}}}}\t{{{{.RestartCount}}}}' $ids",
        crate::transport::shell_quote(project)
    )
}

/// Read [`compose_script`]'s lines for `host`: `want` is each service's pinned image and
/// replica count.
pub fn parse_compose(
    text: &str,
    host: &str,
    want: &BTreeMap<String, (String, u32)>,
) -> Vec<ServiceState> {
    let mut rows: BTreeMap<&str, ServiceState> = want
        .iter()
        .map(|(name, (image, desired))| {
            let row = ServiceState {
                service: name.clone(),
                host: Some(host.to_string()),
                image: image.clone(),
                desired: *desired,
                ..Default::default()
            };
            (name.as_str(), row)
        })
        .collect();
    for line in text.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        let [service, state, image, name, exit, restarts, ..] = f[..] else {
            continue;
        };
        let Some(row) = rows.get_mut(service) else {
            continue;
        };
        if !same_image(image, &row.image) {
            continue;
        }
        if state == "running" {
            row.running += 1;
        } else {
            row.error = Some(format!(
                "container {}: {state}, exit code {exit}, {restarts} restart(s)",
                name.trim_start_matches('/')
            ));
        }
    }
    rows.into_values().collect()
}

/// Whether `rows` (every service the deployment has) has converged.
pub fn verdict(rows: &[ServiceState]) -> Verdict {
    let bad: Vec<String> = rows
        .iter()
        .filter(|r| {
            matches!(
                r.update.as_deref(),
                Some("rollback_completed" | "rollback_paused" | "paused")
            )
        })
        .map(|r| {
            format!(
                "service {}: Swarm's update ended {}{}",
                r.service,
                r.update.as_deref().unwrap_or(""),
                r.error
                    .as_deref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            )
        })
        .collect();
    if !bad.is_empty() {
        return Verdict::Failed(bad.join("; "));
    }
    let moving = rows.iter().any(|r| {
        r.running < r.desired
            || matches!(r.update.as_deref(), Some("updating" | "rollback_started"))
    });
    if rows.is_empty() || moving {
        Verdict::Pending
    } else {
        Verdict::Converged
    }
}

/// The services of `rows` that have not converged, with what the engine said about each.
pub fn pending_summary(rows: &[ServiceState]) -> String {
    rows.iter()
        .filter(|r| {
            r.running < r.desired
                || r.error.is_some()
                || matches!(r.update.as_deref(), Some("updating" | "rollback_started"))
        })
        .map(|r| {
            let on = r.host.as_deref().map(|h| format!(" on {h}"));
            let update = r.update.as_deref().filter(|u| *u != "completed");
            format!(
                "{}{} {}/{} running{}{}",
                r.service,
                on.unwrap_or_default(),
                r.running,
                r.desired,
                update.map(|u| format!(", {u}")).unwrap_or_default(),
                r.error
                    .as_deref()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default()
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const IMG: &str = "10.0.0.1:5000/dc/rng@sha256:aaaa";

    fn swarm_lines(update: &str, tasks: &[(&str, &str, &str, &str)]) -> String {
        let mut s = format!(
            "R dc_rng 1/2\nS dc_rng {{\"Spec\":{{\"TaskTemplate\":{{\"ContainerSpec\":{{\"Image\":\"{IMG}\"}}}}}}{update}}}\n"
        );
        for (name, desired, current, err) in tasks {
            s.push_str(&format!(
                "T {{\"Name\":\"{name}\",\"Image\":\"{IMG}\",\"DesiredState\":\"{desired}\",\"CurrentState\":\"{current}\",\"Error\":\"{err}\"}}\n"
            ));
        }
        s
    }

    #[test]
    fn swarm_rows_count_running_tasks_of_the_pinned_image() {
        let text = swarm_lines(
            "",
            &[
                ("dc_rng.1", "Running", "Running 5 seconds ago", ""),
                ("dc_rng.2", "Running", "Starting 1 second ago", ""),
                (
                    "dc_rng.2",
                    "Shutdown",
                    "Failed 3 seconds ago",
                    "task: non-zero exit (1)",
                ),
            ],
        );
        let rows = parse_swarm(&text, "dc");
        assert_eq!(rows.len(), 1);
        let r = &rows[0];
        assert_eq!((r.service.as_str(), r.running, r.desired), ("rng", 1, 2));
        assert_eq!(
            r.error.as_deref(),
            Some("task dc_rng.2: task: non-zero exit (1)")
        );
        assert_eq!(verdict(&rows), Verdict::Pending);
        assert!(pending_summary(&rows).contains("rng 1/2 running (task dc_rng.2"));
    }

    #[test]
    fn a_rolled_back_update_is_a_failure() {
        let text = swarm_lines(
            ",\"UpdateStatus\":{\"State\":\"rollback_completed\",\"Message\":\"rollback completed\"}",
            &[("dc_rng.1", "Running", "Running 5 seconds ago", ""), ("dc_rng.2", "Running", "Running 5 seconds ago", "")],
        );
        let rows = parse_swarm(&text, "dc");
        assert_eq!(rows[0].running, 2);
        match verdict(&rows) {
            Verdict::Failed(m) => assert!(
                m.contains("rng: Swarm's update ended rollback_completed"),
                "{m}"
            ),
            v => panic!("{v:?}"),
        }
        let done = swarm_lines(
            ",\"UpdateStatus\":{\"State\":\"completed\",\"Message\":\"update completed\"}",
            &[
                ("dc_rng.1", "Running", "Running 5 seconds ago", ""),
                ("dc_rng.2", "Running", "Running 5 seconds ago", ""),
            ],
        );
        let rows = parse_swarm(&done, "dc");
        assert_eq!(rows[0].error, None);
        assert_eq!(verdict(&rows), Verdict::Converged);
        assert_eq!(verdict(&[]), Verdict::Pending);
        assert_eq!(desired_of("1/1 (max 1 per node)"), 1);
    }

    #[test]
    fn compose_rows_from_docker_ps() {
        let want: BTreeMap<String, (String, u32)> = [
            ("rng".to_string(), (IMG.to_string(), 1)),
            ("webui".to_string(), ("r/webui@sha256:bbbb".to_string(), 1)),
        ]
        .into();
        let text = format!(
            "rng\trunning\t{IMG}\t/dc-rng-1\t0\t0\n\
             webui\trestarting\tr/webui@sha256:bbbb\t/dc-webui-1\t1\t4\n\
             webui\texited\tr/webui@sha256:old\t/dc-webui-old\t0\t0\n"
        );
        let rows = parse_compose(&text, "node1", &want);
        assert_eq!(rows[0].running, 1);
        assert_eq!(rows[1].running, 0);
        assert_eq!(
            rows[1].error.as_deref(),
            Some("container dc-webui-1: restarting, exit code 1, 4 restart(s)")
        );
        assert_eq!(verdict(&rows), Verdict::Pending);
        assert_eq!(verdict(&rows[..1]), Verdict::Converged);
    }
}
