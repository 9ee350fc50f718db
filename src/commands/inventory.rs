use crate::cli::inventory::InventoryArgs;
use crate::inventory::Inventory;
use anyhow::{bail, Context};
use serde_json::Value;

pub fn run(a: InventoryArgs) -> anyhow::Result<i32> {
    let mut inv = Inventory::load(&a.inventory).context("failed to load the inventory")?;
    if let Some(dir) = &a.playbook_dir {
        inv.add_playbook_vars(dir)
            .context("failed to load playbook group_vars/host_vars")?;
    }
    for w in inv.warnings() {
        eprintln!("[WARNING]: {w}");
    }
    if let Some(host) = &a.host {
        if !inv.has_host(host) {
            bail!("host {host:?} is not in the inventory");
        }
        println!("{}", ansible_json(&Value::Object(inv.host_vars(host))));
        return Ok(0);
    }
    if a.graph {
        let group = a.group.as_deref().unwrap_or("all");
        if a.json {
            let groups = inv.groups();
            println!("{}", ansible_json(&serde_json::to_value(groups)?));
            return Ok(0);
        }
        match inv.graph(group, a.show_vars) {
            Some(g) => println!("{g}"),
            None => bail!("--graph needs a group name; {group:?} is not a group"),
        }
        return Ok(0);
    }
    if let Some(limit) = &a.limit {
        let sel = inv.select_limited("all", Some(limit))?;
        for w in &sel.warnings {
            eprintln!("[WARNING]: {w}");
        }
    }
    let list = inv.to_ansible_list_limited(a.limit.as_deref())?;
    println!("{}", ansible_json(&list));
    Ok(0)
}

/// JSON as `ansible-inventory` prints it: keys sorted, 4-space indent.
fn ansible_json(v: &Value) -> String {
    use serde::Serialize;
    let sorted = sort_keys(v);
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    sorted
        .serialize(&mut ser)
        .expect("serialising JSON to memory");
    String::from_utf8(buf).expect("serde_json writes UTF-8")
}

fn sort_keys(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let mut out = serde_json::Map::new();
            for k in keys {
                out.insert(k.clone(), sort_keys(&m[k]));
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(sort_keys).collect()),
        other => other.clone(),
    }
}
