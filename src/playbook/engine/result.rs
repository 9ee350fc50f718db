//! [`TaskResult`]: what one module call (or one loop item, or a looped task's summary)
//! returned, as Ansible registers it.
//!
//! The status keys the engine decides on (`changed`, `failed`, `skipped`, `unreachable`,
//! `msg`) are read and written only through typed methods here. The module's own keys
//! (`rc`, `stdout`, `path`, `results`, `ansible_facts`, …) stay an open map: playbooks read
//! them by name (`r.stdout_lines`, `r.results[0].item`) and modules differ in which they
//! return, so a closed struct would have to re-create the map anyway.

use super::template::truthy;
use super::Status;
use serde::Serialize;
use serde_json::{Map, Value};

/// Shown in place of a result under `no_log: true` (Ansible's wording).
pub(crate) const NO_LOG_MSG: &str =
    "the output has been hidden due to the fact that 'no_log: true' was specified for this result";

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(transparent)]
pub struct TaskResult(Map<String, Value>);

impl TaskResult {
    /// A module's result map as returned.
    pub fn from_map(m: Map<String, Value>) -> TaskResult {
        TaskResult(m)
    }

    /// `changed: false`, nothing else.
    pub fn unchanged() -> TaskResult {
        let mut r = TaskResult::default();
        r.set_changed(false);
        r
    }

    /// A failure with Ansible's keys: `failed: true, changed: false, msg`.
    pub fn failed(msg: impl Into<String>) -> TaskResult {
        let mut r = TaskResult::unchanged();
        r.set_failed(true);
        r.set_msg(msg);
        r
    }

    /// The host could not be reached (`unreachable: true, msg`).
    pub fn unreachable(msg: impl Into<String>) -> TaskResult {
        let mut r = TaskResult::default();
        r.0.insert("unreachable".into(), Value::Bool(true));
        r.set_msg(msg);
        r
    }

    /// A task skipped because `when:` was false; `false_condition` names the condition.
    pub fn skipped_by(condition: Option<Value>) -> TaskResult {
        let mut r = TaskResult::unchanged();
        r.0.insert("skipped".into(), Value::Bool(true));
        r.0.insert(
            "skip_reason".into(),
            Value::String("Conditional result was False".into()),
        );
        r.0.insert("false_condition".into(), condition.unwrap_or(Value::Null));
        r
    }

    fn flag(&self, k: &str) -> bool {
        self.0.get(k).map(truthy).unwrap_or(false)
    }

    pub fn is_changed(&self) -> bool {
        self.flag("changed")
    }
    pub fn is_failed(&self) -> bool {
        self.flag("failed")
    }
    pub fn is_skipped(&self) -> bool {
        self.flag("skipped")
    }
    pub fn is_unreachable(&self) -> bool {
        self.flag("unreachable")
    }
    /// Whether the module said anything about failing (Ansible then leaves `failed` alone).
    pub fn has_failed_key(&self) -> bool {
        self.0.contains_key("failed")
    }

    pub fn set_changed(&mut self, b: bool) {
        self.0.insert("changed".into(), Value::Bool(b));
    }
    pub fn set_failed(&mut self, b: bool) {
        self.0.insert("failed".into(), Value::Bool(b));
    }
    pub fn set_skipped(&mut self) {
        self.0.insert("skipped".into(), Value::Bool(true));
    }
    pub fn set_msg(&mut self, msg: impl Into<String>) {
        self.0.insert("msg".into(), Value::String(msg.into()));
    }
    /// Set `msg` unless the module already gave one.
    pub fn default_msg(&mut self, msg: &str) {
        if !self.0.contains_key("msg") {
            self.set_msg(msg);
        }
    }

    /// As Ansible's task executor: a result without `failed` gets one, true only for a
    /// nonzero `rc` (skipped results are left alone).
    pub fn settle_failed_from_rc(&mut self) {
        if self.has_failed_key() || self.is_skipped() {
            return;
        }
        let rc_failed = self
            .0
            .get("rc")
            .map(|v| !(v == &Value::from(0) || v == &Value::from("0")))
            .unwrap_or(false);
        self.set_failed(rc_failed);
    }

    /// What the recap counts this result as (unreachable beats failed beats skipped …).
    pub fn status(&self) -> Status {
        if self.is_unreachable() {
            Status::Unreachable
        } else if self.is_failed() {
            Status::Failed
        } else if self.is_skipped() {
            Status::Skipped
        } else if self.is_changed() {
            Status::Changed
        } else {
            Status::Ok
        }
    }

    /// Under `no_log`: only changed/failed/skipped survive, beside the censor notice.
    pub fn censored(&self) -> TaskResult {
        let mut c = Map::new();
        c.insert("censored".into(), Value::String(NO_LOG_MSG.into()));
        c.insert(
            "changed".into(),
            self.0.get("changed").cloned().unwrap_or(Value::Bool(false)),
        );
        for k in ["failed", "skipped"] {
            if let Some(v) = self.0.get(k) {
                c.insert(k.into(), v.clone());
            }
        }
        TaskResult(c)
    }

    /// A module-specific key (`rc`, `diff`, `ansible_facts`, …).
    pub fn get(&self, k: &str) -> Option<&Value> {
        self.0.get(k)
    }
    /// Add a module-specific key (loop variables, `attempts`, `results`).
    pub fn insert(&mut self, k: impl Into<String>, v: Value) {
        self.0.insert(k.into(), v);
    }
    /// The whole map, for printing.
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.0
    }
    /// The value a `register:` stores.
    pub fn to_value(&self) -> Value {
        Value::Object(self.0.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn of(v: Value) -> TaskResult {
        TaskResult::from_map(v.as_object().unwrap().clone())
    }

    #[test]
    fn status_order_is_unreachable_failed_skipped_changed_ok() {
        assert_eq!(
            of(json!({"unreachable": true, "failed": true})).status(),
            Status::Unreachable
        );
        assert_eq!(
            of(json!({"failed": true, "changed": true})).status(),
            Status::Failed
        );
        assert_eq!(
            of(json!({"skipped": true, "changed": true})).status(),
            Status::Skipped
        );
        assert_eq!(of(json!({"changed": "yes"})).status(), Status::Changed);
        assert_eq!(of(json!({"changed": false})).status(), Status::Ok);
        assert_eq!(TaskResult::default().status(), Status::Ok);
    }

    #[test]
    fn rc_decides_failed_only_when_the_module_did_not() {
        let mut r = of(json!({"rc": 2}));
        r.settle_failed_from_rc();
        assert!(r.is_failed());
        let mut r = of(json!({"rc": "0"}));
        r.settle_failed_from_rc();
        assert_eq!(r.get("failed"), Some(&json!(false)));
        let mut r = of(json!({"rc": 2, "failed": false}));
        r.settle_failed_from_rc();
        assert!(!r.is_failed());
        let mut r = TaskResult::skipped_by(None);
        r.settle_failed_from_rc();
        assert!(!r.has_failed_key());
    }

    #[test]
    fn censoring_keeps_only_the_status_keys() {
        let r = of(json!({"changed": true, "failed": true, "stdout": "secret", "msg": "pw"}));
        let c = r.censored();
        assert_eq!(
            c.to_value(),
            json!({"censored": NO_LOG_MSG, "changed": true, "failed": true})
        );
    }

    #[test]
    fn constructors_use_ansible_keys() {
        assert_eq!(
            TaskResult::failed("boom").to_value(),
            json!({"changed": false, "failed": true, "msg": "boom"})
        );
        assert_eq!(
            TaskResult::unreachable("gone").to_value(),
            json!({"unreachable": true, "msg": "gone"})
        );
        let s = TaskResult::skipped_by(Some(json!("x == 1"))).to_value();
        assert_eq!(s["false_condition"], json!("x == 1"));
        assert_eq!(s["skipped"], json!(true));
        let mut m = TaskResult::failed("first");
        m.default_msg("second");
        assert_eq!(m.get("msg"), Some(&json!("first")));
    }
}
