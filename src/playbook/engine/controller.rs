//! Modules that run on the controller (`Runs::Controller` in the module registry): debug,
//! set_fact, assert, fail, pause, include_vars.

use super::*;

/// What a controller module sees besides its arguments.
pub(super) struct ControllerCtx<'a> {
    pub(super) vars: &'a JValue,
    pub(super) check: bool,
    pub(super) search: &'a [PathBuf],
    pub(super) loc: &'a crate::playbook::model::Loc,
}

/// Run a controller module; variables it sets go to `eff`.
pub(super) fn run_controller(
    module: &str,
    args: &Map<String, Value>,
    cc: &ControllerCtx,
    eff: &mut HostEffects,
    hr: &mut HostResult,
) -> TaskResult {
    let (ctx, check, search) = (cc.vars, cc.check, cc.search);
    match module {
        "debug" => {
            hr.verbose = true;
            controller_debug(args, ctx)
        }
        "set_fact" => {
            let mut m = args.clone();
            m.remove("cacheable");
            eff.set_facts.extend(m.clone());
            let mut r = TaskResult::unchanged();
            r.insert("ansible_facts", Value::Object(m));
            r
        }
        "assert" => controller_assert(args, ctx, cc.loc),
        "fail" => {
            let msg = args
                .get("msg")
                .map(py_str)
                .unwrap_or("Failed as requested from task".into());
            TaskResult::failed(msg)
        }
        "pause" => {
            let secs = args
                .get("seconds")
                .map(py_str)
                .and_then(|s| s.parse::<f64>().ok())
                .unwrap_or(0.0)
                + args
                    .get("minutes")
                    .map(py_str)
                    .and_then(|s| s.parse::<f64>().ok())
                    .unwrap_or(0.0)
                    * 60.0;
            let start = Instant::now();
            if secs > 0.0 && !check {
                std::thread::sleep(Duration::from_secs_f64(secs));
            }
            let mut r = TaskResult::unchanged();
            r.insert("delta", json!(start.elapsed().as_secs()));
            r.insert("stdout", json!(format!("Paused for {secs} seconds")));
            r.insert("user_input", json!(""));
            r
        }
        "include_vars" => match controller_include_vars(args, search) {
            Ok((m, files)) => {
                match args.get("name").map(py_str) {
                    Some(n) => {
                        eff.include_vars.insert(n, Value::Object(m.clone()));
                    }
                    None => eff.include_vars.extend(m.clone()),
                }
                let mut r = TaskResult::unchanged();
                r.insert("ansible_facts", Value::Object(m));
                r.insert("ansible_included_var_files", json!(files));
                r
            }
            Err(e) => TaskResult::failed(e),
        },
        other => TaskResult::failed(format!("{other} is not a controller module")),
    }
}

pub(super) fn controller_debug(args: &Map<String, Value>, ctx: &JValue) -> TaskResult {
    let mut r = TaskResult::default();
    if let Some(var) = args.get("var") {
        let name = py_str(var);
        let v = template::eval_expr(&name, ctx)
            .unwrap_or(Value::String("VARIABLE IS NOT DEFINED!".into()));
        r.insert(name, v);
    } else {
        r.insert(
            "msg",
            args.get("msg")
                .cloned()
                .unwrap_or(Value::String("Hello world!".into())),
        );
    }
    r.set_changed(false);
    r
}

pub(super) fn controller_assert(
    args: &Map<String, Value>,
    ctx: &JValue,
    loc: &crate::playbook::model::Loc,
) -> TaskResult {
    let that = super_list(args.get("that").unwrap_or(&Value::Null));
    for cond in &that {
        match eval_cond(cond, ctx) {
            Ok(true) => {}
            Ok(false) => {
                let msg = args
                    .get("fail_msg")
                    .or_else(|| args.get("msg"))
                    .cloned()
                    .unwrap_or(Value::String("Assertion failed".into()));
                let mut r = TaskResult::failed("");
                r.insert("assertion", cond.clone());
                r.insert("evaluated_to", Value::Bool(false));
                r.insert("msg", msg);
                return r;
            }
            Err(e) => {
                return TaskResult::failed(format!(
                    "{loc}: The conditional check '{}' failed: {}",
                    py_str(cond),
                    e.msg
                ))
            }
        }
    }
    let msg = args
        .get("success_msg")
        .cloned()
        .unwrap_or(Value::String("All assertions passed".into()));
    let mut r = TaskResult::unchanged();
    r.insert("msg", msg);
    r
}

pub(super) fn controller_include_vars(
    args: &Map<String, Value>,
    search: &[PathBuf],
) -> Result<(Map<String, Value>, Vec<String>), String> {
    let f = args
        .get("file")
        .or_else(|| args.get("_raw_params"))
        .map(py_str);
    let dir = args.get("dir").map(py_str);
    let mut files = vec![];
    if let Some(f) = f {
        let p = PathBuf::from(&f);
        let found = if p.is_absolute() {
            Some(p)
        } else {
            search
                .iter()
                .flat_map(|d| [d.join("vars").join(&f), d.join(&f)])
                .find(|c| c.is_file())
        };
        files.push(found.ok_or_else(|| format!("Could not find or access '{f}'"))?);
    } else if let Some(d) = dir {
        let p = PathBuf::from(&d);
        let base = if p.is_absolute() {
            p
        } else {
            search
                .iter()
                .flat_map(|s| [s.join("vars").join(&d), s.join(&d)])
                .find(|c| c.is_dir())
                .ok_or_else(|| format!("Could not find or access directory '{d}'"))?
        };
        let mut entries: Vec<PathBuf> = std::fs::read_dir(&base)
            .map_err(|e| format!("{}: {e}", base.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                matches!(
                    p.extension().and_then(|e| e.to_str()),
                    Some("yml" | "yaml" | "json")
                )
            })
            .collect();
        entries.sort();
        files.extend(entries);
    } else {
        return Err("include_vars: no file or dir given".into());
    }
    let mut m = Map::new();
    for f in &files {
        m.extend(crate::playbook::model::load_vars_file(f).map_err(|e| e.to_string())?);
    }
    Ok((m, files.iter().map(|f| abs(f)).collect()))
}
